/** Small file-system helpers shared by the destination, the health check and the lock. */
import { posix } from "node:path";
import { createHash } from "node:crypto";
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
    } catch (e) {
      if (isStaleMount(e)) throw e; // a dead FUSE or network mount is there, not missing
      const up = p.replace(/\/[^/]*\/?$/, "") || "/";
      if (up === p) return "/";
      p = up;
    }
  }
}

/** ENOTCONN: the process behind a FUSE mount (rclone, sshfs) died, or a network mount lost its server. */
export function isStaleMount(e: unknown): boolean {
  return /os error 107\b|ENOTCONN|transport endpoint is not connected/i.test(e instanceof Error ? e.message : String(e));
}

/**
 * The stale mount point above `path`: the mount point (where the device changes) whose root cannot be listed, or the
 * highest path that answers ENOTCONN. A dead FUSE mount may still answer stat() for some paths from the kernel's
 * cache and ENOTCONN for others, so both are tried. Only stat() and readdir: no /proc.
 */
export function staleMountPoint(path: string): string {
  let p = path, stale: string | undefined;
  while (p !== "/") {
    const up = p.replace(/\/[^/]*\/?$/, "") || "/";
    let here: number | undefined;
    try {
      here = Deno.statSync(p).dev;
    } catch (e) {
      if (isStaleMount(e)) stale = p;
    }
    if (here !== undefined) {
      try {
        if (Deno.statSync(up).dev !== here) {
          try {
            Deno.readDirSync(p).next();
          } catch (e) {
            if (isStaleMount(e)) return p; // the dead mount's root, still answering stat()
          }
          return stale ?? p;
        }
      } catch { /* the parent does not answer: go on up */ }
    }
    p = up;
  }
  return stale ?? path;
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

/** A local path in one spelling: normalised (no "./", "..", trailing "/"), the symlinks of its existing part resolved. */
export function resolvedPath(p: string): string {
  const norm = posix.normalize(p).replace(/(.)\/+$/, "$1");
  const rest: string[] = [];
  for (let at = norm;; at = posix.dirname(at)) {
    try {
      return posix.join(Deno.realPathSync(at), ...rest.reverse());
    } catch {
      if (at === "/" || at === ".") return norm;
      rest.push(posix.basename(at));
    }
  }
}

/** A file's size and sha256, read in 1 MiB pieces into one buffer (the archive, its encrypted form, a read-back). */
export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  const f = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  let size = 0;
  try {
    for (let n; (n = await f.read(buf)) !== null;) (hash.update(buf.subarray(0, n)), size += n);
  } finally {
    f.close();
  }
  return { size, sha256: hash.digest("hex") };
}
