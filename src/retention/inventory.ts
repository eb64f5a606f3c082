/**
 * What is on the destination, as retention, `list`, `restore latest` and `check` see it. One function, so that
 * the four agree on what is ours, how old it is and which is newest.
 *
 *  - A **catalogued** archive (recorded by the run that stored it) is dated by that run's date and ordered by its
 *    position in the catalogue ("stored last" = newest), whatever today's `archive.name` or clock say.
 *  - An archive stored while the clock was in doubt takes the date of the next archive stored with a trusted
 *    clock (or "now" while there is none): a wrong clock can make it look younger, never older.
 *  - A name that parses under the current pattern or any pattern in the catalogue, but is not catalogued, is
 *    **ours but unknown** (a copy put there by hand, or written before the catalogue existed and not adopted):
 *    listed, never deleted, never counted by min_keep.
 *  - Anything else is **foreign**: never touched.
 *  - An archive is **complete** when its `.sha256` sidecar is there and (catalogued) its size is the recorded one.
 */
import { localParts } from "../os/clock.ts";
import type { Catalogue, CatalogueEntry, ClockFlag } from "../records/catalogue.ts";
import { type ParsedName, parseName, sidecarName } from "../formats/naming.ts";
import type { RemoteEntry } from "../transports/transport.ts";

export interface ArchiveInfo extends ParsedName {
  /** Larger = stored later. Catalogued archives use their catalogue position; others sort before them by date. */
  order: number;
  catalogued: boolean;
  complete: boolean;
  /** Why it is not complete ("no .sha256 sidecar", "size differs from the recorded ..."). */
  problem?: string;
  size: number;
  /** Where its date comes from. */
  dated: "stored" | "next trusted archive" | "clock in doubt, no later archive yet" | "name";
  clock?: ClockFlag;
  entry?: CatalogueEntry;
}

export interface Inventory {
  archives: ArchiveInfo[];
  /** Catalogued archives that are not on the destination any more. */
  missing: CatalogueEntry[];
  /** Sidecars of ours whose archive is gone. */
  orphanSidecars: string[];
  entries: Map<string, RemoteEntry>;
}

/** "2026-11-22T02:30" → parsed date fields (stamp = Date.UTC of the local fields). */
function runDateParts(e: CatalogueEntry, hasTime: boolean): Omit<ParsedName, "name" | "seq"> {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(e.runDate)!;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hour = hasTime ? Number(m[4] ?? 0) : 0, minute = hasTime ? Number(m[5] ?? 0) : 0;
  return { year, month, day, hour, minute, stamp: Date.UTC(year, month - 1, day, hour, minute), hasTime };
}

/** The local run date of an instant as the catalogue writes it. */
export function runDateOf(d: Date, tz: string): string {
  const p = localParts(d, tz);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}

/** Parse a name under the current pattern or any pattern archivist stored under; the youngest reading wins. */
export function parseAny(patterns: Iterable<string>, name: string, job: string): ParsedName | undefined {
  let best: ParsedName | undefined;
  for (const p of patterns) {
    const r = parseName(p, name, job);
    if (r && (!best || r.stamp > best.stamp)) best = r;
  }
  return best;
}

/**
 * Build the inventory of one destination from its listing and the catalogue.
 * `now` and `tz` date the archives stored while the clock was in doubt and no trusted one came after.
 */
export function buildInventory(
  listing: RemoteEntry[],
  cat: Catalogue,
  location: string,
  pattern: string,
  job: string,
  now: Date,
  tz: string,
): Inventory {
  const entries = new Map(listing.filter((e) => !e.isDir).map((e) => [e.name, e]));
  const patterns = new Set([pattern, ...cat.patterns]);
  const all = cat.entries; // every location: the clock history is the job's
  const here = all.filter((e) => e.location === location);
  const archives: ArchiveInfo[] = [];
  const missing: CatalogueEntry[] = [];
  const catalogued = new Set<string>();

  for (const e of here) {
    const remote = entries.get(e.name);
    if (!remote) {
      missing.push(e);
      continue;
    }
    catalogued.add(e.name);
    archives.push(cataloguedArchive(e, remote, entries, all, job, now, tz));
  }

  // Ours by name only: sorted by date before every catalogued archive (order <= 0).
  const unknown = [...entries.keys()]
    .filter((n) => !catalogued.has(n) && !n.endsWith(".sha256"))
    .map((n) => parseAny(patterns, n, job))
    .filter((p) => p !== undefined)
    .sort((a, b) => a.stamp - b.stamp || a.seq - b.seq || (a.name < b.name ? -1 : 1));
  unknown.forEach((p, i) => {
    const hasSide = entries.has(sidecarName(p.name));
    archives.push({
      ...p,
      order: i - unknown.length,
      catalogued: false,
      complete: hasSide,
      problem: hasSide ? undefined : "no .sha256 sidecar",
      size: entries.get(p.name)!.size,
      dated: "name",
    });
  });

  const names = new Set(archives.map((a) => a.name));
  const orphanSidecars = [...entries.keys()].filter((n) => {
    if (!n.endsWith(".sha256")) return false;
    const base = n.slice(0, -".sha256".length);
    return !entries.has(base) && (catalogued.has(base) || here.some((e) => e.name === base) || parseAny(patterns, base, job) !== undefined);
  }).filter((n) => !names.has(n));
  archives.sort((a, b) => b.order - a.order);
  return { archives, missing, orphanSidecars, entries };
}

/** A catalogued archive that is on the destination: dated by its run (or the next trusted one), checked for its sidecar and size. */
function cataloguedArchive(
  e: CatalogueEntry,
  remote: RemoteEntry,
  entries: Map<string, RemoteEntry>,
  all: CatalogueEntry[],
  job: string,
  now: Date,
  tz: string,
): ArchiveInfo {
  const hasTime = e.pattern.includes("{HH}");
  let parts = runDateParts(e, hasTime);
  let dated: ArchiveInfo["dated"] = "stored";
  if (e.effectiveClock) {
    const next = all.find((o) => o.seq > e.seq && !o.effectiveClock);
    if (next) {
      parts = runDateParts(next, hasTime);
      dated = "next trusted archive";
    } else {
      parts = runDateParts({ ...e, runDate: runDateOf(now, tz) }, hasTime);
      dated = "clock in doubt, no later archive yet";
    }
  }
  const seq = parseName(e.pattern, e.name, job)?.seq ?? 1;
  let problem: string | undefined;
  if (!entries.has(sidecarName(e.name))) problem = "no .sha256 sidecar";
  else if (remote.size !== e.size) problem = `size ${remote.size} differs from the ${e.size} bytes recorded when it was stored`;
  return {
    name: e.name,
    ...parts,
    seq,
    order: e.seq,
    catalogued: true,
    complete: !problem,
    problem,
    size: remote.size,
    dated,
    clock: e.effectiveClock,
    entry: e,
  };
}
