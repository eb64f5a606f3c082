/**
 * The state file: what was last archived (sha256 of the dump, archive name, where, when), one per job in
 * state_dir. Written atomically (temp file, fsync, rename) and only after an archive was stored and verified.
 */
import { join } from "node:path";
import { ArchivistError, errMsg } from "../errors.ts";

export interface JobState {
  sha256: string;
  /** The dump's content fingerprint (absent in states written before it existed). */
  fingerprint?: string;
  /** The source's validators of the archived zip, for a conditional download. */
  etag?: string;
  lastModified?: string;
  archive: string;
  size: number;
  location: string;
  storedAt: string;
  /** When the archived data last changed (storedAt of the night it changed; absent in older states: storedAt). */
  changedAt?: string;
  runId: string;
  /** With destinations and store.require: any: where the archive could not be stored (the next run sends it). */
  missingOn?: string[];
  /** Every destination the archive was stored on (absent in older states: `location`). */
  locations?: string[];
}

/** Where the state's archive was stored (older states: their `location`, joined by ", "). */
export function storedLocations(s: JobState): string[] {
  return s.locations ?? s.location.split(", ");
}

/** The destinations a state describes: where its archive is, and where it is still missing. */
export function stateLocations(s: JobState): string[] {
  return [...storedLocations(s), ...(s.missingOn ?? [])];
}

/**
 * The state, when it describes these destinations: a config copy with another destination (same name and
 * state_dir), or an edited destination, must never take "same as the last archive" from records of another
 * place, or tonight's change would be skipped where it was never stored. Undefined otherwise.
 */
export function stateFor(stateDir: string, job: string, locations: string[]): { state?: JobState; other?: JobState } {
  return stateAt(readState(stateDir, job), locations);
}

/** {@link stateFor} of a state already read. */
export function stateAt(s: JobState | undefined, locations: string[]): { state?: JobState; other?: JobState } {
  if (!s) return {};
  const known = stateLocations(s);
  return locations.every((l) => known.includes(l)) ? { state: s } : { other: s };
}

export function statePath(stateDir: string, job: string): string {
  return join(stateDir, `${job}.state.json`);
}

/** The last archived state, or undefined on a first run. A corrupt file is an error, not a silent reset. */
export function readState(stateDir: string, job: string): JobState | undefined {
  const p = statePath(stateDir, job);
  let text: string;
  try {
    text = Deno.readTextFileSync(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new ArchivistError("state", `cannot read state file ${p}: ${errMsg(e)}`, "check the owner and mode of state_dir");
  }
  try {
    const s = JSON.parse(text);
    if (typeof s?.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(s.sha256)) throw new Error("no sha256");
    return s as JobState;
  } catch (e) {
    throw new ArchivistError(
      "state",
      `state file ${p} is corrupt (${errMsg(e)})`,
      `move it away (mv ${p} ${p}.bad): the next run then archives whatever it finds`,
    );
  }
}

/** When the data of the last archive last changed. */
export function changedAt(s: JobState): string {
  return s.changedAt ?? s.storedAt;
}

/**
 * "the export has not changed for 2d 4h" with how that stands against check.max_unchanged, for the message of an
 * unchanged night (compare, or fetch's 304).
 */
export function unchangedFor(s: JobState, now: Date, maxUnchanged: number | undefined, fmt: (ms: number) => string): string {
  const ms = Math.max(0, now.getTime() - new Date(changedAt(s)).getTime());
  const rule = maxUnchanged === undefined
    ? ""
    : ms <= maxUnchanged
    ? ` (within check.max_unchanged, ${fmt(maxUnchanged)})`
    : ` (more than check.max_unchanged, ${fmt(maxUnchanged)})`;
  return `the export has not changed for ${fmt(ms)}${rule}`;
}

/** Replace the state atomically. */
export function writeState(stateDir: string, job: string, s: JobState): void {
  const p = statePath(stateDir, job);
  const tmp = `${p}.tmp`;
  try {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    const f = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o640 });
    try {
      f.writeSync(new TextEncoder().encode(JSON.stringify(s, null, 2) + "\n"));
      f.syncSync();
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, p);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not there */ }
    throw new ArchivistError(
      "state",
      `cannot write state file ${p}: ${errMsg(e)}`,
      "check space and permissions of state_dir; the archive itself is stored",
    );
  }
}

/** The state file as a night sees it: read once, when first asked. */
export interface LastState {
  /** The state as written, whatever destinations it names (undefined on a first run). */
  raw(): JobState | undefined;
  /** `state` when it describes every destination of this config, else `other` (see records/state.ts stateFor). */
  here(): { state?: JobState; other?: JobState };
}
