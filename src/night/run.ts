/**
 * One nightly run: lock, work dir, the steps in order, then the result that the log, the history, the mail and
 * the exit code are built from. Data flows one way: fetch → unzip → check → compare → pack → store → state →
 * retention. The first failing step stops the run; later steps are recorded as skipped.
 */
import { NO_PROGRESS, type Progress } from "../report/progress.ts";
import { join } from "node:path";
import { hostname } from "node:os";
import { type Clock, localDate, localParts } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { RunContext, RunData, RunOptions, Step, StepOutcome, StepRecord, StepStatus } from "./types.ts";
import type { Env } from "../os/env.ts";
import { ArchivistError, asArchivistError, EXIT, type StepName } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import { acquireLock } from "../records/lock.ts";
import type { Logger } from "../report/log.ts";
import { onCleanup } from "../os/cleanup.ts";
import { fetchStep } from "../source/fetch.ts";
import { unzipStep } from "./unzip.ts";
import { checkStep } from "./check_dump.ts";
import { compareStep } from "./compare.ts";
import { packStep } from "./pack.ts";
import { storeStep } from "./store.ts";
import { stateStep } from "./record.ts";
import { retentionStep } from "./retain.ts";
import { catchUpCopy } from "./catchup.ts";
import { createTransport, locationOf, targetLocations } from "../transports/registry.ts";
import { type Catalogue, entriesAt, readCatalogue, vanished } from "../records/catalogue.ts";
import type { Transport } from "../transports/transport.ts";

export const NIGHTLY_STEPS: Step[] = [fetchStep, unzipStep, checkStep, compareStep, packStep, storeStep, stateStep, retentionStep];

export type RunStatus = "ok" | "warning" | "failed";

/** What a run did: one line of the history, the mail's content, the exit code. */
export interface RunResult {
  runId: string;
  job: string;
  host: string;
  command: string;
  configFile: string;
  /** The destinations this line describes (absent in lines of older versions): verify reads only its own. */
  destinations?: string[];
  startedAt: string;
  endedAt: string;
  durationMs: number;
  /** The run's date (archive.timezone), fixed at its start. */
  runDate: string;
  status: RunStatus;
  exitCode: number;
  steps: StepRecord[];
  error?: { step: StepName; code: string; message: string; hint: string };
  warnings: string[];
  dump?: {
    name: string;
    size: number;
    sha256: string;
    fingerprint?: string;
    flavour?: string;
    ignored?: Record<string, number>;
    /** The downloaded zip's size (verify's work_dir rule: a run holds the zip and the .tgz). */
    zipSize?: number;
  };
  archive?: { name: string; size: number; sha256: string; location: string };
  /** The dump was the last archive's data, unchanged since this time (compare, or a 304). */
  unchangedSince?: string;
  retention?: { deleted: string[]; failed: { name: string; error: string }[] };
  /** `archivist check` lines only: the outcome and the archives read back. */
  check?: { status: string; summary: string; read: string[] };
  /** The report mail: whether it went out, and where or why not. Never affects the exit code. */
  mail?: { sent: boolean; message: string };
  logFile: string;
}

export interface RunDeps {
  config: Config;
  clock: Clock;
  env: Env;
  log: Logger;
  options?: RunOptions;
  steps?: Step[];
  command?: string;
  /** Aborted on SIGINT/SIGTERM. */
  abort?: AbortSignal;
  /** The terminal's progress line (default: none). */
  progress?: Progress;
}

/** The error of a run stopped by a signal, in the step it was in. */
function interruptedError(step: StepName, signal: AbortSignal, data: RunData): ArchivistError {
  return new ArchivistError(
    step,
    `interrupted by ${String(signal.reason ?? "a signal")} during ${step}${
      data.stored ? ` after ${data.archiveName} was stored on ${data.storedLocation} and recorded` : ""
    }`,
    data.stored
      ? "the archive is safe; retention was not applied this night and runs again next time"
      : "the run was stopped (shutdown, Ctrl-C or kill); nothing was stored, and the next run starts afresh",
    {
      code: "interrupted",
      exitCode: EXIT.INTERRUPTED,
    },
  );
}

/** The error of a step whose work dir vanished while it ran, or undefined when the work dir is there. */
function workDirGone(step: StepName, workDir: string): ArchivistError | undefined {
  try {
    Deno.statSync(workDir);
    return undefined;
  } catch {
    return new ArchivistError(
      step,
      `the run's work directory ${workDir} was removed while ${step} used it: nothing was stored`,
      "something cleans work_dir while archivist runs (systemd-tmpfiles, a tmp cleaner cron job, a person): exclude it, or set work_dir to a directory of archivist's own",
      { code: "work_dir_gone" },
    );
  }
}

/** Remove work dirs of this job left by runs that were killed (we hold the lock, so none is in use). */
function removeStaleWorkDirs(workRoot: string, job: string, log: Logger): void {
  try {
    for (const e of Deno.readDirSync(workRoot)) {
      if (e.isDirectory && e.name.startsWith(`${job}-run-`)) {
        Deno.removeSync(join(workRoot, e.name), { recursive: true });
        log.warn("run", `removed ${join(workRoot, e.name)}, left by a run that was killed`);
      }
    }
  } catch { /* work_dir not there yet */ }
}

/** Execute the steps; never throws: every failure ends up in the result. */
export async function executeRun(deps: RunDeps): Promise<RunResult> {
  const { config, clock, log } = deps;
  const startedAt = clock.now();
  const t0 = performance.now();
  const runDate = localParts(startedAt, config.archive.timezone);
  const steps: StepRecord[] = [];
  const warnings: string[] = [];
  const data: RunData = {};
  let error: ArchivistError | undefined;
  let stopStatus: StepStatus | undefined;
  /** Each destination's transport: created on first use, opened once, closed by the run. */
  const transports: (Transport | undefined)[] = [];
  const opened = new Set<number>();
  let releaseLock: (() => void) | undefined;
  let removeWork: (() => void) | undefined;

  const record = (step: StepName, status: StepStatus, message: string, ms: number) => {
    steps.push({ step, status, message, durationMs: Math.round(ms) });
    if (status === "warning") warnings.push(`${step}: ${message}`);
  };

  log.info(
    "run",
    `archivist ${deps.command ?? "run"} of job ${config.name} (config ${config.file}), run date ${
      localDate(startedAt, config.archive.timezone)
    } ${config.archive.timezone}`,
  );

  // lock
  const lt = performance.now();
  const dry = !!deps.options?.dryRun;
  if (dry) {
    record("lock", "skipped", "dry run: no lock taken, nothing in state_dir or on the destination is changed", 0);
    log.info("run", "dry run: store and retention will only say what they would do");
  } else {try {
      const lock = acquireLock(config.state_dir, config.name, startedAt, log);
      releaseLock = onCleanup(() => lock.release());
      if (lock.tookOver) log.warn("lock", lock.tookOver);
      record("lock", "ok", lock.tookOver ?? `lock ${lock.path} taken`, performance.now() - lt);
    } catch (e) {
      error = asArchivistError("lock", e);
      record("lock", "failed", error.message, performance.now() - lt);
    }}

  let workDir = "";
  if (!error) {
    try {
      Deno.mkdirSync(config.work_dir, { recursive: true, mode: 0o750 });
      if (!dry) removeStaleWorkDirs(config.work_dir, config.name, log); // a dry run holds no lock: not its business
      workDir = Deno.makeTempDirSync({ dir: config.work_dir, prefix: `${config.name}-run-` });
      Deno.chmodSync(workDir, 0o700);
      const dir = workDir;
      removeWork = onCleanup(() => {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) log.warn("run", `could not remove ${dir}: ${e}`);
        }
      });
    } catch (e) {
      error = asArchivistError("fetch", e, `work_dir ${config.work_dir} must be a writable directory with room for the dump`);
      error = new ArchivistError("fetch", `cannot use work_dir ${config.work_dir}: ${error.message}`, error.hint, { code: "work_dir" });
      record("fetch", "failed", error.message, 0);
    }
  }

  const ctx: RunContext = {
    config,
    clock,
    env: deps.env,
    log,
    runId: log.runId,
    startedAt,
    runDate,
    workDir,
    options: deps.options ?? {},
    signal: deps.abort ?? new AbortController().signal,
    progress: deps.progress ?? NO_PROGRESS,
    destination: (step) => openAt(0, step),
  };

  /**
   * The catalogue, when it records archives at destination `i` (two or more): its directory existed, so a missing
   * one is not created afresh (create_dirs is for the first night): it is another place (a wrong crypt password).
   */
  const knownAt = (i: number): Catalogue | undefined => {
    try {
      const cat = readCatalogue(config.state_dir, config.name);
      return entriesAt(cat, locationOf(config.targets[i].destination)).length >= 2 ? cat : undefined;
    } catch {
      return undefined;
    }
  };
  /** The transport of destination `i` (created, not opened): its location names it even when it cannot open. */
  const transportAt = (i: number, step: StepName): Transport => {
    if (!transports[i]) {
      const privateDir = join(workDir, i ? `private-${i + 1}` : "private");
      Deno.mkdirSync(privateDir, { recursive: true, mode: 0o700 });
      const dest = config.targets[i].destination;
      const own = knownAt(i) && (dest as { create_dirs?: boolean }).create_dirs ? { ...dest, create_dirs: false } : dest;
      transports[i] = createTransport(own as typeof dest, { log, env: deps.env, privateDir, step });
    }
    return transports[i]!;
  };
  const openAt = async (i: number, step: StepName): Promise<Transport> => {
    const t = transportAt(i, step);
    if (!opened.has(i)) {
      try {
        await t.open();
      } catch (e) {
        await t.close().catch(() => {});
        transports[i] = undefined;
        const cat = (e as { code?: string }).code === "missing_dir" ? knownAt(i) : undefined;
        throw (cat && vanished(cat, t.location, [])) || e;
      }
      opened.add(i);
    }
    return t;
  };
  /** The run as destination `i` sees it: its destination and retention in the config, its transport. */
  const contextFor = (i: number): RunContext => ({
    ...ctx,
    config: { ...config, destination: config.targets[i].destination, retention: config.targets[i].retention },
    destination: (step) => openAt(i, step),
  });
  /**
   * Run one step over `c` and `d`, and record and log what it did (its message prefixed with `label`, the
   * destination, when it runs once per destination). A failure is returned, not thrown, with the time it took.
   */
  const runStep = async (
    step: Step,
    c: RunContext,
    d: RunData,
    label = "",
  ): Promise<{ ok: true; out: StepOutcome } | { ok: false; err: unknown; ms: number }> => {
    const st = performance.now();
    log.debug(step.name, "start");
    try {
      const out = await step.run(c, d);
      const ms = performance.now() - st;
      const message = label ? `${label}: ${out.message}` : out.message;
      record(step.name, out.status, message, ms);
      const line = `${message} [${formatDuration(ms)}]`;
      if (out.status === "warning") log.warn(step.name, line);
      else log.info(step.name, line);
      return { ok: true, out };
    } catch (err) {
      return { ok: false, err, ms: performance.now() - st };
    }
  };
  /** Per destination, each step's outcome; the data each store left (several destinations: store and retention). */
  const perTarget: RunData[] = [];
  const several = config.targets.length > 1;

  /** The catch-up copy for `location`: the archive it missed, from a destination that has it (else tonight's). */
  const catchUp = async (d: RunData, location: string): Promise<void> => {
    const { name, from } = data.catchUp!;
    const src = config.targets.findIndex((_, j) => from.includes(transportAt(j, "store").location));
    const got = src < 0
      ? `no destination of this config holds ${name} any more (${from.join(", ")})`
      : await catchUpCopy(config, await openAt(src, "store"), name, workDir).catch((e) => String(e));
    if (typeof got === "string") {
      log.warn("store", `${location}: ${got}: storing tonight's archive ${data.archiveName} instead of ${name}`);
      return;
    }
    log.info(
      "store",
      `${location}: the catch-up copy is ${name} itself, read from ${transportAt(src, "store").location} (sha256 as catalogued)`,
    );
    const { record, ...archive } = got;
    Object.assign(d, archive, { catalogueAs: record });
  };

  /**
   * store over every destination, in order: each stores tonight's archive (or is skipped when compare sent it only
   * to the ones that missed the last one). The archive counts as stored per store.require; a failed destination is
   * a warning with `any` (while another has it), the run's failure with `all`.
   */
  const storeEach = async (): Promise<void> => {
    const failures: { location: string; error: ArchivistError }[] = [];
    const locations = config.targets.map((_, i) => transportAt(i, "store").location);
    if (data.onlyTo && !locations.some((l) => data.onlyTo!.includes(l))) {
      const why = `the dump is unchanged and no destination of this config misses the last archive (${
        data.onlyTo.join(", ")
      } is no longer one): nothing stored`;
      record("store", "warning", why, 0);
      log.warn("store", why);
      stopStatus = "warning";
      return;
    }
    for (const [i, location] of locations.entries()) {
      if (data.onlyTo && !data.onlyTo.includes(location)) {
        record("store", "skipped", `${location}: it holds the last archive, the same data`, 0);
        continue;
      }
      const d: RunData = { ...data };
      if (data.catchUp) await catchUp(d, location);
      const r = await runStep(storeStep, contextFor(i), d, location);
      if (r.ok) {
        perTarget[i] = d;
        continue;
      }
      const err = asArchivistError("store", r.err);
      failures.push({ location, error: err });
      const tolerated = config.store.require === "any";
      record("store", tolerated ? "warning" : "failed", `${location}: ${err.message}`, r.ms);
      log.failure("store", err, tolerated ? "warn" : "error", `${location}: `);
    }
    const stored = perTarget.filter(Boolean);
    data.storedOn = stored.map((d) => ({ location: d.storedLocation!, name: d.archiveName! }));
    data.storeFailed = failures.map((f) => ({ location: f.location, message: f.error.message }));
    if (stored.length) {
      Object.assign(data, {
        archiveName: stored[0].archiveName,
        archiveSize: stored[0].archiveSize,
        archiveSha256: stored[0].archiveSha256,
      });
      data.storedLocation = stored.map((d) => d.storedLocation).join(", ");
    }
    const first = failures[0]?.error;
    if (first && (config.store.require === "all" || !stored.length)) {
      error = new ArchivistError(
        "store",
        `${failures.length > 1 ? `${failures.length} destinations failed; ` : ""}${failures[0].location}: ${first.message}${
          stored.length ? ` (stored on ${data.storedOn.map((s) => s.location).join(", ")}; store.require: ${config.store.require})` : ""
        }`,
        first.hint,
        { code: first.code },
      );
      return;
    }
    data.stored = stored.length > 0;
  };

  /** retention on every destination that stored tonight's archive, each with its own retention. */
  const retentionEach = async (): Promise<void> => {
    data.deleted = [];
    data.deleteFailed = [];
    for (const [i] of config.targets.entries()) {
      const d = perTarget[i];
      if (!d || (!d.stored && !dry)) continue;
      const location = transportAt(i, "retention").location;
      const r = await runStep(retentionStep, contextFor(i), d, location);
      if (r.ok) {
        data.deleted.push(...(d.deleted ?? []));
        data.deleteFailed.push(...(d.deleteFailed ?? []));
        continue;
      }
      const err = asArchivistError("retention", r.err);
      record("retention", "failed", `${location}: ${err.message}`, r.ms);
      error ??= new ArchivistError("retention", `${location}: ${err.message}`, err.hint, { code: err.code });
    }
  };

  for (const step of deps.steps ?? NIGHTLY_STEPS) {
    if (steps.some((s) => s.step === step.name)) continue; // already recorded (work_dir failure)
    // Once the archive is stored, the state is still recorded (a quick local write): the record must match it.
    const mustRun = step.name === "state" && data.stored && !error;
    if (!error && !stopStatus && ctx.signal.aborted && !mustRun) {
      error = interruptedError(step.name, ctx.signal, data);
      record(step.name, "failed", error.message, 0);
      continue;
    }
    // A dry run previews the whole night: after an unchanged dump it still shows what store and retention see.
    const preview = dry && !error && stopStatus && (step.name === "store" || step.name === "retention");
    if ((error || stopStatus) && !preview) {
      record(step.name, "skipped", error ? `not run: ${error.step} failed` : "not needed", 0);
      continue;
    }
    if ((several || data.onlyTo || preview) && (step.name === "store" || step.name === "retention")) {
      await (step.name === "store" ? storeEach() : retentionEach());
      continue;
    }
    const r = await runStep(step, ctx, data);
    if (r.ok) {
      if (r.out.stop) stopStatus = r.out.status;
      continue;
    }
    // A step that fails because the run was interrupted reports the interruption, not the broken pipe; one whose
    // work dir was removed under it (a tmp cleaner, a hand), that, not a raw "no such file".
    error = ctx.signal.aborted && !mustRun
      ? interruptedError(step.name, ctx.signal, data)
      : workDirGone(step.name, workDir) ?? asArchivistError(step.name, r.err);
    record(step.name, "failed", error.message, r.ms);
  }

  // A worker kept for pack's read-back that pack never used (the run stopped before it): a live worker would keep
  // the process from exiting.
  data.readBackWorker?.close();
  for (const t of transports) {
    if (t) await t.close().catch((e) => log.warn("store", `closing the destination ${t.location}: ${e}`));
  }
  const endedAt = clock.now();
  if (localDate(endedAt, config.archive.timezone) !== localDate(startedAt, config.archive.timezone)) {
    log.info("run", `the run crossed midnight: the archive keeps the run's start date ${localDate(startedAt, config.archive.timezone)}`);
  }

  const status: RunStatus = error ? "failed" : warnings.length ? "warning" : "ok";
  const exitCode = error ? error.exitCode : warnings.length ? EXIT.WARNING : EXIT.OK;
  if (error) {
    log.failure(error.step, error);
    if (error.code === "error" && error.exitCode === EXIT.INTERNAL && error.stack) log.debug(error.step, error.stack);
  }
  const result: RunResult = {
    runId: log.runId,
    job: config.name,
    host: hostname(),
    command: deps.command ?? "run",
    configFile: config.file,
    destinations: targetLocations(config.targets),
    startedAt: startedAt.toISOString(),
    endedAt: endedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    runDate: localDate(startedAt, config.archive.timezone),
    status,
    exitCode,
    steps,
    error: error ? { step: error.step, code: error.code, message: log.redact(error.message), hint: error.hint } : undefined,
    warnings: warnings.map((w) => log.redact(w)),
    dump: data.dumpSha256
      ? {
        name: data.dumpName!,
        size: data.dumpSize!,
        sha256: data.dumpSha256,
        fingerprint: data.dumpFingerprint,
        flavour: data.dumpFlavour,
        ignored: data.dumpIgnored,
        zipSize: data.zipSize,
      }
      : undefined,
    archive: data.stored
      ? { name: data.archiveName!, size: data.archiveSize!, sha256: data.archiveSha256!, location: data.storedLocation! }
      : undefined,
    unchangedSince: data.unchangedSince,
    retention: data.deleted ? { deleted: data.deleted, failed: data.deleteFailed ?? [] } : undefined,
    logFile: log.filePath,
  };
  const summary = dry && !error
    ? `DRY RUN ${status.toUpperCase()}${data.archiveName ? `: would store ${data.archiveName}` : ""} in ${
      formatDuration(result.durationMs)
    } (exit ${exitCode}); nothing was written`
    : error
    ? `FAILED${log.job ? ` (job ${log.job})` : ""} at ${error.step} (exit ${exitCode}) in ${formatDuration(result.durationMs)}`
    : `${status.toUpperCase()}${result.archive ? `: ${result.archive.name} on ${result.archive.location}` : ""} in ${
      formatDuration(result.durationMs)
    } (exit ${exitCode})`;
  log.log(error ? "error" : status === "warning" ? "warn" : "info", "run", summary);

  try {
    removeWork?.();
  } finally {
    releaseLock?.();
  }
  return result;
}
