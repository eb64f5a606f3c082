/**
 * What a night holds before its first stage: the job's lock (not in a dry run) and a private work dir under
 * work_dir, each released by a cleanup that also runs on SIGINT/SIGTERM. Failures are recorded in the book.
 */
import { join } from "node:path";
import { ArchivistError, asArchivistError } from "../errors.ts";
import { acquireLock } from "../records/lock.ts";
import { onCleanup } from "../os/cleanup.ts";
import type { Config } from "../config/load.ts";
import type { Logger } from "../report/log.ts";
import { type Book, Halt } from "./book.ts";

/** The lock and the work dir, and how to give them back. */
export interface Held {
  workDir: string;
  release(): void;
}

/** Take the lock and make the work dir; throws Halt (recorded in `book`) when either fails. */
export function holdNight(config: Config, startedAt: Date, dry: boolean, log: Logger, book: Book): Held {
  let releaseLock: (() => void) | undefined;
  let removeWork: (() => void) | undefined;
  const release = () => {
    try {
      removeWork?.();
    } finally {
      releaseLock?.();
    }
  };
  if (dry) {
    book.record("lock", "skipped", "dry run: no lock taken, nothing in state_dir or on the destination is changed", 0);
    log.info("run", "dry run: store and retention will only say what they would do");
  } else {
    const lt = performance.now();
    try {
      const lock = acquireLock(config.state_dir, config.name, startedAt, log);
      releaseLock = onCleanup(() => lock.release());
      if (lock.tookOver) log.warn("lock", lock.tookOver);
      book.record("lock", "ok", lock.tookOver ?? `lock ${lock.path} taken`, performance.now() - lt);
    } catch (e) {
      book.fail("lock", asArchivistError("lock", e), performance.now() - lt);
    }
  }
  try {
    const workDir = makeWorkDir(config, dry, log);
    removeWork = onCleanup(() => {
      try {
        Deno.removeSync(workDir, { recursive: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) log.warn("run", `could not remove ${workDir}: ${e}`);
      }
    });
    return { workDir, release };
  } catch (e) {
    release();
    if (e instanceof Halt) throw e;
    const cause = asArchivistError("fetch", e, `work_dir ${config.work_dir} must be a writable directory with room for the dump`);
    return book.fail(
      "fetch",
      new ArchivistError("fetch", `cannot use work_dir ${config.work_dir}: ${cause.message}`, cause.hint, { code: "work_dir" }),
    );
  }
}

function makeWorkDir(config: Config, dry: boolean, log: Logger): string {
  Deno.mkdirSync(config.work_dir, { recursive: true, mode: 0o750 });
  if (!dry) removeStaleWorkDirs(config.work_dir, config.name, log); // a dry run holds no lock: not its business
  const workDir = Deno.makeTempDirSync({ dir: config.work_dir, prefix: `${config.name}-run-` });
  Deno.chmodSync(workDir, 0o700);
  return workDir;
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
