/**
 * The night's logbook: every step's line (status, message, time) in order, the warnings, and the error that ended the
 * night. `step()` runs one stage, logs and records what it said, and on a failure records it and throws {@link Halt},
 * which the runner catches: the first failing step stops the night.
 */
import { ArchivistError, asArchivistError, EXIT, type StepName } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import type { Logger } from "../report/log.ts";
import type { Done, Night, StepRecord, StepStatus } from "./types.ts";

/** Thrown by {@link Book.step} once a failure is recorded: unwinds the night to the runner. */
export class Halt extends Error {}

export type Attempt<T> = { ok: true; value: T } | { ok: false; err: unknown; ms: number };

export class Book {
  readonly steps: StepRecord[] = [];
  readonly warnings: string[] = [];
  error?: ArchivistError;
  /** Once the archive is stored: what an interruption must say is safe. */
  stored?: { name: string; location: string };

  /** The run's work dir, once made: a step that fails because it vanished says so. */
  workDir = "";

  constructor(private log: Logger) {}

  record(step: StepName, status: StepStatus, message: string, ms: number): void {
    this.steps.push({ step, status, message, durationMs: Math.round(ms) });
    if (status === "warning") this.warnings.push(`${step}: ${message}`);
  }

  has(step: StepName): boolean {
    return this.steps.some((s) => s.step === step);
  }

  /** End the night with `error` (its lines already recorded), and unwind. */
  halt(error: ArchivistError): never {
    this.error ??= error;
    throw new Halt();
  }

  /** Record a failure that ends the night, and unwind. */
  fail(step: StepName, error: ArchivistError, ms = 0, message = error.message): never {
    this.error ??= error;
    this.record(step, "failed", message, ms);
    throw new Halt();
  }

  /**
   * Run a stage; record and log its line (prefixed with `label`, the destination, when it runs once per destination).
   * A failure is returned, not thrown, with the time it took.
   */
  async attempt<T>(step: StepName, run: () => Promise<Done<T>>, label = ""): Promise<Attempt<T>> {
    const st = performance.now();
    this.log.debug(step, "start");
    try {
      const out = await run();
      const ms = performance.now() - st;
      const message = label ? `${label}: ${out.message}` : out.message;
      this.record(step, out.status, message, ms);
      const line = `${message} [${formatDuration(ms)}]`;
      if (out.status === "warning") this.log.warn(step, line);
      else this.log.info(step, line);
      return { ok: true, value: out.value };
    } catch (err) {
      return { ok: false, err, ms: performance.now() - st };
    }
  }

  /**
   * Run one stage of the night and return its value; on a failure (or an interruption before it starts) record it
   * and throw {@link Halt}. `evenIfAborted`: the state is still recorded once the archive is stored (a quick local
   * write: the record must match what is on the destination).
   */
  async step<T>(night: Night, step: StepName, run: () => Promise<Done<T>>, evenIfAborted = false): Promise<T> {
    this.guard(night, step, evenIfAborted);
    const r = await this.attempt(step, run);
    if (r.ok) return r.value;
    // A step that fails because the run was interrupted reports the interruption, not the broken pipe; one whose
    // work dir was removed under it (a tmp cleaner, a hand), that, not a raw "no such file".
    const error = night.signal.aborted && !evenIfAborted
      ? this.interrupted(step, night.signal)
      : workDirGone(step, this.workDir) ?? asArchivistError(step, r.err);
    return this.fail(step, error, r.ms);
  }

  /** Before a step: a night interrupted by a signal stops here (unless the step must run even so). */
  guard(night: Night, step: StepName, evenIfAborted = false): void {
    if (night.signal.aborted && !evenIfAborted) this.fail(step, this.interrupted(step, night.signal));
  }

  /** The steps of `all` not recorded: skipped, with why. */
  skipRest(all: readonly StepName[]): void {
    for (const step of all) {
      if (this.has(step)) continue;
      this.record(step, "skipped", this.error ? `not run: ${this.error.step} failed` : "not needed", 0);
    }
  }

  /** The error of a night stopped by a signal, in the step it was in. */
  interrupted(step: StepName, signal: AbortSignal): ArchivistError {
    const s = this.stored;
    return new ArchivistError(
      step,
      `interrupted by ${String(signal.reason ?? "a signal")} during ${step}${
        s ? ` after ${s.name} was stored on ${s.location} and recorded` : ""
      }`,
      s
        ? "the archive is safe; retention was not applied this night and runs again next time"
        : "the run was stopped (shutdown, Ctrl-C or kill); nothing was stored, and the next run starts afresh",
      { code: "interrupted", exitCode: EXIT.INTERRUPTED },
    );
  }
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
