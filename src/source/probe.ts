/**
 * A look at the source without downloading it (`archivist verify`): HEAD (or a one-byte GET where HEAD is refused)
 * through the configured client, with the same TLS, credentials and timeouts as the night; with Deno's client, a
 * byte-range reader for the zip's central directory when the server offers ranges.
 */
import type { SourceConfig } from "../config/schema.ts";
import type { ZipSource } from "../formats/zip.ts";
import { headCurl } from "./curl.ts";
import { authHeaders, describeNetworkError, makeClient } from "./http.ts";

export interface SourceProbe {
  client: "fetch" | "curl";
  status: number;
  /** The reason phrase (Deno's client only). */
  reason?: string;
  /** The zip's size, when the server said it. */
  total?: number;
  /** Byte ranges of the zip (Deno's client, a server that offers them). */
  ranges?: ZipSource;
  close(): void;
}

/** Probe the source; throws an AttemptError (network, TLS) or the config error of an unreadable CA file. */
export async function probeSource(src: SourceConfig): Promise<SourceProbe> {
  if (src.client === "curl") {
    const dir = Deno.makeTempDirSync({ prefix: "archivist-verify-" });
    try {
      const h = await headCurl(src, dir);
      return { client: "curl", status: h.status, total: h.length, close: () => {} };
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
  const client = makeClient(src);
  const url = new URL(src.url);
  const headers = { "User-Agent": "archivist-verify", ...authHeaders(src) };
  const signal = () => AbortSignal.timeout(src.connect_timeout);
  let res: Response;
  try {
    res = await fetch(url, { method: "HEAD", headers, client, signal: signal() });
    if (res.status === 405 || res.status === 501) {
      res = await fetch(url, { headers: { ...headers, Range: "bytes=0-0" }, client, signal: signal() });
      await res.body?.cancel();
    }
  } catch (e) {
    client.close();
    throw describeNetworkError(e, url, src);
  }
  const len = Number(res.headers.get("content-length") ?? NaN);
  const total = Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1] ?? (res.status === 200 ? len : NaN));
  const known = res.ok && Number.isFinite(total);
  const ranges = known && res.headers.get("accept-ranges") === "bytes" && total > 0
    ? rangeReader(src.url, headers, client, total, src.connect_timeout)
    : undefined;
  return {
    client: "fetch",
    status: res.status,
    reason: res.statusText,
    total: known ? total : undefined,
    ranges,
    close: () => client.close(),
  };
}

/** An HTTP resource read with Range requests (for the cheap entry check). */
function rangeReader(
  url: string,
  headers: Record<string, string>,
  client: Deno.HttpClient | undefined,
  size: number,
  timeout: number,
): ZipSource {
  return {
    size,
    async readAt(offset: number, length: number): Promise<Uint8Array> {
      const res = await fetch(url, {
        headers: { ...headers, Range: `bytes=${offset}-${offset + length - 1}` },
        client,
        signal: AbortSignal.timeout(timeout),
      });
      if (res.status !== 206) {
        await res.body?.cancel();
        throw new Error(`range request answered HTTP ${res.status}`);
      }
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}
