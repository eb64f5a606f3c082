/**
 * Commands and help text. main.ts calls {@link main} with argv and exits with what it returns.
 */
import denoJson from "../deno.json" with { type: "json" };
import { type Clock, fixedClock, systemClock } from "./clock.ts";
import { type Config, findConfigPath, loadConfig } from "./config/load.ts";
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
import { composeReport, sendMail, shouldSend, summary } from "./mail.ts";
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
    to: values.to as string | undefined,
  };
}

/** Load the config or report why not (stderr and, best effort, the default log file). */
function configOrFail(p: Parsed, env: Env, log: Logger): Config {
  const found = findConfigPath(p.config, env);
  const cfg = loadConfig(found.path, env);
  for (const s of cfg.secretValues) log.addSecret(s);
  const level: Level = p.verbose ? "debug" : cfg.log.level;
  const readOnly = p.command === "history" || p.command === "list" || p.command === "verify" || p.command === "check";
  log.setLevels(level, p.quiet ? "error" : p.verbose ? "debug" : readOnly ? "warn" : "info");
  if (p.command === "history") return cfg;
  const warn = log.openFile(cfg.log.file, [
    join(cfg.state_dir, "archivist.log"),
    join(Deno.env.get("TMPDIR") ?? "/tmp", `archivist-${cfg.name}.log`),
  ]);
  log.info("config", `using ${found.path} (${found.how})`);
  if (warn) log.warn("log", warn);
  return cfg;
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
    const cmd = e instanceof UsageError ? e.command : undefined;
    console.error(`archivist: ${e instanceof Error ? e.message : e}`);
    console.error(
      cmd ? `Usage: ${commandHelp(cmd).split("\n")[2].replace(/^Usage: /, "")}\nTry 'archivist ${cmd} --help'.` : "Try 'archivist --help'.",
    );
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
  let cfg: Config;
  try {
    cfg = configOrFail(p, env, log);
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

  // Commands that write state_dir run as its owner (read-only ones and dry runs may run as anyone).
  const writes = (p.command === "run" || p.command === "prune") && !p.dryRun || p.command === "check";
  const wrongUser = writes ? runUserProblem(cfg.state_dir, p.command, cfg.file) : undefined;
  if (wrongUser) {
    log.failure("lock", wrongUser);
    runCleanups();
    return wrongUser.exitCode;
  }

  try {
    switch (p.command) {
      case "run":
        return await cmdRun(cfg, clock, env, log, p);
      case "history":
        return cmdHistory(cfg, p, out);
      case "list":
        return await cmdList(cfg, clock, env, log, p, out);
      case "prune":
        return await cmdPrune(cfg, clock, env, log, p);
      case "mail-test":
        return await cmdMailTest(cfg, log);
      case "verify":
        return await cmdVerify(cfg, clock, env, log, p, out);
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

async function cmdRun(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed): Promise<number> {
  const progress = progressFor(p.progress, p.quiet);
  log.beforeStderr = () => progress.clear();
  if (p.dryRun) {
    // Nothing recorded, pinged or mailed: a dry run is not a night.
    const abortDry = new AbortController();
    installSignalHandlers((sig) => abortDry.abort(sig));
    const r = await executeRun({
      config: cfg,
      clock,
      env,
      log,
      abort: abortDry.signal,
      options: { dryRun: true },
      command: "run --dry-run",
      progress,
    });
    return r.exitCode;
  }
  // Every run writes exactly one history line, whatever happens after the steps: before the best-effort reporting
  // when interrupted, after it otherwise (so that the mail's outcome is in it), and from the signal handler when a
  // signal arrives while the report hangs.
  const run: { result?: RunResult } = {}; // set when the steps are over
  let recorded = false;
  const record = () => {
    if (recorded || !run.result) return;
    recorded = true;
    const herr = appendHistory(historyPath(cfg), run.result);
    if (herr) log.warn("history", herr);
  };
  const abort = new AbortController();
  installSignalHandlers((sig) => {
    const result = run.result;
    if (result) {
      // The steps are over (the archive is stored or the failure known): record now, then stop at once.
      log.error("run", `interrupted by ${sig} while reporting: the run's outcome is recorded; the report may not have gone out`);
      result.mail ??= { sent: false, message: `interrupted by ${sig} before the report went out` };
      result.exitCode = EXIT.INTERRUPTED;
      record();
      runCleanups();
      Deno.exit(EXIT.INTERRUPTED);
    }
    log.error("run", `interrupted by ${sig}: stopping, removing temp files and the lock; nothing more will be archived`);
    abort.abort(sig);
  });
  const unrecord = onCleanup(record); // also on the grace-period exit
  await ping(cfg, log, "/start", log.runId);
  const r = run.result = await executeRun({ config: cfg, clock, env, log, abort: abort.signal, progress });
  if (r.error?.code === "interrupted") record();
  await ping(cfg, log, r.status === "failed" ? "/fail" : "", log.runId, `${r.status.toUpperCase()}: ${summary(r)}\n`);
  writeTextfile(cfg, log, r);
  await report(cfg, r, log);
  record();
  unrecord();
  return r.exitCode;
}

/** Mail the report when the config asks for it; a failure is logged and recorded, never fatal. */
async function report(cfg: Config, result: RunResult, log: Logger): Promise<void> {
  if (!shouldSend(cfg.mail, result)) return;
  const m = composeReport(cfg.mail, result, log.lines.map((l) => log.redact(l)));
  m.text = log.redact(m.text);
  m.subject = log.redact(m.subject);
  try {
    const how = await sendMail(cfg.mail, m);
    result.mail = { sent: true, message: `report to ${m.to.join(", ")} ${how}` };
    log.info("mail", result.mail.message);
  } catch (e) {
    const err = asArchivistError("mail", e);
    result.mail = { sent: false, message: log.redact(err.message) };
    log.warn("mail", `could not send the report: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ""}`);
  }
}

async function cmdVerify(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  let mode = 0;
  try {
    mode = (Deno.statSync(cfg.file).mode ?? 0) & 0o777;
  } catch { /* read a moment ago */ }
  const checks = await runVerify({
    config: cfg,
    clock,
    env,
    log,
    configMode: mode,
    historyFile: historyPath(cfg),
    programHint: env.get("ARCHIVIST_PROGRAM") ?? (Deno.execPath().endsWith("/archivist") ? Deno.execPath() : undefined),
  });
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

function cmdHistory(cfg: Config, p: Parsed, out: (s: string) => void): number {
  const { runs, bad } = readHistory(historyPath(cfg));
  const shown = p.last !== undefined ? runs.slice(-p.last) : runs;
  if (p.json) {
    out(JSON.stringify(shown, null, 2));
    return EXIT.OK;
  }
  if (!shown.length) out(`no runs recorded in ${historyPath(cfg)}`);
  for (const r of shown) {
    const what = r.error
      ? `${r.error.step}: ${r.error.message}`
      : r.check
      ? `check: ${r.check.summary}`
      : r.archive
      ? `${r.archive.name} ${formatSize(r.archive.size)} → ${r.archive.location}`
      : r.warnings[0] ?? "";
    out(
      `${localIso(new Date(r.startedAt)).slice(0, 19).replace("T", " ")}  ${r.status.toUpperCase().padEnd(7)} exit ${
        String(r.exitCode).padEnd(3)
      } ${formatDuration(r.durationMs).padStart(7)}  ${what}`,
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
