/**
 * The fetch step's curl client (`source.client: curl`): the same contract as the Deno client (one attempt into
 * `dest`, an AttemptError with a class, a retry flag and a hint), for servers whose certificate Deno's TLS library
 * refuses although it is the configured ca_file (a self-signed CA:TRUE certificate, as `openssl req -x509` makes).
 *
 * TLS stays verified against source.ca_file. Redirects only to https (`--proto-redir =https`), and curl sends the
 * credentials only to the original host. Credentials go through a 0600 config file, never the command line.
 * `Accept-Encoding: identity` is sent; a body encoded anyway is decoded by curl (`--compressed`), which also checks
 * that the transfer is complete (exit 18).
 */
import { join } from "node:path";
import { exec } from "../os/exec.ts";
import { errMsg } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import { writePrivateFile } from "../os/exec.ts";

import type { SourceConfig } from "../config/schema.ts";
import {
  AttemptError,
  conditionalHeaders,
  type Fetched,
  notZip,
  overMaxSize,
  type SourceContext,
  statusError,
  tooShort,
  zipSignature,
} from "./attempt.ts";

const secs = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));
const quote = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/** curl's certificate complaints (OpenSSL's words) in plain words. */
function tlsWords(stderr: string, where: string, caFile?: string): AttemptError {
  const tls = (what: string, hint: string) => new AttemptError("tls", `TLS: ${what}`, false, hint);
  if (/certificate has expired/i.test(stderr)) {
    return tls(
      `the certificate of ${where} expired`,
      "the server's certificate must be renewed; if it looks valid, check this machine's clock",
    );
  }
  if (/not yet valid/i.test(stderr)) {
    return tls(`the certificate of ${where} is not valid yet`, "check this machine's clock (timedatectl), then the server's certificate");
  }
  const name = /no alternative certificate subject name matches target host name '([^']+)'|subject name does not match/i.exec(stderr);
  if (name) {
    return tls(
      `the certificate of ${where} is not for the host in source.url`,
      "use a name the certificate has in source.url, or reissue the certificate",
    );
  }
  if (/unable to get local issuer|self[- ]signed|unknown ca|certificate verify failed/i.test(stderr)) {
    return tls(
      `the certificate of ${where} is signed by an issuer this machine does not trust`,
      caFile
        ? `source.ca_file (${caFile}) does not hold the certificate or the CA that signed it`
        : "set source.ca_file to the server's CA (or its self-signed certificate), PEM",
    );
  }
  return tls(
    `the TLS connection to ${where} failed: ${stderr.trim().split("\n").pop()}`,
    "check the server's certificate and source.ca_file",
  );
}

/**
 * `curl --head` of the source with the same TLS, auth and timeouts (verify's reachability check for
 * source.client: curl). Returns the status and Content-Length, or the AttemptError.
 */
export async function headCurl(cfg: SourceConfig, dir: string): Promise<{ status: number; length?: number }> {
  const url = new URL(cfg.url);
  const conf = join(dir, "verify.curlrc");
  const lines = ['header = "User-Agent: archivist-verify"', ...authLines(cfg)];
  writePrivateFile(conf, lines.join("\n") + "\n");
  try {
    const r = await exec(
      "curl",
      [
        "--silent",
        "--show-error",
        "--config",
        conf,
        "--head",
        "--http1.1", // some servers send a body with a HEAD over HTTP/2, which curl treats as a protocol error
        "--proto",
        "=https",
        "--proto-redir",
        "=https",
        "--location",
        "--connect-timeout",
        secs(cfg.connect_timeout),
        "--max-time",
        secs(cfg.connect_timeout * 2),
        ...(cfg.ca_file ? ["--cacert", cfg.ca_file] : []),
        url.href,
      ],
      {},
      "curl",
    );
    if (TLS_EXITS.includes(r.code)) {
      throw tlsWords(r.stderr, `${url.hostname}:${url.port || "443"}`, cfg.ca_file);
    }
    if (r.code !== 0) {
      throw new AttemptError(
        "network",
        `curl exit ${r.code}: ${r.stderr.trim().split("\n").pop()}`,
        true,
        "check source.url and the network",
      );
    }
    const blocks = r.stdout.split(/\r?\n\r?\n/).filter((b) => b.trim());
    const last = blocks.pop() ?? "";
    const status = Number(/^HTTP\/\S+ (\d+)/.exec(last)?.[1] ?? 0);
    const len = /^content-length:\s*(\d+)/im.exec(last)?.[1];
    return { status, length: len ? Number(len) : undefined };
  } finally {
    await Deno.remove(conf).catch(() => {});
  }
}

/** The curl config file's lines for the credentials (a 0600 file: never on the command line). */
function authLines(cfg: SourceConfig): string[] {
  const lines: string[] = [];
  if (cfg.auth?.type === "basic") lines.push(`user = ${quote(`${cfg.auth.username}:${cfg.auth.password}`)}`);
  if (cfg.auth?.type === "header") lines.push(`header = ${quote(`${cfg.auth.name}: ${cfg.auth.value}`)}`);
  return lines;
}

/** One download attempt with curl into `dest`. */
export async function attemptCurl(n: SourceContext, dest: string, unconditional = false): Promise<Fetched> {
  const cfg = n.config.source;
  const url = new URL(cfg.url);
  const conf = join(n.workDir, "source.curlrc"); // the work dir is 0700 and removed at exit
  const lines = ['header = "Accept-Encoding: identity"', 'header = "User-Agent: archivist"', ...authLines(cfg)];
  for (const [k, v] of Object.entries(conditionalHeaders(n, unconditional))) lines.push(`header = ${quote(`${k}: ${v}`)}`);
  writePrivateFile(conf, lines.join("\n") + "\n");
  const headersFile = join(n.workDir, "source.headers");
  let r;
  try {
    r = await exec("curl", downloadArgs(cfg, conf, headersFile, dest), { timeoutMs: cfg.timeout + 30_000 }, "curl");
  } catch (e) {
    throw new AttemptError(
      "local",
      `cannot run curl: ${errMsg(e)}`,
      false,
      "install curl (apt-get install curl), or set source.client: deno",
    );
  } finally {
    await Deno.remove(conf).catch(() => {});
  }
  if (n.signal.aborted) throw new AttemptError("interrupted", "interrupted", false);
  const failed = curlFailure(r.code, r.stderr, cfg, url);
  if (failed) throw failed;
  const [statusText, sizeText] = r.stdout.trim().split(" ");
  const status = Number(statusText), bytes = Number(sizeText);
  // The headers of the last response (after redirects): its validators for the next conditional download.
  const hdr = (await Deno.readTextFile(headersFile).catch(() => "")).split(/\r?\n\r?\n/).filter((b) => b.trim()).pop() ?? "";
  await Deno.remove(headersFile).catch(() => {});
  const header = (name: string) => new RegExp(`^${name}:\\s*(.+?)\\s*$`, "im").exec(hdr)?.[1];
  if (status === 304 || status < 200 || status > 299) {
    await Deno.remove(dest).catch(() => {});
    if (status === 304) return { bytes: 0, status };
    throw statusError(status, undefined, url, cfg, !!cfg.auth);
  }
  const head = await firstBytes(dest);
  if (!bytes || head.length < 4) throw tooShort(status, bytes);
  if (!zipSignature(head)) throw notZip(status, head);
  return { bytes, status, etag: header("etag"), lastModified: header("last-modified"), date: header("date") };
}

/** curl's command line for the download: https only, redirects, the timeouts and max_size as curl's own limits. */
function downloadArgs(cfg: SourceConfig, conf: string, headersFile: string, dest: string): string[] {
  return [
    "--dump-header",
    headersFile,
    "--silent",
    "--show-error",
    "--config",
    conf,
    "--proto",
    "=https",
    "--proto-redir",
    "=https",
    "--location",
    "--max-redirs",
    "5",
    "--compressed",
    "--connect-timeout",
    secs(cfg.connect_timeout),
    "--max-time",
    secs(cfg.timeout),
    "--speed-limit",
    "1",
    "--speed-time",
    secs(cfg.idle_timeout),
    "--max-filesize",
    String(cfg.max_size),
    ...(cfg.ca_file ? ["--cacert", cfg.ca_file] : []),
    "--output",
    dest,
    "--write-out",
    "%{http_code} %{size_download}",
    new URL(cfg.url).href,
  ];
}

/** The first 64 bytes of the downloaded file (none when it is not there). */
async function firstBytes(path: string): Promise<Uint8Array> {
  try {
    const f = await Deno.open(path);
    const head = new Uint8Array(64);
    const k = await f.read(head);
    f.close();
    return head.subarray(0, k ?? 0);
  } catch {
    return new Uint8Array(0);
  }
}

/** curl's exit code as an attempt's failure (the same classes as Deno's client), or undefined when it succeeded. */
function curlFailure(code: number, stderr: string, cfg: SourceConfig, url: URL): AttemptError | undefined {
  const where = `${url.hostname}:${url.port || "443"}`;
  const err = stderr.trim().split("\n").pop() ?? "";
  if (code === 0) return undefined;
  if (TLS_EXITS.includes(code)) return tlsWords(stderr, where, cfg.ca_file);
  switch (code) {
    case 6:
      return new AttemptError("dns", `cannot resolve host ${url.hostname}`, true, "check source.url and DNS (resolv.conf)");
    case 7:
      return new AttemptError("refused", `connection refused by ${where}`, true, "is the export server up and listening on that port?");
    case 28:
      return timedOut(err, where, cfg);
    case 1:
      if (/protocol "?http"? not supported|disabled/i.test(err)) {
        return new AttemptError(
          "insecure_redirect",
          `the server redirected to a non-HTTPS address: refused`,
          false,
          "fix source.url to the final HTTPS address",
        );
      }
      break;
    case 47:
      return new AttemptError("http_status", `more than 5 redirects from ${url.host}`, false, "fix source.url to the final address");
    case 63:
      return overMaxSize(cfg);
    case 18:
    case 56:
    case 92:
      return new AttemptError(
        "truncated",
        `connection lost before the end of the download (${err})`,
        true,
        `the download was cut; archivist retries it (source.retries: ${cfg.retries}); if it keeps happening, check the network, a proxy, or the server's timeouts`,
      );
  }
  return new AttemptError("network", `curl exit ${code} talking to ${where}: ${err}`, true, "see man curl for the exit code");
}

/** curl's exit codes for a TLS failure. */
const TLS_EXITS = [35, 51, 58, 59, 60, 77, 83];

/** curl exit 28: which of the three timeouts it was. */
function timedOut(err: string, where: string, cfg: SourceConfig): AttemptError {
  if (/Connection timed out|Failed to connect/i.test(err)) {
    return new AttemptError(
      "timeout",
      `no connection to ${where} within source.connect_timeout (${formatDuration(cfg.connect_timeout)})`,
      true,
      "check the network path and the server",
    );
  }
  if (/too slow/i.test(err)) {
    return new AttemptError(
      "timeout",
      `no data received for source.idle_timeout (${formatDuration(cfg.idle_timeout)})`,
      true,
      "the server stalled; check it",
    );
  }
  return new AttemptError(
    "timeout",
    `the download took longer than source.timeout (${formatDuration(cfg.timeout)})`,
    true,
    "raise source.timeout if the dump really grew",
  );
}
