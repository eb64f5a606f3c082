/**
 * Monitoring hooks: a heartbeat ping in the healthchecks.io style (start, success, failure) and a node_exporter
 * textfile. A ping is what catches the night the job never ran: the monitoring service alerts when no success
 * ping arrives. Both are best effort: a failure is logged as a warning, never fatal.
 */
import type { Config } from "../config/load.ts";
import { errMsg } from "../errors.ts";
import type { Logger } from "./log.ts";
import type { RunResult } from "../records/history.ts";

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

/**
 * The label that names the job. Not `job`: Prometheus sets `job` itself (the scrape job) and renames ours to
 * `exported_job`. Files written before 2026-12 used `job`; their lines are read (and rewritten) as `archivist_job`.
 */
export const JOB_LABEL = "archivist_job";

/** The metrics, in order: name, help, and the sample(s) of one run (the job's label value, its last success). */
const METRICS: { name: string; help: string; samples(r: RunResult, l: string, job: string, lastSuccess: number | undefined): string[] }[] =
  [
    {
      name: "archivist_last_run_timestamp_seconds",
      help: "End of the last run.",
      samples: (r, l) => [`archivist_last_run_timestamp_seconds${l} ${Math.round(new Date(r.endedAt).getTime() / 1000)}`],
    },
    {
      name: "archivist_last_success_timestamp_seconds",
      help: "End of the last run that stored an archive or found the dump unchanged.",
      samples: (_r, l, _j, last) => [`archivist_last_success_timestamp_seconds${l} ${last ?? 0}`],
    },
    {
      name: "archivist_last_run_duration_seconds",
      help: "Duration of the last run.",
      samples: (r, l) => [`archivist_last_run_duration_seconds${l} ${(r.durationMs / 1000).toFixed(3)}`],
    },
    {
      name: "archivist_last_run_exit_code",
      help: "Exit code of the last run (0 ok, 1 warning, other: the failing step).",
      samples: (r, l) => [`archivist_last_run_exit_code${l} ${r.exitCode}`],
    },
    {
      name: "archivist_last_run_status",
      help: "1 for the status of the last run.",
      samples: (r, _l, job) =>
        ["ok", "warning", "failed"].map((s) => `archivist_last_run_status{${JOB_LABEL}="${job}",status="${s}"} ${r.status === s ? 1 : 0}`),
    },
    {
      name: "archivist_last_archive_size_bytes",
      help: "Size of the last stored archive.",
      samples: (r, l) => (r.archive ? [`archivist_last_archive_size_bytes${l} ${r.archive.size}`] : []),
    },
  ];

const labelValue = (job: string) => job.replace(/["\\\n]/g, "_");

/**
 * The Prometheus text exposition of these runs (one per job), keeping the samples of the jobs that did not run
 * this time from `previous` (the file as it was), so that several jobs share one textfile.
 */
export function promText(results: RunResult[], previous = ""): string {
  const ran = new Set(results.map((r) => labelValue(r.job)));
  previous = previous.replace(/^(archivist_\w+\{)job="/gm, `$1${JOB_LABEL}="`); // the label's old name
  const kept = previous.split("\n").filter((line) => {
    const m = new RegExp(`^archivist_\\w+\\{${JOB_LABEL}="([^"]*)"`).exec(line);
    return m !== null && !ran.has(m[1]);
  });
  // Each job's last success: this run's end unless it failed, else what the file said.
  const lastSuccess = results.map((r) => {
    const job = labelValue(r.job);
    const before = new RegExp(
      `^archivist_last_success_timestamp_seconds\\{${JOB_LABEL}="${job.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\} (\\d+)`,
      "m",
    )
      .exec(previous);
    return r.status !== "failed"
      ? Math.round(new Date(r.endedAt).getTime() / 1000)
      : before && Number(before[1]) > 0
      ? Number(before[1])
      : undefined;
  });
  const lines: string[] = [];
  for (const metric of METRICS) {
    lines.push(`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} gauge`);
    lines.push(...kept.filter((l) => l.startsWith(`${metric.name}{`)));
    for (const [k, r] of results.entries()) {
      const job = labelValue(r.job);
      lines.push(...metric.samples(r, `{${JOB_LABEL}="${job}"}`, job, lastSuccess[k]));
    }
  }
  return lines.join("\n") + "\n";
}

/** Write the textfile atomically (temp file in the same directory, then rename) with these runs' metrics. */
export function writeTextfile(path: string | undefined, log: Logger, results: RunResult[]): void {
  if (!path || !results.length) return;
  let previous = "";
  try {
    previous = Deno.readTextFileSync(path);
  } catch { /* first run */ }
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, promText(results, previous), { mode: 0o644 });
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not there */ }
    log.warn("monitor", `cannot write ${path}: ${errMsg(e)}`);
  }
}
