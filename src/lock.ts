/**
 * One run at a time per job: a lock file in state_dir holding the pid, the process start time and the start date.
 * A lock whose process is gone (or whose pid now belongs to another process, told apart by its start time)
 * is stale: it is taken over and the takeover is logged.
 */
import { join } from "node:path";
import { hostname } from "node:os";
import { ArchivistError, errMsg } from "./errors.ts";

interface LockInfo {
  pid: number;
  procStart: string;
  since: string;
  host: string;
}

/** Field 22 of /proc/PID/stat: the process start time in clock ticks since boot ("" when unknown). */
export function processStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
  } catch {
    return undefined;
  }
}

export interface Lock {
  path: string;
  /** Set when a stale lock was taken over. */
  tookOver?: string;
  release(): void;
}

export function lockPath(stateDir: string, job: string): string {
  return join(stateDir, `${job}.lock`);
}

/** Take the job's lock or throw "already running (pid N, since T)". */
export function acquireLock(stateDir: string, job: string, now: Date): Lock {
  const path = lockPath(stateDir, job);
  try {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new ArchivistError(
      "lock",
      `cannot create state_dir ${stateDir}: ${errMsg(e)}`,
      "create it or fix its owner (it must be writable by the run user)",
      { code: "state_dir" },
    );
  }
  const me: LockInfo = { pid: Deno.pid, procStart: processStart(Deno.pid) ?? "", since: now.toISOString(), host: hostname() };
  let tookOver: string | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const f = Deno.openSync(path, { write: true, createNew: true, mode: 0o640 });
      try {
        f.writeSync(new TextEncoder().encode(JSON.stringify(me) + "\n"));
      } finally {
        f.close();
      }
      return {
        path,
        tookOver,
        release() {
          try {
            const cur = JSON.parse(Deno.readTextFileSync(path)) as LockInfo;
            if (cur.pid === me.pid && cur.procStart === me.procStart) Deno.removeSync(path);
          } catch { /* gone already */ }
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new ArchivistError("lock", `cannot create lock file ${path}: ${errMsg(e)}`, "check the owner and mode of state_dir", {
          code: "lock_file",
        });
      }
    }
    let other: LockInfo | undefined;
    try {
      other = JSON.parse(Deno.readTextFileSync(path));
    } catch {
      // Being written right now by another starting run, or garbage: give it a moment, then treat as stale.
      if (attempt === 0) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // sleep 200 ms
        continue;
      }
    }
    const otherStart = other ? processStart(other.pid) : undefined; // undefined: no such process here
    const alive = other && other.host === me.host && otherStart !== undefined && otherStart === other.procStart;
    if (alive && other) {
      throw new ArchivistError(
        "lock",
        `already running (pid ${other.pid}, since ${other.since})`,
        `wait for it to finish; if pid ${other.pid} is not archivist, remove ${path}`,
        {
          code: "running",
        },
      );
    }
    if (other && other.host !== me.host && otherStart !== undefined) {
      throw new ArchivistError(
        "lock",
        `locked by host ${other.host} (pid ${other.pid}, since ${other.since})`,
        `state_dir is shared; if no run is active there, remove ${path}`,
        { code: "running" },
      );
    }
    tookOver = other
      ? `stale lock of pid ${other.pid} (since ${other.since}) taken over: that run died without cleaning up`
      : `unreadable lock file ${path} taken over`;
    // Move the stale lock aside (rename is atomic: only one taker wins), then retry the exclusive create.
    try {
      Deno.renameSync(path, `${path}.stale-${Deno.pid}`);
      Deno.removeSync(`${path}.stale-${Deno.pid}`);
    } catch { /* someone else took it over first */ }
  }
  throw new ArchivistError("lock", `cannot take the lock ${path}: another run keeps taking it`, "", { code: "running" });
}
