/**
 * Commands and help text. main.ts calls {@link main} with argv and exits with what it returns.
 */
import denoJson from "../../deno.json" with { type: "json" };
import { type Clock, fixedClock, systemClock } from "../os/clock.ts";
import { atTarget, type Config, findConfigPath, loadJobs } from "../config/load.ts";
import { type Env, processEnv } from "../os/env.ts";
import { type ArchivistError, asArchivistError, EXIT } from "../errors.ts";
import { COMMAND_MODULES, commandHelp, COMMANDS, commandSpec, generalHelp, parseCommandLine, UsageError, usageExit } from "./registry.ts";
import type { Command, CommandContext, Parsed } from "../commands/context.ts";
import { type Level, Logger, newRunId } from "../report/log.ts";
import { onCleanup, runCleanups } from "../os/cleanup.ts";
import { join } from "node:path";
import { runUserProblem } from "../os/runuser.ts";
import { runtimeForm } from "../os/runtime.ts";

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
    runs: !!values.runs,
    progress: values.progress ? true : values["no-progress"] ? false : undefined,
    force: !!values.force,
    fallback: !!values.fallback,
    last: num("last", 0),
    sample: num("sample", 1) ?? 1,
    all: !!values.all,
    target: args[0],
    targets: args,
    job: values.job as string | undefined,
    destination: num("destination", 1),
    to: values.to as string | undefined,
    user: values.user as string | undefined,
    jobs: !!values.jobs,
    identity: values.identity as string | undefined,
  };
}

/** Load the config's jobs or report why not (stderr and, best effort, the default log file). */
function configOrFail(p: Parsed, env: Env, log: Logger): Config[] {
  const found = findConfigPath(p.config, env);
  const jobs = loadJobs(found.path, env);
  for (const s of jobs.flatMap((j) => j.secretValues)) log.addSecret(s);
  const cfg = jobs[0]; // log, history and verify are per run: every job has the same
  const level: Level = p.verbose ? "debug" : cfg.log.level;
  const readOnly = !!commandSpec(p.command)?.readOnly;
  log.setLevels(level, p.quiet ? "error" : p.verbose ? "debug" : readOnly ? "warn" : "info");
  if (commandSpec(p.command)?.printsOnly) return jobs;
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
  const takes = commandSpec(p.command)?.jobs;
  const names = takes === "args" ? [...new Set(p.targets)] : p.job !== undefined ? [p.job] : [];
  const all = jobs.map((j) => j.name).join(", ");
  const unknown = names.filter((n) => !jobs.some((j) => j.name === n));
  if (unknown.length) {
    throw new UsageError(`no job ${unknown.map((n) => JSON.stringify(n)).join(", ")} in ${jobs[0].file} (its jobs: ${all})`, p.command);
  }
  if (names.length) return names.map((n) => jobs.find((j) => j.name === n)!);
  if (jobs.length === 1 || takes) return jobs;
  throw new UsageError(`${jobs[0].file} has ${jobs.length} jobs (${all}): name one with --job NAME`, p.command);
}

/** Report a usage error the way the parser does; exit 2 (3, UNKNOWN, for verify and check). */
function usageFailure(e: UsageError): number {
  console.error(`archivist: ${e.message}`);
  if (e.command) {
    console.error(`Usage: ${commandHelp(e.command).split("\n")[2].replace(/^Usage: /, "")}\nTry 'archivist ${e.command} --help'.`);
  }
  return usageExit(e.command);
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
  const command = COMMAND_MODULES.find((m) => m.spec.name === p.command);
  if (!command) {
    console.error(HELP);
    return EXIT.USAGE;
  }
  if (command.alone) return command.alone(p, env, out, COMMANDS);
  const log = new Logger({ runId: newRunId(clock.now()), stderrLevel: p.quiet ? "error" : p.verbose ? "debug" : "info" });
  onCleanup(() => log.close());
  try {
    const c = contextFor(command, p, env, log);
    if (typeof c === "number") return c;
    return await command.run!({ ...c, p, clock, env, log, out });
  } catch (e) {
    const err = asArchivistError(e instanceof ConfigFailed ? "config" : "internal", e instanceof ConfigFailed ? e.cause : e);
    if (e instanceof ConfigFailed) return command.configFailed?.(err, p, out) ?? configFailure(command, log, err);
    log.failure(err.step, err);
    if (err.exitCode === EXIT.INTERNAL && e instanceof Error && e.stack) log.error("internal", e.stack);
    return command.crashed?.(err, out) ?? err.exitCode;
  } finally {
    runCleanups();
  }
}

/** The config could not be loaded (wrapping its error, for the command's own way of saying it). */
class ConfigFailed extends Error {}

/** The default log gets the config failure, except from the commands that only print. */
function configFailure(command: Command, log: Logger, err: ArchivistError): number {
  if (!log.filePath && !command.spec.printsOnly) log.openFile("/var/log/archivist/archivist.log", []);
  log.failure("config", err);
  return err.exitCode;
}

/** The jobs, the selected ones and the one with --destination; or the exit code of a usage error or the wrong user. */
function contextFor(command: Command, p: Parsed, env: Env, log: Logger): Pick<CommandContext, "jobs" | "selected" | "cfg"> | number {
  let jobs: Config[];
  try {
    jobs = configOrFail(p, env, log);
  } catch (e) {
    throw new ConfigFailed("config", { cause: e });
  }
  let selected: Config[];
  try {
    selected = selectJobs(jobs, p);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(e);
    throw e;
  }
  let cfg = selected[0];
  if (p.destination !== undefined) {
    const t = cfg.targets[p.destination - 1];
    const many = `--destination ${p.destination}: job ${cfg.name} has ${cfg.targets.length} destination(s)`;
    if (!t) return usageFailure(new UsageError(many, p.command));
    cfg = atTarget(cfg, t);
  }
  // Commands that write state_dir run as its owner (read-only ones and dry runs may run as anyone).
  for (const job of command.spec.writesState?.(p) ? selected : []) {
    const wrongUser = runUserProblem(job.state_dir, p.command, job.file);
    if (wrongUser) {
      log.failure("lock", wrongUser);
      return wrongUser.exitCode;
    }
  }
  return { jobs, selected, cfg };
}
