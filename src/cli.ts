/**
 * Commands and help text. main.ts calls {@link main} with argv and exits with what it returns.
 */
import denoJson from "../deno.json" with { type: "json" };
import { type Clock, fixedClock, systemClock } from "./clock.ts";
import { type Config, findConfigPath, loadJobs } from "./config/load.ts";
import { formatDuration, formatSize } from "./config/units.ts";
import { type Env, processEnv } from "./env.ts";
import { ArchivistError, asArchivistError, EXIT } from "./errors.ts";
import { commandHelp, generalHelp, parseCommandLine, UsageError } from "./commands.ts";
import { appendHistory, readHistory } from "./history.ts";
import { type Level, localIso, Logger, newRunId } from "./log.ts";
import { executeRun, type RunResult } from "./run.ts";
import { installSignalHandlers, onCleanup, runCleanups } from "./cleanup.ts";
import { applyRetention, planRetention } from "./retention/apply.ts";
import { acquireLock } from "./lock.ts";
import { withTransport } from "./transports/registry.ts";
import { join } from "node:path";
import { hostname } from "node:os";
import { composeJobsReport, composeReport, jobsSummary, sendMail, shouldSend, summary, worstStatus } from "./mail.ts";
import { ping, writeTextfile } from "./monitor.ts";
import { restore } from "./restore.ts";
import { type Check, formatChecks, NAGIOS, nagios, runVerify } from "./verify.ts";
import { type CheckReport, runCheck } from "./check.ts";
import { runUserProblem } from "./runuser.ts";
import { runtimeForm } from "./runtime.ts";
import { progressFor } from "./progress.ts";

export const VERSION: string = denoJson.version;

export const HELP: string = generalHelp(VERSION);

export interface CliDeps {
  env?: Env;
  clock?: Clock;
  stdout?: (s: string) => void;
}

function clockFrom(env: Env): Clock {
  const fixed = env.get("ARCHIVIST_NOW");
  return fixed ? fixedClock(fixed) : systemClock;
}

interface Parsed {
  command: string;
  /** For `help`: the command whose help was asked. */
  helpOf?: string;
  config?: string;
  quiet: boolean;
  verbose: boolean;
  json: boolean;
  dryRun: boolean;
  /** --progress (true), --no-progress (false), or neither (the terminal decides). */
  progress?: boolean;
  force: boolean;
  last?: number;
  sample: number;
  all: boolean;
  target?: string;
  /** run: the jobs named on the command line. */
  targets: string[];
  /** --job NAME. */
  job?: string;
  /** --destination N (1-based). */
  destination?: number;
  to?: string;
}

function parse(argv: string[]): Parsed {
  const { command, values, args } = parseCommandLine(argv);
  const num = (name: string, min: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || !/^\d+$/.test(v) || Number(v) < min) {
      throw new UsageError(`--${name} takes a number (${min} or more)`, command);
    }
    return Number(v);
  };
  if (values.progress && values["no-progress"]) throw new UsageError("--progress and --no-progress together", command);
  return {
    command,
    helpOf: typeof values.of === "string" ? values.of : undefined,
    config: values.config as string | undefined,
    quiet: !!values.quiet,
    verbose: !!values.verbose,
    json: !!values.json,
    dryRun: !!values["dry-run"],
    progress: values.progress ? true : values["no-progress"] ? false : undefined,
    force: !!values.force,
    last: num("last", 0),
    sample: num("sample", 1) ?? 1,
    all: !!values.all,
    target: args[0],
    targets: args,
    job: values.job as string | undefined,
    destination: num("destination", 1),
    to: values.to as string | undefined,
  };
}

/** Load the config's jobs or report why not (stderr and, best effort, the default log file). */
function configOrFail(p: Parsed, env: Env, log: Logger): Config[] {
  const found = findConfigPath(p.config, env);
  const jobs = loadJobs(found.path, env);
  for (const s of jobs.flatMap((j) => j.secretValues)) log.addSecret(s);
  const cfg = jobs[0]; // log, history and verify are per run: every job has the same
  const level: Level = p.verbose ? "debug" : cfg.log.level;
  const readOnly = p.command === "history" || p.command === "list" || p.command === "verify" || p.command === "check";
  log.setLevels(level, p.quiet ? "error" : p.verbose ? "debug" : readOnly ? "warn" : "info");
  if (p.command === "history") return jobs;
  const warn = log.openFile(cfg.log.file, [
    join(cfg.state_dir, "archivist.log"),
    join(Deno.env.get("TMPDIR") ?? "/tmp", `archivist-${cfg.name}.log`),
  ]);
  log.info(
    "config",
    `using ${found.path} (${found.how})${jobs.length > 1 ? `: ${jobs.length} jobs (${jobs.map((j) => j.name).join(", ")})` : ""}`,
  );
  if (warn) log.warn("log", warn);
  return jobs;
}

/**
 * The jobs a command works on: `run` the ones named (in that order) or all of them; `verify` and `history` the one
 * of --job or all; the others the one of --job, or the only one.
 */
function selectJobs(jobs: Config[], p: Parsed): Config[] {
  const names = p.command === "run" ? [...new Set(p.targets)] : p.job !== undefined ? [p.job] : [];
  const all = jobs.map((j) => j.name).join(", ");
  const unknown = names.filter((n) => !jobs.some((j) => j.name === n));
  if (unknown.length) {
    throw new UsageError(`no job ${unknown.map((n) => JSON.stringify(n)).join(", ")} in ${jobs[0].file} (its jobs: ${all})`, p.command);
  }
  if (names.length) return names.map((n) => jobs.find((j) => j.name === n)!);
  if (jobs.length === 1 || ["run", "verify", "history"].includes(p.command)) return jobs;
  throw new UsageError(`${jobs[0].file} has ${jobs.length} jobs (${all}): name one with --job NAME`, p.command);
}

/** Report a usage error the way the parser does; exit 2. */
function usageFailure(e: UsageError): number {
  console.error(`archivist: ${e.message}`);
  if (e.command) {
    console.error(`Usage: ${commandHelp(e.command).split("\n")[2].replace(/^Usage: /, "")}\nTry 'archivist ${e.command} --help'.`);
  }
  return EXIT.USAGE;
}

function historyPath(cfg: Config): string {
  return cfg.history.file ?? join(cfg.state_dir, "history.jsonl");
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[], deps: CliDeps = {}): Promise<number> {
  const env = deps.env ?? processEnv;
  const clock = deps.clock ?? clockFrom(env);
  const out = deps.stdout ?? ((s: string) => console.log(s));
  let p: Parsed;
  try {
    p = parse(argv);
  } catch (e) {
    if (e instanceof UsageError && e.command) return usageFailure(e);
    console.error(`archivist: ${e instanceof Error ? e.message : e}`);
    console.error("Try 'archivist --help'.");
    return EXIT.USAGE;
  }
  if (p.command === "help") return (out(p.helpOf ? commandHelp(p.helpOf) : HELP), EXIT.OK);
  if (p.command === "version") return (out(`archivist ${VERSION} (${runtimeForm(env)})`), EXIT.OK);
  if (!p.command) {
    console.error(HELP);
    return EXIT.USAGE;
  }

  const log = new Logger({ runId: newRunId(clock.now()), stderrLevel: p.quiet ? "error" : p.verbose ? "debug" : "info" });
  onCleanup(() => log.close());
  let jobs: Config[];
  try {
    jobs = configOrFail(p, env, log);
  } catch (e) {
    const err = asArchivistError("config", e);
    if (p.command === "verify") {
      // As a monitoring check: Nagios CRITICAL, the cause on the first line.
      const checks: Check[] = [{ name: "config", status: "crit", message: err.message, hint: err.hint }];
      out(
        p.json
          ? JSON.stringify({ status: "CRITICAL", code: NAGIOS.CRITICAL, checks }, null, 2)
          : `ARCHIVIST CRITICAL - config: ${err.message}\n${formatChecks(checks)}`,
      );
      runCleanups();
      return NAGIOS.CRITICAL;
    }
    if (!log.filePath) log.openFile("/var/log/archivist/archivist.log", []);
    log.failure("config", err);
    runCleanups();
    return err.exitCode;
  }

  let selected: Config[];
  try {
    selected = selectJobs(jobs, p);
  } catch (e) {
    runCleanups();
    if (e instanceof UsageError) return usageFailure(e);
    throw e;
  }
  let cfg = selected[0];
  if (p.destination !== undefined) {
    const t = cfg.targets[p.destination - 1];
    if (!t) {
      runCleanups();
      return usageFailure(
        new UsageError(`--destination ${p.destination}: job ${cfg.name} has ${cfg.targets.length} destination(s)`, p.command),
      );
    }
    cfg = { ...cfg, destination: t.destination, retention: t.retention };
  }

  // Commands that write state_dir run as its owner (read-only ones and dry runs may run as anyone).
  const writes = (p.command === "run" || p.command === "prune") && !p.dryRun || p.command === "check";
  for (const job of writes ? selected : []) {
    const wrongUser = runUserProblem(job.state_dir, p.command, job.file);
    if (wrongUser) {
      log.failure("lock", wrongUser);
      runCleanups();
      return wrongUser.exitCode;
    }
  }

  try {
    switch (p.command) {
      case "run":
        return await cmdRun(selected, clock, env, log, p);
      case "history":
        return cmdHistory(cfg, p, out, jobs.length > 1 && p.job !== undefined ? p.job : undefined);
      case "list":
        return await cmdList(cfg, clock, env, log, p, out);
      case "prune":
        return await cmdPrune(cfg, clock, env, log, p);
      case "mail-test":
        return await cmdMailTest(cfg, log);
      case "verify":
        return await cmdVerify(selected, clock, env, log, p, out);
      case "restore":
        return await cmdRestore(cfg, clock, env, log, p, out);
      case "check":
        return await cmdCheck(cfg, clock, env, log, p, out);
    }
    return EXIT.USAGE;
  } catch (e) {
    const err = asArchivistError("internal", e);
    log.failure(err.step, err);
    if (err.exitCode === EXIT.INTERNAL && e instanceof Error && e.stack) log.error("internal", e.stack);
    if (p.command === "verify") {
      out(`ARCHIVIST UNKNOWN - verify itself failed: ${err.message}`);
      return NAGIOS.UNKNOWN;
    }
    return err.exitCode;
  } finally {
    runCleanups();
  }
}

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

async function cmdRun(jobs: Config[], clock: Clock, env: Env, log: Logger, p: Parsed): Promise<number> {
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
    return worstExit(rs);
  }
  // Every job's run writes exactly one history line, whatever happens after the steps: before the best-effort
  // reporting when interrupted, after it otherwise (so that the mail's outcome is in it), and from the signal
  // handler when a signal arrives while the report hangs.
  const results: RunResult[] = [];
  let reporting = false;
  const recorded = new Set<RunResult>();
  const record = (r: RunResult) => {
    if (recorded.has(r)) return;
    recorded.add(r);
    const herr = appendHistory(historyPath(jobs[0]), r);
    if (herr) log.warn("history", herr);
  };
  const recordAll = () => results.forEach(record);
  const abort = new AbortController();
  installSignalHandlers((sig) => {
    if (reporting) {
      // The steps are over (the archives stored or the failures known): record now, then stop at once.
      log.error("run", `interrupted by ${sig} while reporting: the run's outcome is recorded; the report may not have gone out`);
      for (const r of results) {
        r.mail ??= { sent: false, message: `interrupted by ${sig} before the report went out` };
        r.exitCode = EXIT.INTERRUPTED;
      }
      recordAll();
      runCleanups();
      Deno.exit(EXIT.INTERRUPTED);
    }
    log.error("run", `interrupted by ${sig}: stopping, removing temp files and the lock; nothing more will be archived`);
    abort.abort(sig);
  });
  const unrecord = onCleanup(recordAll); // also on the grace-period exit
  const pings = groupBy(jobs, (j) => j.monitor.ping_url);
  for (const group of pings) await ping(group[0], log, "/start", log.runId);
  for (const [i, job] of jobs.entries()) {
    if (abort.signal.aborted) {
      log.warn("run", `job ${job.name} not started: the run was interrupted`);
      continue;
    }
    if (many) log.info("run", `job ${job.name} (${i + 1} of ${jobs.length})`);
    const r = await executeRun({ config: job, clock, env, log, abort: abort.signal, progress });
    results.push(r);
    if (r.error?.code === "interrupted") record(r);
  }
  reporting = true;
  const resultOf = (j: Config) => results.find((r) => r.job === j.name);
  for (const group of pings) {
    const rs = group.map(resultOf).filter((r): r is RunResult => !!r);
    if (!rs.length) continue;
    const status = worstStatus(rs);
    const body = rs.length === 1
      ? `${status.toUpperCase()}: ${summary(rs[0])}\n`
      : `${status.toUpperCase()}: ${jobsSummary(rs)}\n${rs.map((r) => `${r.job}: ${r.status.toUpperCase()}: ${summary(r)}`).join("\n")}\n`;
    await ping(group[0], log, status === "failed" ? "/fail" : "", log.runId, body);
  }
  for (const group of groupBy(jobs, (j) => j.monitor.prometheus_textfile)) {
    writeTextfile(group[0].monitor.prometheus_textfile, log, group.map(resultOf).filter((r): r is RunResult => !!r));
  }
  for (const group of groupBy(jobs, (j) => JSON.stringify(j.mail))) {
    await report(group[0], group.map(resultOf).filter((r): r is RunResult => !!r), log);
  }
  recordAll();
  unrecord();
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

async function cmdVerify(jobs: Config[], clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  let mode = 0;
  try {
    mode = (Deno.statSync(jobs[0].file).mode ?? 0) & 0o777;
  } catch { /* read a moment ago */ }
  const checks: Check[] = [];
  for (const job of jobs) {
    const own = await runVerify({
      config: job,
      clock,
      env,
      log,
      configMode: mode,
      historyFile: historyPath(job),
      programHint: env.get("ARCHIVIST_PROGRAM") ?? (Deno.execPath().endsWith("/archivist") ? Deno.execPath() : undefined),
    });
    // With several jobs, each check names its job ("shop: destination").
    checks.push(...(jobs.length > 1 || job.jobCount > 1 ? own.map((c) => ({ ...c, name: `${job.name}: ${c.name}` })) : own));
  }
  const n = nagios(checks);
  if (p.json) out(JSON.stringify({ status: n.label, code: n.code, summary: n.summary, checks }, null, 2));
  else out(`ARCHIVIST ${n.label} - ${n.summary}\n${formatChecks(checks)}`);
  log.info("verify", `${n.label}: ${n.summary}`);
  return n.code;
}

async function cmdRestore(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  try {
    const path = await withTransport(
      cfg.destination,
      { log, env, step: "restore" },
      (t) => restore(t, cfg, log, p.target ?? "latest", p.to ?? Deno.cwd(), p.force, clock.now()),
    );
    out(path);
    return EXIT.OK;
  } catch (e) {
    const err = asArchivistError("restore", e);
    log.failure("restore", err);
    return EXIT.RESTORE;
  }
}

async function cmdMailTest(cfg: Config, log: Logger): Promise<number> {
  if (!cfg.mail.to.length) {
    log.error("mail", "FAILED: mail.to is empty: nothing to send to");
    return EXIT.MAIL;
  }
  const m = {
    from: cfg.mail.from ?? `archivist@${hostname()}`,
    to: cfg.mail.to,
    cc: cfg.mail.cc,
    subject: `[archivist] TEST ${cfg.name} (${hostname()})`,
    text:
      `This is a test message from archivist (job ${cfg.name} on ${hostname()}, config ${cfg.file}).\nIf you read this, report mails will reach you.\n`,
    attachments: [],
  };
  try {
    const how = await sendMail(cfg.mail, m);
    log.info("mail", `test message to ${m.to.join(", ")} ${how}`);
    return EXIT.OK;
  } catch (e) {
    const err = asArchivistError("mail", e);
    log.failure("mail", err);
    return EXIT.MAIL;
  }
}

function cmdHistory(cfg: Config, p: Parsed, out: (s: string) => void, job?: string): number {
  const read = readHistory(historyPath(cfg));
  const runs = job === undefined ? read.runs : read.runs.filter((r) => r.job === job);
  const bad = read.bad;
  const shown = p.last !== undefined ? runs.slice(-p.last) : runs;
  if (p.json) {
    out(JSON.stringify(shown, null, 2));
    return EXIT.OK;
  }
  if (!shown.length) out(`no runs recorded in ${historyPath(cfg)}`);
  const jobWidth = new Set(shown.map((r) => r.job)).size > 1 ? Math.max(...shown.map((r) => r.job.length)) : 0;
  for (const r of shown) {
    const what = r.error
      ? `${r.error.step}: ${r.error.message}`
      : r.check
      ? `check: ${r.check.summary}`
      : r.archive
      ? `${r.archive.name} ${formatSize(r.archive.size)} → ${r.archive.location}`
      : r.warnings[0] ?? "";
    out(
      `${localIso(new Date(r.startedAt)).slice(0, 19).replace("T", " ")}  ${jobWidth ? `${r.job.padEnd(jobWidth)}  ` : ""}${
        r.status.toUpperCase().padEnd(7)
      } exit ${String(r.exitCode).padEnd(3)} ${formatDuration(r.durationMs).padStart(7)}  ${what}`,
    );
  }
  if (bad) out(`(${bad} unreadable line(s) skipped)`);
  return EXIT.OK;
}

async function cmdList(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const plan = await withTransport(
    cfg.destination,
    { log, env, step: "list" },
    (t) => planRetention(t, cfg, clock.now(), new Set(), log, { dryRun: true }),
  );
  const pad = (n: number) => String(n).padStart(2, "0");
  const rows = plan.decisions.map((d) => ({
    name: d.archive.name,
    date: `${d.archive.year}-${pad(d.archive.month)}-${pad(d.archive.day)}`,
    dated: d.archive.dated,
    storedAt: d.archive.entry?.storedAt,
    size: d.archive.size,
    catalogued: d.archive.catalogued,
    complete: d.archive.complete,
    problem: d.archive.problem,
    clock: d.archive.clock,
    lastCheck: d.archive.entry?.lastCheck ? { at: d.archive.entry.lastCheck.at, ok: d.archive.entry.lastCheck.ok } : undefined,
    keep: d.keep,
    reasons: d.reasons,
    expiresOn: d.expiresOn,
    sidecar: plan.entries.has(`${d.archive.name}.sha256`),
  }));
  const missing = plan.missing.map((e) => ({ name: e.name, storedAt: e.storedAt, size: e.size }));
  if (p.json) {
    out(JSON.stringify([...rows, ...missing.map((m) => ({ ...m, missing: true }))], null, 2));
    return EXIT.OK;
  }
  if (!rows.length) out("no archives on the destination");
  else out("newest (stored last) first:");
  for (const r of rows) {
    const why = r.keep
      ? `kept by ${r.reasons.filter((x) => x !== "max_age").join(", ") || "max_age"}${
        r.expiresOn && r.reasons.length === 1 && r.reasons[0] === "max_age" ? `; expires on ${r.expiresOn}` : ""
      }`
      : `to delete: ${r.reasons.join(", ")}`;
    const flags = [r.problem ? `INCOMPLETE: ${r.problem}` : "", r.dated !== "stored" && r.catalogued ? `dated by ${r.dated}` : ""].filter(
      Boolean,
    );
    out(`${r.name.padEnd(28)} ${r.date}  ${formatSize(r.size).padStart(10)}  ${flags.length ? `(${flags.join("; ")}) ` : ""}${why}`);
  }
  for (const m of missing) out(`${m.name.padEnd(28)} MISSING: stored ${m.storedAt}, no longer on the destination`);
  if (plan.doubt) out(`clock in doubt: ${plan.doubt.message}; retention deletes nothing until it is resolved`);
  return EXIT.OK;
}

async function cmdPrune(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed): Promise<number> {
  try {
    // A prune changes the destination: one at a time, never beside a run.
    const lock = acquireLock(cfg.state_dir, cfg.name, clock.now(), log);
    onCleanup(() => lock.release());
    const r = await withTransport(
      cfg.destination,
      { log, env, step: "prune" },
      (t) => applyRetention(t, cfg, clock.now(), new Set(), log, { dryRun: p.dryRun, force: p.force, step: "prune" }),
    );
    if (p.dryRun) log.info("prune", `dry run: ${r.doomed.length} archive(s) would be deleted, nothing deleted`);
    return r.failed.length ? EXIT.WARNING : EXIT.OK;
  } catch (e) {
    const err = asArchivistError("retention", e);
    log.failure("prune", err);
    return err instanceof ArchivistError ? err.exitCode : EXIT.RETENTION;
  }
}

async function cmdCheck(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const started = clock.now();
  const t0 = performance.now();
  let report: CheckReport;
  try {
    report = await runCheck(cfg, clock, env, log, { sample: p.sample, all: p.all });
  } catch (e) {
    const err = asArchivistError("store", e);
    report = { location: "", status: "crit", code: NAGIOS.UNKNOWN, summary: `cannot check the destination: ${err.message}`, archives: [] };
  }
  const label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][report.code];
  if (p.json) out(JSON.stringify({ ...report, status: label }, null, 2));
  else {
    out(`ARCHIVIST CHECK ${label} - ${report.summary}`);
    for (const a of report.archives) {
      out(
        `${a.status === "ok" ? "✓" : a.status === "warn" ? "!" : "✗"} ${a.name.padEnd(28)} ${
          a.depth === "content" ? "read back" : "listed   "
        }  ${a.message}`,
      );
    }
  }
  const bad = report.archives.filter((a) => a.status !== "ok").map((a) => `${a.name}: ${a.message}`);
  const result: RunResult = {
    runId: log.runId,
    job: cfg.name,
    host: hostname(),
    command: "check",
    configFile: cfg.file,
    startedAt: started.toISOString(),
    endedAt: clock.now().toISOString(),
    durationMs: Math.round(performance.now() - t0),
    runDate: started.toISOString().slice(0, 10),
    status: report.code === 0 ? "ok" : report.code === 1 ? "warning" : "failed",
    exitCode: report.code,
    steps: [],
    warnings: report.code === 0 ? [] : bad.length ? bad : [report.summary],
    check: { status: label, summary: report.summary, read: report.archives.filter((a) => a.depth === "content").map((a) => a.name) },
    logFile: log.filePath,
  };
  const herr = appendHistory(historyPath(cfg), result);
  if (herr) log.warn("history", herr);
  return report.code;
}
