/**
 * Monitoring hooks: a heartbeat ping in the healthchecks.io style (start, success, failure) and a node_exporter
 * textfile. A ping is what catches the night the job never ran: the monitoring service alerts when no success
 * ping arrives. Both are best effort: a failure is logged as a warning, never fatal.
 */
import type { Config } from "./config/load.ts";
import { errMsg } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { RunResult } from "./run.ts";

/** URL for a ping kind: "" (success), "/start" or "/fail", with ?rid=<run id>. */
export function pingUrl(base: string, kind: "" | "/start" | "/fail", runId: string): string {
  const u = new URL(base.replace(/\/+$/, "") + kind);
  u.searchParams.set("rid", runId);
  return u.href;
}

/** Send one ping; logs and swallows failures. */
export async function ping(cfg: Config, log: Logger, kind: "" | "/start" | "/fail", runId: string, body?: string): Promise<void> {
  const base = cfg.monitor.ping_url;
  if (!base) return;
  const url = pingUrl(base, kind, runId);
  try {
    const res = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      body,
      headers: { "User-Agent": "archivist" },
      signal: AbortSignal.timeout(cfg.monitor.ping_timeout),
    });
    await res.body?.cancel();
    if (!res.ok) log.warn("monitor", `ping ${kind || "success"} answered HTTP ${res.status}`);
    else log.debug("monitor", `ping ${kind || "success"} sent`);
  } catch (e) {
    log.warn("monitor", `ping ${kind || "success"} to ${new URL(base).host} failed: ${errMsg(e)}`);
  }
}

/** The Prometheus text exposition of a run (and of the last success, kept from the previous file). */
export function promText(r: RunResult, lastSuccess: number | undefined): string {
  const job = r.job.replace(/["\\\n]/g, "_");
  const l = `{job="${job}"}`;
  const end = Math.round(new Date(r.endedAt).getTime() / 1000);
  const lines = [
    "# HELP archivist_last_run_timestamp_seconds End of the last run.",
    "# TYPE archivist_last_run_timestamp_seconds gauge",
    `archivist_last_run_timestamp_seconds${l} ${end}`,
    "# HELP archivist_last_success_timestamp_seconds End of the last run that stored an archive or found the dump unchanged.",
    "# TYPE archivist_last_success_timestamp_seconds gauge",
    `archivist_last_success_timestamp_seconds${l} ${lastSuccess ?? 0}`,
    "# HELP archivist_last_run_duration_seconds Duration of the last run.",
    "# TYPE archivist_last_run_duration_seconds gauge",
    `archivist_last_run_duration_seconds${l} ${(r.durationMs / 1000).toFixed(3)}`,
    "# HELP archivist_last_run_exit_code Exit code of the last run (0 ok, 1 warning, other: the failing step).",
    "# TYPE archivist_last_run_exit_code gauge",
    `archivist_last_run_exit_code${l} ${r.exitCode}`,
    "# HELP archivist_last_run_status 1 for the status of the last run.",
    "# TYPE archivist_last_run_status gauge",
    ...["ok", "warning", "failed"].map((s) => `archivist_last_run_status{job="${job}",status="${s}"} ${r.status === s ? 1 : 0}`),
    "# HELP archivist_last_archive_size_bytes Size of the last stored archive.",
    "# TYPE archivist_last_archive_size_bytes gauge",
  ];
  if (r.archive) lines.push(`archivist_last_archive_size_bytes${l} ${r.archive.size}`);
  return lines.join("\n") + "\n";
}

/** Write the textfile atomically (temp file in the same directory, then rename). */
export function writeTextfile(cfg: Config, log: Logger, r: RunResult): void {
  const path = cfg.monitor.prometheus_textfile;
  if (!path) return;
  let lastSuccess: number | undefined;
  try {
    const prev = Deno.readTextFileSync(path);
    const m = /^archivist_last_success_timestamp_seconds\{[^}]*\} (\d+)/m.exec(prev);
    if (m && Number(m[1]) > 0) lastSuccess = Number(m[1]);
  } catch { /* first run */ }
  if (r.status !== "failed") lastSuccess = Math.round(new Date(r.endedAt).getTime() / 1000);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, promText(r, lastSuccess), { mode: 0o644 });
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not there */ }
    log.warn("monitor", `cannot write ${path}: ${errMsg(e)}`);
  }
}
