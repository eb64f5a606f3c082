/**
 * Cleanup on every exit, including SIGINT/SIGTERM: temp files, child processes, the lock.
 * Handlers are synchronous so that they can run from a signal handler right before exit.
 * Child processes are registered apart ("child"), so that an interruption can stop them at once while the run
 * still records, reports and cleans up through its normal path.
 */
const handlers = new Map<number, { fn: () => void; child: boolean; info?: ChildInfo }>();
let next = 1;

/** A child process as the lock records it: the next run ends it if this process dies without doing so. */
export interface ChildInfo {
  pid: number;
  what: string;
  /** Its exact command line (src/os/procs.ts commandLine): with the pid, its identity for the next run. */
  args: string;
}

const dirs = new Set<string>();
let observer: (() => void) | undefined;

/** Called whenever the set of children or private directories changes (the lock rewrites its record). */
export function observeResources(fn: (() => void) | undefined): void {
  observer = fn;
}

/** The running children and private directories of this process. */
export function resources(): { children: ChildInfo[]; dirs: string[] } {
  return { children: [...handlers.values()].filter((h) => h.info).map((h) => h.info!), dirs: [...dirs] };
}

function changed(): void {
  try {
    observer?.();
  } catch { /* the record is best effort */ }
}

/** Record a private temporary directory (removed at exit; by the next run if this process is killed). */
export function trackDir(path: string): () => void {
  dirs.add(path);
  changed();
  return () => {
    if (dirs.delete(path)) changed();
  };
}

/** Register a cleanup; returns a function that runs it now and unregisters it. */
export function onCleanup(fn: () => void): () => void {
  const id = next++;
  handlers.set(id, { fn, child: false });
  return () => {
    if (handlers.delete(id)) fn();
  };
}

/** Register how to stop a running child process; returns a function that unregisters it without running it. */
export function whileRunning(fn: () => void, info?: ChildInfo): () => void {
  const id = next++;
  handlers.set(id, { fn, child: true, info });
  if (info) changed();
  return () => {
    if (handlers.delete(id) && info) changed();
  };
}

/** Run the registered cleanups (only the child-process ones with `childrenOnly`), newest first. */
export function runCleanups(childrenOnly = false): void {
  for (const id of [...handlers.keys()].reverse()) {
    const h = handlers.get(id)!;
    if (childrenOnly && !h.child) continue;
    handlers.delete(id);
    try {
      h.fn();
    } catch { /* best effort */ }
  }
}

let installed = false;
/**
 * On SIGINT/SIGTERM: call `onSignal` (which aborts the run), stop child processes at once, and give the run
 * `graceMs` to record and report the interruption through its normal path; past that, clean up and exit 130.
 */
export function installSignalHandlers(onSignal: (sig: Deno.Signal) => void, graceMs = 20_000): void {
  if (installed) return;
  installed = true;
  let seen = false;
  for (const sig of ["SIGINT", "SIGTERM"] as Deno.Signal[]) {
    Deno.addSignalListener(sig, () => {
      if (seen) {
        // A second signal: stop now.
        runCleanups();
        Deno.exit(130);
      }
      seen = true;
      try {
        onSignal(sig);
      } finally {
        runCleanups(true);
        setTimeout(() => {
          runCleanups();
          Deno.exit(130);
        }, graceMs);
      }
    });
  }
}
