/**
 * Verify while downloading: the zip's first entry is inflated, checked and measured (unzip's one pass: CRC-32, size,
 * sha256, fingerprint, last KiB) as the download writes it, so that when the last byte arrives only the tail is left.
 *
 * A guess that the central directory confirms: unzip uses this pass only when the entry it finds there is the one
 * the first local header described (offset 0, name, method, flags, sizes, CRC). In any other case (a data
 * descriptor, Zip64 sizes missing from the local header, another entry, a retried or refused attempt, any error in
 * this pass) unzip reads the finished zip as before, so the night's checks, messages and exit codes never depend
 * on this path.
 */
import { join } from "node:path";
import { statfsSync } from "node:fs";
import { pipeline } from "node:stream";
import { buffer } from "node:stream/consumers";
import { followRange, type Growth } from "../os/follow.ts";
import { type EntryBytes, findEntry, firstEntry, localHeaderLength, type ZipEntry } from "../formats/zip.ts";
import { errMsg } from "../errors.ts";
import type { Progress } from "../report/progress.ts";
import { measure, memberName } from "./unzip.ts";
import { packAlong, packAlongSealed, packPath, sealedAsWritten } from "./pack.ts";
import type { EarlyPass, Measured, Night } from "./types.ts";

/** The early pass of one download attempt, told by fetch how the attempt went. */
export interface Early extends EarlyPass {
  /** The attempt wrote the whole zip. */
  finished(): void;
  /** The attempt failed, is retried, or brought no zip (a 304): the pass stops. */
  abandon(why: string): void;
}

/** Start reading `path` (not yet created: the attempt's writer creates it) as it is written. */
export function readWhileDownloading(n: Night, path: string): Early {
  const growth: Growth = { done: false };
  const line = new LaterLine(n.progress.shown);
  const result = pass(n, path, growth, line).catch((e): { why: string } => ({ why: `the early pass stopped: ${errMsg(e)}` }));
  return {
    result,
    show: (to) => line.attach(to),
    finished: () => void (growth.done = true),
    abandon: (why) => void (growth.abandoned ??= new Error(why)),
  };
}

/** A progress line kept silent while the download draws its own, then handed to unzip's (`attach`). */
class LaterLine implements Progress {
  private label?: string;
  private total?: number;
  private done = 0;
  private ended = false;
  private to?: Progress;
  constructor(readonly shown: boolean) {}
  start(label: string, total?: number) {
    (this.label = label, this.total = total, this.ended = false);
    this.to?.start(label, total);
  }
  update(done: number) {
    this.done = done;
    this.to?.update(done);
  }
  end() {
    this.ended = true;
    this.to?.end();
  }
  clear() {
    this.to?.clear();
  }
  attach(to: Progress): () => void {
    if (this.label && !this.ended) (to.start(this.label, this.total), to.update(this.done), this.to = to);
    return () => {
      if (this.to && !this.ended) this.to.end();
      this.to = undefined;
    };
  }
}

async function pass(n: Night, path: string, growth: Growth, line: Progress): Promise<Measured | { why: string }> {
  const fixed = await buffer(followRange(path, 0, 30, growth, n.signal));
  const whole = localHeaderLength(fixed) ?? 30;
  const head = whole > 30 ? Buffer.concat([fixed, await buffer(followRange(path, 30, whole - 30, growth, n.signal))]) : fixed;
  const first = firstEntry(head);
  if ("why" in first) return first;
  try {
    findEntry({ entries: [first.entry], zip64: false, fileSize: 0 }, n.config.source.entry);
  } catch {
    return { why: `the first entry ${JSON.stringify(first.entry.name)} is not source.entry` };
  }
  const along = await packingAlong(n, first.entry);
  const from: EntryBytes = {
    dataStart: () => Promise.resolve(first.dataStart),
    stream: (start, length) => {
      const raw = followRange(path, start, length, growth, n.signal);
      return along ? pipeline(raw, along.tap, () => {}) : raw;
    },
  };
  try {
    // The progress line is the download's meanwhile: this pass draws on it once unzip waits for it.
    const m = await measure({ ...n, progress: line }, path, first.entry, from);
    return along ? { ...m, packed: await along.finish() } : m;
  } catch (e) {
    await along?.discard();
    throw e;
  }
}

/**
 * pack's reuse path written alongside, when tonight's pack would take it (a deflate entry; through age when
 * archive.encrypt is on without archive.verify) and work_dir has room for the rest of the download and the .tgz
 * both: the .tgz never takes the space the download needs (a full work_dir stays pack's failure, exit 24, as when
 * the two ran one after the other).
 */
function packingAlong(n: Night, entry: ZipEntry) {
  const a = n.config.archive;
  if (packPath(entry, a.recompress).path !== "reuse") return undefined;
  const fs = statfsSync(n.workDir);
  if (fs.bavail * fs.bsize < 2 * entry.compressedSize + (16 << 20)) {
    n.log.debug("pack", "work_dir has no room for the download and the .tgz at once: the .tgz is written after the download");
    return undefined;
  }
  const fit = {
    memberName: memberName(entry.name, n.config.source.entry, a.member_name),
    mtime: entry.mtime,
    level: a.compression_level,
    crc32: entry.crc32,
    size: entry.size,
    compressedSize: entry.compressedSize,
  };
  const sealTo = sealedAsWritten(a);
  if (sealTo) return packAlongSealed(join(n.workDir, "early.tgz.age"), fit, sealTo, n.signal);
  return packAlong(join(n.workDir, "early.tgz"), fit);
}
