/**
 * The HTTPS client's common ground, for the download, the ready marker and verify: Deno's HTTP client (HTTP/1.1,
 * the CA file), the credentials' headers, network and TLS failures in plain words, and a body read in large batches.
 */
import { Buffer } from "node:buffer";
import { ArchivistError, errMsg } from "../errors.ts";
import type { SourceConfig } from "../config/schema.ts";
import { AttemptError } from "./attempt.ts";

/** A network failure of Deno's fetch in plain words: DNS, refused, TLS, timeout, unreachable. */
export function describeNetworkError(e: unknown, url: URL, cfg: SourceConfig): AttemptError {
  const msg = errMsg(e) + " " + errMsg((e as { cause?: unknown })?.cause ?? "");
  const host = url.hostname;
  const port = url.port || "443";
  if (/dns error|failed to lookup|name or service not known|no address associated|nodename nor servname/i.test(msg)) {
    return new AttemptError("dns", `cannot resolve host ${host}`, true, "check source.url and DNS (resolv.conf)");
  }
  if (/connection refused/i.test(msg)) {
    return new AttemptError(
      "refused",
      `connection refused by ${host}:${port}`,
      true,
      "is the export server up and listening on that port?",
    );
  }
  if (/certificate|UnknownIssuer|tls|ssl|handshake|CaUsedAsEndEntity/i.test(msg)) return describeTls(msg, host, port, cfg);
  if (/timed out|timeout/i.test(msg)) {
    return new AttemptError("timeout", `network timeout talking to ${host}:${port}`, true, "check the network path");
  }
  if (/unreachable|no route/i.test(msg)) return new AttemptError("network", `host ${host} unreachable`, true, "check routing and firewall");
  return new AttemptError("network", `network error talking to ${host}:${port}: ${msg.trim()}`, true);
}

const utc = (unix: string) => new Date(Number(unix) * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";

/**
 * A TLS failure in plain words: expired (on which date), not yet valid, the wrong name (and the names it has), an
 * unknown issuer, a self-signed CA certificate used as the server's. Deno's TLS library (rustls) says all of it;
 * the text after "invalid peer certificate:" is translated, never cut.
 */
export function describeTls(msg: string, host: string, port: string, cfg: { ca_file?: string }): AttemptError {
  const where = `${host}:${port}`;
  const tls = (what: string, hint: string) => new AttemptError("tls", `TLS: ${what}`, false, hint);
  let m = /not valid after (\d+)/.exec(msg);
  if (/certificate expired|Expired\b/.test(msg)) {
    return tls(
      `the certificate of ${where} expired${m ? ` on ${utc(m[1])}` : ""}`,
      "the server's certificate must be renewed (source.ca_file cannot help); if it looks valid, check this machine's clock",
    );
  }
  m = /not valid before (\d+)/.exec(msg);
  if (/not valid yet|NotValidYet/.test(msg)) {
    return tls(
      `the certificate of ${where} is not valid yet${m ? ` (from ${utc(m[1])})` : ""}`,
      "check this machine's clock (timedatectl), then the server's certificate",
    );
  }
  const valid = msg.indexOf("only valid for ");
  if (/not valid for name/.test(msg) || /NotValidForName/.test(msg)) {
    const names = valid < 0 ? [] : [...msg.slice(valid).matchAll(/(?:DnsName|IpAddress)\("?([^")]+)"?\)/g)].map((x) => x[1]);
    return tls(
      `the certificate of ${where} is not for ${host}${names.length ? `: it names ${names.join(", ")}` : ""}`,
      names.length
        ? `use a name the certificate has in source.url (e.g. https://${names[0]}/...), or reissue the certificate for ${host}`
        : `reissue the certificate for ${host}, or use the name it has in source.url`,
    );
  }
  if (/CaUsedAsEndEntity/.test(msg)) {
    return tls(
      `the certificate of ${where} is a CA certificate used as the server's own (what \`openssl req -x509\` makes): Deno's TLS refuses it, even as source.ca_file`,
      "set source.client: curl (curl accepts such a certificate given as source.ca_file), or give the server a certificate signed by a small CA of your own (see the user guide, 'A server with its own certificate')",
    );
  }
  if (/UnknownIssuer|unknown issuer|self[- ]signed/i.test(msg)) {
    return tls(
      `the certificate of ${where} is signed by an issuer this machine does not trust`,
      cfg.ca_file
        ? `source.ca_file (${cfg.ca_file}) does not hold the CA that signed it: put that CA's certificate there`
        : "if the server uses a private CA, set source.ca_file to that CA's certificate (PEM)",
    );
  }
  const detail = /invalid peer certificate: (.*)$/.exec(msg.trim())?.[1] ?? msg.replace(/.*client error \(Connect\):\s*/, "").trim();
  return tls(
    `the TLS connection to ${where} failed: ${detail.replace(/\s+/g, " ")}`,
    cfg.ca_file
      ? `check the server's certificate and source.ca_file (${cfg.ca_file})`
      : "check the server's certificate (openssl s_client -connect HOST:PORT)",
  );
}

export function authHeaders(cfg: SourceConfig): Record<string, string> {
  const h: Record<string, string> = {};
  const a = cfg.auth;
  if (a?.type === "basic") h["Authorization"] = "Basic " + Buffer.from(`${a.username}:${a.password}`).toString("base64");
  else if (a?.type === "header") h[a.name] = a.value!;
  return h;
}

/**
 * Build the HTTP client: HTTP/1.1 only (Deno's HTTP/2 client downloads several times slower, and one big download
 * gains nothing from HTTP/2: docs/TECHNICAL.md, "Performance"), with
 * the CA file when one is given; a CA file that cannot be read is a config error.
 */
export function makeClient(cfg: SourceConfig): Deno.HttpClient {
  if (!cfg.ca_file) return Deno.createHttpClient({ http2: false, http1: true });
  let pem: string;
  try {
    pem = Deno.readTextFileSync(cfg.ca_file);
  } catch (e) {
    throw new ArchivistError("config", `source.ca_file: cannot read ${cfg.ca_file}: ${errMsg(e)}`, "check the path and permissions", {
      code: "ca_file",
    });
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ArchivistError(
      "config",
      `source.ca_file: ${cfg.ca_file} holds no PEM certificate`,
      "it must contain -----BEGIN CERTIFICATE----- blocks",
      { code: "ca_file" },
    );
  }
  return Deno.createHttpClient({ caCerts: [pem], http2: false, http1: true });
}

/** The size of the download's writes. */
const BATCH = 1 << 20;

/**
 * A body in batches of up to 1 MiB, for one write each. A byte stream (Deno's fetch body) is read with a BYOB reader
 * straight into the batch, rather than a new buffer per 8-16 KiB network read (three times faster: docs/TECHNICAL.md,
 * "Performance"). Another stream (a decoded body) is copied into the batch. `onRead` sees every read as it arrives (the view is valid during the call only; it may
 * throw to stop); a batch is valid until the next iteration.
 */
export async function* batches(stream: ReadableStream<Uint8Array>, onRead: (c: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(BATCH);
  let filled = 0;
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch { /* not a byte stream */ }
  // Stopped early (onRead threw, the consumer failed): the body is cancelled, which closes the connection.
  let ended = false;
  if (byob) {
    try {
      for (;;) {
        const { done, value } = await byob.read(buf.subarray(filled));
        if (value) buf = new Uint8Array(value.buffer); // the read hands the (moved) buffer back
        if (done) break;
        onRead(buf.subarray(filled, filled + value.length));
        filled += value.length;
        if (BATCH - filled < 64 << 10) (yield buf.subarray(0, filled), filled = 0);
      }
      ended = true;
    } finally {
      if (!ended) await byob.cancel().catch(() => {});
      byob.releaseLock();
    }
  } else {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        onRead(value);
        for (let off = 0; off < value.length;) {
          const n = Math.min(value.length - off, BATCH - filled);
          buf.set(value.subarray(off, off + n), filled);
          filled += n;
          off += n;
          if (filled === BATCH) (yield buf, filled = 0);
        }
      }
      ended = true;
    } finally {
      if (!ended) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
  if (filled) yield buf.subarray(0, filled);
}
