/**
 * One nightly run, in plain view: the lock and the work dir, the stages in order, then the result that the log, the
 * history, the mail and the exit code are built from. Data flows one way: fetch → unzip → check → compare → pack →
 * store → state → retention, each stage a typed function of what came before (./types.ts). The first failing
 * stage stops the night (the book records it and throws Halt); later steps are recorded as skipped.
 */
import { NO_PROGRESS, type Progress } from "../report/progress.ts";
import { type Clock, localDate, localParts } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import { asArchivistError, EXIT, type StepName } from "../errors.ts";
import type { Logger } from "../report/log.ts";
import { type LastState, readState, stateAt } from "../records/state.ts";
import { targetLocations } from "../transports/registry.ts";
import { fetchZip } from "./fetch.ts";
import { Book, Halt } from "./book.ts";
import { type Held, holdNight } from "./setup.ts";
import { type Targets, targetsOf } from "./targets.ts";
import { openDump } from "./unzip.ts";
import { checkDump } from "./check_dump.ts";
import { judge } from "./compare.ts";
import { pack } from "./pack.ts";
import { retainAll, storeAll } from "./destinations.ts";
import { realWrites } from "./writes.ts";
import { dryWrites } from "./dry.ts";
import { type Outcome, outcomeOf, runResult, storedOf } from "./result.ts";
import { hookEnv } from "./hooks.ts";
import type { RunResult } from "../records/history.ts";
import type { Night, RunOptions, Target } from "./types.ts";

export type { RunResult, RunStatus } from "../records/history.ts";

/** The steps of a night, in order, as the history records them. */
export const NIGHT_STEPS: readonly StepName[] = ["fetch", "unzip", "check", "compare", "pack", "store", "state", "retention"];

export interface RunDeps {
  config: Config;
  clock: Clock;
  env: Env;
  log: Logger;
  options?: RunOptions;
  command?: string;
  /** Aborted on SIGINT/SIGTERM. */
  abort?: AbortSignal;
  /** The terminal's progress line (default: none). */
  progress?: Progress;
  /** The stages (tests replace them; default: the night below). */
  stages?: (n: Night, book: Book, targets: Target[], out: Outcome) => Promise<void>;
}

/** The stages in order. Each `book.step` records its line; a failure throws Halt to executeRun. */
async function theNight(n: Night, book: Book, targets: Target[], out: Outcome): Promise<void> {
  const before = n.config.hooks.before;
  if (before) await book.step(n, "hook", () => n.writes.hook(n, "before", before, hookEnv(n)));
  const got = await book.step(n, "fetch", () => fetchZip(n));
  if (got.kind === "not-modified") {
    out.unchangedSince = got.unchangedSince;
    return await preview(n, book, targets, out);
  }
  const dump = out.dump = await book.step(n, "unzip", () => openDump(n, got));
  await book.step(n, "check", () => checkDump(n, dump));
  const verdict = await book.step(n, "compare", () => judge(n, dump));
  out.unchangedSince = verdict.unchangedSince;
  if (verdict.kind === "unchanged" && verdict.then === "skip") return await preview(n, book, targets, out);
  const archive = out.archive = await book.step(n, "pack", () => pack(n, dump));
  book.guard(n, "store");
  const catchUp = verdict.kind === "unchanged" && verdict.then === "catch-up";
  const spread = out.spread = await storeAll(n, book, targets, archive, verdict);
  if (!spread) return; // nothing to store after all (a warning)
  const stored = spread.done.flatMap((d) => d.stored ? [d.stored] : []);
  if (!stored[0].planned) book.stored = { name: stored[0].name, location: stored.map((s) => s.location).join(", ") };
  const o = { dump, verdict, archive: stored[0], stored, missingOn: spread.missingOn };
  await book.step(n, "state", () => n.writes.state(n, o), !!book.stored);
  book.guard(n, "retention");
  out.pruned = await retainAll(n, book, spread, targets.length === 1 && !catchUp);
}

/** An unchanged night stops after its line; a dry run still shows what store and retention would see. */
async function preview(n: Night, book: Book, targets: Target[], out: Outcome): Promise<void> {
  if (!n.dryRun) return;
  const spread = out.spread = await storeAll(n, book, targets, undefined);
  if (spread) out.pruned = await retainAll(n, book, spread, false);
}

/** Run one night; never throws: every failure ends up in the result. */
export async function executeRun(deps: RunDeps): Promise<RunResult> {
  const { config, clock, log } = deps;
  const startedAt = clock.now(), t0 = performance.now(), dry = !!deps.options?.dryRun, zone = config.archive.timezone;
  log.info(
    "run",
    `archivist ${deps.command ?? "run"} of job ${config.name} (config ${config.file}), run date ${localDate(startedAt, zone)} ${zone}`,
  );
  const book = new Book(log);
  const out: Outcome = {};
  let held: Held | undefined, targets: Targets | undefined;
  try {
    held = holdNight(config, startedAt, dry, log, book);
    book.workDir = held.workDir;
    targets = targetsOf(config, held.workDir, log, deps.env);
    const night: Night = {
      config,
      clock,
      env: deps.env,
      log,
      runId: log.runId,
      startedAt,
      runDate: localParts(startedAt, zone),
      workDir: held.workDir,
      dryRun: dry,
      writes: dry ? dryWrites : realWrites,
      signal: deps.abort ?? new AbortController().signal,
      progress: deps.progress ?? NO_PROGRESS,
      last: lastState(config),
    };
    await (deps.stages ?? theNight)(night, book, targets.list, out).catch((e) => {
      // A Halt is a failure already recorded; anything else is a bug, still reported as this night's failure.
      if (!(e instanceof Halt)) book.error ??= asArchivistError("internal", e);
    });
    await afterHook(night, book, out);
  } catch (e) {
    if (!(e instanceof Halt)) book.error ??= asArchivistError("internal", e);
  } finally {
    out.dump?.readBackWorker?.close(); // kept for pack's read-back, unused when the night stopped before it
    await targets?.closeAll();
  }
  book.skipRest(NIGHT_STEPS);
  const endedAt = clock.now();
  if (localDate(endedAt, zone) !== localDate(startedAt, zone)) {
    log.info("run", `the run crossed midnight: the archive keeps the run's start date ${localDate(startedAt, zone)}`);
  }
  if (book.error) {
    log.failure(book.error.step, book.error);
    if (book.error.code === "error" && book.error.exitCode === EXIT.INTERNAL && book.error.stack) {
      log.debug(book.error.step, book.error.stack);
    }
  }
  const times = { startedAt, endedAt, durationMs: Math.round(performance.now() - t0) };
  const result = runResult({ config, log, command: deps.command, dry }, book, out, times);
  held?.release();
  return result;
}

/** hooks.after after a night that did not fail, hooks.on_failure after one that did; a failing hook is a warning. */
async function afterHook(n: Night, book: Book, out: Outcome): Promise<void> {
  const which = book.error ? "on_failure" : "after";
  const argv = n.config.hooks[which];
  if (!argv) return;
  const archive = storedOf(out)[0];
  const env = hookEnv(n, { ...outcomeOf(book), archive });
  const r = await book.attempt("hook", () => n.writes.hook(n, which, argv, env));
  if (r.ok) return;
  const err = asArchivistError("hook", r.err);
  book.record("hook", "warning", `${err.message} (hint: ${err.hint})`, r.ms);
  n.log.warn("hook", `${err.message} (hint: ${err.hint})`);
}

/** The state file, read when a stage first asks (a corrupt file is that stage's failure, each time it asks). */
function lastState(config: Config): LastState {
  let read: { state: ReturnType<typeof readState> } | undefined;
  const raw = () => (read ??= { state: readState(config.state_dir, config.name) }).state;
  return { raw, here: () => stateAt(raw(), targetLocations(config.targets)) };
}
