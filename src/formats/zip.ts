/**
 * Reading one entry out of a zip file on disk, streaming, with every check a backup needs.
 *
 * The central directory is the source of truth (it is written last, so a cut download loses it, and it holds the
 * real sizes and CRC even when the local header uses a data descriptor). Zip64 archives and entries are supported;
 * stored (0) and deflate (8) are the methods every dump exporter uses, others are refused by name.
 * The entry is inflated with `node:zlib` (native; 3-5× DecompressionStream's throughput here), its CRC-32 computed with
 * `node:zlib` crc32 and its sha256 with `node:crypto` (here, or by the caller: the run's fingerprint worker hashes
 * it on the second core), all in the same pass, so a 20 GiB dump is read once.
 * This is hand-written because no npm library streams one entry of a multi-GiB Zip64 file from disk by random
 * access (fflate works on buffers or forward-only streams of the whole zip).
 */
import zlib from "node:zlib";
import fs from "node:fs";
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
import { GcPacer } from "../os/memory.ts";

/** Why a zip was refused; `code` is stable for tests and the history. */
/** What to do, by error code, when a call site gives no more specific hint: every failure carries one. */
const DEFAULT_HINTS: Record<string, string> = {
  corrupt: "the download or the export is damaged: the next run downloads it again; if it repeats, check the export job on the server",
  corrupt_data: "the download or the export is damaged: the next run downloads it again; if it repeats, check the export job on the server",
  size_mismatch: "the zip's sizes do not agree with its data: the export is damaged or was still being written; check the export job",
  not_zip: "the URL serves something else than the zip: check source.url",
  multi_disk: "export the dump as a single zip file",
  too_large: "raise check.max_unpacked_size if the dump really is that large",
  zip_bomb: "raise check.max_ratio if the dump really compresses that well",
};

export class ZipError extends Error {
  readonly hint: string;
  constructor(readonly code: string, message: string, hint = "") {
    super(message);
    this.name = "ZipError";
    this.hint = hint || DEFAULT_HINTS[code] || "check the export job on the server";
  }
}

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  isDirectory: boolean;
  zip64: boolean;
  /** Modification time (Unix seconds): the extended-timestamp field when present, else the DOS date and time. */
  mtime: number;
}

/** DOS date/time (local time of the zipping machine, taken as UTC: only a stable value is needed) → Unix seconds. */
export function dosTime(date: number, time: number): number {
  const y = 1980 + (date >> 9), mo = (date >> 5) & 15, d = date & 31;
  const h = time >> 11, mi = (time >> 5) & 63, s = (time & 31) * 2;
  return mo >= 1 && mo <= 12 && d >= 1 ? Math.floor(Date.UTC(y, mo - 1, d, h, mi, s) / 1000) : 0;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  zip64: boolean;
  fileSize: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_Z64_LOCATOR = 0x07064b50;
const SIG_Z64_EOCD = 0x06064b50;
const SIG_CDH = 0x02014b50;
const SIG_LFH = 0x04034b50;
const MAX_CD_SIZE = 256 * 1024 * 1024;

const METHOD_NAMES: Record<number, string> = {
  1: "shrink",
  6: "implode",
  9: "deflate64",
  12: "bzip2",
  14: "lzma",
  93: "zstd",
  95: "xz",
  98: "ppmd",
  99: "AES encryption",
};

async function readAt(f: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await f.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}

function u64(v: DataView, o: number): number {
  const n = v.getBigUint64(o, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError("corrupt", "a Zip64 size or offset is beyond 2^53: the zip is corrupt");
  return Number(n);
}

/** Random access to a zip: a local file, or (for `verify`) an HTTP resource read with Range requests. */
export interface ZipSource {
  size: number;
  readAt(offset: number, length: number): Promise<Uint8Array>;
}

/** Read and check the central directory of the zip at `path`. */
export async function readDirectory(path: string): Promise<ZipDirectory> {
  const f = await Deno.open(path, { read: true });
  try {
    const size = (await f.stat()).size;
    return await readDirectoryFrom({ size, readAt: (o, l) => readAt(f, o, l) });
  } finally {
    f.close();
  }
}

/** Read and check the central directory through any random-access source. */
export async function readDirectoryFrom(src: ZipSource): Promise<ZipDirectory> {
  const fileSize = src.size;
  if (fileSize < 22) throw new ZipError("not_zip", `the file is ${fileSize} bytes: too short to be a zip`);
  const tailLen = Math.min(fileSize, 22 + 65535 + 20);
  const tailStart = fileSize - tailLen;
  const tail = await src.readAt(tailStart, tailLen);
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new ZipError(
      "no_central_directory",
      "end of central directory not found: the zip is truncated or not a zip",
      "the download was probably cut short, or the export on the server was still being written",
    );
  }
  const disk = tv.getUint16(eocd + 4, true);
  const cdDisk = tv.getUint16(eocd + 6, true);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  let zip64 = false;
  const eocdAbs = tailStart + eocd;
  if (
    count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff || eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_Z64_LOCATOR
  ) {
    if (eocd < 20 || tv.getUint32(eocd - 20, true) !== SIG_Z64_LOCATOR) {
      throw new ZipError("corrupt", "Zip64 markers present but the Zip64 end-of-central-directory locator is missing");
    }
    const recOff = u64(tv, eocd - 20 + 8);
    const rec = await src.readAt(recOff, 56);
    const rv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    if (rec.length < 56 || rv.getUint32(0, true) !== SIG_Z64_EOCD) {
      throw new ZipError("corrupt", "Zip64 end-of-central-directory record not found where the locator points");
    }
    zip64 = true;
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  } else if (disk !== 0 || cdDisk !== 0) {
    throw new ZipError("multi_disk", "split (multi-disk) zip archives are not supported");
  }
  if (cdOffset + cdSize > eocdAbs || cdSize > MAX_CD_SIZE) {
    throw new ZipError(
      "corrupt",
      `central directory out of bounds (offset ${cdOffset}, size ${cdSize}, file ${fileSize} bytes): the zip is corrupt or truncated`,
    );
  }
  const cd = cdOffset >= tailStart
    ? tail.subarray(cdOffset - tailStart, cdOffset - tailStart + cdSize)
    : await src.readAt(cdOffset, cdSize);
  return { entries: parseCentralDirectory(cd, count), zip64, fileSize };
}

function parseCentralDirectory(cd: Uint8Array, count: number): ZipEntry[] {
  const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const entries: ZipEntry[] = [];
  const dec = new TextDecoder();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cv.getUint32(p, true) !== SIG_CDH) {
      throw new ZipError("corrupt", `central directory entry ${i + 1} of ${count} is damaged`);
    }
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let mtime = dosTime(cv.getUint16(p + 14, true), cv.getUint16(p + 12, true));
    let csize = cv.getUint32(p + 20, true);
    let usize = cv.getUint32(p + 24, true);
    const nlen = cv.getUint16(p + 28, true);
    const xlen = cv.getUint16(p + 30, true);
    const clen = cv.getUint16(p + 32, true);
    let offset = cv.getUint32(p + 42, true);
    if (p + 46 + nlen + xlen + clen > cd.length) throw new ZipError("corrupt", `central directory entry ${i + 1} runs past its end`);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nlen));
    let entryZip64 = false;
    // Zip64 extended information: only the fields that are 0xFFFFFFFF in the header are present, in this order.
    let x = p + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = cv.getUint16(x, true);
      const len = cv.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        if (usize === 0xffffffff) (usize = u64(cv, q), q += 8);
        if (csize === 0xffffffff) (csize = u64(cv, q), q += 8);
        if (offset === 0xffffffff) (offset = u64(cv, q), q += 8);
        entryZip64 = true;
      }
      if (id === 0x5455 && len >= 5 && (cv.getUint8(x + 4) & 1)) mtime = cv.getUint32(x + 5, true); // "UT": Unix mtime
      x += 4 + len;
    }
    entries.push({
      name,
      method,
      flags,
      crc32: crc,
      compressedSize: csize,
      size: usize,
      localHeaderOffset: offset,
      isDirectory: name.endsWith("/"),
      zip64: entryZip64,
      mtime,
    });
    p += 46 + nlen + xlen + clen;
  }
  return entries;
}

function globToRegex(glob: string): RegExp {
  let src = "";
  for (const ch of glob) {
    if (ch === "*") src += "[^/]*";
    else if (ch === "?") src += "[^/]";
    else src += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${src}$`);
}

/**
 * The entry named `wanted`: an exact name, or a glob (`*`, `?`) that must match exactly one file entry.
 * A glob without '/' also matches files in sub-folders by their base name.
 */
export function findEntry(dir: ZipDirectory, wanted: string): ZipEntry {
  const files = dir.entries.filter((e) => !e.isDirectory);
  const exact = files.filter((e) => e.name === wanted);
  if (exact.length > 1) {
    // unzip, 7z, bsdtar and Python take the last, other readers the first: refuse to guess which one is the dump.
    throw new ZipError(
      "ambiguous_entry",
      `the zip holds ${exact.length} entries named ${JSON.stringify(wanted)} (${
        exact.map((e) => `${e.size} bytes`).join(", ")
      }): refusing to guess which one is the dump`,
      "fix the export so that the zip holds one entry of that name (zip tools differ on which one they extract)",
    );
  }
  if (exact.length === 1) return exact[0];
  const listing = files.slice(0, 10).map((e) => e.name).join(", ") + (files.length > 10 ? `, … (${files.length} in all)` : "");
  if (/[*?]/.test(wanted)) {
    const re = globToRegex(wanted);
    const hits = files.filter((e) => re.test(e.name) || (!wanted.includes("/") && re.test(e.name.split("/").pop()!)));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) {
      throw new ZipError(
        "ambiguous_entry",
        `source.entry ${JSON.stringify(wanted)} matches ${hits.length} entries: ${
          hits.map((h) => `${h.name} (${h.size} bytes)`).join(", ")
        }`,
        "make the pattern match exactly one entry",
      );
    }
  }
  throw new ZipError(
    "missing_entry",
    `entry ${JSON.stringify(wanted)} not found in the zip (it holds: ${listing || "no files"})`,
    "check source.entry against the names listed, or ask why the export changed",
  );
}

export interface ExtractLimits {
  maxSize: number;
  maxRatio: number;
  /** Stop at the next chunk when aborted. */
  signal?: AbortSignal;
  /**
   * Sees every inflated chunk, in order (the content fingerprint is computed in the same pass); a promise it returns
   * is awaited before the next chunk (back-pressure from the fingerprint's worker).
   */
  onChunk?: (chunk: Uint8Array) => void | Promise<void>;
  /**
   * The chunks are views of one reused buffer, valid until the next one (onChunk copies what it keeps): no buffer
   * allocated per inflated piece. Without it, each chunk is the caller's to keep.
   */
  borrowed?: boolean;
  /**
   * The caller computes the sha256 of the chunks onChunk sees (the unzip step's fingerprint worker does, on the other
   * core: this thread's inflate was the slower side of the two); `Extracted.sha256` is then absent.
   */
  sha256Elsewhere?: boolean;
}

/** What extraction measured: the dump's size, sha256 (unless `sha256Elsewhere`), and its last KiB (for the trailer check). */
export interface Extracted {
  size: number;
  sha256?: string;
  tail: Uint8Array;
  /** Where the entry's compressed bytes start in the zip (pack copies a deflate entry's bytes from there). */
  dataStart: number;
}

/** Refuse what cannot be read before reading anything: encryption, other methods, declared sizes and ratios. */
function precheck(entry: ZipEntry, limits: ExtractLimits): void {
  if (entry.flags & 0x1) {
    throw new ZipError("encrypted", `entry ${entry.name} is encrypted: not supported`, "export the dump without a zip password");
  }
  if (entry.method !== 0 && entry.method !== 8) {
    const m = METHOD_NAMES[entry.method] ?? "unknown";
    throw new ZipError(
      "unsupported_method",
      `entry ${entry.name} uses compression method ${entry.method} (${m}): only stored (0) and deflate (8) are supported`,
      "export the zip with standard deflate compression",
    );
  }
  if (entry.size > limits.maxSize) {
    throw new ZipError(
      "too_large",
      `entry ${entry.name} declares ${entry.size} bytes uncompressed, above check.max_unpacked_size (${limits.maxSize})`,
      "raise check.max_unpacked_size if the dump really is that large",
    );
  }
  if (entry.compressedSize > 0 && entry.size / entry.compressedSize > limits.maxRatio) {
    throw new ZipError(
      "zip_bomb",
      `entry ${entry.name} declares a compression ratio of ${
        Math.round(entry.size / entry.compressedSize)
      }:1, above check.max_ratio (${limits.maxRatio}): refusing a possible zip bomb`,
      "raise check.max_ratio if this is expected",
    );
  }
}

/** The offset of the entry's compressed data, from its local header; checked against the file's size. */
async function dataStartOf(f: Deno.FsFile, entry: ZipEntry): Promise<number> {
  const lh = await readAt(f, entry.localHeaderOffset, 30);
  const lv = new DataView(lh.buffer, lh.byteOffset, lh.byteLength);
  if (lh.length < 30 || lv.getUint32(0, true) !== SIG_LFH) {
    throw new ZipError("corrupt", `local header of ${entry.name} not found at offset ${entry.localHeaderOffset}: the zip is corrupt`);
  }
  const dataStart = entry.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
  if (dataStart + entry.compressedSize > (await f.stat()).size) {
    throw new ZipError("corrupt", `data of ${entry.name} runs past the end of the file: the zip is truncated`);
  }
  return dataStart;
}

/** Where an entry's compressed bytes are read: the finished zip (default), or one still being downloaded. */
export interface EntryBytes {
  /** The offset of the entry's compressed data (checked against the file). */
  dataStart(entry: ZipEntry): Promise<number>;
  stream(start: number, length: number): Readable;
}

/** The entry's bytes in the complete zip at `zipPath`. */
export function finishedFile(zipPath: string): EntryBytes {
  return {
    async dataStart(entry) {
      const f = await Deno.open(zipPath, { read: true });
      try {
        return await dataStartOf(f, entry);
      } finally {
        f.close();
      }
    },
    stream: (start, length) => fs.createReadStream(zipPath, { start, end: start + length - 1, highWaterMark: 256 << 10 }),
  };
}

/** The whole length of the local header whose first 30 bytes are `fixed` (with its name and extra field), if it is one. */
export function localHeaderLength(fixed: Uint8Array): number | undefined {
  if (fixed.length < 30) return undefined;
  const v = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
  return v.getUint32(0, true) === SIG_LFH ? 30 + v.getUint16(26, true) + v.getUint16(28, true) : undefined;
}

/**
 * The first entry as its local header describes it (the first 30 bytes + name + extra of a zip), when that is enough
 * to read it before the central directory arrives: sizes and CRC in the header (no data descriptor; Zip64 sizes in
 * its extra field), not encrypted. Otherwise the reason it is not. The central directory stays the truth: the caller
 * compares.
 */
export function firstEntry(head: Uint8Array): { entry: ZipEntry; dataStart: number } | { why: string } {
  if (head.length < 30) return { why: "the zip is shorter than a local header" };
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (v.getUint32(0, true) !== SIG_LFH) return { why: "the zip does not start with a local header" };
  const flags = v.getUint16(6, true), nameLen = v.getUint16(26, true), extraLen = v.getUint16(28, true);
  if (flags & 0x8) return { why: "the first entry has a data descriptor (a zip written from a pipe): its sizes come last" };
  if (flags & 0x1) return { why: "the first entry is encrypted" };
  let compressedSize = v.getUint32(18, true), size = v.getUint32(22, true);
  if (head.length < 30 + nameLen + extraLen) return { why: "the local header is cut" };
  const name = new TextDecoder().decode(head.subarray(30, 30 + nameLen));
  let mtime = dosTime(v.getUint16(12, true), v.getUint16(10, true)), zip64 = false;
  for (let x = 30 + nameLen; x + 4 <= 30 + nameLen + extraLen;) {
    const id = v.getUint16(x, true), len = v.getUint16(x + 2, true);
    // A local Zip64 field holds both sizes (APPNOTE 4.5.3); "UT" the Unix mtime, as in the central directory.
    if (id === 0x0001 && len >= 16 && size === 0xffffffff) (size = u64(v, x + 4), compressedSize = u64(v, x + 12), zip64 = true);
    if (id === 0x5455 && len >= 5 && (v.getUint8(x + 4) & 1)) mtime = v.getUint32(x + 5, true);
    x += 4 + len;
  }
  if (compressedSize === 0xffffffff || size === 0xffffffff) return { why: "the first entry's Zip64 sizes are not in its local header" };
  const entry: ZipEntry = {
    name,
    method: v.getUint16(8, true),
    flags,
    crc32: v.getUint32(14, true),
    compressedSize,
    size,
    localHeaderOffset: 0,
    isDirectory: name.endsWith("/"),
    zip64,
    mtime,
  };
  return { entry, dataStart: 30 + nameLen + extraLen };
}

/** The `length` bytes at `start` of an open file, in chunks of up to 1 MiB. */
export function rangeStream(f: Deno.FsFile, start: number, length: number, what: string): ReadableStream<Uint8Array> {
  let remaining = length;
  let positioned = false;
  const CHUNK = 1 << 20;
  const pacer = new GcPacer();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (!positioned) (await f.seek(start, Deno.SeekMode.Start), positioned = true);
      else pacer.add(CHUNK); // the consumer is done with the previous piece
      if (remaining <= 0) return ctrl.close();
      const buf = new Uint8Array(Math.min(CHUNK, remaining));
      const n = await f.read(buf);
      if (n === null || n === 0) return ctrl.error(new ZipError("corrupt", `unexpected end of file inside ${what}`));
      remaining -= n;
      ctrl.enqueue(n === buf.length ? buf : buf.subarray(0, n));
    },
  }, { highWaterMark: 0 });
}

/**
 * Raw deflate on node:zlib's handle (the same zlib-ng as `createInflateRaw`, without the stream around it), into one
 * output buffer reused piece after piece: no buffer allocated per 256 KiB inflated, no stream events (256 MiB: inflate
 * + CRC-32 220-230 ms against 275-310 ms through the stream, docs/TECHNICAL.md, "Performance"). Deno's node:zlib has
 * the handle Node has (`_handle.writeSync`, `_writeState`, `onerror`); the tests hold it to that on every Deno upgrade.
 */
class RawInflater {
  /** Compressed bytes taken in: where the deflate stream ended, once it has. */
  consumed = 0;
  private failure?: string;
  private readonly stream = zlib.createInflateRaw();
  private readonly handle: {
    writeSync(flush: number, i: Uint8Array, iOff: number, iLen: number, o: Uint8Array, oOff: number, oLen: number): void;
    onerror: (message: string, errno: number) => void;
  };
  private readonly state: Uint32Array;
  private readonly out = new Uint8Array(256 << 10);

  constructor() {
    const s = this.stream as unknown as { _handle?: RawInflater["handle"]; _writeState?: Uint32Array };
    if (typeof s._handle?.writeSync !== "function" || !s._writeState) {
      throw new Error("this Deno's node:zlib has no inflate handle (_handle.writeSync): archivist needs the Deno it was built for");
    }
    this.handle = s._handle;
    this.state = s._writeState;
    this.handle.onerror = (message) => void (this.failure ??= message);
  }

  /** Inflate `input` (with `end`, finish the stream: an error when it is not complete), yielding the output. */
  *write(input: Uint8Array, end = false): Generator<Uint8Array> {
    const flush = end ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH;
    for (let off = 0, len = input.length;;) {
      this.handle.writeSync(flush, input, off, len, this.out, 0, this.out.length);
      if (this.failure) throw new Error(this.failure);
      const [outLeft, inLeft] = this.state;
      this.consumed += len - inLeft;
      off += len - inLeft;
      len = inLeft;
      if (outLeft < this.out.length) yield this.out.subarray(0, this.out.length - outLeft);
      if (outLeft > 0) return; // room was left: the input is used up, or the stream ended before it
    }
  }

  close(): void {
    this.stream.close();
  }
}

/**
 * The entry's data, inflated, in order, with every check made while it streams: the declared size never exceeded,
 * the ratio guard, and at the end the exact size and the CRC-32 (a mismatch throws after the last chunk, so a
 * consumer must treat what it received as unverified until the generator has returned). `info.dataStart` is set
 * before the first chunk. A deflate stream followed by junk, or ending early, is refused as corrupt.
 */
export async function* inflateEntry(
  zipPath: string,
  entry: ZipEntry,
  limits: ExtractLimits,
  info: { dataStart?: number; sha256?: string } = {},
  from: EntryBytes = finishedFile(zipPath),
): AsyncGenerator<Uint8Array> {
  precheck(entry, limits);
  const dataStart = info.dataStart = await from.dataStart(entry);
  const src: Readable = entry.compressedSize > 0 ? from.stream(dataStart, entry.compressedSize) : Readable.from([]);
  const inflater = entry.method === 8 ? new RawInflater() : undefined;
  const hash = limits.sha256Elsewhere ? undefined : createHash("sha256");
  const guard = new Guard(entry, limits);
  let crc = 0;
  const pacer = new GcPacer();
  const pieces = async function* () {
    for await (const piece of src as AsyncIterable<Uint8Array>) {
      limits.signal?.throwIfAborted();
      if (inflater) yield* inflater.write(piece);
      else yield piece;
    }
    if (inflater) yield* inflater.write(new Uint8Array(0), true);
  };
  try {
    for await (const chunk of corruptAs(entry, limits, pieces())) {
      guard.add(chunk.length);
      crc = zlib.crc32(chunk, crc);
      hash?.update(chunk);
      yield limits.borrowed || !inflater ? chunk : chunk.slice();
      pacer.add(chunk.length); // the consumer is done with it
    }
  } finally {
    src.destroy();
    inflater?.close();
  }
  info.sha256 = hash?.digest("hex");
  guard.end(inflater ? inflater.consumed : guard.size, crc >>> 0);
}

/** The inflated pieces, a failure of the deflate data said as the zip's corruption (ours and the disk's as they are). */
async function* corruptAs(entry: ZipEntry, limits: ExtractLimits, pieces: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* pieces;
  } catch (e) {
    if (e instanceof ZipError || limits.signal?.aborted) throw e;
    if ((e as { code?: string }).code === "EACCES") throw e;
    throw new ZipError(
      "corrupt_data",
      `the compressed data of ${entry.name} is corrupt (${e instanceof Error ? e.message : e})`,
      "the download is damaged or the export was broken: try again",
    );
  }
}

/** The checks on an entry's inflated size as it grows (declared size, max_unpacked_size, the ratio) and at its end. */
class Guard {
  size = 0;
  private readonly ceiling: number;
  private readonly ratioCeiling: number;
  constructor(private readonly entry: ZipEntry, private readonly limits: ExtractLimits) {
    this.ceiling = Math.min(limits.maxSize, entry.size);
    this.ratioCeiling = Math.max(entry.compressedSize, 1) * limits.maxRatio;
  }

  add(n: number): void {
    const { entry, limits } = this;
    this.size += n;
    if (this.size > this.ceiling) {
      throw new ZipError(
        this.size > limits.maxSize ? "too_large" : "size_mismatch",
        this.size > limits.maxSize
          ? `entry ${entry.name} inflates beyond check.max_unpacked_size (${limits.maxSize} bytes)`
          : `entry ${entry.name} inflates to more than its declared ${entry.size} bytes: the zip is corrupt`,
      );
    }
    if (this.size > this.ratioCeiling) {
      throw new ZipError(
        "zip_bomb",
        `entry ${entry.name} inflates beyond check.max_ratio (${limits.maxRatio}:1): refusing a possible zip bomb`,
      );
    }
  }

  /** The whole entry is through: `consumed` compressed bytes made it, with this CRC-32. */
  end(consumed: number, crc32: number): void {
    const { entry } = this;
    // The deflate stream must end exactly at the entry's end: bytes after it would be copied into the archive by pack.
    if (consumed !== entry.compressedSize) {
      throw new ZipError(
        "corrupt_data",
        `the compressed data of ${entry.name} ends after ${consumed} of its ${entry.compressedSize} bytes: the rest is not part of it`,
        "the download is damaged or the export was broken: try again",
      );
    }
    if (this.size !== entry.size) {
      throw new ZipError(
        "size_mismatch",
        `entry ${entry.name} inflated to ${this.size} bytes but the zip declares ${entry.size}: the zip is corrupt`,
      );
    }
    if (crc32 !== entry.crc32) {
      throw new ZipError(
        "crc_mismatch",
        `CRC-32 mismatch for ${entry.name} (computed ${hex8(crc32)}, zip says ${hex8(entry.crc32)}): the dump is damaged`,
        "the download or the export is corrupt: try again, then check the source",
      );
    }
  }
}

/**
 * Read `entry` whole and check it (CRC-32, size, guards), measuring its sha256 and last KiB in the same pass, and
 * handing every chunk to `limits.onChunk` (the content fingerprint). Nothing is written: the dump never lies
 * uncompressed in work_dir.
 */
export async function verifyEntry(zipPath: string, entry: ZipEntry, limits: ExtractLimits, from?: EntryBytes): Promise<Extracted> {
  let tail = new Uint8Array(0);
  let size = 0;
  const info: { dataStart?: number; sha256?: string } = {};
  // Borrowed chunks: onChunk's consumers (the fingerprinters, extractEntry's write) copy what they keep.
  for await (const chunk of inflateEntry(zipPath, entry, { ...limits, borrowed: true }, info, from)) {
    size += chunk.length;
    const wait = limits.onChunk?.(chunk);
    if (wait) await wait;
    if (chunk.length >= 1024) tail = chunk.slice(chunk.length - 1024);
    else {
      const t = new Uint8Array(Math.min(1024, tail.length + chunk.length));
      const keep = t.length - chunk.length;
      t.set(tail.subarray(tail.length - keep), 0);
      t.set(chunk, keep);
      tail = t;
    }
  }
  return { size, sha256: info.sha256, tail, dataStart: info.dataStart! };
}

/**
 * Extract `entry` to `outPath` (verified as {@link verifyEntry} does); the output is removed on any error. For tools
 * and tests: a run never writes the dump uncompressed.
 */
export async function extractEntry(zipPath: string, entry: ZipEntry, outPath: string, limits: ExtractLimits): Promise<Extracted> {
  const out = await Deno.open(outPath, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    const r = await verifyEntry(zipPath, entry, {
      ...limits,
      onChunk: (c) => {
        limits.onChunk?.(c);
        let w = 0;
        while (w < c.length) w += out.writeSync(c.subarray(w));
      },
    });
    await out.sync();
    return r;
  } catch (e) {
    out.close();
    await Deno.remove(outPath).catch(() => {});
    throw e;
  } finally {
    try {
      out.close();
    } catch { /* closed above */ }
  }
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
