/** `archivist run [JOB...]`: the nightly cycle of every job (or those named), one after the other, then the reports. */
import { executeRun, type RunResult } from "../night/run.ts";
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { asArchivistError, EXIT } from "../errors.ts";
import { appendHistory, type ReportLine, reportLine } from "../records/history.ts";
import { installSignalHandlers, onCleanup, runCleanups } from "../os/cleanup.ts";
import { composeJobsReport, composeReport, jobsSummary, sendMail, shouldSend, summary, worstStatus } from "../report/mail.ts";
import { ping, writeTextfile } from "../report/monitor.ts";
import { progressFor } from "../report/progress.ts";
import { COMMON, JSON_OUT } from "../cli/options.ts";
import { type Command, historyPath, type Parsed } from "../cli/context.ts";

/** The exit code of several jobs' runs: the first failed job's code, else 1 for a warning, else 0. */
function worstExit(rs: RunResult[]): number {
  const interrupted = rs.find((r) => r.exitCode === EXIT.INTERRUPTED);
  if (interrupted) return EXIT.INTERRUPTED;
  return rs.find((r) => r.status === "failed")?.exitCode ?? (rs.some((r) => r.status === "warning") ? EXIT.WARNING : EXIT.OK);
}

/** Jobs grouped by a key (one ping, one textfile, one mail per distinct setting), in run order. */
function groupBy<T>(items: T[], key: (t: T) => string | undefined): T[][] {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    if (k === undefined) continue;
    groups.set(k, [...(groups.get(k) ?? []), it]);
  }
  return [...groups.values()];
}

async function cmdRun(jobs: Config[], clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const progress = progressFor(p.progress, p.quiet);
  log.beforeStderr = () => progress.clear();
  const many = jobs.length > 1;
  if (p.dryRun) {
    // Nothing recorded, pinged or mailed: a dry run is not a night.
    const abortDry = new AbortController();
    installSignalHandlers((sig) => abortDry.abort(sig));
    const rs: RunResult[] = [];
    for (const job of jobs) {
      if (abortDry.signal.aborted) break;
      if (many) log.info("run", `job ${job.name} (dry run)`);
      log.job = many ? job.name : undefined;
      rs.push(
        await executeRun({
          config: job,
          clock,
          env,
          log,
          abort: abortDry.signal,
          options: { dryRun: true },
          command: "run --dry-run",
          progress,
        }),
      );
    }
    if (p.json) out(JSON.stringify(rs, null, 2));
    return worstExit(rs);
  }
  // Every job's run writes its history line as soon as the job ends, so that a kill during a later job or during the
  // report loses no night. What the report did (the mail's outcome; exit 130 when a signal cut it) follows as one
  // `report` line per job, which readHistory folds into the job's line.
  const results: RunResult[] = [];
  let reporting = false;
  const append = (line: RunResult | ReportLine) => {
    const herr = appendHistory(historyPath(jobs[0]), line);
    if (herr) log.warn("history", herr);
  };
  const reported = new Set<RunResult>();
  const recordReports = () => {
    for (const r of results) {
      if (reported.has(r) || !r.mail) continue;
      reported.add(r);
      append(reportLine(r));
    }
  };
  const abort = new AbortController();
  installSignalHandlers((sig) => {
    if (reporting) {
      // The steps are over (the archives stored or the failures known): record now, then stop at once.
      log.error("run", `interrupted by ${sig} while reporting: the run's outcome is recorded; the report may not have gone out`);
      for (const r of results) {
        r.mail ??= { sent: false, message: `interrupted by ${sig} before the report went out` };
        r.exitCode = EXIT.INTERRUPTED;
      }
      recordReports();
      runCleanups();
      Deno.exit(EXIT.INTERRUPTED);
    }
    log.error("run", `interrupted by ${sig}: stopping, removing temp files and the lock; nothing more will be archived`);
    abort.abort(sig);
  });
  const unrecord = onCleanup(recordReports); // also on the grace-period exit
  const pings = groupBy(jobs, (j) => j.monitor.ping_url);
  for (const group of pings) await ping(group[0], log, "/start", log.runId);
  for (const [i, job] of jobs.entries()) {
    if (abort.signal.aborted) {
      log.warn("run", `job ${job.name} not started: the run was interrupted`);
      continue;
    }
    if (many) log.info("run", `job ${job.name} (${i + 1} of ${jobs.length})`);
    log.job = many ? job.name : undefined;
    const r = await executeRun({ config: job, clock, env, log, abort: abort.signal, progress });
    log.job = undefined;
    results.push(r);
    append(r);
  }
  reporting = true;
  /** The results of a group of jobs (those that ran). */
  const resultsOf = (group: Config[]) => results.filter((r) => group.some((j) => j.name === r.job));
  for (const group of pings) {
    const rs = resultsOf(group);
    if (!rs.length) continue;
    const status = worstStatus(rs);
    const body = rs.length === 1
      ? `${status.toUpperCase()}: ${summary(rs[0])}\n`
      : `${status.toUpperCase()}: ${jobsSummary(rs)}\n${rs.map((r) => `${r.job}: ${r.status.toUpperCase()}: ${summary(r)}`).join("\n")}\n`;
    await ping(group[0], log, status === "failed" ? "/fail" : "", log.runId, body);
  }
  for (const group of groupBy(jobs, (j) => j.monitor.prometheus_textfile)) {
    writeTextfile(group[0].monitor.prometheus_textfile, log, resultsOf(group));
  }
  for (const group of groupBy(jobs, (j) => JSON.stringify(j.mail))) {
    await report(group[0], resultsOf(group), log);
  }
  recordReports();
  unrecord();
  if (p.json) out(JSON.stringify(results, null, 2));
  return worstExit(results);
}

/**
 * Mail the report of these runs (the jobs sharing one mail setting: one mail, a section per job) when the config
 * asks for it; a failure is logged and recorded, never fatal.
 */
async function report(cfg: Config, results: RunResult[], log: Logger): Promise<void> {
  if (!results.some((r) => shouldSend(cfg.mail, r))) return;
  const lines = log.lines.map((l) => log.redact(l));
  const m = results.length === 1 ? composeReport(cfg.mail, results[0], lines) : composeJobsReport(cfg.mail, results, lines);
  m.text = log.redact(m.text);
  m.subject = log.redact(m.subject);
  let outcome: { sent: boolean; message: string };
  try {
    const how = await sendMail(cfg.mail, m);
    outcome = { sent: true, message: `report to ${m.to.join(", ")} ${how}` };
    log.info("mail", outcome.message);
  } catch (e) {
    const err = asArchivistError("mail", e);
    outcome = { sent: false, message: log.redact(err.message) };
    log.warn("mail", `could not send the report: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ""}`);
  }
  for (const r of results) r.mail = outcome;
}

export const run: Command = {
  spec: {
    name: "run",
    summary: "the nightly cycle (fetch, unzip, check, compare, pack, store, state, retention) of each job, or the JOBs named",
    args: "[JOB...]",
    maxArgs: 100,
    options: [
      ...COMMON,
      {
        name: "dry-run",
        short: "n",
        help: "fetch, check and pack for real, then only say what store and retention would do: nothing is written " +
          "to the destination, the state, the catalogue or the history, and no ping or mail goes out",
      },
      {
        name: "progress",
        help: "a progress line (bytes, rate, ETA) on stderr for fetch, verify, pack, the read-back and the upload, even when stderr " +
          "is not a terminal (default: only on a terminal; never in the log)",
      },
      { name: "no-progress", help: "no progress line, even on a terminal" },
      { ...JSON_OUT, help: "at the end, each job's result on stdout as a JSON array (the shape of `history --json`)" },
    ],
    example: "archivist run -c /etc/archivist/archive.yaml",
    exits: "run",
    codes: [0, 1, 10, 11, 20, 21, 22, 23, 24, 30, 31, 32, 70, 130],
  },
  run: (c) => cmdRun(c.selected, c.clock, c.env, c.log, c.p, c.out),
};
