/**
 * One run at a time per job: an exclusive kernel lock (flock) on `<state_dir>/<job>.lock`, held for the life of the
 * process. The kernel releases it when the process dies, however it dies, so there is no stale lock to take over
 * and no race between two runs started together: exactly one gets it.
 *
 * The file is never deleted (unlinking a locked file lets a third run lock a new file of the same name). While held
 * it holds a record: pid, start time, and the children and private directories of the run. A run that finds a record
 * left there knows its predecessor died without cleaning up (SIGKILL, power loss): it ends the children still alive
 * (an `ssh -M` master would otherwise live on for as long as the server allows) and removes the directories.
 */
import { join } from "node:path";
import { hostname } from "node:os";
import { ArchivistError, errMsg, EXIT } from "../errors.ts";
import { type ChildInfo, observeResources, resources } from "../os/cleanup.ts";
import { processesMentioning, sweepDeadTempDirs } from "../os/fs.ts";
import { processes, sameCommand } from "../os/procs.ts";
import type { Logger } from "../report/log.ts";

interface LockRecord {
  pid: number;
  since: string;
  host: string;
  children: ChildInfo[];
  dirs: string[];
}

export interface Lock {
  path: string;
  /** Set when a predecessor died holding it: what was cleaned up after it. */
  tookOver?: string;
  release(): void;
}

export function lockPath(stateDir: string, job: string): string {
  return join(stateDir, `${job}.lock`);
}

function stateDirError(what: string, e: unknown, stateDir: string): ArchivistError {
  const full = /no space|ENOSPC|os error 28|quota/i.test(errMsg(e));
  return new ArchivistError(
    "lock",
    `${what}: ${full ? `state_dir ${stateDir} is full` : errMsg(e)}`,
    full
      ? `free space in ${stateDir} (it holds the lock, state, catalogue and history)`
      : `check the owner and mode of state_dir ${stateDir}`,
    { code: "state_dir", exitCode: EXIT.STATE },
  );
}

function readAll(f: Deno.FsFile): string {
  f.seekSync(0, Deno.SeekMode.Start);
  let text = "";
  const td = new TextDecoder();
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = f.readSync(buf);
    if (n === null || n === 0) break;
    text += td.decode(buf.subarray(0, n), { stream: true });
  }
  return text + td.decode();
}

/** End what a dead predecessor left running and remove its directories; returns a one-line account. */
function cleanUpAfter(prev: LockRecord, log?: Logger): string {
  const done: string[] = [];
  const procs = processes();
  if (!procs && (prev.children?.length || prev.dirs?.length)) {
    log?.warn("lock", "cannot list processes (is procps installed?): the children of the dead run are not ended");
  }
  for (const c of prev.children ?? []) {
    // Same pid and the same command line: the very child (its command line holds a private path of that run).
    const now = procs?.get(c.pid);
    if (!now || !sameCommand(now.args, c.args)) continue;
    try {
      Deno.kill(c.pid, "SIGTERM");
      done.push(`ended its ${c.what} (pid ${c.pid})`);
    } catch (e) {
      log?.warn("lock", `could not end pid ${c.pid} (${c.what}) left by pid ${prev.pid}: ${errMsg(e)}`);
    }
  }
  for (const d of prev.dirs ?? []) {
    // Only our own private directories, whatever a damaged record says.
    if (!/\/(archivist|arch-ssh)-\d+-[^/]+$/.test(d)) continue;
    // A child started a moment before the kill may not be in the record yet: whatever still uses the dir (an
    // ssh master's ControlPath is in it) is ended too.
    for (const pid of processesMentioning(d, procs)) {
      if (prev.children?.some((c) => c.pid === pid)) continue;
      try {
        Deno.kill(pid, "SIGTERM");
        done.push(`ended pid ${pid} (still using ${d})`);
      } catch { /* gone */ }
    }
    try {
      Deno.removeSync(d, { recursive: true });
      done.push(`removed ${d}`);
    } catch { /* gone */ }
  }
  return `the previous run (pid ${prev.pid}, since ${prev.since}) died without releasing the lock${
    done.length ? `: ${done.join(", ")}` : ""
  }`;
}

/** Take the job's lock or throw "already running (pid N, since T)" (exit 11); a state_dir problem is exit 32. */
export function acquireLock(stateDir: string, job: string, now: Date, log?: Logger): Lock {
  const path = lockPath(stateDir, job);
  const f = lockFile(stateDir, path);
  let prevText = "";
  try {
    prevText = readAll(f).trim();
  } catch { /* unreadable: we hold the lock all the same */ }
  // Our record first (a run refused meanwhile names us), then the clean-up after a dead predecessor.
  const write = recordWriter(f, { pid: Deno.pid, since: now.toISOString(), host: hostname() });
  try {
    write();
  } catch (e) {
    try {
      f.truncateSync(0);
    } catch { /* full */ }
    f.close();
    throw stateDirError(`cannot write the lock file ${path}`, e, stateDir);
  }
  const tookOver = takeOver(prevText, path, log);
  observeResources(write);
  let released = false;
  return {
    path,
    tookOver,
    release() {
      if (released) return;
      released = true;
      observeResources(undefined);
      try {
        f.truncateSync(0); // an empty lock file: the run ended cleanly
      } catch { /* best effort */ }
      try {
        f.close(); // closing releases the kernel lock
      } catch { /* closed */ }
    },
  };
}

/** The lock file, opened and locked (flock, exclusive, not waiting); throws "already running" when another holds it. */
function lockFile(stateDir: string, path: string): Deno.FsFile {
  try {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw stateDirError(`cannot create state_dir ${stateDir}`, e, stateDir);
  }
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o640 });
  } catch (e) {
    throw stateDirError(`cannot open the lock file ${path}`, e, stateDir);
  }
  let got = false;
  try {
    got = f.tryLockSync(true);
  } catch (e) {
    f.close();
    throw stateDirError(`cannot lock ${path}`, e, stateDir);
  }
  if (got) return f;
  let other: LockRecord | undefined;
  for (let attempt = 0; attempt < 2 && !other; attempt++) {
    try {
      other = JSON.parse(readAll(f));
    } catch {
      // The holder has the lock but has not written its record yet: give it a moment.
      if (attempt === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  f.close();
  const who = other ? `pid ${other.pid}${other.host !== hostname() ? ` on ${other.host}` : ""}, since ${other.since}` : "another archivist";
  throw new ArchivistError("lock", `already running (${who})`, "wait for it to finish; `archivist history` shows when runs end", {
    code: "running",
  });
}

/** Writes our record (with the children and private dirs of the moment) over the lock file's content. */
function recordWriter(f: Deno.FsFile, me: { pid: number; since: string; host: string }): () => void {
  return () => {
    const r = resources();
    const rec: LockRecord = { ...me, children: r.children, dirs: r.dirs };
    const bytes = new TextEncoder().encode(JSON.stringify(rec) + "\n");
    f.truncateSync(0);
    f.seekSync(0, Deno.SeekMode.Start);
    let w = 0;
    while (w < bytes.length) w += f.writeSync(bytes.subarray(w));
  };
}

/** After a predecessor that died holding the lock: its children and dirs cleaned up, and what was done, in words. */
function takeOver(prevText: string, path: string, log?: Logger): string | undefined {
  let tookOver: string | undefined;
  if (prevText) {
    try {
      tookOver = cleanUpAfter(JSON.parse(prevText), log);
    } catch {
      tookOver = `the lock file ${path} held an unreadable record (a run died while writing it)`;
    }
  }
  const swept = sweepDeadTempDirs();
  if (swept.length) {
    const s = `removed ${swept.length} private dir(s) of archivist processes that were killed (${swept.join(", ")})`;
    tookOver = tookOver ? `${tookOver}; ${s}` : s;
  }
  return tookOver;
}
