/**
 * The catalogue: what archivist itself stored, one JSON object per line in `<state_dir>/<job>.catalogue.jsonl`,
 * appended with one O_APPEND write per record and never rewritten (a crash can at worst leave a torn last line,
 * which is skipped and counted).
 *
 * It is the authority for retention, `list`, `restore latest` and `check`:
 *  - an archive is dated by the run that stored it (`runDate`), not by re-parsing its name with today's pattern,
 *    so an edit of `archive.name` never makes a young archive look old;
 *  - "newest" means "stored last" (the record's position in the file), whatever the clock said;
 *  - retention deletes only archives recorded here: a file that merely looks like one of ours is never deleted.
 *
 * Records: `stored` (an archive and its sidecar are on the destination), `deleted` (retention removed it),
 * `checked` (`archivist check` read it back), `trust` (the operator accepted the clock with `prune --force`).
 */
import { join } from "node:path";
import { ArchivistError, errMsg } from "../errors.ts";

/** How the clock looked when an archive was stored: trusted unless the clock check found it behind or ahead. */
export type ClockFlag = "behind" | "ahead";

export interface StoredRecord {
  op: "stored";
  name: string;
  /** The destination's location string (several destinations over time keep apart). */
  location: string;
  /** archive.name when it was stored: names written under an earlier pattern stay recognisable. */
  pattern: string;
  /** Local date and time of the run (archive.timezone) that made the name: "2026-11-22T02:30". */
  runDate: string;
  /** When the archive was in place (the clock's word, ISO). */
  storedAt: string;
  size: number;
  sha256: string;
  dumpName: string;
  dumpSize: number;
  dumpSha256: string;
  runId: string;
  /** Set when the clock check doubted the clock at store time. */
  clock?: ClockFlag;
  /** With check.on_unchanged: link, the archive this name is a hard link to (or a copy of, without hard links). */
  linkOf?: string;
  /** "adopted" for archives taken over from a version without a catalogue. */
  origin?: "run" | "adopted";
}

export interface DeletedRecord {
  op: "deleted";
  name: string;
  location: string;
  at: string;
  reason: string;
}

export interface CheckedRecord {
  op: "checked";
  name: string;
  location: string;
  at: string;
  ok: boolean;
  /** "size" (presence and size only) or "content" (downloaded, sha256 and dump verified). */
  depth: "size" | "content";
  message: string;
}

export interface TrustRecord {
  op: "trust";
  at: string;
  reason: string;
}

export type CatalogueRecord = StoredRecord | DeletedRecord | CheckedRecord | TrustRecord;

/** A live archive of the catalogue: its stored record, its position, and its last checks. */
export interface CatalogueEntry extends StoredRecord {
  /** Position in the catalogue: larger = stored later. */
  seq: number;
  /** The clock flag after `trust` records (a trusted flag is cleared). */
  effectiveClock?: ClockFlag;
  lastCheck?: CheckedRecord;
  lastContentCheck?: CheckedRecord;
}

export interface Catalogue {
  path: string;
  /** True when the file exists (even empty). */
  exists: boolean;
  /** Live archives (stored and not deleted since), oldest stored first. */
  entries: CatalogueEntry[];
  /** Every archive.name pattern archivist ever stored under. */
  patterns: Set<string>;
  /** Unreadable lines skipped. */
  bad: number;
  /** The last archive stored with a trusted clock (any destination, even if deleted since): the clock check's reference. */
  lastTrusted?: StoredRecord;
}

export function cataloguePath(stateDir: string, job: string): string {
  return join(stateDir, `${job}.catalogue.jsonl`);
}

/** Parse the catalogue text into live entries. */
export function foldCatalogue(path: string, text: string | undefined): Catalogue {
  const live = new Map<string, CatalogueEntry>();
  const patterns = new Set<string>();
  let bad = 0;
  let seq = 0;
  const history: { r: StoredRecord; clock?: ClockFlag }[] = [];
  const key = (location: string, name: string) => `${location}\u0000${name}`;
  const lines = (text ?? "").split("\n");
  // A last line without its newline was cut by a crash: a whole record is folded (the next append completes it), a
  // torn one is not "bad" (the next append sets it aside, and says so).
  if (lines.length && lines[lines.length - 1] !== "" && !wholeJson(lines[lines.length - 1])) lines.pop();
  for (const line of lines) {
    if (!line.trim()) continue;
    let r: CatalogueRecord;
    try {
      r = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    seq++;
    switch (r?.op) {
      case "stored":
        if (typeof r.name !== "string" || typeof r.location !== "string" || typeof r.runDate !== "string") {
          bad++;
          break;
        }
        patterns.add(r.pattern);
        history.push({ r, clock: r.clock });
        live.delete(key(r.location, r.name));
        live.set(key(r.location, r.name), { ...r, seq, effectiveClock: r.clock });
        break;
      case "deleted":
        live.delete(key(r.location, r.name));
        break;
      case "checked": {
        const e = live.get(key(r.location, r.name));
        if (e) {
          e.lastCheck = r;
          if (r.depth === "content") e.lastContentCheck = r;
        }
        break;
      }
      case "trust":
        for (const e of live.values()) e.effectiveClock = undefined;
        for (const h of history) h.clock = undefined;
        break;
      default:
        bad++;
    }
  }
  return {
    path,
    exists: text !== undefined,
    entries: [...live.values()].sort((a, b) => a.seq - b.seq),
    patterns,
    bad,
    lastTrusted: history.findLast((h) => !h.clock)?.r,
  };
}

/**
 * Read the job's catalogue (an absent file is an empty catalogue). `extra` records are folded in after the file's,
 * without being written (a dry run sees what an upgrade would adopt).
 */
export function readCatalogue(stateDir: string, job: string, extra: CatalogueRecord[] = []): Catalogue {
  const path = cataloguePath(stateDir, job);
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ArchivistError("state", `cannot read the catalogue ${path}: ${errMsg(e)}`, "check the owner and mode of state_dir", {
        code: "catalogue",
      });
    }
  }
  if (extra.length) {
    return { ...foldCatalogue(path, (text ?? "") + extra.map((r) => JSON.stringify(r) + "\n").join("")), exists: text !== undefined };
  }
  return foldCatalogue(path, text);
}

/**
 * When every archive (two or more) the catalogue records at `location` is missing from its listing at once, that is not retention
 * or a slow loss: the listing is of another place than the one archivist stored to (a wrong rclone crypt password
 * shows an empty tree, a wrong remote path or share another directory). The error's message, or undefined.
 */
export function vanished(cat: Catalogue, location: string, listed: { name: string }[]): ArchivistError | undefined {
  const mine = entriesAt(cat, location);
  if (mine.length < 2) return undefined; // one archive gone is `check`'s MISSING, not another place
  const names = new Set(listed.map((e) => e.name));
  if (mine.some((e) => names.has(e.name))) return undefined;
  const last = mine[mine.length - 1];
  return new ArchivistError(
    "store",
    `none of the ${mine.length} archive(s) the catalogue records on ${location} is there (the last, ${last.name}, stored ${last.storedAt}): this is probably not the place they were stored to`,
    "check the destination: a wrong rclone crypt password or remote path, another share or disk mounted there, a changed path; if they were removed on purpose, move the catalogue aside (mv " +
      `${cat.path} ${cat.path}.old) and the next night starts a new one`,
    { code: "vanished" },
  );
}

/** The live entries for one destination, oldest stored first. */
export function entriesAt(cat: Catalogue, location: string): CatalogueEntry[] {
  return cat.entries.filter((e) => e.location === location);
}

function wholeJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/**
 * A last line cut short (power lost during a write): moved to `<catalogue>.torn`, the file cut back to its last whole
 * line, so that the next record is never appended onto it and lost. Returns what was done, for a warning.
 */
function setAsideTornTail(path: string): string | undefined {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true, write: true });
  } catch {
    return undefined; // no catalogue yet
  }
  try {
    const size = f.statSync().size;
    if (size === 0) return undefined;
    const tailLen = Math.min(size, 1 << 20);
    const tail = new Uint8Array(tailLen);
    f.seekSync(size - tailLen, Deno.SeekMode.Start);
    for (let got = 0; got < tailLen;) got += f.readSync(tail.subarray(got)) ?? tailLen;
    if (tail[tailLen - 1] === 10) return undefined;
    const nl = tail.lastIndexOf(10);
    if (wholeJson(new TextDecoder().decode(tail.subarray(nl + 1)))) {
      // Cut just before its newline: the record is whole, so it is completed, not set aside.
      f.seekSync(0, Deno.SeekMode.End);
      f.writeSync(new Uint8Array([10]));
      return undefined;
    }
    const keep = nl < 0 ? size - tailLen : size - tailLen + nl + 1;
    const torn = tail.subarray(nl + 1);
    Deno.writeFileSync(`${path}.torn`, torn, { append: true, mode: 0o640 });
    Deno.writeFileSync(`${path}.torn`, new TextEncoder().encode("\n"), { append: true });
    f.truncateSync(keep);
    f.syncSync();
    return `the catalogue's last line was cut short (${torn.length} bytes: a crash or power loss while it was written): set aside in ${path}.torn; the records after it are intact`;
  } finally {
    f.close();
  }
}

/**
 * Append records with a single write (and fsync): they are what retention trusts, so they must be durable
 * before the run goes on. A torn last line is set aside first (returned as a warning to log). Throws a state error:
 * the caller decides whether that fails the run.
 */
export function appendCatalogue(stateDir: string, job: string, ...records: CatalogueRecord[]): string | undefined {
  const path = cataloguePath(stateDir, job);
  try {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    const repaired = setAsideTornTail(path);
    const f = Deno.openSync(path, { append: true, create: true, mode: 0o640 });
    try {
      f.writeSync(new TextEncoder().encode(records.map((r) => JSON.stringify(r)).join("\n") + "\n"));
      f.syncSync();
    } finally {
      f.close();
    }
    return repaired;
  } catch (e) {
    throw new ArchivistError(
      "state",
      `cannot append to the catalogue ${path}: ${errMsg(e)}`,
      "free space in state_dir and check its owner; until it is recorded, retention will never delete that archive",
      { code: "catalogue" },
    );
  }
}
