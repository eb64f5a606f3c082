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
import { createHash } from "node:crypto";
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { formatName, isTempName, sidecarName, tempName, tempTarget } from "../formats/naming.ts";
import { appendCatalogue, type Catalogue, entriesAt, readCatalogue, type StoredRecord, vanished } from "../records/catalogue.ts";
import { readState } from "../records/state.ts";
import { parseAny, runDateOf } from "../retention/inventory.ts";
import { clockDoubt } from "../retention/clockcheck.ts";
import { adoptLegacy } from "../retention/adopt.ts";
import { sidecarText } from "./pack.ts";
import type { RunContext, RunData, Step, StepOutcome } from "./types.ts";
import { checkSize, type RemoteEntry, type Transport } from "../transports/transport.ts";

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
    const f = await Deno.open(local);
    const h = createHash("sha256");
    for await (const chunk of f.readable) h.update(chunk);
    return h.digest("hex");
  } finally {
    await Deno.remove(local).catch(() => {});
  }
}

/** Remove upload leftovers of our own archives ("NAME.part" where NAME is an archive or its sidecar of ours). */
async function cleanTemps(ctx: RunContext, t: Transport, entries: RemoteEntry[], patterns: Set<string>): Promise<void> {
  for (const e of entries) {
    if (!isTempName(e.name)) continue;
    const inner = tempTarget(e.name)!.replace(/\.sha256$/, "");
    if (!parseAny(patterns, inner, ctx.config.name)) continue;
    try {
      await t.remove(e.name);
      ctx.log.warn("store", `removed ${e.name} (${formatSize(e.size)}), left by an interrupted upload`);
    } catch (err) {
      ctx.log.warn("store", `cannot remove leftover ${e.name}: ${asArchivistError("store", err).message}`);
    }
  }
}

type Existing = { kind: "same"; sidecar: boolean; how: string } | { kind: "other"; why: string };

/** Is the archive already at `name` this very archive? */
async function compareExisting(
  ctx: RunContext,
  t: Transport,
  data: RunData,
  name: string,
  entries: Map<string, RemoteEntry>,
  cat: Catalogue,
): Promise<Existing> {
  const there = entries.get(name)!;
  const hasSide = entries.has(sidecarName(name));
  if (there.size !== data.archiveSize) {
    const damaged = hasSide && (await remoteSha(t, name, ctx.workDir)) === data.archiveSha256;
    return {
      kind: "other",
      why: damaged
        ? `its sidecar names this archive's sha256 but it has ${there.size} bytes, not ${data.archiveSize}: that copy is damaged`
        : `different content (${there.size} bytes)`,
    };
  }
  const checksum = (ctx.config.destination as { verify?: string }).verify === "checksum";
  const recorded = entriesAt(cat, t.location).find((e) => e.name === name);
  const side = hasSide ? await remoteSha(t, name, ctx.workDir) : undefined;
  const claimed = side === data.archiveSha256 || recorded?.sha256 === data.archiveSha256;
  if (claimed && !checksum) {
    return {
      kind: "same",
      sidecar: hasSide,
      how: side === data.archiveSha256 ? "same size and sidecar sha256" : "same size, sha256 in the catalogue",
    };
  }
  if (hasSide && side !== undefined && side !== data.archiveSha256) {
    return { kind: "other", why: "different content (its sidecar has another sha256)" };
  }
  // No sidecar to trust (or verify: checksum): read it back (or have the destination hash it).
  const { sha256: got, how } = await storedSha(t, name, ctx.workDir);
  if (got === data.archiveSha256) return { kind: "same", sidecar: hasSide, how: `same sha256, ${how}` };
  return { kind: "other", why: `different content (sha256 ${got.slice(0, 16)}… ${how})` };
}

/**
 * check.on_unchanged: link: tonight's name becomes a hard link to the archive tonight's dump equals (its sidecar
 * first, as for an upload), recorded with that archive's sha256 and dump. Undefined when that archive is not on the
 * destination as the catalogue knows it, or its bytes are not the ones recorded (read and hashed now: a link to
 * damaged bytes would leave no restorable copy of tonight's good dump): then tonight's archive is stored as usual,
 * and `warn` says why.
 */
async function linkUnchanged(
  ctx: RunContext,
  t: Transport,
  data: RunData,
  entries: Map<string, RemoteEntry>,
  cat: Catalogue,
  record: (name: string, over: Partial<StoredRecord>) => void,
  warn: (message: string) => void,
): Promise<StepOutcome | undefined> {
  const old = data.linkTo!, name = data.archiveName!, side = sidecarName(name);
  const rec = entriesAt(cat, t.location).findLast((e) => e.name === old);
  const there = entries.get(old);
  if (!rec || !there || there.size !== rec.size) {
    ctx.log.warn(
      "store",
      `${old}, the archive tonight's dump equals, is ${
        !there ? "no longer" : "not as catalogued"
      } on ${t.location}: storing tonight's archive instead of a link`,
    );
    return undefined;
  }
  const { sha256: got } = await storedSha(t, old, ctx.workDir);
  if (got !== rec.sha256) {
    warn(
      `${old}, the archive tonight's dump equals, has sha256 ${got} on ${t.location} where the catalogue recorded ${rec.sha256}: its bytes are damaged; tonight's archive is stored whole instead of a link to it (run archivist check --all)`,
    );
    return undefined;
  }
  if (ctx.options.dryRun) {
    return { status: "ok", message: `dry run: would make ${name} a hard link to ${old} on ${t.location}, with its own ${side}` };
  }
  if (entries.has(side)) {
    await t.remove(side);
    ctx.log.warn("store", `removed ${side}, a sidecar without its archive left by an interrupted run`);
  }
  let how: "linked" | "copied";
  let sideSize: number;
  try {
    sideSize = await putSidecar(t, data.sidecarPath!, rec.sha256, name);
    how = await t.link!(old, name);
  } catch (e) {
    for (const n of [tempName(side), side]) await t.remove(n).catch(() => {});
    throw e;
  }
  const list = await t.list();
  checkSize(list, name, rec.size, t.location);
  checkSize(list, side, sideSize, t.location);
  data.archiveName = name;
  data.archiveSize = rec.size;
  data.archiveSha256 = rec.sha256;
  data.stored = true;
  data.storedLocation = t.location;
  record(name, {
    size: rec.size,
    sha256: rec.sha256,
    dumpName: rec.dumpName,
    dumpSize: rec.dumpSize,
    dumpSha256: rec.dumpSha256,
    linkOf: old,
  });
  return {
    status: "ok",
    message: how === "linked"
      ? `${name} is a hard link to ${old} (the same data, one copy on disk), with its own ${side}, on ${t.location}`
      : `${name} is a copy of ${old} (the same data; this filesystem has no hard links), with its own ${side}, on ${t.location}`,
  };
}

export const storeStep: Step = {
  name: "store",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const t = await ctx.destination("store");
    const cfg = ctx.config;
    const dry = !!ctx.options.dryRun;
    /** What the night must say besides its outcome (a torn catalogue line set aside, a damaged link target). */
    const mended: string[] = [];
    const outcome = await (async (): Promise<StepOutcome> => {
      let list = await t.list();
      const adopted = adoptLegacy(cfg, t.location, list, ctx.log, "store", !dry);
      const cat = readCatalogue(cfg.state_dir, cfg.name, dry ? adopted : []);
      const gone = vanished(cat, t.location, list);
      if (gone) throw gone;
      const patterns = new Set([cfg.archive.name, ...cat.patterns]);
      // The clock is judged before this archive joins the history (it must not vouch for itself).
      const doubt = clockDoubt(ctx.startedAt, cat, readState(cfg.state_dir, cfg.name), cfg.retention.max_age);
      if (doubt) {
        data.clockDoubt = doubt.message;
        ctx.log.warn("store", `clock in doubt: ${doubt.message}; this archive is flagged, retention will delete nothing`);
      }
      if (dry) {
        const temps = list.filter((e) => isTempName(e.name) && parseAny(patterns, tempTarget(e.name)!.replace(/\.sha256$/, ""), cfg.name));
        for (const e of temps) ctx.log.info("store", `dry run: would remove ${e.name}, left by an interrupted upload`);
      } else await cleanTemps(ctx, t, list, patterns);
      if (dry && !data.archivePath) {
        // The dump is unchanged (or unchanged upstream): a real night stores nothing; the preview proves the place.
        const ours = entriesAt(cat, t.location).filter((e) => list.some((l) => l.name === e.name));
        return {
          status: "ok",
          message:
            `dry run: the dump is unchanged: nothing would be stored on ${t.location} (reachable; ${ours.length} archive(s) of this job there${
              ours.length ? `, the last ${ours[ours.length - 1].name}` : ""
            })`,
        };
      }
      const entries = new Map(list.map((e) => [e.name, e]));
      const record = (name: string, over: Partial<StoredRecord> = {}) => {
        const note = appendCatalogue(cfg.state_dir, cfg.name, {
          op: "stored",
          name,
          location: t.location,
          pattern: cfg.archive.name,
          runDate: runDateOf(ctx.startedAt, cfg.archive.timezone),
          storedAt: ctx.clock.now().toISOString(),
          size: data.archiveSize!,
          sha256: data.archiveSha256!,
          dumpName: data.dumpName!,
          dumpSize: data.dumpSize!,
          dumpSha256: data.dumpSha256!,
          runId: ctx.runId,
          origin: "run",
          ...(doubt ? { clock: doubt.flag } : {}),
          ...over,
        });
        if (note) mended.push(note);
      };
      if (cat.bad) {
        mended.push(
          `the catalogue ${cat.path} has ${cat.bad} unreadable line(s): the archives they record are listed as not catalogued and never deleted`,
        );
      }
      if (data.linkTo && t.link && !entries.has(data.archiveName!)) {
        const linked = await linkUnchanged(ctx, t, data, entries, cat, record, (m) => mended.push(m));
        if (linked) return linked;
      }

      let name = data.archiveName!;
      for (let seq = 2; entries.has(name); seq++) {
        const ex = await compareExisting(ctx, t, data, name, entries, cat);
        if (ex.kind === "same" && dry) {
          return {
            status: "ok",
            message: `dry run: ${name} is already on ${t.location} (${ex.how})${
              ex.sidecar ? "" : `; would upload its missing ${sidecarName(name)}`
            }`,
          };
        }
        if (ex.kind === "same") {
          const done: string[] = [];
          if (!ex.sidecar) {
            await putSidecar(t, data.sidecarPath!, data.archiveSha256!, name);
            done.push(`uploaded its missing ${sidecarName(name)}`);
          }
          if (!entriesAt(readCatalogue(cfg.state_dir, cfg.name), t.location).some((e) => e.name === name)) {
            record(name, data.catalogueAs ?? {});
            done.push("recorded it in the catalogue");
          }
          data.archiveName = name;
          data.stored = true;
          data.storedLocation = t.location;
          return {
            status: "ok",
            message: `${name} is already on ${t.location} (${ex.how})${done.length ? `: ${done.join(", ")}` : ": nothing to upload"}`,
          };
        }
        const next = formatName(cfg.archive.name, ctx.runDate, cfg.name, seq);
        ctx.log.warn("store", `${name} already exists on ${t.location} with ${ex.why}: keeping it, storing this one as ${next}`);
        name = next;
      }
      if (name !== data.archiveName) data.archiveName = name;
      await Deno.writeTextFile(data.sidecarPath!, sidecarText(data.archiveSha256!, name), { mode: 0o600 });
      const side = sidecarName(name);
      if (dry) {
        return {
          status: "ok",
          message: `dry run: would upload ${name} (${formatSize(data.archiveSize!)}) and ${side} to ${t.location}${
            entries.has(side) ? `, after removing the orphan ${side}` : ""
          }${doubt ? "; the clock is in doubt: it would be flagged" : ""}`,
        };
      }
      if (entries.has(side)) {
        // A sidecar of ours without its archive (a run died between the two renames): it goes before ours comes.
        await t.remove(side);
        ctx.log.warn("store", `removed ${side}, a sidecar without its archive left by an interrupted run`);
      }
      const tmpA = tempName(name), tmpS = tempName(side);
      const sideSize = (await Deno.stat(data.sidecarPath!)).size;
      ctx.log.info("store", `uploading ${name} (${formatSize(data.archiveSize!)}) to ${t.location}`);
      let verified = "size verified";
      let sideInPlace = false;
      try {
        // A progress line for the upload where the transport can tell how far it is (see Transport.put).
        ctx.progress.start("upload", data.archiveSize);
        await t.put(data.archivePath!, tmpA, ctx.progress.shown ? (n) => ctx.progress.update(n) : undefined)
          .finally(() => ctx.progress.end());
        await t.put(data.sidecarPath!, tmpS);
        list = await t.list();
        checkSize(list, tmpA, data.archiveSize!, t.location);
        checkSize(list, tmpS, sideSize, t.location);
        if ((cfg.destination as { verify?: string }).verify === "checksum") {
          const { sha256: got, how } = await storedSha(t, tmpA, ctx.workDir);
          if (got !== data.archiveSha256) {
            throw new ArchivistError(
              "store",
              `${name} on ${t.location} (${how}) has sha256 ${got}, expected ${data.archiveSha256}: the stored copy is damaged (removed)`,
              "check the destination's storage; the state was not advanced",
              { code: "checksum_mismatch" },
            );
          }
          verified = how === "read back" ? "sha256 verified by reading it back" : "sha256 verified, hashed by the destination";
        }
        await t.rename(tmpS, side);
        sideInPlace = true;
        await t.rename(tmpA, name);
      } catch (e) {
        for (const n of [tmpA, tmpS, ...(sideInPlace ? [side] : [])]) await t.remove(n).catch(() => {});
        throw e;
      }
      list = await t.list();
      const size = checkSize(list, name, data.archiveSize!, t.location);
      checkSize(list, side, sideSize, t.location);
      data.stored = true;
      data.storedLocation = t.location;
      record(name, data.catalogueAs ?? {});
      return { status: "ok", message: `stored ${name} (${formatSize(size)}, ${verified}) and ${side} on ${t.location}` };
    })().catch((e) => {
      throw asArchivistError("store", e);
    });
    mended.push(...(t.notices?.() ?? []));
    if (!mended.length) return outcome;
    for (const m of mended) ctx.log.warn("store", m);
    return { status: "warning", message: `${outcome.message}; ${mended.join("; ")}` };
  },
};
