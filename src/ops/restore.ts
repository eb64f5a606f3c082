/**
 * `archivist restore [NAME|latest] [--to DIR]`: download an archive and its sidecar from the destination, check
 * the sha256, extract the dump, print its path. Nothing is left half-written: files are written under hidden
 * temporary names and renamed only once complete and verified.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import fs from "node:fs";
import { ArchivistError, asArchivistError, errMsg } from "../errors.ts";
import type { Config } from "../config/load.ts";
import { formatSize } from "../config/units.ts";
import { sidecarName } from "../formats/naming.ts";
import { entriesAt, readCatalogue } from "../records/catalogue.ts";
import { buildInventory } from "../retention/inventory.ts";
import type { Transport } from "../transports/transport.ts";
import type { Logger } from "../report/log.ts";
import { GcPacer } from "../os/memory.ts";
import type { FingerprintWorker } from "../formats/fingerprint.ts";

function fail(message: string, hint = "", code = "restore"): never {
  throw new ArchivistError("restore", message, hint, { code });
}

/**
 * Pick the archive: an exact name, or for "latest" the archive stored last (the catalogue's order, not the date in
 * the name: a clock that was wrong once cannot make an old archive "latest"). When that one is incomplete, an older
 * complete one only with `fallback` (and `log` says which was refused and why): never silently.
 */
export async function pickArchive(
  t: Transport,
  cfg: Config,
  wanted: string,
  now: Date,
  opts: { fallback?: boolean; log?: Logger } = {},
): Promise<string> {
  const list = await t.list();
  if (wanted !== "latest") {
    if (!list.some((e) => e.name === wanted)) {
      fail(`no archive ${wanted} on ${t.location}`, "see `archivist list` for the archives there", "missing");
    }
    return wanted;
  }
  const inv = buildInventory(
    list,
    readCatalogue(cfg.state_dir, cfg.name),
    t.location,
    cfg.archive.name,
    cfg.name,
    now,
    cfg.archive.timezone,
  );
  const best = inv.archives.find((a) => a.complete);
  const newest = inv.archives[0];
  if (best && newest !== best) {
    const refused = inv.archives.slice(0, inv.archives.indexOf(best)).map((a) => `${a.name} (${a.problem ?? "incomplete"})`).join(", ");
    if (!opts.fallback) {
      fail(
        `the newest archive is not complete: ${refused}; refusing to restore an older one without being told`,
        `restore ${best.name}, the newest complete one, with: archivist restore latest --fallback (or name it); see archivist list`,
        "incomplete",
      );
    }
    opts.log?.warn(
      "restore",
      `--fallback: the newest archive is not complete (${refused}): restoring ${best.name}, the newest complete one`,
    );
  }
  if (!best) {
    fail(
      inv.archives.length
        ? `no complete archive on ${t.location} (${inv.archives.length} without a sidecar or with a wrong size)`
        : `no archive matching ${cfg.archive.name} on ${t.location}`,
      "see `archivist list`",
      "missing",
    );
  }
  return best.name;
}

/**
 * An archive's sha256 `got` held against its sidecar's text and the sha256 the catalogue recorded when it was stored.
 * When they disagree, the catalogue (written before the archive was renamed into place) tells which one is damaged:
 * an archive that still has the recorded sha256 is intact, and only its sidecar needs rewriting.
 */
export function judgeSidecar(
  name: string,
  got: string,
  sidecar: string | undefined,
  recorded: string | undefined,
): { ok: true; sidecarDamaged?: string } | { ok: false; message: string } {
  const want = sidecar === undefined ? undefined : /^([0-9a-f]{64})\s/.exec(sidecar)?.[1];
  if (want === got) return { ok: true };
  const what = want ? `says sha256 ${want}` : sidecar === undefined ? "cannot be read" : "holds no sha256";
  if (recorded === got) {
    return {
      ok: true,
      sidecarDamaged: `${
        sidecarName(name)
      } ${what}, but ${name} has the sha256 recorded when it was stored (${got}): the archive is intact, its sidecar damaged (rewrite it: echo "${got}  ${name}" > ${
        sidecarName(name)
      })`,
    };
  }
  return {
    ok: false,
    message: want
      ? `checksum mismatch for ${name}: sha256 ${got}, the sidecar says ${want}${
        recorded ? ` and the catalogue ${recorded}` : ""
      }: the archive is damaged or was changed`
      : `${sidecarName(name)} ${what}, and ${name} has no sha256 on record to trust instead`,
  };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path);
  for await (const c of f.readable) h.update(c);
  return h.digest("hex");
}

/** Where the first regular file of a .tgz goes while it is read. */
export interface TgzSink {
  /** The entry starts: its name in the tar and its size. */
  open(name: string, size: number): Promise<void>;
  write(chunk: Uint8Array): Promise<void>;
  /** The entry was read whole. */
  done(): Promise<void>;
  /** Reading failed: undo what `open` began. */
  abort(): Promise<void>;
}

/**
 * Read a .tgz to its end and hand its first regular file to `sink` (ustar and pax headers, as pack writes them).
 * Fails when the archive is damaged, holds no file, or ends inside the file.
 */
export async function readTgz(tgz: string, sink: TgzSink): Promise<{ name: string; size: number }> {
  // 256 KiB reads: a 1 MiB read of the archive inflates to ~6.6 MiB at once, which raised the peak RSS by ~20 MiB.
  const gunzip = fs.createReadStream(tgz, { highWaterMark: 256 << 10 }).pipe(zlib.createGunzip({ chunkSize: 256 << 10 }));
  let buf: Uint8Array = new Uint8Array(0);
  let pax: Record<string, string> = {};
  let opened = false, entry = "";
  let remaining = 0, pad = 0, size = 0, state: "header" | "data" | "skip" | "pax" = "header";
  let paxBuf: number[] = [];
  const td = new TextDecoder();
  const str = (b: Uint8Array) => td.decode(b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)));
  const pacer = new GcPacer();
  try {
    for await (const chunk of gunzip as AsyncIterable<Uint8Array>) {
      pacer.add(chunk.length); // the pieces before this one are written or hashed
      if (buf.length === 0) buf = chunk; // the usual case inside the dump: no copy
      else {
        const merged = new Uint8Array(buf.length + chunk.length);
        merged.set(buf);
        merged.set(chunk, buf.length);
        buf = merged;
      }
      for (;;) {
        if (state === "header") {
          if (buf.length < 512) break;
          const h = buf.subarray(0, 512);
          buf = buf.subarray(512);
          if (h.every((b) => b === 0)) continue;
          const type = String.fromCharCode(h[156] || 48);
          const len = pax.size ? Number(pax.size) : parseInt(str(h.subarray(124, 136)).trim() || "0", 8);
          const name = pax.path ?? ((str(h.subarray(345, 500)) ? str(h.subarray(345, 500)) + "/" : "") + str(h.subarray(0, 100)));
          pax = {};
          remaining = len;
          pad = (512 - (len % 512)) % 512;
          if (type === "x") {
            state = "pax";
            paxBuf = [];
          } else if ((type === "0" || type === "\0") && !opened) {
            await sink.open(name, len);
            opened = true;
            entry = name;
            size = len;
            state = "data";
          } else state = "skip";
          continue;
        }
        if (remaining > 0) {
          if (!buf.length) break;
          const n = Math.min(remaining, buf.length);
          const part = buf.subarray(0, n);
          if (state === "data") await sink.write(part);
          else if (state === "pax") paxBuf.push(...part);
          remaining -= n;
          buf = buf.subarray(n);
          if (remaining > 0) break;
        }
        if (pad > 0) {
          const n = Math.min(pad, buf.length);
          pad -= n;
          buf = buf.subarray(n);
          if (pad > 0) break;
        }
        if (state === "pax") {
          for (const rec of td.decode(new Uint8Array(paxBuf)).split("\n")) {
            const m = /^\d+ ([^=]+)=(.*)$/.exec(rec);
            if (m) pax[m[1]] = m[2];
          }
        }
        state = "header";
      }
    }
  } catch (e) {
    if (opened) await sink.abort();
    if (e instanceof ArchivistError) throw e;
    fail(`cannot read ${tgz}: ${errMsg(e)}`, "the archive is damaged");
  }
  if (!opened) fail(`${tgz} holds no file`, "the archive is damaged or not one of ours");
  if ((state as string) === "data" && remaining > 0) {
    await sink.abort();
    fail(`${tgz} ends in the middle of the dump (${remaining} bytes missing)`, "the archive is truncated");
  }
  await sink.done();
  return { name: entry, size };
}

/** Extract the first regular file of a .tgz to `dir` (hidden temp name, renamed when whole); returns its final path. */
export async function extractTgz(tgz: string, dir: string, overwrite: boolean): Promise<{ path: string; size: number }> {
  let out: Deno.FsFile | undefined;
  let tmp = "", final = "";
  const r = await readTgz(tgz, {
    async open(name) {
      const base = name.split("/").pop()!.replace(/^\.+/, "") || "dump.sql";
      final = join(dir, base);
      tmp = join(dir, `.${base}.part`);
      if (!overwrite) {
        try {
          Deno.statSync(final);
          fail(`${final} already exists`, "remove it, or pass --force to overwrite", "exists");
        } catch (e) {
          if (e instanceof ArchivistError) throw e;
        }
      }
      out = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    },
    async write(chunk) {
      let w = 0;
      while (w < chunk.length) w += await out!.write(chunk.subarray(w));
    },
    async done() {
      await out!.sync();
      out!.close();
      await Deno.rename(tmp, final);
    },
    async abort() {
      out?.close();
      if (tmp) await Deno.remove(tmp).catch(() => {});
    },
  });
  return { path: final, size: r.size };
}

/**
 * Read a .tgz through and return the sha256 and size of the file it holds (nothing written). With `worker` (a kept
 * FingerprintWorker: pack's read-back), a file over 16 MiB is hashed on it, on the second core, while this thread
 * gunzips (`archive.verify: true` at 1 GiB: 6.32 → 4.27 s, with the reads below in 256 KiB pieces). The worker
 * is closed when this returns.
 */
export async function hashTgz(
  tgz: string,
  onBytes?: (done: number) => void,
  worker?: FingerprintWorker,
): Promise<{ name: string; size: number; sha256: string }> {
  const h = createHash("sha256");
  let on: FingerprintWorker | undefined;
  let done = 0;
  try {
    const r = await readTgz(tgz, {
      open: (_name, size) => {
        if (worker && size > 16 * 2 ** 20) (on = worker).restart([], { bytes: true, fingerprint: false });
        return Promise.resolve();
      },
      write: async (c) => {
        if (on) {
          const wait = on.update(c);
          if (wait) await wait;
        } else h.update(c);
        onBytes?.(done += c.length);
      },
      done: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    });
    return { ...r, sha256: on ? (await on.digest()).bytesSha256! : h.digest("hex") };
  } finally {
    worker?.close();
  }
}

/** The whole restore. Returns the dump's path. */
export async function restore(
  t: Transport,
  cfg: Config,
  log: Logger,
  wanted: string,
  toDir: string,
  overwrite: boolean,
  now: Date,
  fallback = false,
): Promise<string> {
  const name = await pickArchive(t, cfg, wanted, now, { fallback, log });
  try {
    Deno.mkdirSync(toDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    fail(`cannot create ${toDir}: ${errMsg(e)}`);
  }
  const tgz = join(toDir, `.${name}.part`);
  const side = join(toDir, `.${sidecarName(name)}.part`);
  try {
    log.info("restore", `downloading ${name} from ${t.location}`);
    try {
      await t.download(name, tgz);
    } catch (e) {
      throw asArchivistError("restore", e);
    }
    let sidecarText: string | undefined;
    let sideErr = "";
    try {
      await t.download(sidecarName(name), side);
      sidecarText = await Deno.readTextFile(side);
    } catch (e) {
      sideErr = asArchivistError("restore", e).message;
    }
    const got = await sha256File(tgz);
    const recorded = entriesAt(readCatalogue(cfg.state_dir, cfg.name), t.location).findLast((e) => e.name === name)?.sha256;
    const verdict = judgeSidecar(name, got, sidecarText, recorded);
    if (!verdict.ok) {
      if (sidecarText === undefined) {
        fail(
          `cannot read ${sidecarName(name)} on ${t.location}: ${sideErr}`,
          "without the sidecar the archive cannot be verified",
          "no_sidecar",
        );
      }
      fail(verdict.message, "try an older archive (archivist list), and check the destination's storage", "checksum_mismatch");
    }
    if (verdict.sidecarDamaged) log.warn("restore", verdict.sidecarDamaged);
    else log.info("restore", `${name}: sha256 ${got} matches its sidecar`);
    const r = await extractTgz(tgz, toDir, overwrite);
    log.info("restore", `extracted ${r.path} (${formatSize(r.size)})`);
    return r.path;
  } finally {
    await Deno.remove(tgz).catch(() => {});
    await Deno.remove(side).catch(() => {});
  }
}
