/**
 * Reading a file while another writer appends to it (the download, written by Deno's fetch or by curl): the unzip
 * step inflates the zip's first entry as it arrives instead of after the last byte (src/night/early.ts).
 *
 * At the file's current end the reader waits (a 2 ms poll: the writer may be another process) until more bytes come
 * or the writer says it is done. Nothing here decides whether the bytes are right: the caller checks them against
 * the zip's central directory once the download is complete.
 */
import fsp from "node:fs/promises";
import { Readable } from "node:stream";

/** What the writer tells the reader. */
export interface Growth {
  /** The writer finished: the file's end is final. */
  done: boolean;
  /** The writer gave up (a failed attempt, a retry, a 304): the reader stops with this error. */
  abandoned?: Error;
}

const POLL_MS = 2;
const PIECE = 256 << 10;

/** Bytes [start, start + length) of `path`, read as they are written; an error when the file ends short of them. */
export function followRange(path: string, start: number, length: number, growth: Growth, signal?: AbortSignal): Readable {
  let fh: fsp.FileHandle | undefined;
  let pos = start;
  const end = start + length;
  return new Readable({
    highWaterMark: PIECE,
    async read(size) {
      try {
        fh ??= await openWhenThere(path, growth, signal);
        for (;;) {
          if (growth.abandoned) throw growth.abandoned;
          if (pos >= end) return void this.push(null);
          const wasDone = growth.done; // read before the read: a write just before `done` is not missed
          const want = Math.min(size || PIECE, PIECE, end - pos);
          const buf = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(buf, 0, want, pos);
          if (bytesRead > 0) {
            pos += bytesRead;
            return void this.push(buf.subarray(0, bytesRead));
          }
          if (wasDone) throw new Error(`${path} ends at ${pos} bytes, before ${end}`);
          signal?.throwIfAborted();
          await sleep(POLL_MS);
        }
      } catch (e) {
        this.destroy(e as Error);
      }
    },
    destroy(err, cb) {
      const h = fh;
      fh = undefined;
      (h ? h.close() : Promise.resolve()).then(() => cb(err), () => cb(err));
    },
  });
}

/** The file, once its writer has created it. */
async function openWhenThere(path: string, growth: Growth, signal?: AbortSignal): Promise<fsp.FileHandle> {
  for (;;) {
    try {
      return await fsp.open(path, "r");
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT") throw e;
      if (growth.abandoned) throw growth.abandoned;
      if (growth.done) throw new Error(`${path} was never written`);
      signal?.throwIfAborted();
      await sleep(POLL_MS);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
