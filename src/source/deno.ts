/**
 * The download with Deno's own fetch (`source.client: fetch`, the default): one attempt into `dest`, an AttemptError
 * with a class, a retry flag and a hint when it fails. Redirects are followed by hand (only to https://, the
 * credentials only to the original host); Content-Length, Content-Encoding and the zip's first bytes are checked.
 */
import { formatDuration, formatSize } from "../config/units.ts";
import type { SourceConfig } from "../config/schema.ts";
import { errMsg } from "../errors.ts";

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
import { authHeaders, batches, describeNetworkError } from "./http.ts";

/** The attempt's three clocks (source.timeout, connect_timeout, idle_timeout) and the run's signal, one abort. */
class Deadlines {
  readonly ac = new AbortController();
  /** The first cause of an abort: what the attempt failed of. */
  why?: AttemptError;
  private total: ReturnType<typeof setTimeout>;
  private connect: ReturnType<typeof setTimeout>;
  private idle?: ReturnType<typeof setTimeout>;
  private onRunAbort = () => this.abort(new AttemptError("interrupted", "interrupted", false));

  constructor(private n: SourceContext, private cfg: SourceConfig, host: string) {
    n.signal.addEventListener("abort", this.onRunAbort);
    this.total = setTimeout(
      () =>
        this.abort(
          new AttemptError(
            "timeout",
            `download not finished after source.timeout (${formatDuration(cfg.timeout)})`,
            true,
            "raise source.timeout, or check the bandwidth",
          ),
        ),
      cfg.timeout,
    );
    this.connect = setTimeout(
      () =>
        this.abort(
          new AttemptError(
            "timeout",
            `no response from ${host} within source.connect_timeout (${formatDuration(cfg.connect_timeout)})`,
            true,
            "check that the server is up and reachable",
          ),
        ),
      cfg.connect_timeout,
    );
  }

  abort(e: AttemptError): void {
    this.why ??= e;
    this.ac.abort(e);
  }

  /** The server answered: connect_timeout no longer applies. */
  answered(): void {
    clearTimeout(this.connect);
  }

  /** Data arrived: idle_timeout starts again. */
  touch(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(
      () =>
        this.abort(
          new AttemptError(
            "timeout",
            `no data received for source.idle_timeout (${formatDuration(this.cfg.idle_timeout)})`,
            true,
            "the server stalled; check it, or raise source.idle_timeout",
          ),
        ),
      this.cfg.idle_timeout,
    );
  }

  end(): void {
    this.n.signal.removeEventListener("abort", this.onRunAbort);
    clearTimeout(this.total);
    clearTimeout(this.connect);
    clearTimeout(this.idle);
  }
}

/** One download attempt into `dest`: the zip written, or a 304 (nothing written). */
export async function attemptFetch(
  n: SourceContext,
  client: Deno.HttpClient | undefined,
  dest: string,
  unconditional = false,
): Promise<Fetched> {
  const cfg = n.config.source;
  const url = new URL(cfg.url);
  const d = new Deadlines(n, cfg, url.host);
  try {
    const res = await request(n, client, d, url, unconditional);
    d.answered();
    if (res.status === 304) {
      await res.body?.cancel();
      return { bytes: 0, status: 304 };
    }
    const body = await bodyOf(n, res, url);
    const bytes = await receive(n, res, body, dest, d);
    // No fsync: the zip is a work file (a crash loses the run, not data), and syncing a large file is costly; what is
    // stored is synced at the destination.
    return {
      bytes,
      status: res.status,
      etag: res.headers.get("etag") ?? undefined,
      lastModified: res.headers.get("last-modified") ?? undefined,
      date: res.headers.get("date") ?? undefined,
    };
  } finally {
    n.progress.end();
    d.end();
  }
}

/** GET with the credentials and validators (to the original host only), redirects followed by hand. */
async function request(
  n: SourceContext,
  client: Deno.HttpClient | undefined,
  d: Deadlines,
  url: URL,
  unconditional: boolean,
): Promise<Response> {
  const cfg = n.config.source;
  let target = url;
  for (let hop = 0;; hop++) {
    let res: Response;
    try {
      const sameHost = target.host === url.host;
      res = await fetch(target, {
        // identity: the zip as it is on disk, so that its length can be checked against Content-Length.
        headers: {
          "User-Agent": "archivist",
          "Accept-Encoding": "identity",
          ...(sameHost ? { ...authHeaders(cfg), ...conditionalHeaders(n, unconditional) } : {}),
        },
        signal: d.ac.signal,
        client,
        redirect: "manual",
      });
    } catch (e) {
      throw d.why ?? describeNetworkError(e, target, cfg);
    }
    const loc = res.headers.get("location");
    if (res.status < 300 || res.status > 399 || !loc) return res;
    await res.body?.cancel();
    const next = new URL(loc, target);
    if (next.protocol !== "https:") {
      throw new AttemptError(
        "insecure_redirect",
        `the server redirected to ${next.href}, which is not HTTPS: refused`,
        false,
        "fix source.url to the final HTTPS address",
      );
    }
    if (hop >= 5) {
      throw new AttemptError("http_status", `more than 5 redirects from ${url.host}`, false, "fix source.url to the final address");
    }
    target = next;
  }
}

/** The body as the zip's bytes, after the status, size and encoding checks; `expected`: Content-Length on the wire. */
interface Body {
  stream: ReadableStream<Uint8Array>;
  expected?: number;
  /** The Content-Encoding decoded here, or undefined (then the wire bytes are the bytes written). */
  encoding?: string;
  wire: { bytes: number };
}

const FORMATS: Record<string, CompressionFormat> = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate" };

async function bodyOf(n: SourceContext, res: Response, url: URL): Promise<Body> {
  const cfg = n.config.source;
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(res.status, res.statusText, url, cfg, Object.keys(authHeaders(cfg)).length > 0);
  }
  const lenHeader = res.headers.get("content-length");
  // A server that encodes anyway (gzip_static, a compressing proxy): archivist decodes the body itself and checks
  // Content-Length against the bytes on the wire (Deno's fetch does not decode once identity was asked for).
  const encoding = (res.headers.get("content-encoding") ?? "identity").toLowerCase().trim();
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
    n.log.info("fetch", `the server sent the zip with Content-Encoding: ${encoding} despite Accept-Encoding: identity: decoding it`);
  }
  const expected = lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : undefined;
  if (expected !== undefined && expected > cfg.max_size) {
    await res.body?.cancel();
    throw new AttemptError(
      "too_large",
      `the server announces ${formatSize(expected)}, above source.max_size (${formatSize(cfg.max_size)})`,
      false,
      "raise source.max_size if the dump really grew",
    );
  }
  const wire = { bytes: 0 };
  const raw = res.body ?? new ReadableStream<Uint8Array>();
  if (!encoded) return { stream: raw, expected, wire };
  const counted = raw.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(c, ctl) {
        wire.bytes += c.length;
        ctl.enqueue(c);
      },
    }),
  );
  const stream = counted.pipeThrough(new DecompressionStream(FORMATS[encoding]) as unknown as TransformStream<Uint8Array, Uint8Array>);
  return { stream, expected, encoding, wire };
}

/** Write the body to `dest`, checking on the way that it is a zip and within max_size; the bytes written. */
async function receive(n: SourceContext, res: Response, body: Body, dest: string, d: Deadlines): Promise<number> {
  const cfg = n.config.source;
  const out = await Deno.open(dest, { write: true, create: true, truncate: true, mode: 0o600 });
  let bytes = 0;
  let head: Uint8Array = new Uint8Array(0);
  d.touch();
  n.progress.start("fetch", body.expected);
  try {
    const onRead = (chunk: Uint8Array) => {
      d.touch();
      if (head.length < 4) head = zipHead(head, chunk, res);
      bytes += chunk.length;
      n.progress.update(bytes);
      if (bytes > cfg.max_size) throw overMaxSize(cfg);
      if (!body.encoding) body.wire.bytes += chunk.length;
    };
    for await (const batch of batches(body.stream, onRead)) {
      let w = 0;
      while (w < batch.length) w += await out.write(batch.subarray(w));
    }
  } catch (e) {
    throw readFailure(e, d, dest, bytes, body.expected, cfg.retries);
  } finally {
    try {
      out.close();
    } catch { /* closed */ }
  }
  if (bytes === 0 || head.length < 4) throw tooShort(res.status, bytes);
  if (body.expected !== undefined && body.wire.bytes !== body.expected) {
    throw new AttemptError(
      "truncated",
      `truncated download: received ${body.wire.bytes} bytes of the ${body.expected} announced by Content-Length${
        body.encoding ? ` (${body.encoding}-encoded)` : ""
      }`,
      true,
      "the connection was cut; check the network and the server",
    );
  }
  return bytes;
}

/** The body's first bytes so far; throws when they are there and are not a zip's. */
function zipHead(head: Uint8Array, chunk: Uint8Array, res: Response): Uint8Array {
  const h = new Uint8Array(head.length + chunk.length);
  h.set(head);
  h.set(chunk, head.length);
  const first = h.subarray(0, Math.min(h.length, 64));
  if (first.length >= 4 && !zipSignature(first)) throw notZip(res.status, first, res.headers.get("content-type"));
  return first;
}

/** Why reading the body failed: a check of ours, a deadline, the local disk, or the connection. */
function readFailure(e: unknown, d: Deadlines, dest: string, bytes: number, expected: number | undefined, retries: number): AttemptError {
  if (e instanceof AttemptError) return e;
  if (d.why) return d.why;
  if (e instanceof Deno.errors.PermissionDenied || /no space|os error 28/i.test(errMsg(e))) {
    return new AttemptError(
      "local",
      `cannot write the download to ${dest}: ${errMsg(e)}`,
      false,
      "free space in work_dir, or point work_dir elsewhere",
    );
  }
  return new AttemptError(
    "truncated",
    `connection lost after ${formatSize(bytes)}${expected !== undefined ? ` of ${formatSize(expected)}` : ""}: ${errMsg(e)}`,
    true,
    `the download was cut; archivist retries it (source.retries: ${retries}); if it keeps happening, check the network, a proxy, or the server's timeouts`,
  );
}
