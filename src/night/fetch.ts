/**
 * fetch: download `source.url` into the night's work dir, after the ready marker.
 *
 * TLS is always verified (`source.ca_file` adds trusted CAs, never removes checks). Network errors, timeouts and
 * HTTP 5xx are retried with exponential backoff; 4xx and TLS errors are not (retrying cannot fix them). A 304 to the
 * conditional download is judged by compare's rule (check.on_unchanged): stop, fail, or download it anyway.
 */
import { join } from "node:path";
import { ArchivistError, asArchivistError, errMsg } from "../errors.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import type { Logger } from "../report/log.ts";
import { AttemptError, validators } from "../source/attempt.ts";
import { type SourceClient, sourceClient } from "../source/client.ts";
import { waitReady } from "../source/ready.ts";
import { judgeNotModified } from "./compare.ts";
import { type Early, readWhileDownloading } from "./early.ts";
import type { Done, Download, Night, NotModified } from "./types.ts";

export async function fetchZip(n: Night): Promise<Done<Download | NotModified>> {
  const cfg = n.config.source;
  const dest = join(n.workDir, "download.zip");
  const client = sourceClient(n);
  n.log.info("fetch", `GET ${cfg.url}${cfg.ca_file ? ` (trusting ${cfg.ca_file})` : ""}${cfg.client === "curl" ? " with curl" : ""}`);
  try {
    await waitReady(n, client.http);
    return await download(n, client, dest);
  } finally {
    client.close();
  }
}

/** The attempts, with backoff; a 304 asks check.on_unchanged once. */
async function download(n: Night, client: SourceClient, dest: string): Promise<Done<Download | NotModified>> {
  const cfg = n.config.source;
  const t0 = performance.now();
  const startedAt = new Date(); // the wall clock, not the run date: it is held against the server's file times
  let unconditional = false;
  // The first attempt's zip is verified as it arrives; a retried attempt is read after it (./early.ts).
  let early: Early | undefined = readWhileDownloading(n, dest);
  const drop = (why: string) => (early?.abandon(why), early = undefined);
  for (let i = 0;; i++) {
    try {
      const r = await client.attempt(dest, unconditional);
      if (r.status === 304) {
        drop("not modified");
        const judged = judgeNotModified(n);
        if (judged !== "download") return judged;
        unconditional = true;
        i--;
        continue;
      }
      const secs = (performance.now() - t0) / 1000;
      const v = validators(r, startedAt);
      if (v.racy) n.log.info("fetch", `${v.racy}: not kept for a conditional download (the next night downloads and compares)`);
      const msg = `downloaded ${formatSize(r.bytes)} in ${formatDuration(secs * 1000)}${
        secs > 0.5 ? ` (${formatSize(Math.round(r.bytes / secs))}/s)` : ""
      }${i ? ` after ${i + 1} attempts` : ""}`;
      early?.finished();
      const value: Download = { kind: "zip", path: dest, size: r.bytes, etag: v.etag, lastModified: v.lastModified, early };
      return { status: "ok", message: msg, value };
    } catch (e) {
      drop(`attempt ${i + 1} failed`);
      const a = finalOrRetry(n, e, i);
      const delay = cfg.retry_delay * 2 ** i;
      n.log.warn("fetch", `attempt ${i + 1}/${cfg.retries + 1} failed: ${a.message}; retrying in ${formatDuration(delay)}`);
      await backoff(n.log, delay, n.signal);
    }
  }
}

/** The failed attempt to retry; throws when it is final. */
function finalOrRetry(n: Night, e: unknown, i: number): AttemptError {
  // An answer (a 304 under on_unchanged: fail) is final, and so is a local file error (the work dir gone or
  // full): only a failed attempt at the network is retried.
  if (e instanceof ArchivistError) throw e;
  if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied || /os error 28\b/.test(errMsg(e))) {
    throw asArchivistError("fetch", e, `work_dir ${n.config.work_dir} must be a writable directory with room for the zip`);
  }
  const a = e instanceof AttemptError ? e : new AttemptError("network", errMsg(e), true);
  if (!a.retryable || i >= n.config.source.retries || n.signal.aborted) {
    throw new ArchivistError("fetch", a.message + (i ? ` (after ${i + 1} attempts)` : ""), a.hint, { code: a.kind });
  }
  return a;
}

/** Sleep `ms`, logging why. */
async function backoff(log: Logger, ms: number, signal: AbortSignal): Promise<void> {
  log.debug("fetch", `waiting ${formatDuration(ms)}`);
  await new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
  });
}
