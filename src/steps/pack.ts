/**
 * pack: the dump as a dated .tgz (tar + gzip, streaming: memory stays flat whatever the dump size) with a
 * `sha256sum -c` compatible sidecar. gzip is node:zlib (native, and it takes a level, which CompressionStream
 * does not); the archive's sha256 is computed from the bytes as they are written.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import fs from "node:fs";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { asArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { formatName, sidecarName } from "../naming.ts";
import { padding, tarEnd, tarHeader } from "../tar/writer.ts";
import type { RunContext, RunData, Step, StepOutcome } from "../context.ts";

async function* tarStream(path: string, name: string, size: number, mtime: number): AsyncGenerator<Uint8Array> {
  const head = tarHeader(name, size, mtime);
  yield head;
  const f = await Deno.open(path, { read: true });
  try {
    let sent = 0;
    for (;;) {
      const buf = new Uint8Array(1 << 20);
      const n = await f.read(buf);
      if (n === null) break;
      sent += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
    if (sent !== size) throw new Error(`the dump changed size while packing (${sent} bytes read, ${size} expected)`);
  } finally {
    f.close();
  }
  yield padding(size);
  yield tarEnd(head.length + size + padding(size).length);
}

/** The sidecar's text: one `sha256sum` line. */
export function sidecarText(sha256: string, archiveName: string): string {
  return `${sha256}  ${archiveName}\n`;
}

/**
 * Write `dumpPath` as a .tgz at `outPath`, holding it as `entryName`. Returns the size and sha256 of the .tgz.
 * @example await packFile("/tmp/dump", "dump.sql", "/tmp/20261122.tgz", 6, Date.now() / 1000)
 */
export async function packFile(
  dumpPath: string,
  entryName: string,
  outPath: string,
  level: number,
  mtime: number,
  signal?: AbortSignal,
): Promise<{ size: number; sha256: string }> {
  const size = (await Deno.stat(dumpPath)).size;
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
    Readable.from(tarStream(dumpPath, entryName, size, mtime)),
    zlib.createGzip({ level }),
    tap,
    fs.createWriteStream(outPath, { mode: 0o640 }),
    ...(signal ? [{ signal }] : []),
  );
  const f = await Deno.open(outPath, { read: true, write: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
  return { size: written, sha256: hash.digest("hex") };
}

export const packStep: Step = {
  name: "pack",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const name = formatName(ctx.config.archive.name, ctx.runDate, ctx.config.name);
    const out = join(ctx.workDir, name);
    try {
      const r = await packFile(
        data.dumpPath!,
        data.dumpName!,
        out,
        ctx.config.archive.compression_level,
        // The entry's own time, not the run's: the same dump gives a byte-identical archive.
        data.dumpMtime ?? 0,
        ctx.signal,
      );
      await Deno.remove(data.dumpPath!).catch(() => {});
      data.archiveName = name;
      data.archivePath = out;
      data.archiveSize = r.size;
      data.archiveSha256 = r.sha256;
      data.sidecarPath = join(ctx.workDir, sidecarName(name));
      await Deno.writeTextFile(data.sidecarPath, sidecarText(r.sha256, name));
      const ratio = data.dumpSize ? ` (${((r.size / data.dumpSize) * 100).toFixed(1)}% of the dump)` : "";
      return { status: "ok", message: `${name}: ${formatSize(r.size)}${ratio}, sha256 ${r.sha256}` };
    } catch (e) {
      await Deno.remove(out).catch(() => {});
      throw asArchivistError("pack", e, "check free space in work_dir");
    }
  },
};
