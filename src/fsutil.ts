/** Small file-system helpers shared by the destination and the health check. */

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

/** True when a process with this pid exists on this machine. */
export function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line mentions `needle` (e.g. an ssh master's ControlPath inside a dead run's dir). */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
      try {
        if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(needle)) out.push(Number(e.name));
      } catch { /* gone, or not ours to read */ }
    }
  } catch { /* no /proc */ }
  return out;
}

/**
 * Remove the private temp dirs of archivist processes that died without cleaning up (SIGKILL, power loss), and end
 * the tools still using them (an `ssh -M` master lives on otherwise). Returns what was removed.
 */
export function sweepDeadTempDirs(tmp = Deno.env.get("TMPDIR") || "/tmp"): string[] {
  const removed: string[] = [];
  let list: Deno.DirEntry[] = [];
  try {
    list = [...Deno.readDirSync(tmp)];
  } catch {
    return removed;
  }
  for (const e of list) {
    const m = /^(?:archivist|arch-ssh)-(\d+)-/.exec(e.name);
    if (!m || !e.isDirectory || pidAlive(Number(m[1]))) continue;
    const dir = `${tmp.replace(/\/+$/, "")}/${e.name}`;
    for (const pid of processesMentioning(dir)) {
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
