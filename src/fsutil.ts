/** Small file-system helpers shared by the destination, the health check and the lock. */
import { processes } from "./procs.ts";

/**
 * The nearest existing ancestor of `path` (itself when it exists): where a directory that is yet to be created
 * will live, for mount and free-space checks.
 * @example nearestExisting("/mnt/backup/db/2026") // "/mnt/backup" when only that exists
 */
export function nearestExisting(path: string): string {
  let p = path;
  for (;;) {
    try {
      Deno.statSync(p);
      return p;
    } catch {
      const up = p.replace(/\/[^/]*\/?$/, "") || "/";
      if (up === p) return "/";
      p = up;
    }
  }
}

/**
 * A private (0700) temporary directory named `<kind>-<pid>-XXXX` in $TMPDIR: the pid in the name lets a later run
 * tell whose it is and remove it once that process is gone ({@link sweepDeadTempDirs}).
 */
export function privateTempDir(kind: "archivist" | "arch-ssh"): string {
  const dir = Deno.makeTempDirSync({ prefix: `${kind}-${Deno.pid}-` });
  Deno.chmodSync(dir, 0o700);
  return dir;
}

/** Processes whose command line mentions `needle` (e.g. an ssh master's ControlPath inside a dead run's dir). */
export function processesMentioning(needle: string, procs = processes()): number[] {
  return [...(procs?.values() ?? [])].filter((p) => p.pid !== Deno.pid && p.args.includes(needle)).map((p) => p.pid);
}

/**
 * Remove the private temp dirs of archivist processes that died without cleaning up (SIGKILL, power loss), and end
 * the tools still using them (an `ssh -M` master lives on otherwise). Returns what was removed. Without `ps`
 * nothing is removed: a live process's dir must never go.
 */
export function sweepDeadTempDirs(tmp = Deno.env.get("TMPDIR") || "/tmp"): string[] {
  const removed: string[] = [];
  const procs = processes();
  if (!procs) return removed;
  let list: Deno.DirEntry[] = [];
  try {
    list = [...Deno.readDirSync(tmp)];
  } catch {
    return removed;
  }
  for (const e of list) {
    const m = /^(?:archivist|arch-ssh)-(\d+)-/.exec(e.name);
    if (!m || !e.isDirectory || procs.has(Number(m[1]))) continue;
    const dir = `${tmp.replace(/\/+$/, "")}/${e.name}`;
    for (const pid of processesMentioning(dir, procs)) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
    try {
      Deno.removeSync(dir, { recursive: true });
      removed.push(dir);
    } catch { /* not ours */ }
  }
  return removed;
}
