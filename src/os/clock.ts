/**
 * Time, injected. Production code never calls `new Date()` directly: it asks a {@link Clock}, so that tests can
 * pin the date (retention, archive names, a run that crosses midnight) without waiting for it.
 */

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock frozen at `iso` (or advanced by hand): for tests and for `ARCHIVIST_NOW`. */
export function fixedClock(iso: string | Date): Clock & { set(d: Date | string): void } {
  let t = new Date(iso);
  return {
    now: () => new Date(t.getTime()),
    set(d) {
      t = new Date(d);
    },
  };
}

/** Calendar fields of an instant in an IANA time zone. */
export interface LocalParts {
  year: number;
  month: number; // 1-12
  day: number; // 1-31
  hour: number;
  minute: number;
  second: number;
}

const fmtCache = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = fmtCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    fmtCache.set(timeZone, f);
  }
  return f;
}

/** True when `tz` is a time zone this runtime knows ("UTC", "Europe/Paris", ...). */
export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/**
 * The calendar fields of `d` in `timeZone`.
 * @example localParts(new Date("2026-03-29T00:30:00Z"), "Europe/Paris") // { day: 29, hour: 1, ... }
 */
export function localParts(d: Date, timeZone: string): LocalParts {
  const out: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(d)) {
    if (p.type !== "literal") out[p.type] = Number(p.value);
  }
  return {
    year: out.year,
    month: out.month,
    day: out.day,
    hour: out.hour === 24 ? 0 : out.hour,
    minute: out.minute,
    second: out.second,
  };
}

/** "YYYY-MM-DD" of `d` in `timeZone`. */
export function localDate(d: Date, timeZone: string): string {
  const p = localParts(d, timeZone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** Zero-pad to `n` digits. */
export function pad(v: number, n = 2): string {
  return String(v).padStart(n, "0");
}

/**
 * Days between two calendar dates given as {year, month, day}, ignoring time zones and DST (pure calendar arithmetic).
 */
export function dayNumber(p: { year: number; month: number; day: number }): number {
  return Math.floor(Date.UTC(p.year, p.month - 1, p.day) / 86_400_000);
}

/** The calendar date `n` days after day number `dn`. */
export function fromDayNumber(dn: number): { year: number; month: number; day: number } {
  const d = new Date(dn * 86_400_000);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}
