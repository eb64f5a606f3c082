/**
 * One download attempt, whichever client makes it: what it needs (SourceContext), what it gives (Fetched), what a
 * failed one is (AttemptError), and the failures both clients (Deno's fetch and curl) detect the same way,
 * each written once: an HTTP error status, a body too short or not a zip, more than source.max_size.
 */
import type { SourceConfig } from "../config/schema.ts";
import { formatSize } from "../config/units.ts";
import type { Config } from "../config/load.ts";
import type { LastState } from "../records/state.ts";
import type { Logger } from "../report/log.ts";
import type { Progress } from "../report/progress.ts";

/** What the source needs of the night: the config, the log, the signal, the progress line, a private dir, the last state. */
export interface SourceContext {
  config: Config;
  log: Logger;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  progress: Progress;
  /** A private (0700) directory for the download and curl's config file. */
  workDir: string;
  /** The last archive's state: its validators for a conditional download, its time for ready_newer. */
  last: LastState;
}

/** Error classes of a failed attempt. */
export type Kind =
  | "dns"
  | "refused"
  | "tls"
  | "timeout"
  | "network"
  | "http_status"
  | "truncated"
  | "not_zip"
  | "too_large"
  | "insecure_redirect"
  | "interrupted"
  | "local"
  | "encoding";

/** One attempt's failure: its class, whether a retry can help, and what to do. */
export class AttemptError extends Error {
  constructor(readonly kind: Kind, message: string, readonly retryable: boolean, readonly hint = "") {
    super(message);
  }
}

/** What to do about an HTTP error status. */
export function statusHint(status: number, cfg: SourceConfig, hasAuth: boolean): string {
  if (status === 404) return "check source.url; is the export published under that name?";
  if (status === 401 || status === 403) {
    return hasAuth
      ? "check source.auth (user, password or token): the server refused them"
      : "the server wants credentials and source.auth is not set: add it (basic user/password or a bearer token)";
  }
  if (status >= 500) return `the server had an error; archivist retries it (source.retries: ${cfg.retries}) and the next night tries again`;
  return "check source.url and source.auth";
}

/** True when the bytes start like a zip (a local file header, or the end record of an empty zip). */
export function zipSignature(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5);
}

/** The first bytes of a body, quoted and readable. */
export function printable(bytes: Uint8Array): string {
  const s = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 64));
  return JSON.stringify(s.replace(/\s+/g, " "));
}

/** An HTTP error status (curl does not give the reason phrase). */
export function statusError(status: number, reason: string | undefined, url: URL, cfg: SourceConfig, hasAuth: boolean): AttemptError {
  return new AttemptError(
    "http_status",
    `HTTP ${status}${reason ? ` ${reason}` : ""} from ${url.host} for ${url.pathname}`,
    status >= 500,
    statusHint(status, cfg, hasAuth),
  );
}

/** A body too short to be a zip. */
export function tooShort(status: number, bytes: number): AttemptError {
  return new AttemptError(
    "not_zip",
    `the server answered ${status} with ${bytes === 0 ? "an empty body" : `only ${bytes} bytes`}: not a zip`,
    false,
    "check source.url; is the export job on the server running?",
  );
}

/** A body that does not start like a zip (an error or login page); the Content-Type when the client saw it. */
export function notZip(status: number, head: Uint8Array, contentType?: string | null): AttemptError {
  const type = contentType === undefined ? "" : `Content-Type: ${contentType ?? "none"}; `;
  return new AttemptError(
    "not_zip",
    `the server answered ${status} but the body is not a zip (${type}it starts with ${printable(head)})`,
    false,
    "the URL probably serves an error or login page: check source.url and source.auth",
  );
}

/** More than source.max_size on the wire. */
export function overMaxSize(cfg: SourceConfig): AttemptError {
  return new AttemptError(
    "too_large",
    `download exceeds source.max_size (${formatSize(cfg.max_size)})`,
    false,
    "raise source.max_size if the dump really grew",
  );
}

/** The result of one attempt: the zip written to dest, or a 304 (nothing written). */
export interface Fetched {
  bytes: number;
  status: number;
  etag?: string;
  lastModified?: string;
  /** The response's Date (when a Last-Modified is judged). */
  date?: string;
}

/**
 * The validators worth keeping for the next conditional download, and why not when none. A Last-Modified less than
 * a second before the response's Date (or the download's start, without a Date) is weak (RFC 9110 §8.8.2.2): the
 * zip may be rewritten within that same second and be answered 304, its change never archived. Then neither it nor
 * an ETag (static servers derive theirs from the same second) is kept: the next night downloads and compares, as
 * git does with a racy index entry.
 */
export function validators(r: Fetched, started: Date): { etag?: string; lastModified?: string; racy?: string } {
  if (!r.lastModified) return { etag: r.etag };
  const lm = Date.parse(r.lastModified), at = r.date ? Date.parse(r.date) : started.getTime();
  if (Number.isFinite(lm) && Number.isFinite(at) && lm > at - 1000) {
    return { racy: `Last-Modified ${r.lastModified} is within a second of the response (${r.date ?? started.toUTCString()})` };
  }
  return { etag: r.etag, lastModified: r.lastModified };
}

/** If-None-Match / If-Modified-Since for the last archived zip, when source.conditional is on. */
export function conditionalHeaders(ctx: SourceContext, unconditional = false): Record<string, string> {
  if (unconditional || !ctx.config.source.conditional) return {};
  let st;
  try {
    // Only the validators of an archive that is on these destinations: a 304 must never skip a change elsewhere.
    st = ctx.last.here().state;
  } catch {
    return {};
  }
  const h: Record<string, string> = {};
  if (st?.etag) h["If-None-Match"] = st.etag;
  if (st?.lastModified) h["If-Modified-Since"] = st.lastModified;
  return h;
}
