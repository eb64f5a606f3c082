/**
 * fetch: download `source.url` to a temp file in the run's work dir.
 *
 * TLS is always verified (`source.ca_file` adds trusted CAs, never removes checks). Network errors, timeouts and
 * HTTP 5xx are retried with exponential backoff; 4xx and TLS errors are not (retrying cannot fix them).
 * A body shorter than its Content-Length is a truncated download; a 200 that is not a zip is reported with its
 * Content-Type and first bytes.
 */
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { ArchivistError, asArchivistError, errMsg } from "../errors.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import type { SourceConfig } from "../config/schema.ts";
import type { RunContext, RunData, Step, StepOutcome } from "../night/types.ts";
import type { Logger } from "../report/log.ts";
import { AttemptError, conditionalHeaders, type Fetched, printable, statusHint, validators, zipSignature } from "./errors.ts";
import { attemptCurl } from "./curl.ts";
import { changedAt, readState, unchangedFor } from "../records/state.ts";
import { waitReady } from "./ready.ts";

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

/** One download attempt into `dest`. Returns the byte count. */
async function attempt(ctx: RunContext, client: Deno.HttpClient | undefined, dest: string, unconditional = false): Promise<Fetched> {
  const cfg = ctx.config.source;
  const url = new URL(cfg.url);
  const ac = new AbortController();
  let why: AttemptError | undefined;
  const abort = (e: AttemptError) => {
    why ??= e;
    ac.abort(e);
  };
  const onRunAbort = () => abort(new AttemptError("interrupted", "interrupted", false));
  ctx.signal.addEventListener("abort", onRunAbort);
  const total = setTimeout(
    () =>
      abort(
        new AttemptError(
          "timeout",
          `download not finished after source.timeout (${formatDuration(cfg.timeout)})`,
          true,
          "raise source.timeout, or check the bandwidth",
        ),
      ),
    cfg.timeout,
  );
  const connect = setTimeout(
    () =>
      abort(
        new AttemptError(
          "timeout",
          `no response from ${url.host} within source.connect_timeout (${formatDuration(cfg.connect_timeout)})`,
          true,
          "check that the server is up and reachable",
        ),
      ),
    cfg.connect_timeout,
  );
  let idle: ReturnType<typeof setTimeout> | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () =>
        abort(
          new AttemptError(
            "timeout",
            `no data received for source.idle_timeout (${formatDuration(cfg.idle_timeout)})`,
            true,
            "the server stalled; check it, or raise source.idle_timeout",
          ),
        ),
      cfg.idle_timeout,
    );
  };
  let out: Deno.FsFile | undefined;
  try {
    // Redirects are followed by hand: only to https://, and the credentials only go to the original host.
    let res: Response;
    let target = url;
    for (let hop = 0;; hop++) {
      try {
        const sameHost = target.host === url.host;
        res = await fetch(target, {
          // identity: the zip as it is on disk, so that its length can be checked against Content-Length.
          headers: {
            "User-Agent": "archivist",
            "Accept-Encoding": "identity",
            ...(sameHost ? { ...authHeaders(cfg), ...conditionalHeaders(ctx, unconditional) } : {}),
          },
          signal: ac.signal,
          client,
          redirect: "manual",
        });
      } catch (e) {
        clearTimeout(connect);
        throw why ?? describeNetworkError(e, target, cfg);
      }
      const loc = res.headers.get("location");
      if (res.status < 300 || res.status > 399 || !loc) break;
      await res.body?.cancel();
      const next = new URL(loc, target);
      if (next.protocol !== "https:") {
        clearTimeout(connect);
        throw new AttemptError(
          "insecure_redirect",
          `the server redirected to ${next.href}, which is not HTTPS: refused`,
          false,
          "fix source.url to the final HTTPS address",
        );
      }
      if (hop >= 5) {
        clearTimeout(connect);
        throw new AttemptError("http_status", `more than 5 redirects from ${url.host}`, false, "fix source.url to the final address");
      }
      target = next;
    }
    clearTimeout(connect);
    if (res.status === 304) {
      await res.body?.cancel();
      return { bytes: 0, status: 304 };
    }
    if (!res.ok) {
      await res.body?.cancel();
      const retry = res.status >= 500;
      const hint = statusHint(res.status, cfg, Object.keys(authHeaders(cfg)).length > 0);
      throw new AttemptError("http_status", `HTTP ${res.status} ${res.statusText} from ${url.host} for ${url.pathname}`, retry, hint);
    }
    const lenHeader = res.headers.get("content-length");
    // A server that encodes anyway (gzip_static, a compressing proxy): archivist decodes the body itself and checks
    // Content-Length against the bytes on the wire (Deno's fetch does not decode once identity was asked for).
    const encoding = (res.headers.get("content-encoding") ?? "identity").toLowerCase().trim();
    const FORMATS: Record<string, CompressionFormat> = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate" };
    const encoded = encoding !== "identity";
    if (encoded && !FORMATS[encoding]) {
      await res.body?.cancel();
      throw new AttemptError(
        "encoding",
        `the server sent the zip with Content-Encoding: ${encoding}, which archivist cannot decode (it asked for identity)`,
        false,
        "configure the server or proxy not to compress the zip (it is compressed already), or to use gzip",
      );
    }
    if (encoded) {
      ctx.log.info("fetch", `the server sent the zip with Content-Encoding: ${encoding} despite Accept-Encoding: identity: decoding it`);
    }
    const wire = lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : undefined;
    const expected = wire;
    if (wire !== undefined && wire > cfg.max_size) {
      await res.body?.cancel();
      throw new AttemptError(
        "too_large",
        `the server announces ${formatSize(wire)}, above source.max_size (${formatSize(cfg.max_size)})`,
        false,
        "raise source.max_size if the dump really grew",
      );
    }
    let wireBytes = 0;
    const raw = res.body ?? new ReadableStream<Uint8Array>();
    // The wire is counted apart only when the body is decoded; otherwise wire bytes are the bytes written.
    const body: ReadableStream<Uint8Array> = encoded
      ? raw.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(c, ctl) {
            wireBytes += c.length;
            ctl.enqueue(c);
          },
        }),
      ).pipeThrough(new DecompressionStream(FORMATS[encoding]) as unknown as TransformStream<Uint8Array, Uint8Array>)
      : raw;
    out = await Deno.open(dest, { write: true, create: true, truncate: true, mode: 0o600 });
    let bytes = 0;
    let head = new Uint8Array(0);
    touch();
    ctx.progress.start("fetch", expected);
    try {
      const onRead = (chunk: Uint8Array) => {
        touch();
        if (head.length < 4) {
          const h = new Uint8Array(head.length + chunk.length);
          h.set(head);
          h.set(chunk, head.length);
          head = h.subarray(0, Math.min(h.length, 64));
          if (head.length >= 4 && !zipSignature(head)) {
            throw new AttemptError(
              "not_zip",
              `the server answered ${res.status} but the body is not a zip (Content-Type: ${
                res.headers.get("content-type") ?? "none"
              }; it starts with ${printable(head)})`,
              false,
              "the URL probably serves an error or login page: check source.url and source.auth",
            );
          }
        }
        bytes += chunk.length;
        ctx.progress.update(bytes);
        if (bytes > cfg.max_size) {
          throw new AttemptError(
            "too_large",
            `download exceeds source.max_size (${formatSize(cfg.max_size)})`,
            false,
            "raise source.max_size if the dump really grew",
          );
        }
        if (!encoded) wireBytes += chunk.length;
      };
      for await (const batch of batches(body, onRead)) {
        let w = 0;
        while (w < batch.length) w += await out.write(batch.subarray(w));
      }
    } catch (e) {
      if (e instanceof AttemptError) throw e;
      if (why) throw why;
      if (e instanceof Deno.errors.PermissionDenied || /no space|os error 28/i.test(errMsg(e))) {
        throw new AttemptError(
          "local",
          `cannot write the download to ${dest}: ${errMsg(e)}`,
          false,
          "free space in work_dir, or point work_dir elsewhere",
        );
      }
      throw new AttemptError(
        "truncated",
        `connection lost after ${formatSize(bytes)}${expected !== undefined ? ` of ${formatSize(expected)}` : ""}: ${errMsg(e)}`,
        true,
        `the download was cut; archivist retries it (source.retries: ${cfg.retries}); if it keeps happening, check the network, a proxy, or the server's timeouts`,
      );
    }
    if (bytes === 0 || head.length < 4) {
      throw new AttemptError(
        "not_zip",
        `the server answered ${res.status} with ${bytes === 0 ? "an empty body" : `only ${bytes} bytes`}: not a zip`,
        false,
        "check source.url; is the export job on the server running?",
      );
    }
    if (expected !== undefined && wireBytes !== expected) {
      throw new AttemptError(
        "truncated",
        `truncated download: received ${wireBytes} bytes of the ${expected} announced by Content-Length${
          encoded ? ` (${encoding}-encoded)` : ""
        }`,
        true,
        "the connection was cut; check the network and the server",
      );
    }
    // No fsync: the zip is a work file (a crash loses the run, not data), and fsync of a large file cost a third of
    // the fetch time in the benchmark; what is stored is synced at the destination.
    return {
      bytes,
      status: res.status,
      etag: res.headers.get("etag") ?? undefined,
      lastModified: res.headers.get("last-modified") ?? undefined,
      date: res.headers.get("date") ?? undefined,
    };
  } finally {
    ctx.signal.removeEventListener("abort", onRunAbort);
    ctx.progress.end();
    clearTimeout(total);
    clearTimeout(connect);
    clearTimeout(idle);
    try {
      out?.close();
    } catch { /* closed */ }
  }
}

/** The size of the download's writes. */
const BATCH = 1 << 20;

/**
 * A body in batches of up to 1 MiB, for one write each. A byte stream (Deno's fetch body) is read with a BYOB reader
 * straight into the batch: for-await over the body (one new buffer per 8-16 KiB network read) took 750-950 ms for a
 * 154 MiB download from nginx, the BYOB reader 250-280 ms (curl 330-550 ms). Another stream (a decoded body) is
 * copied into the batch. `onRead` sees every read as it arrives (the view is valid during the call only; it may
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

/**
 * Build the HTTP client: HTTP/1.1 only (Deno's HTTP/2 client downloads 3-5× slower than its HTTP/1.1 one, measured
 * against nginx: 290-460 ms against 90 ms for 38 MiB, curl 88 ms; one big download gains nothing from HTTP/2), with
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

/** Sleep `ms`, logging why. */
async function backoff(log: Logger, ms: number, signal: AbortSignal): Promise<void> {
  log.debug("fetch", `waiting ${formatDuration(ms)}`);
  await new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
  });
}

export const fetchStep: Step = {
  name: "fetch",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const cfg = ctx.config.source;
    const dest = join(ctx.workDir, "download.zip");
    const client = cfg.client === "curl" ? undefined : makeClient(cfg);
    const t0 = performance.now();
    const startedAt = new Date(); // the wall clock, not the run date: it is held against the server's file times
    ctx.log.info("fetch", `GET ${cfg.url}${cfg.ca_file ? ` (trusting ${cfg.ca_file})` : ""}${cfg.client === "curl" ? " with curl" : ""}`);
    try {
      await waitReady(ctx, client);
      let unconditional = false;
      for (let i = 0;; i++) {
        try {
          const r = cfg.client === "curl" ? await attemptCurl(ctx, dest, unconditional) : await attempt(ctx, client, dest, unconditional);
          if (r.status === 304) {
            const last = readState(ctx.config.state_dir, ctx.config.name);
            const same = `unchanged upstream (304 Not Modified) since the zip archived as ${last?.archive ?? "?"} (${
              last?.etag ? `ETag ${last.etag}` : `Last-Modified ${last?.lastModified}`
            }): nothing downloaded`;
            if (ctx.config.check.on_unchanged === "skip") {
              if (last) data.unchangedSince = changedAt(last);
              const forHowLong = last ? `; ${unchangedFor(last, ctx.clock.now(), ctx.config.check.max_unchanged, formatDuration)}` : "";
              return { status: "warning", message: `${same} (check.on_unchanged: skip)${forHowLong}`, stop: true };
            }
            if (ctx.config.check.on_unchanged === "fail") {
              throw new ArchivistError(
                "compare",
                same,
                "the export on the server did not run or did not change; check.on_unchanged is 'fail'",
                {
                  code: "unchanged",
                },
              );
            }
            ctx.log.info("fetch", `${same}; check.on_unchanged: ${ctx.config.check.on_unchanged}: downloading it anyway`);
            unconditional = true;
            i--;
            continue;
          }
          const secs = (performance.now() - t0) / 1000;
          data.zipPath = dest;
          data.zipSize = r.bytes;
          const v = validators(r, startedAt);
          data.etag = v.etag;
          data.lastModified = v.lastModified;
          if (v.racy) ctx.log.info("fetch", `${v.racy}: not kept for a conditional download (the next night downloads and compares)`);
          const msg = `downloaded ${formatSize(r.bytes)} in ${formatDuration(secs * 1000)}${
            secs > 0.5 ? ` (${formatSize(Math.round(r.bytes / secs))}/s)` : ""
          }${i ? ` after ${i + 1} attempts` : ""}`;
          return { status: "ok", message: msg };
        } catch (e) {
          // An answer (a 304 under on_unchanged: fail) is final, and so is a local file error (the work dir gone or
          // full): only a failed attempt at the network is retried.
          if (e instanceof ArchivistError) throw e;
          if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied || /os error 28\b/.test(errMsg(e))) {
            throw asArchivistError("fetch", e, `work_dir ${ctx.config.work_dir} must be a writable directory with room for the zip`);
          }
          const a = e instanceof AttemptError ? e : new AttemptError("network", errMsg(e), true);
          if (!a.retryable || i >= cfg.retries || ctx.signal.aborted) {
            throw new ArchivistError("fetch", a.message + (i ? ` (after ${i + 1} attempts)` : ""), a.hint, { code: a.kind });
          }
          const delay = cfg.retry_delay * 2 ** i;
          ctx.log.warn("fetch", `attempt ${i + 1}/${cfg.retries + 1} failed: ${a.message}; retrying in ${formatDuration(delay)}`);
          await backoff(ctx.log, delay, ctx.signal);
        }
      }
    } finally {
      client?.close();
    }
  },
};
