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
