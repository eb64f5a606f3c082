/**
 * Retention as a pure function: given the archive names found on a destination, the policy and "now", decide
 * which to keep and why. No I/O here, so every rule is tested with an injected clock (tests/retention_test.ts).
 *
 * The archives come from the inventory (inventory.ts): dated by the run that stored them, ordered by "stored
 * last". Rules, in the order they protect an archive:
 *  - foreign files are not archives: never selected (they are not even passed in);
 *  - an archive not in the catalogue is never deleted ("not in the catalogue");
 *  - the archive stored by this run is kept ("just stored");
 *  - the `min_keep` archives stored last *that are complete* (sidecar there, size as recorded) are kept, whatever
 *    their age; an incomplete archive never takes a min_keep place;
 *  - GFS (`keep_hourly`/`daily`/`weekly`/`monthly`/`yearly`, restic's semantics): the complete archive stored last
 *    in each of the last N periods that have one is kept (an hour is the run's local hour: names with {HH});
 *  - `max_age`: archives whose date is within max_age of today are kept.
 * An archive is deleted only when no rule keeps it, and only when at least one rule is configured (max_age or a
 * keep_* rule): an empty policy keeps everything.
 */
import { dayNumber, fromDayNumber, type LocalParts, pad } from "../os/clock.ts";
import type { ParsedName } from "../formats/naming.ts";
import type { ArchiveInfo } from "./inventory.ts";

export interface Policy {
  max_age?: number;
  min_keep: number;
  keep_hourly: number;
  keep_daily: number;
  keep_weekly: number;
  keep_monthly: number;
  keep_yearly: number;
}

export interface Decision {
  archive: ArchiveInfo;
  keep: boolean;
  /** Why it is kept ("min_keep", "keep_daily", "max_age", "just stored"), or why it goes ("older than 30d"). */
  reasons: string[];
  /** First local date on which max_age no longer keeps it (YYYY-MM-DD), when max_age is set. */
  expiresOn?: string;
}

/** ISO 8601 week key, e.g. "2026-W47". */
export function isoWeek(p: { year: number; month: number; day: number }): string {
  const dn = dayNumber(p);
  const weekday = (new Date(dn * 86_400_000).getUTCDay() + 6) % 7; // Monday 0
  const thursday = fromDayNumber(dn - weekday + 3);
  const jan1 = dayNumber({ year: thursday.year, month: 1, day: 1 });
  const week = Math.floor((dayNumber(thursday) - jan1) / 7) + 1;
  return `${thursday.year}-W${pad(week)}`;
}

const PERIODS: Array<[keyof Policy, (a: ArchiveInfo) => string]> = [
  ["keep_hourly", (a) => `${a.year}-${pad(a.month)}-${pad(a.day)}T${pad(a.hour)}`],
  ["keep_daily", (a) => `${a.year}-${pad(a.month)}-${pad(a.day)}`],
  ["keep_weekly", (a) => isoWeek(a)],
  ["keep_monthly", (a) => `${a.year}-${pad(a.month)}`],
  ["keep_yearly", (a) => `${a.year}`],
];

/** Newest first: stored last first (catalogue order), whatever the dates say. */
export function newestFirst(a: ArchiveInfo, b: ArchiveInfo): number {
  return b.order - a.order || (a.name < b.name ? 1 : -1);
}

/** True when the policy can delete anything at all. */
export function policyActive(p: Policy): boolean {
  return p.max_age !== undefined || p.keep_hourly + p.keep_daily + p.keep_weekly + p.keep_monthly + p.keep_yearly > 0;
}

/**
 * Decide for each archive. `now` is the local time in archive.timezone; `protect` holds names never to delete.
 * @example decide(parsed, { max_age: 30 * 86400000, min_keep: 3, keep_daily: 0, ... }, localParts(now, tz), new Set([justStored]))
 */
export function decide(archives: ArchiveInfo[], p: Policy, now: LocalParts, protect: ReadonlySet<string> = new Set()): Decision[] {
  const sorted = [...archives].sort(newestFirst);
  const reasons = new Map<string, string[]>(sorted.map((a) => [a.name, []]));
  const add = (a: ParsedName, r: string) => reasons.get(a.name)!.push(r);
  // Only complete archives of the catalogue count as the ones kept "for sure".
  const countable = sorted.filter((a) => a.catalogued && a.complete);

  for (const a of sorted) if (!a.catalogued) add(a, "not in the catalogue (never deleted)");
  for (const a of sorted) if (protect.has(a.name)) add(a, "just stored");
  countable.slice(0, p.min_keep).forEach((a) => add(a, "min_keep"));
  for (const [rule, key] of PERIODS) {
    const n = p[rule] as number;
    if (!n) continue;
    const seen = new Set<string>();
    for (const a of countable) {
      const k = key(a);
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      add(a, rule);
    }
  }
  const active = policyActive(p);
  return sorted.map((a) => {
    const r = reasons.get(a.name)!;
    let expiresOn: string | undefined;
    if (p.max_age !== undefined) {
      // Compare local wall-clock times; for names without a time of day, compare whole days.
      const nowStamp = a.hasTime
        ? Date.UTC(now.year, now.month - 1, now.day, now.hour, now.minute)
        : Date.UTC(now.year, now.month - 1, now.day);
      if (nowStamp - a.stamp <= p.max_age) r.push("max_age");
      const exp = new Date(a.stamp + p.max_age + (a.hasTime ? 60_000 : 86_400_000));
      expiresOn = `${exp.getUTCFullYear()}-${pad(exp.getUTCMonth() + 1)}-${pad(exp.getUTCDate())}`;
    }
    if (!active) r.push("no retention rule set");
    const keep = r.length > 0;
    return {
      archive: a,
      keep,
      reasons: keep ? r : [p.max_age !== undefined ? "older than max_age, kept by no rule" : "kept by no keep_* rule"],
      expiresOn,
    };
  });
}
