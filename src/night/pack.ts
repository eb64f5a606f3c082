/**
 * pack: the dump as a dated .tgz with a `sha256sum -c` compatible sidecar, written from the zip itself: the dump is
 * never written uncompressed to work_dir.
 *
 * Two paths (archive.recompress):
 * - **reuse** (`auto`, a deflate entry: nearly every export): nothing is compressed. A gzip file may hold several
 *   members (RFC 1952 §2.2), read as one stream by gzip, GNU tar, bsdtar, Python, pigz and node:zlib: member 1 is
 *   gzip(tar header), member 2 a gzip header + **the entry's deflate bytes copied from the zip** + a trailer with
 *   the entry's CRC-32 and size (both verified by the unzip step, which inflated exactly these bytes), member 3
 *   gzip(tar padding + end blocks). I/O speed; the archive is as small as the zip.
 * - **recompress** (a stored entry, or `always`): the entry is inflated again from the zip (its CRC and size
 *   checked again) and gzip'd at archive.compression_level as one member (node:zlib: native, takes a level).
 *
 * Then (archive.verify, default true) the .tgz is read back through gunzip + the tar reader that restore uses, and
 * must give the dump's name, size and sha256, before anything is uploaded. The archive's sha256 is computed from
 * the bytes as they are written. Deterministic: the same zip gives the same .tgz bytes. Work files are not fsynced (a
 * crash loses the run, not data); the destination's copy is.
 */
import { join } from "node:path";
import { createHash, type Hash } from "node:crypto";
import zlib from "node:zlib";
import fs from "node:fs";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import { AGE_SUFFIX, type AgeRecipients, encryptFile, encrypting, encryptWhileWriting } from "../formats/age.ts";
import { formatName, sidecarName } from "../formats/naming.ts";
import { padding, tarEnd, tarHeader } from "../formats/tar.ts";
import { type ExtractLimits, inflateEntry, rangeStream, type ZipEntry, ZipError } from "../formats/zip.ts";
import { hashTgz } from "../ops/restore.ts";
import type { FingerprintWorker } from "../formats/fingerprint.ts";
import { GZIP_HEADER, le32, parallelGzip } from "../formats/pgzip.ts";
import type { Archive, Done, Dump, Night, PrePacked } from "./types.ts";

/** The sidecar's text: one `sha256sum` line. */
export function sidecarText(sha256: string, archiveName: string): string {
  return `${sha256}  ${archiveName}\n`;
}

export type PackPath = "reuse" | "recompress";

/** Which path a run takes for this entry, and why (the log says it). */
export function packPath(entry: Pick<ZipEntry, "method">, recompress: "auto" | "always"): { path: PackPath; why: string } {
  if (recompress === "always") return { path: "recompress", why: "archive.recompress: always" };
  if (entry.method === 8) return { path: "reuse", why: "the entry is deflate: its compressed bytes are copied, not recompressed" };
  return { path: "recompress", why: "the entry is stored uncompressed in the zip" };
}

export interface PackInput {
  zipPath: string;
  entry: ZipEntry;
  /** Where the entry's compressed bytes start in the zip (from the unzip step). */
  dataStart: number;
  /** The dump's name inside the tar. */
  memberName: string;
  /** tar mtime (the entry's own time: the same dump gives a byte-identical archive). */
  mtime: number;
  level: number;
  recompress: "auto" | "always";
  limits: ExtractLimits;
  /** Compression workers for the recompress path (1: node:zlib in this thread). */
  threads?: number;
  /** Progress: bytes of the zip copied (reuse) or of the dump compressed (recompress) so far. */
  onBytes?: (done: number) => void;
}

export interface Packed {
  size: number;
  sha256: string;
  path: PackPath;
  why: string;
}

/** Writes to a file, counting and hashing what goes through. */
class HashingWriter {
  readonly hash: Hash = createHash("sha256");
  written = 0;
  /** `hashing: false`: only count (what is written goes on through age, whose output is what gets hashed). */
  constructor(private f: Deno.FsFile, private hashing = true) {}
  async write(b: Uint8Array): Promise<void> {
    if (this.hashing) this.hash.update(b);
    this.written += b.length;
    let w = 0;
    while (w < b.length) w += await this.f.write(b.subarray(w));
  }
}

/** The reuse path's bytes before and after the entry's deflate data: member 1, member 2's header; its trailer, member 3. */
function reuseFrame(memberName: string, entry: Pick<ZipEntry, "size" | "crc32">, mtime: number, level: number) {
  const head = tarHeader(memberName, entry.size, mtime);
  const pad = padding(entry.size);
  const tail = new Uint8Array(pad.length + tarEnd(head.length + entry.size + pad.length).length);
  return {
    before: [zlib.gzipSync(head, { level }), GZIP_HEADER],
    after: [le32(entry.crc32), le32(entry.size % 2 ** 32), zlib.gzipSync(tail, { level })],
  };
}

async function packReuse(p: PackInput, outPath: string, signal?: AbortSignal): Promise<{ size: number; sha256: string }> {
  const onBytes = p.onBytes ?? (() => {});
  const { entry } = p;
  const frame = reuseFrame(p.memberName, entry, p.mtime, p.level);
  const out = await Deno.open(outPath, { write: true, create: true, truncate: true, mode: 0o600 });
  const zip = await Deno.open(p.zipPath, { read: true });
  try {
    const w = new HashingWriter(out);
    for (const b of frame.before) await w.write(b);
    let copied = 0;
    for await (const chunk of rangeStream(zip, p.dataStart, entry.compressedSize, entry.name)) {
      signal?.throwIfAborted();
      copied += chunk.length;
      await w.write(chunk);
      onBytes(copied);
    }
    if (copied !== entry.compressedSize) {
      throw new ZipError("corrupt", `the zip changed while packing (${copied} of ${entry.compressedSize} bytes)`);
    }
    for (const b of frame.after) await w.write(b);
    return { size: w.written, sha256: w.hash.digest("hex") };
  } finally {
    zip.close();
    out.close();
  }
}

/**
 * The reuse path written while the zip downloads: unzip's early pass (./early.ts) passes the entry's deflate bytes
 * through `tap` as it reads them, and `finish` adds the trailer once the pass has checked them. pack adopts the file
 * when the night's entry, name, time and level are the ones it was written for (`packedFits`).
 * `hashing: false`: the file is age's FIFO (age's output is what gets hashed); `ahead`: bytes the writes may lag
 * behind the pass (0: in step).
 */
export async function packAlong(
  outPath: string,
  fit: PrePacked["fit"],
  { hashing = true, ahead = 0 } = {},
): Promise<{ tap: Transform; finish(): Promise<PrePacked>; discard(): Promise<void> }> {
  const frame = reuseFrame(fit.memberName, fit, fit.mtime, fit.level);
  const out = await Deno.open(outPath, { write: true, create: true, truncate: true, mode: 0o600 });
  const w = new HashingWriter(out, hashing);
  for (const b of frame.before) await w.write(b);
  const behind = new WriteBehind(w, ahead);
  const tap = new Transform({
    transform(chunk: Uint8Array, _enc, cb) {
      behind.push(chunk).then(() => cb(null, chunk), cb);
    },
  });
  const close = () => {
    try {
      out.close();
    } catch { /* closed */ }
  };
  return {
    tap,
    async finish() {
      await behind.drained();
      for (const b of frame.after) await w.write(b);
      close();
      return { path: outPath, size: w.written, sha256: w.hash.digest("hex"), fit, encrypted: false };
    },
    async discard() {
      close();
      await Deno.remove(outPath).catch(() => {});
    },
  };
}

/**
 * The tap's writes, behind the pass: a piece goes on to the inflate at once and is written in order after the ones
 * before it; the pass waits only when more than `ahead` bytes are queued (0: for every piece). Through age, the file
 * is a FIFO that age reads at its own pace on a busy second core: written in step, every piece waited for age (the
 * encrypted night's pass 200-290 ms longer than the plain one's; docs/TECHNICAL.md, "Performance"). The pieces are
 * the download's own buffers (followRange allocates each), so holding them is safe; held, they outlive minor
 * collections and wait for a major one, hence a small `ahead`, and none for a plain file (4 MiB there: a 4 GiB night
 * peaked at 139 MiB once, for no gain).
 */
class WriteBehind {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private failed?: unknown;
  constructor(private readonly w: HashingWriter, private readonly ahead: number) {}

  /** Queue `b`: resolves at once, or, past `ahead`, once everything queued is written; rejects after a failed write. */
  push(b: Uint8Array): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    this.queued += b.length;
    const written = this.tail = this.tail.then(() => this.w.write(b)).then(
      () => void (this.queued -= b.length),
      (e) => Promise.reject(this.failed ??= e),
    );
    written.catch(() => {}); // seen by the next push or by drained()
    return this.queued > this.ahead ? written : Promise.resolve();
  }

  /** Everything queued is written (or the first failure). */
  drained(): Promise<void> {
    return this.tail;
  }
}

/** What packAlong gives: the tap for the deflate bytes, and the end of the file either way. */
export type Along = Awaited<ReturnType<typeof packAlong>>;

/** How far the writes into age's FIFO may lag behind the early pass. */
const AGE_AHEAD = 2 << 20;

/**
 * packAlong through age (archive.encrypt without archive.verify): the .tgz goes into age's FIFO as the early pass
 * reads it, and only `outPath` (the .tgz.age) lands on the disk, as on pack's own encrypted path. Its size and
 * sha256 are the encrypted file's. Undefined when age could not start (pack then fails with age's own words).
 */
export async function packAlongSealed(
  outPath: string,
  fit: PrePacked["fit"],
  to: AgeRecipients,
  signal: AbortSignal,
): Promise<Along | undefined> {
  let handed!: (a: Along) => void;
  let release!: () => void;
  const got = new Promise<Along>((r) => handed = r);
  const released = new Promise<void>((r) => release = r);
  const sealing = encryptWhileWriting(
    outPath,
    to,
    async (fifo) => (handed(await packAlong(fifo, fit, { hashing: false, ahead: AGE_AHEAD })), await released),
    signal,
  );
  const along = await Promise.race([got, sealing.then(() => undefined, () => undefined)]);
  if (!along) return undefined;
  return {
    tap: along.tap,
    async finish() {
      const p = await along.finish();
      release();
      const { sealed } = await sealing;
      return { ...p, path: outPath, size: sealed.size, sha256: sealed.sha256, encrypted: true };
    },
    async discard() {
      await along.discard();
      release();
      await sealing.catch(() => {});
      await Deno.remove(outPath).catch(() => {});
    },
  };
}

/** Whether the .tgz written while downloading is the one pack would write for `dump` tonight. */
export function packedFits(packed: PrePacked, dump: Dump, level: number): boolean {
  const f = packed.fit, e = dump.entry;
  return f.memberName === dump.name && f.mtime === dump.mtime && f.level === level && f.crc32 === e.crc32 && f.size === e.size &&
    f.compressedSize === e.compressedSize;
}

/** The tar stream of one file whose content comes from `chunks` (which must give exactly `size` bytes). */
async function* tarOf(name: string, size: number, mtime: number, chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const head = tarHeader(name, size, mtime);
  yield head;
  let sent = 0;
  for await (const c of chunks) {
    sent += c.length;
    yield c;
  }
  if (sent !== size) throw new Error(`the dump changed size while packing (${sent} bytes read, ${size} expected)`);
  yield padding(size);
  yield tarEnd(head.length + size + padding(size).length);
}

/**
 * tar + gzip (one member, `level`) of `chunks` into `outPath`; the size and sha256 of what was written. With
 * `threads` > 1 the deflate runs on that many workers (src/formats/pgzip.ts), else on node:zlib in this thread.
 */
export async function packStream(
  chunks: AsyncIterable<Uint8Array>,
  name: string,
  size: number,
  outPath: string,
  level: number,
  mtime: number,
  signal?: AbortSignal,
  threads = 1,
): Promise<{ size: number; sha256: string }> {
  if (threads > 1) {
    const out = await Deno.open(outPath, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const w = new HashingWriter(out);
      for await (const piece of parallelGzip(tarOf(name, size, mtime, chunks), level, threads)) {
        signal?.throwIfAborted();
        await w.write(piece);
      }
      return { size: w.written, sha256: w.hash.digest("hex") };
    } finally {
      out.close();
    }
  }
  const hash = createHash("sha256");
  let written = 0;
  const tap = new Transform({
    transform(chunk: Uint8Array, _enc, cb) {
      hash.update(chunk);
      written += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(
    Readable.from(tarOf(name, size, mtime, chunks)),
    zlib.createGzip({ level }),
    tap,
    fs.createWriteStream(outPath, { mode: 0o600 }),
    ...(signal ? [{ signal }] : []),
  );
  return { size: written, sha256: hash.digest("hex") };
}

/**
 * Write a file as a .tgz holding it as `entryName` (one gzip member). For tools and tests; a run packs from the zip.
 * @example await packFile("/tmp/dump", "dump.sql", "/tmp/20261122.tgz", 6, Date.now() / 1000)
 */
export async function packFile(dumpPath: string, entryName: string, outPath: string, level: number, mtime: number, threads = 1) {
  const f = await Deno.open(dumpPath, { read: true });
  try {
    return await packStream(f.readable, entryName, (await f.stat()).size, outPath, level, mtime, undefined, threads);
  } finally {
    try {
      f.close();
    } catch { /* closed by its stream */ }
  }
}

/** Write the .tgz of the zip's entry at `outPath` by the path packPath() picks. Removes `outPath` on failure. */
export async function packArchive(p: PackInput, outPath: string, signal?: AbortSignal): Promise<Packed> {
  const { path, why } = packPath(p.entry, p.recompress);
  try {
    let fed = 0;
    const counted = async function* (src: AsyncIterable<Uint8Array>) {
      for await (const c of src) {
        yield c;
        p.onBytes?.(fed += c.length);
      }
    };
    const r = path === "reuse" ? await packReuse(p, outPath, signal) : await packStream(
      counted(inflateEntry(p.zipPath, p.entry, { ...p.limits, signal })),
      p.memberName,
      p.entry.size,
      outPath,
      p.level,
      p.mtime,
      signal,
      p.threads ?? 1,
    );
    return { ...r, path, why };
  } catch (e) {
    await Deno.remove(outPath).catch(() => {});
    throw e;
  }
}

/**
 * Read the written .tgz back (gunzip of every member + the tar reader restore uses) and require the dump's name,
 * size and sha256: what is uploaded is proven to restore to the dump that was verified.
 */
export async function proveArchive(
  outPath: string,
  want: { name: string; size: number; sha256: string },
  onBytes?: (done: number) => void,
  worker?: FingerprintWorker,
): Promise<void> {
  const got = await hashTgz(outPath, onBytes, worker).catch((e) => {
    throw new ArchivistError("pack", `the archive just written cannot be read back: ${e instanceof Error ? e.message : e}`, HINT_PROOF);
  });
  const diff = [
    got.name !== want.name && `name ${JSON.stringify(got.name)} instead of ${JSON.stringify(want.name)}`,
    got.size !== want.size && `size ${got.size} instead of ${want.size}`,
    got.sha256 !== want.sha256 && `sha256 ${got.sha256} instead of ${want.sha256}`,
  ].filter(Boolean);
  if (diff.length) {
    throw new ArchivistError("pack", `the archive just written does not read back to the verified dump: ${diff.join(", ")}`, HINT_PROOF);
  }
}

const HINT_PROOF = "nothing was stored; check work_dir's disk (dmesg), run again, and report it with the log if it repeats";

/**
 * The recipients when tonight's .tgz goes straight through age (archive.encrypt without archive.verify: the plain
 * archive never lands on the disk); else undefined (with archive.verify it is written, proven, then encrypted).
 * pack and the early pass both ask.
 */
export function sealedAsWritten(a: Night["config"]["archive"]): AgeRecipients | undefined {
  return encrypting(a.encrypt) && !a.verify ? a.encrypt : undefined;
}

/** pack: the dump as the night's .tgz and sidecar in the work dir, read back when archive.verify asks. */
export async function pack(n: Night, dump: Dump): Promise<Done<Archive>> {
  const plain = formatName(n.config.archive.name, n.runDate, n.config.name);
  const enc = n.config.archive.encrypt;
  const name = encrypting(enc) ? plain + AGE_SUFFIX : plain;
  const out = join(n.workDir, plain);
  try {
    const t0 = performance.now();
    let r: { size: number; sha256: string; why?: string };
    const sealTo = sealedAsWritten(n.config.archive);
    if (sealTo) {
      r = await adoptPacked(n, dump, join(n.workDir, name)) ??
        (await encryptWhileWriting(join(n.workDir, name), sealTo, (fifo) => packDump(n, dump, fifo), n.signal)).sealed;
    } else {
      r = await adoptPacked(n, dump, out) ?? await packDump(n, dump, out);
      if (n.config.archive.verify) await readBack(n, dump, out);
      if (encrypting(enc)) {
        // The .tgz just proven is encrypted (one more read, from the page cache); only the encrypted file stays.
        r = await encryptFile(out, join(n.workDir, name), enc, n.signal);
        await Deno.remove(out).catch(() => {});
      }
    }
    // The zip is no longer needed: free the space before the upload.
    await Deno.remove(dump.zip.path).catch(() => {});
    const ratio = dump.size ? ` (${((r.size / dump.size) * 100).toFixed(1)}% of the dump)` : "";
    let how = "";
    if (encrypting(enc)) {
      const keys = enc.age_recipients.length === 1 && !enc.age_recipients_file ? "1 recipient" : "the recipients of archive.encrypt";
      const when = r.why === EARLY ? "while the zip downloaded" : `(${formatDuration(performance.now() - t0)} with the packing)`;
      how = `, encrypted with age to ${keys} ${when}`;
    }
    const sidecarPath = join(n.workDir, sidecarName(name));
    await Deno.writeTextFile(sidecarPath, sidecarText(r.sha256, name), { mode: 0o600 });
    return {
      status: "ok",
      message: `${name}: ${formatSize(r.size)}${ratio}${how}, sha256 ${r.sha256}`,
      value: {
        name,
        path: join(n.workDir, name),
        size: r.size,
        sha256: r.sha256,
        sidecarPath,
        dump: { name: dump.name, size: dump.size, sha256: dump.sha256 },
      },
    };
  } catch (e) {
    await Deno.remove(out).catch(() => {});
    await Deno.remove(join(n.workDir, name)).catch(() => {});
    if (e instanceof ZipError) throw new ArchivistError("pack", e.message, e.hint, { code: e.code, cause: e });
    throw asArchivistError("pack", e, "check free space in work_dir");
  }
}

const EARLY = "written while downloading";

/** The .tgz (or .tgz.age) written while the zip downloaded, moved into place, when it fits tonight's pack (else removed). */
async function adoptPacked(n: Night, dump: Dump, out: string): Promise<Packed | undefined> {
  const packed = dump.packed;
  if (!packed) return undefined;
  const sealed = sealedAsWritten(n.config.archive) !== undefined;
  const fits = packed.encrypted === sealed && packedFits(packed, dump, n.config.archive.compression_level);
  if (packPath(dump.entry, n.config.archive.recompress).path !== "reuse" || !fits) {
    await Deno.remove(packed.path).catch(() => {});
    n.log.debug("pack", "the .tgz written while downloading does not fit this entry: packing again");
    return undefined;
  }
  await Deno.rename(packed.path, out);
  n.log.info("pack", `reusing the zip's deflate stream (${packPath(dump.entry, "auto").why}), written while the zip downloaded`);
  return { size: packed.size, sha256: packed.sha256, path: "reuse", why: EARLY };
}

/** Write the .tgz by the path packPath() picks, saying which. */
function packDump(n: Night, dump: Dump, out: string): Promise<Packed> {
  const a = n.config.archive;
  const { path, why } = packPath(dump.entry, a.recompress);
  const threads = a.threads ?? navigator.hardwareConcurrency ?? 1;
  n.log.info(
    "pack",
    path === "reuse"
      ? `reusing the zip's deflate stream (${why})`
      : `compressing at level ${a.compression_level} on ${threads} thread${threads > 1 ? "s" : ""} (${why})`,
  );
  n.progress.start("pack", path === "reuse" ? dump.entry.compressedSize : dump.entry.size);
  return packArchive(
    {
      zipPath: dump.zip.path,
      entry: dump.entry,
      dataStart: dump.dataStart,
      memberName: dump.name,
      mtime: dump.mtime,
      level: a.compression_level,
      recompress: a.recompress,
      threads,
      onBytes: (k) => n.progress.update(k),
      limits: { maxSize: n.config.check.max_unpacked_size, maxRatio: n.config.check.max_ratio },
    },
    out,
    n.signal,
  ).finally(() => n.progress.end());
}

/** archive.verify: the .tgz restores to the verified dump (on unzip's worker when it kept one: hashTgz closes it). */
async function readBack(n: Night, dump: Dump, out: string): Promise<void> {
  n.progress.start("read back", dump.size);
  const worker = dump.readBackWorker;
  dump.readBackWorker = undefined;
  await proveArchive(out, { name: dump.name, size: dump.size, sha256: dump.sha256 }, (k) => n.progress.update(k), worker)
    .catch(async (e) => {
      await Deno.remove(out).catch(() => {});
      throw e;
    }).finally(() => n.progress.end());
  n.log.info("pack", `read back: the archive restores to the dump (sha256 ${dump.sha256.slice(0, 16)}…)`);
}
