/**
 * Cleanup on every exit, including SIGINT/SIGTERM: temp files, child processes, the lock.
 * Handlers are synchronous so that they can run from a signal handler right before exit.
 */
const handlers = new Map<number, () => void>();
let next = 1;

/** Register a cleanup; returns a function that runs it now and unregisters it. */
export function onCleanup(fn: () => void): () => void {
  const id = next++;
  handlers.set(id, fn);
  return () => {
    if (handlers.delete(id)) fn();
  };
}

/** Register a cleanup for an interruption only; returns a function that unregisters it without running it. */
export function whileRunning(fn: () => void): () => void {
  const id = next++;
  handlers.set(id, fn);
  return () => {
    handlers.delete(id);
  };
}

/** Run every registered cleanup, newest first. */
export function runCleanups(): void {
  for (const id of [...handlers.keys()].reverse()) {
    const fn = handlers.get(id)!;
    handlers.delete(id);
    try {
      fn();
    } catch { /* best effort */ }
  }
}

let installed = false;
/** Install SIGINT/SIGTERM handlers that call `onSignal`, then clean up and exit 130/143. */
export function installSignalHandlers(onSignal: (sig: Deno.Signal) => void): void {
  if (installed) return;
  installed = true;
  for (const sig of ["SIGINT", "SIGTERM"] as Deno.Signal[]) {
    Deno.addSignalListener(sig, () => {
      try {
        onSignal(sig);
      } finally {
        runCleanups();
        Deno.exit(130);
      }
    });
  }
}
