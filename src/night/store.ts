/**
 * store: put the archive and its sidecar on the destination through the Transport, and record it in the catalogue.
 *
 * Order (each a command of its own, issued by this process, so nothing can complete after archivist died):
 *  1. remove upload temp files left by an interrupted run (`NAME.part`, or `.NAME.part` from earlier versions, of
 *     our names only);
 *  2. put the archive and the sidecar under their temporary names, check both sizes in a listing;
 *  3. with `verify: checksum`, read the temporary archive back and compare its sha256 (a damaged copy is never
 *     visible under a final name);
 *  4. rename the sidecar, then the archive, into place: an archive is never visible without its sidecar;
 *  5. check the final sizes, append the archive to the catalogue.
 *
 * An archive of the same name already there is never overwritten. When it is this very archive (same size, and the
 * same sha256 by its sidecar, the catalogue or reading it back) the run only finishes what is missing (its sidecar,
 * its catalogue record); otherwise this one gets the next free `-N` name (`20261122-2.tgz`).
 */
import { join } from "node:path";
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { formatName, isTempName, sidecarName, tempName, tempTarget } from "../formats/naming.ts";
import { AGE_SUFFIX, isEncrypted } from "../formats/age.ts";
import { appendCatalogue, entriesAt, readCatalogue, type StoredRecord, vanished } from "../records/catalogue.ts";
import { parseAny, runDateOf } from "../retention/inventory.ts";
import { clockDoubt } from "../retention/clockcheck.ts";
import { sidecarText } from "./pack.ts";
import type { Archive, Done, Night, Place, Same, Stored, Target } from "./types.ts";
import { checkSize, type RemoteEntry, type Transport } from "../transports/transport.ts";
import { hashFile } from "../os/fs.ts";

/** The sha256 recorded in the remote sidecar of `name`, or undefined. */
async function remoteSha(t: Transport, name: string, workDir: string): Promise<string | undefined> {
  const local = join(workDir, "remote.sha256");
  try {
    await t.download(sidecarName(name), local);
    return /^([0-9a-f]{64})\s/.exec(await Deno.readTextFile(local))?.[1];
  } catch {
    return undefined;
  } finally {
    await Deno.remove(local).catch(() => {});
  }
}

/**
 * The sha256 of `name` as stored: computed by the destination itself where it can (rclone hashsum on a backend with
 * sha256), else by downloading it. `how` says which, for the log.
 */
async function storedSha(t: Transport, name: string, workDir: string): Promise<{ sha256: string; how: string }> {
  const remote = await t.remoteSha256?.(name);
  if (remote) return { sha256: remote, how: "hashed by the destination" };
  return { sha256: await readBackSha(t, name, workDir), how: "read back" };
}

/**
 * Put the sidecar naming `sha256` for archive `name` in place: written to `path`, uploaded under its temporary name,
 * its size checked, renamed. Returns its size. (A failed step leaves at most the temporary name: the caller cleans.)
 */
async function putSidecar(t: Transport, path: string, sha256: string, name: string): Promise<number> {
  await Deno.writeTextFile(path, sidecarText(sha256, name), { mode: 0o600 });
  const size = (await Deno.stat(path)).size;
  const tmp = tempName(sidecarName(name));
  await t.put(path, tmp);
  checkSize(await t.list(), tmp, size, t.location);
  await t.rename(tmp, sidecarName(name));
  return size;
}

/** Download `name` and return its sha256. */
async function readBackSha(t: Transport, name: string, workDir: string): Promise<string> {
  const local = join(workDir, "readback.tgz");
  try {
    await t.download(name, local);
    return (await hashFile(local)).sha256;
  } finally {
    await Deno.remove(local).catch(() => {});
  }
}

/** Remove upload leftovers (a failure is a warning: the upload uses other names). */
export async function removeLeftovers(n: Night, t: Transport, temps: RemoteEntry[]): Promise<void> {
  for (const e of temps) {
    try {
      await t.remove(e.name);
      n.log.warn("store", `removed ${e.name} (${formatSize(e.size)}), left by an interrupted upload`);
    } catch (err) {
      n.log.warn("store", `cannot remove leftover ${e.name}: ${asArchivistError("store", err).message}`);
    }
  }
}

/**
 * store: the archive (and its sidecar) on one destination; in a dry run what would be done there, and the name it
 * would have (undefined after an unchanged dump: nothing would be stored).
 */
export async function store(n: Night, target: Target, archive: Archive | undefined, linkTo?: string): Promise<Done<Stored | undefined>> {
  const t = await target.open("store");
  const notes: string[] = [];
  const said = await (async () => {
    const p = await survey(n, t, target, notes);
    if (!archive) return preview(p); // a dry run after an unchanged dump: no archive, the place is shown
    if (linkTo && t.link && !p.entries.has(archive.name)) {
      const linked = await linkUnchanged(p, archive, linkTo);
      if (linked) return linked;
    }
    const free = await freeName(p, archive);
    if (typeof free !== "string") return free;
    await Deno.writeTextFile(archive.sidecarPath, sidecarText(archive.sha256, free), { mode: 0o600 });
    return await n.writes.upload(p, { ...archive, name: free });
  })().catch((e) => {
    throw asArchivistError("store", e);
  });
  notes.push(...(t.notices?.() ?? []));
  if (!notes.length) return said;
  for (const m of notes) n.log.warn("store", m);
  return { ...said, status: "warning", message: `${said.message}; ${notes.join("; ")}` };
}

/** List the destination, adopt older archives, read the catalogue, judge the clock, remove upload leftovers. */
async function survey(n: Night, t: Transport, target: Target, notes: string[]): Promise<Place> {
  const cfg = n.config;
  const list = await t.list();
  const cat = n.writes.catalogue(n, t.location, list);
  const gone = vanished(cat, t.location, list);
  if (gone) throw gone;
  const patterns = new Set([cfg.archive.name, ...cat.patterns]);
  // The clock is judged before this archive joins the history (it must not vouch for itself).
  const doubt = clockDoubt(n.startedAt, cat, n.last.raw(), target.retention.max_age);
  if (doubt) n.log.warn("store", `clock in doubt: ${doubt.message}; this archive is flagged, retention will delete nothing`);
  // Upload leftovers of our own archives ("NAME.part" where NAME is an archive or its sidecar of ours).
  await n.writes.leftovers(
    n,
    t,
    list.filter((e) => isTempName(e.name) && parseAny(patterns, tempTarget(e.name)!.replace(/\.sha256$/, ""), cfg.name)),
  );
  if (cat.bad) {
    notes.push(
      `the catalogue ${cat.path} has ${cat.bad} unreadable line(s): the archives they record are listed as not catalogued and never deleted`,
    );
  }
  return { n, t, target, entries: new Map(list.map((e) => [e.name, e])), cat, doubt, notes };
}

/** The dump is unchanged (or unchanged upstream): a real night stores nothing; the preview proves the place. */
function preview(p: Place): Done<undefined> {
  const ours = entriesAt(p.cat, p.t.location).filter((e) => p.entries.has(e.name));
  return {
    status: "ok",
    message:
      `dry run: the dump is unchanged: nothing would be stored on ${p.t.location} (reachable; ${ours.length} archive(s) of this job there${
        ours.length ? `, the last ${ours[ours.length - 1].name}` : ""
      })`,
    value: undefined,
  };
}

/** Append `name` to the catalogue as stored at this place (a note when a torn tail was set aside). */
function record(p: Place, a: Archive, name: string, over: Partial<StoredRecord> = {}): void {
  const { n } = p;
  const note = appendCatalogue(n.config.state_dir, n.config.name, {
    op: "stored",
    name,
    location: p.t.location,
    pattern: n.config.archive.name,
    runDate: runDateOf(n.startedAt, n.config.archive.timezone),
    storedAt: n.clock.now().toISOString(),
    size: a.size,
    sha256: a.sha256,
    dumpName: a.dump.name,
    dumpSize: a.dump.size,
    dumpSha256: a.dump.sha256,
    runId: n.runId,
    origin: "run",
    ...(p.doubt ? { clock: p.doubt.flag } : {}),
    ...over,
  });
  if (note) p.notes.push(note);
}

export const stored = (p: Place, a: Archive, name: string): Stored => ({ location: p.t.location, name, size: a.size, sha256: a.sha256 });
const checksum = (p: Place) => (p.target.destination as { verify?: string }).verify === "checksum";

type Existing = Same | { kind: "other"; why: string };

/** Is the archive already at `name` this very archive? */
async function compareExisting(p: Place, a: Archive, name: string): Promise<Existing> {
  const { t, entries } = p, workDir = p.n.workDir;
  const there = entries.get(name)!;
  const hasSide = entries.has(sidecarName(name));
  if (there.size !== a.size) {
    const damaged = hasSide && (await remoteSha(t, name, workDir)) === a.sha256;
    return {
      kind: "other",
      why: damaged
        ? `its sidecar names this archive's sha256 but it has ${there.size} bytes, not ${a.size}: that copy is damaged`
        : `different content (${there.size} bytes)`,
    };
  }
  const recorded = entriesAt(p.cat, t.location).find((e) => e.name === name);
  const side = hasSide ? await remoteSha(t, name, workDir) : undefined;
  const claimed = side === a.sha256 || recorded?.sha256 === a.sha256;
  if (claimed && !checksum(p)) {
    return {
      kind: "same",
      sidecar: hasSide,
      how: side === a.sha256 ? "same size and sidecar sha256" : "same size, sha256 in the catalogue",
    };
  }
  if (hasSide && side !== undefined && side !== a.sha256) {
    return { kind: "other", why: "different content (its sidecar has another sha256)" };
  }
  // No sidecar to trust (or verify: checksum): read it back (or have the destination hash it).
  const { sha256: got, how } = await storedSha(t, name, workDir);
  if (got === a.sha256) return { kind: "same", sidecar: hasSide, how: `same sha256, ${how}` };
  return { kind: "other", why: `different content (sha256 ${got.slice(0, 16)}… ${how})` };
}

/**
 * The name tonight's archive is stored under: its own, or the next free `-N` when another archive has it. When the
 * archive there is this very one, the night only finishes what is missing (its sidecar, its catalogue record) and
 * that is the outcome.
 */
async function freeName(p: Place, a: Archive): Promise<string | Done<Stored | undefined>> {
  const { n, t } = p;
  let name = a.name;
  for (let seq = 2; p.entries.has(name); seq++) {
    const ex = await compareExisting(p, a, name);
    if (ex.kind === "same") return await n.writes.completeExisting(p, a, name, ex);
    const next = formatName(n.config.archive.name, n.runDate, n.config.name, seq) + (isEncrypted(a.name) ? AGE_SUFFIX : "");
    n.log.warn("store", `${name} already exists on ${t.location} with ${ex.why}: keeping it, storing this one as ${next}`);
    name = next;
  }
  return name;
}

/** This very archive is already at `name`: complete what is missing (its sidecar, its catalogue record). */
export async function completeExisting(p: Place, a: Archive, name: string, ex: Same): Promise<Done<Stored>> {
  const { n, t } = p;
  const done: string[] = [];
  if (!ex.sidecar) {
    await putSidecar(t, a.sidecarPath, a.sha256, name);
    done.push(`uploaded its missing ${sidecarName(name)}`);
  }
  if (!entriesAt(readCatalogue(n.config.state_dir, n.config.name), t.location).some((e) => e.name === name)) {
    record(p, a, name, a.catalogueAs ?? {});
    done.push("recorded it in the catalogue");
  }
  return {
    status: "ok",
    message: `${name} is already on ${t.location} (${ex.how})${done.length ? `: ${done.join(", ")}` : ": nothing to upload"}`,
    value: stored(p, a, name),
  };
}

/** Upload under temporary names, check sizes (and sha256 with verify: checksum), rename the sidecar then the archive. */
export async function upload(p: Place, a: Archive): Promise<Done<Stored>> {
  const { n, t, entries } = p, name = a.name, side = sidecarName(name);
  if (entries.has(side)) {
    // A sidecar of ours without its archive (a run died between the two renames): it goes before ours comes.
    await t.remove(side);
    n.log.warn("store", `removed ${side}, a sidecar without its archive left by an interrupted run`);
  }
  const sideSize = (await Deno.stat(a.sidecarPath)).size;
  n.log.info("store", `uploading ${name} (${formatSize(a.size)}) to ${t.location}`);
  const verified = await putInPlace(p, a, sideSize);
  const list = await t.list();
  const size = checkSize(list, name, a.size, t.location);
  checkSize(list, side, sideSize, t.location);
  record(p, a, name, a.catalogueAs ?? {});
  return {
    status: "ok",
    message: `stored ${name} (${formatSize(size)}, ${verified}) and ${side} on ${t.location}`,
    value: stored(p, a, name),
  };
}

/** The temporary names, their checks and the two renames; on any failure what was put is removed. Says how it was verified. */
async function putInPlace(p: Place, a: Archive, sideSize: number): Promise<string> {
  const { n, t } = p, name = a.name, side = sidecarName(name);
  const tmpA = tempName(name), tmpS = tempName(side);
  let sideInPlace = false;
  try {
    // A progress line for the upload where the transport can tell how far it is (see Transport.put).
    n.progress.start("upload", a.size);
    await t.put(a.path, tmpA, n.progress.shown ? (k) => n.progress.update(k) : undefined).finally(() => n.progress.end());
    await t.put(a.sidecarPath, tmpS);
    const list = await t.list();
    checkSize(list, tmpA, a.size, t.location);
    checkSize(list, tmpS, sideSize, t.location);
    let verified = "size verified";
    if (checksum(p)) {
      const { sha256: got, how } = await storedSha(t, tmpA, n.workDir);
      if (got !== a.sha256) {
        throw new ArchivistError(
          "store",
          `${name} on ${t.location} (${how}) has sha256 ${got}, expected ${a.sha256}: the stored copy is damaged (removed)`,
          "check the destination's storage; the state was not advanced",
          { code: "checksum_mismatch" },
        );
      }
      verified = how === "read back" ? "sha256 verified by reading it back" : "sha256 verified, hashed by the destination";
    }
    await t.rename(tmpS, side);
    sideInPlace = true;
    await t.rename(tmpA, name);
    return verified;
  } catch (e) {
    for (const k of [tmpA, tmpS, ...(sideInPlace ? [side] : [])]) await t.remove(k).catch(() => {});
    throw e;
  }
}

/**
 * check.on_unchanged: link: tonight's name becomes a hard link to the archive tonight's dump equals (its sidecar
 * first, as for an upload), recorded with that archive's sha256 and dump. Undefined when that archive is not on the
 * destination as the catalogue knows it, or its bytes are not the ones recorded (read and hashed now: a link to
 * damaged bytes would leave no restorable copy of tonight's good dump): then tonight's archive is stored as usual.
 */
async function linkUnchanged(p: Place, a: Archive, old: string): Promise<Done<Stored> | undefined> {
  const { n, t, entries } = p;
  if (isEncrypted(old) !== isEncrypted(a.name)) {
    // archive.encrypt was turned on or off: the archive it equals is in the other form; tonight's is stored whole.
    n.log.info(
      "store",
      `${old} is ${isEncrypted(old) ? "" : "not "}encrypted and tonight's archive is${
        isEncrypted(a.name) ? "" : " not"
      }: storing it instead of a link`,
    );
    return undefined;
  }
  const rec = entriesAt(p.cat, t.location).findLast((e) => e.name === old);
  const there = entries.get(old);
  if (!rec || !there || there.size !== rec.size) {
    const where = !there ? "no longer" : "not as catalogued";
    n.log.warn(
      "store",
      `${old}, the archive tonight's dump equals, is ${where} on ${t.location}: storing tonight's archive instead of a link`,
    );
    return undefined;
  }
  const { sha256: got } = await storedSha(t, old, n.workDir);
  if (got !== rec.sha256) {
    p.notes.push(
      `${old}, the archive tonight's dump equals, has sha256 ${got} on ${t.location} where the catalogue recorded ${rec.sha256}: its bytes are damaged; tonight's archive is stored whole instead of a link to it (run archivist check --all)`,
    );
    return undefined;
  }
  return await n.writes.link(p, a, old, rec);
}

/** Make `a.name` a hard link to `old` (or a copy), with its own sidecar first, and record it with `old`'s identity. */
export async function makeLink(p: Place, a: Archive, old: string, rec: StoredRecord): Promise<Done<Stored>> {
  const { n, t, entries } = p, name = a.name, side = sidecarName(name);
  if (entries.has(side)) {
    await t.remove(side);
    n.log.warn("store", `removed ${side}, a sidecar without its archive left by an interrupted run`);
  }
  let how: "linked" | "copied";
  let sideSize: number;
  try {
    sideSize = await putSidecar(t, a.sidecarPath, rec.sha256, name);
    how = await t.link!(old, name);
  } catch (e) {
    for (const k of [tempName(side), side]) await t.remove(k).catch(() => {});
    throw e;
  }
  const list = await t.list();
  checkSize(list, name, rec.size, t.location);
  checkSize(list, side, sideSize, t.location);
  const linked = { ...a, size: rec.size, sha256: rec.sha256 };
  record(p, linked, name, { dumpName: rec.dumpName, dumpSize: rec.dumpSize, dumpSha256: rec.dumpSha256, linkOf: old });
  return {
    status: "ok",
    message: how === "linked"
      ? `${name} is a hard link to ${old} (the same data, one copy on disk), with its own ${side}, on ${t.location}`
      : `${name} is a copy of ${old} (the same data; this filesystem has no hard links), with its own ${side}, on ${t.location}`,
    value: stored(p, linked, name),
  };
}
