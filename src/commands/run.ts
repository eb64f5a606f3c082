/** `archivist run [JOB...]`: the nightly cycle of every job (or those named), one after the other, then the reports. */
import { executeRun, type RunDeps } from "../night/run.ts";
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { EXIT } from "../errors.ts";
import { appendHistory, type ReportLine, reportLine, type RunResult } from "../records/history.ts";
import { installSignalHandlers, onCleanup, runCleanups } from "../os/cleanup.ts";
import { reportersFor } from "../report/reporters.ts";
import { progressFor } from "../report/progress.ts";
import { COMMON, JSON_OUT } from "./options.ts";
import { type Command, historyPath, type Parsed } from "./context.ts";

/** The exit code of several jobs' runs: the first failed job's code, else 1 for a warning, else 0. */
function worstExit(rs: RunResult[]): number {
  const interrupted = rs.find((r) => r.exitCode === EXIT.INTERRUPTED);
  if (interrupted) return EXIT.INTERRUPTED;
  return rs.find((r) => r.status === "failed")?.exitCode ?? (rs.some((r) => r.status === "warning") ? EXIT.WARNING : EXIT.OK);
}

async function cmdRun(jobs: Config[], clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const progress = progressFor(p.progress, p.quiet);
  log.beforeStderr = () => progress.clear();
  const rs = p.dryRun ? await dryRuns(jobs, { clock, env, log, progress }) : await nights(jobs, { clock, env, log, progress });
  if (p.json) out(JSON.stringify(rs, null, 2));
  return worstExit(rs);
}

type Deps = Pick<RunDeps, "clock" | "env" | "log" | "progress">;

/** `run --dry-run`: nothing recorded, pinged or mailed: a dry run is not a night. */
async function dryRuns(jobs: Config[], d: Deps): Promise<RunResult[]> {
  const abort = new AbortController();
  installSignalHandlers((sig) => abort.abort(sig));
  const rs: RunResult[] = [];
  for (const job of jobs) {
    if (abort.signal.aborted) break;
    if (jobs.length > 1) d.log.info("run", `job ${job.name} (dry run)`);
    d.log.job = jobs.length > 1 ? job.name : undefined;
    rs.push(await executeRun({ ...d, config: job, abort: abort.signal, options: { dryRun: true }, command: "run --dry-run" }));
  }
  return rs;
}

/**
 * The nights of the jobs, then the reporters. Every job's history line is written as soon as the job ends, so that a
 * kill during a later job or during the report loses no night. What the report did (the mail's outcome; exit 130 when
 * a signal cut it) follows as one `report` line per job, which readHistory folds into the job's line.
 */
async function nights(jobs: Config[], d: Deps): Promise<RunResult[]> {
  const { log } = d;
  const results: RunResult[] = [];
  const history = reportHistory(jobs[0], log, results);
  let reporting = false;
  const abort = new AbortController();
  installSignalHandlers((sig) => {
    if (reporting) {
      // The steps are over (the archives stored or the failures known): record now, then stop at once.
      log.error("run", `interrupted by ${sig} while reporting: the run's outcome is recorded; the report may not have gone out`);
      for (const r of results) {
        r.mail ??= { sent: false, message: `interrupted by ${sig} before the report went out` };
        r.exitCode = EXIT.INTERRUPTED;
      }
      history.reports();
      runCleanups();
      Deno.exit(EXIT.INTERRUPTED);
    }
    log.error("run", `interrupted by ${sig}: stopping, removing temp files and the lock; nothing more will be archived`);
    abort.abort(sig);
  });
  const unrecord = onCleanup(history.reports); // also on the grace-period exit
  const reporters = reportersFor(jobs);
  for (const r of reporters) await r.start?.(log);
  for (const [i, job] of jobs.entries()) {
    if (abort.signal.aborted) {
      log.warn("run", `job ${job.name} not started: the run was interrupted`);
      continue;
    }
    if (jobs.length > 1) log.info("run", `job ${job.name} (${i + 1} of ${jobs.length})`);
    log.job = jobs.length > 1 ? job.name : undefined;
    const r = await executeRun({ ...d, config: job, abort: abort.signal });
    log.job = undefined;
    results.push(r);
    history.append(r);
  }
  reporting = true;
  for (const r of reporters) await r.end(results, log);
  history.reports();
  unrecord();
  return results;
}

/** The history of this night: each job's line, then once its report is done (or cut) a `report` line. */
function reportHistory(first: Config, log: Logger, results: RunResult[]) {
  const append = (line: RunResult | ReportLine) => {
    const herr = appendHistory(historyPath(first), line);
    if (herr) log.warn("history", herr);
  };
  const reported = new Set<RunResult>();
  return {
    append,
    reports() {
      for (const r of results) {
        if (reported.has(r) || !r.mail) continue;
        reported.add(r);
        append(reportLine(r));
      }
    },
  };
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
    jobs: "args",
    writesState: (p) => !p.dryRun,
    codes: [0, 1, 10, 11, 20, 21, 22, 23, 24, 25, 30, 31, 32, 70, 130],
  },
  run: (c) => cmdRun(c.selected, c.clock, c.env, c.log, c.p, c.out),
};
