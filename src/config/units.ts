/** Durations ("30s", "12h", "30d", "1h30m") and sizes ("500MB", "20GiB"): parsing and formatting. */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/**
 * Milliseconds in a duration string, or undefined when it is not one.
 * @example parseDuration("1h30m") // 5_400_000
 */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(t)) return undefined;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]];
  return Math.round(total);
}

/** "2h 5m 3s", "850ms": a duration for humans. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  const parts: string[] = [];
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (sec && !d) parts.push(`${sec}s`);
  return parts.join(" ");
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1000,
  kb: 1000,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Bytes in a size string, or undefined when it is not one.
 * @example parseSize("20GiB") // 21474836480
 */
export function parseSize(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(s);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

/** "1.5 GiB", "312 B": a size for humans. */
export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** The shortest exact config spelling of a duration: 30000 → "30s", 7200000 → "2h". */
export function shortDuration(ms: number): string {
  for (const [u, f] of Object.entries(DURATION_UNITS).reverse()) if (ms % f === 0 && ms >= f) return `${ms / f}${u}`;
  return `${ms}ms`;
}

/** The shortest exact config spelling of a size: 53687091200 → "50GiB". */
export function shortSize(n: number): string {
  for (const u of ["tib", "gib", "mib", "kib"]) {
    const f = SIZE_UNITS[u];
    if (n >= f && n % f === 0) return `${n / f}${u.replace("ib", "iB").toUpperCase().replace("IB", "iB")}`;
  }
  return String(n);
}

/** A schema default as the docs and man pages print it ("30s", "1GiB", a string as itself). */
export function fmtDefault(type: string, v: unknown): string {
  if (v === undefined) return "";
  if (type.startsWith("duration") && typeof v === "number") return shortDuration(v);
  if (type === "size" && typeof v === "number") return shortSize(v);
  return typeof v === "string" ? v : JSON.stringify(v);
}
