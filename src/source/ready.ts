/**
 * The ready marker (Cedar Backup's "collect indicator"): before the zip is fetched, `source.ready_url` (HTTPS, a
 * 2xx answer to HEAD) or `source.ready_file` (a mounted export) must exist, and with `ready_newer: true` be newer than
 * the last archived zip, so that a half-written export is never taken. `ready_wait` polls (every twentieth of it,
 * between 1 s and 5 min) until its deadline, then the run fails with its own cause: "the export was not ready".
 */
import { ArchivistError, errMsg } from "../errors.ts";
import { formatDuration } from "../config/units.ts";

import { authHeaders, describeNetworkError } from "./http.ts";
import { headCurl } from "./curl.ts";
import type { SourceContext } from "./attempt.ts";

interface Probe {
  ready: boolean;
  /** What was seen, in words, for the log and the error. */
  what: string;
}

async function probe(ctx: SourceContext, client: Deno.HttpClient | undefined, since: Date | undefined): Promise<Probe> {
  const cfg = ctx.config.source;
  let modified: Date | undefined;
  let where: string;
  if (cfg.ready_file) {
    where = cfg.ready_file;
    try {
      const st = Deno.statSync(cfg.ready_file);
      modified = st.mtime ?? undefined;
    } catch (e) {
      return { ready: false, what: e instanceof Deno.errors.NotFound ? `${where} does not exist` : `${where}: ${errMsg(e)}` };
    }
  } else {
    const url = new URL(cfg.ready_url!);
    where = url.href;
    try {
      if (cfg.client === "curl") {
        const dir = Deno.makeTempDirSync({ prefix: "archivist-ready-" });
        try {
          const h = await headCurl({ ...cfg, url: url.href }, dir);
          if (h.status < 200 || h.status > 299) return { ready: false, what: `${where} answers HTTP ${h.status}` };
        } finally {
          Deno.removeSync(dir, { recursive: true });
        }
      } else {
        const res = await fetch(url, {
          method: "HEAD",
          headers: { "User-Agent": "archivist", ...(url.host === new URL(cfg.url).host ? authHeaders(cfg) : {}) },
          client,
          signal: AbortSignal.timeout(cfg.connect_timeout),
        });
        await res.body?.cancel();
        if (!res.ok) return { ready: false, what: `${where} answers HTTP ${res.status}` };
        const lm = res.headers.get("last-modified");
        modified = lm ? new Date(lm) : undefined;
      }
    } catch (e) {
      return { ready: false, what: describeNetworkError(e, url, cfg).message };
    }
  }
  if (cfg.ready_newer && since) {
    if (!modified) return { ready: false, what: `${where} has no modification time to compare (ready_newer)` };
    if (modified.getTime() <= since.getTime()) {
      return { ready: false, what: `${where} (${modified.toISOString()}) is not newer than the last archive (${since.toISOString()})` };
    }
  }
  return { ready: true, what: `${where} is there${modified ? ` (${modified.toISOString()})` : ""}` };
}

/** Wait for the ready marker when one is configured; throws "the export was not ready" at the deadline. */
export async function waitReady(ctx: SourceContext, client: Deno.HttpClient | undefined): Promise<void> {
  const cfg = ctx.config.source;
  if (!cfg.ready_url && !cfg.ready_file) return;
  const last = ctx.last.raw();
  const since = last ? new Date(last.storedAt) : undefined;
  const start = performance.now();
  const wait = cfg.ready_wait ?? 0;
  const every = Math.min(Math.max(wait / 20, 1000), 300_000);
  for (;;) {
    const p = await probe(ctx, client, since);
    if (p.ready) {
      ctx.log.info("fetch", `ready marker: ${p.what}`);
      return;
    }
    const left = wait - (performance.now() - start);
    if (left <= 0 || ctx.signal.aborted) {
      throw new ArchivistError(
        "fetch",
        `the export was not ready${wait ? ` after waiting ${formatDuration(wait)}` : ""}: ${p.what}`,
        wait
          ? "the export job on the server did not finish in time: check it, or raise source.ready_wait"
          : "the export job on the server has not finished: check it, or set source.ready_wait to wait for it",
        { code: "not_ready" },
      );
    }
    ctx.log.info("fetch", `waiting for the export: ${p.what}; next look in ${formatDuration(Math.min(every, left))}`);
    await new Promise<void>((r) => {
      const t = setTimeout(r, Math.min(every, left));
      ctx.signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
    });
  }
}
