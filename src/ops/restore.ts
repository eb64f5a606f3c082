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
import { hashFile } from "../os/fs.ts";
import { entriesAt, readCatalogue } from "../records/catalogue.ts";
import { buildInventory } from "../retention/inventory.ts";
import type { Transport } from "../transports/transport.ts";
import type { Logger } from "../report/log.ts";
import { GcPacer } from "../os/memory.ts";
import type { FingerprintWorker } from "../formats/fingerprint.ts";
import { decryptFile, isEncrypted } from "../formats/age.ts";

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
  return (await hashFile(path)).sha256;
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
  const tar = new TarWalk(sink);
  const pacer = new GcPacer();
  try {
    for await (const chunk of gunzip as AsyncIterable<Uint8Array>) {
      pacer.add(chunk.length); // the pieces before this one are written or hashed
      await tar.feed(chunk);
    }
  } catch (e) {
    if (tar.opened) await sink.abort();
    if (e instanceof ArchivistError) throw e;
    fail(`cannot read ${tgz}: ${errMsg(e)}`, "the archive is damaged");
  }
  if (!tar.opened) fail(`${tgz} holds no file`, "the archive is damaged or not one of ours");
  if (tar.state === "data" && tar.remaining > 0) {
    await sink.abort();
    fail(`${tgz} ends in the middle of the dump (${tar.remaining} bytes missing)`, "the archive is truncated");
  }
  await sink.done();
  return { name: tar.entry, size: tar.size };
}

const td = new TextDecoder();
const str = (b: Uint8Array) => td.decode(b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)));

/** The tar stream walked as it arrives: headers (ustar, pax), the first regular file's bytes to the sink, the rest skipped. */
class TarWalk {
  buf: Uint8Array = new Uint8Array(0);
  pax: Record<string, string> = {};
  paxBuf: number[] = [];
  opened = false;
  entry = "";
  size = 0;
  remaining = 0;
  pad = 0;
  state: "header" | "data" | "skip" | "pax" = "header";

  constructor(private sink: TgzSink) {}

  async feed(chunk: Uint8Array): Promise<void> {
    if (this.buf.length === 0) this.buf = chunk; // the usual case inside the dump: no copy
    else {
      const merged = new Uint8Array(this.buf.length + chunk.length);
      merged.set(this.buf);
      merged.set(chunk, this.buf.length);
      this.buf = merged;
    }
    while (this.state === "header" ? await this.header() : await this.body());
  }

  /** One 512-byte header, when it is all there. */
  private async header(): Promise<boolean> {
    if (this.buf.length < 512) return false;
    const h = this.buf.subarray(0, 512);
    this.buf = this.buf.subarray(512);
    if (h.every((b) => b === 0)) return true;
    const type = String.fromCharCode(h[156] || 48);
    const len = this.pax.size ? Number(this.pax.size) : parseInt(str(h.subarray(124, 136)).trim() || "0", 8);
    const name = this.pax.path ?? ((str(h.subarray(345, 500)) ? str(h.subarray(345, 500)) + "/" : "") + str(h.subarray(0, 100)));
    this.pax = {};
    this.remaining = len;
    this.pad = (512 - (len % 512)) % 512;
    if (type === "x") {
      this.state = "pax";
      this.paxBuf = [];
    } else if ((type === "0" || type === "\0") && !this.opened) {
      await this.sink.open(name, len);
      this.opened = true;
      this.entry = name;
      this.size = len;
      this.state = "data";
    } else this.state = "skip";
    return true;
  }

  /** A member's bytes and padding, as far as they are there; true when it ended (the next header follows). */
  private async body(): Promise<boolean> {
    if (this.remaining > 0) {
      if (!this.buf.length) return false;
      const n = Math.min(this.remaining, this.buf.length);
      const part = this.buf.subarray(0, n);
      if (this.state === "data") await this.sink.write(part);
      else if (this.state === "pax") this.paxBuf.push(...part);
      this.remaining -= n;
      this.buf = this.buf.subarray(n);
      if (this.remaining > 0) return false;
    }
    if (this.pad > 0) {
      const n = Math.min(this.pad, this.buf.length);
      this.pad -= n;
      this.buf = this.buf.subarray(n);
      if (this.pad > 0) return false;
    }
    if (this.state === "pax") {
      for (const rec of td.decode(new Uint8Array(this.paxBuf)).split("\n")) {
        const m = /^\d+ ([^=]+)=(.*)$/.exec(rec);
        if (m) this.pax[m[1]] = m[2];
      }
    }
    this.state = "header";
    return true;
  }
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
  opts: { fallback?: boolean; identity?: string } = {},
): Promise<string> {
  const name = await pickArchive(t, cfg, wanted, now, { fallback: opts.fallback, log });
  if (isEncrypted(name) && !opts.identity) {
    fail(
      `${name} is encrypted (age): restoring it needs the private key`,
      "give --identity FILE (the key of one of archive.encrypt's recipients), or set archive.encrypt.identity_file",
      "no_identity",
    );
  }
  try {
    Deno.mkdirSync(toDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    fail(`cannot create ${toDir}: ${errMsg(e)}`);
  }
  const tgz = join(toDir, `.${name}.part`);
  const plain = join(toDir, `.${name}.tgz.part`);
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
    if (isEncrypted(name)) {
      await decryptFile(tgz, plain, opts.identity!, name);
      log.info("restore", `${name}: decrypted with ${opts.identity}`);
    }
    const r = await extractTgz(isEncrypted(name) ? plain : tgz, toDir, overwrite);
    log.info("restore", `extracted ${r.path} (${formatSize(r.size)})`);
    return r.path;
  } finally {
    await Deno.remove(plain).catch(() => {});
    await Deno.remove(tgz).catch(() => {});
    await Deno.remove(side).catch(() => {});
  }
}
