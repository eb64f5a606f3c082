/**
 * Archive names: the `archive.name` pattern with date tokens, formatted at run time and parsed back by retention.
 *
 * Tokens: {YYYY} {MM} {DD} (required), {HH} {mm} (optional, for several archives a day), {job}.
 * A same-day second archive with different content gets a counter before the extension: `20261122-2.tgz`.
 * An encrypted archive is the same name + ".age" (archive.encrypt). Anything that does not parse back is not an
 * archive of ours and is never touched.
 */
import { type LocalParts, pad } from "../os/clock.ts";

const TOKENS: Record<string, string> = {
  YYYY: "(?<year>\\d{4})",
  MM: "(?<month>\\d{2})",
  DD: "(?<day>\\d{2})",
  HH: "(?<hour>\\d{2})",
  mm: "(?<minute>\\d{2})",
};

export const ARCHIVE_EXTENSIONS = [".tar.gz", ".tgz"];

/** An archive name parsed back: its calendar date (and time, when the pattern has one) and its same-day counter. */
export interface ParsedName {
  name: string;
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  seq: number;
  /** Local wall-clock time as milliseconds (Date.UTC of the local fields): for ordering and age. */
  stamp: number;
  /** True when the pattern carries a time of day (granularity below a day). */
  hasTime: boolean;
}

/** Why `pattern` is not a usable archive name pattern, or undefined when it is. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.includes("/") || pattern.includes("\\")) return "must be a file name, not a path (no '/')";
  if (pattern.startsWith(".")) return "must not start with '.' (hidden names are used for uploads in progress)";
  if (!ARCHIVE_EXTENSIONS.some((e) => pattern.endsWith(e))) return "must end with .tgz or .tar.gz";
  for (const m of pattern.matchAll(/\{([^}]*)\}/g)) {
    if (!(m[1] in TOKENS) && m[1] !== "job") return `unknown token {${m[1]}}; known: {YYYY} {MM} {DD} {HH} {mm} {job}`;
  }
  for (const t of ["YYYY", "MM", "DD"]) {
    if (!pattern.includes(`{${t}}`)) return `must contain {${t}}, so that retention can read the date back from the name`;
  }
  if (pattern.includes("{mm}") && !pattern.includes("{HH}")) return "{mm} needs {HH}";
  return undefined;
}

function splitExt(s: string): [string, string] {
  const ext = ARCHIVE_EXTENSIONS.find((e) => s.endsWith(e)) ?? "";
  return [s.slice(0, s.length - ext.length), ext];
}

/**
 * The archive name for a run at local time `p`.
 * @example formatName("{YYYY}{MM}{DD}.tgz", parts) // "20261122.tgz"
 */
export function formatName(pattern: string, p: LocalParts, job: string, seq = 1): string {
  const name = pattern
    .replaceAll("{YYYY}", String(p.year))
    .replaceAll("{MM}", pad(p.month))
    .replaceAll("{DD}", pad(p.day))
    .replaceAll("{HH}", pad(p.hour))
    .replaceAll("{mm}", pad(p.minute))
    .replaceAll("{job}", job);
  if (seq <= 1) return name;
  const [stem, ext] = splitExt(name);
  return `${stem}-${seq}${ext}`;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const reCache = new Map<string, RegExp>();

function patternRegex(pattern: string, job: string): RegExp {
  const key = `${pattern}\u0000${job}`;
  let re = reCache.get(key);
  if (!re) {
    const [stem, ext] = splitExt(pattern);
    const used = new Set<string>();
    let src = "";
    for (const part of stem.split(/(\{[^}]*\})/)) {
      const tok = /^\{(.*)\}$/.exec(part)?.[1];
      if (tok && tok in TOKENS) {
        // A token used twice must match the same value: use a backreference.
        src += used.has(tok) ? `\\k<${/<(\w+)>/.exec(TOKENS[tok])![1]}>` : TOKENS[tok];
        used.add(tok);
      } else if (tok === "job") src += escapeRe(job);
      else src += escapeRe(part);
    }
    // An encrypted archive (archive.encrypt) is the same name + ".age": ours either way, whichever way it was stored.
    re = new RegExp(`^${src}(?:-(?<seq>[2-9]|[1-9]\\d+))?${escapeRe(ext)}(?:\\.age)?$`);
    reCache.set(key, re);
  }
  return re;
}

/** Parse `name` back with `pattern`; undefined when it is not one of our archives (or not a real date). */
export function parseName(pattern: string, name: string, job: string): ParsedName | undefined {
  const m = patternRegex(pattern, job).exec(name);
  if (!m?.groups) return undefined;
  const g = m.groups;
  const year = Number(g.year), month = Number(g.month), day = Number(g.day);
  const hour = g.hour ? Number(g.hour) : 0, minute = g.minute ? Number(g.minute) : 0;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59) return undefined;
  const stamp = Date.UTC(year, month - 1, day, hour, minute);
  const check = new Date(stamp);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return undefined; // 20260231
  return {
    name,
    year,
    month,
    day,
    hour,
    minute,
    seq: g.seq ? Number(g.seq) : 1,
    stamp,
    hasTime: pattern.includes("{HH}"),
  };
}

/**
 * The name of the upload in progress for `name`: `NAME.part`. Not hidden: nginx's dav-ext does not list dot-files,
 * pure-ftpd -x refuses to write them, a Samba share that vetoes dot-files hides them. No archive pattern can match it
 * (patterns end in .tgz or .tar.gz).
 */
export function tempName(name: string): string {
  return `${name}.part`;
}

/**
 * The final name an upload temp file stands for, or undefined: `NAME.part`, `.NAME.part` (earlier versions), and
 * `NAME.part.0000000004` (nginx's body temp file beside the target, left when a PUT fails).
 */
export function tempTarget(name: string): string | undefined {
  const m = /^(.*)\.part(\.\d{10})?$/.exec(name);
  if (!m) return undefined;
  return m[1].startsWith(".") ? m[1].slice(1) : m[1];
}

/** True for an upload temp file name (of any file: the caller checks that its target is ours). */
export function isTempName(name: string): boolean {
  return tempTarget(name) !== undefined;
}

/** The sha256sum sidecar of an archive. */
export function sidecarName(archive: string): string {
  return `${archive}.sha256`;
}
