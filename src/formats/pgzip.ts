/**
 * gzip on all cores, pigz's way: the input is cut into blocks of 1 MiB, each deflated on a worker with the previous
 * block's last 32 KiB as its dictionary (so the ratio stays that of one stream) and ended with a sync flush (so the
 * blocks' outputs join into one deflate stream), then a final empty block; the CRC-32 is computed over the input on
 * the main thread in order. One gzip member: any reader reads it.
 *
 * Used by pack's recompress path (a stored entry, or archive.recompress: always) when archive.threads > 1: this
 * thread is one of the `threads` lanes (it inflates, CRCs and feeds the others, and deflates every `threads`-th
 * block itself), workers are the rest: with 2 threads, one worker. A worker is a V8 isolate of ~21 MiB: this thread
 * taking a lane saved one (1 GiB, recompress: always: peak RSS 138 → 123 MiB, the
 * same 0.68× the pigz pipeline). The workers run the
 * self-contained function `deflater`, started from a Blob URL, so that `deno bundle` and `deno compile` carry it
 * inside main.ts's output; both lanes compress with the one `deflateBlock`. Blocks in flight are bounded (2 per
 * worker): memory stays flat.
 */
import zlib from "node:zlib";
import { GcPacer } from "../os/memory.ts";

const BLOCK = 1 << 20;
const WINDOW = 32 * 1024;

/**
 * One block, deflated with the previous block's tail as its dictionary and ended with a sync flush. Self-contained:
 * serialised into the workers' program too (the same output whichever lane compresses a block: deterministic).
 */
function deflateBlock(z: typeof zlib, data: Uint8Array, dict: Uint8Array | undefined, level: number): Uint8Array {
  return z.deflateRawSync(data, { level, finishFlush: z.constants.Z_SYNC_FLUSH, ...(dict ? { dictionary: dict } : {}) });
}

/** The worker's program (serialised with Function.prototype.toString: it must not reference anything outside). */
async function deflater(
  scope: any,
  deflateBlock: (z: unknown, data: Uint8Array, dict: Uint8Array | undefined, level: number) => Uint8Array,
) {
  const zlib = (await import("node:zlib")).default;
  let n = 0;
  scope.onmessage = (e: MessageEvent) => {
    const { id, data, dict, level } = e.data;
    try {
      const out = deflateBlock(zlib, data, dict, level);
      const own = new Uint8Array(out); // a copy with its own buffer (node's Buffers may share one), transferred
      scope.postMessage({ id, out: own }, [own.buffer]);
      // The block, its output and zlib's state are garbage now: collect them (src/os/memory.ts; the runtime's
      // --expose-gc reaches workers too), a full collection every 8 blocks (zlib's state goes with those), or each
      // worker piles up ~100 MiB before V8 gets to it (1 GiB: peak RSS 290 → 138 MiB, same time; a full one every
      // 2 blocks cost 2 s more for nothing).
      scope.gc?.({ type: ++n % 8 ? "minor" : "major" });
    } catch (err) {
      scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
    }
  };
}

let url: string | undefined;

/** A gzip member header: deflate, no name, mtime 0, OS Unix (what node:zlib writes, so members match). */
export const GZIP_HEADER = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/** A 32-bit little-endian field of a gzip trailer (CRC-32, or the size mod 2^32). */
export function le32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** Cut a stream of chunks into blocks of exactly BLOCK bytes (the last one shorter). */
async function* blocks(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(BLOCK);
  let filled = 0;
  for await (const c of chunks) {
    let off = 0;
    while (off < c.length) {
      const n = Math.min(BLOCK - filled, c.length - off);
      buf.set(c.subarray(off, off + n), filled);
      filled += n;
      off += n;
      if (filled === BLOCK) {
        yield buf;
        buf = new Uint8Array(BLOCK);
        filled = 0;
      }
    }
  }
  if (filled) yield buf.subarray(0, filled);
}

/**
 * The gzip file of `chunks`, compressed at `level` on `threads` workers, as a stream of pieces in order.
 * @example for await (const piece of parallelGzip(tarChunks, 6, 2)) await file.write(piece);
 */
export async function* parallelGzip(chunks: AsyncIterable<Uint8Array>, level: number, threads: number): AsyncGenerator<Uint8Array> {
  url ??= URL.createObjectURL(new Blob([`(${deflater.toString()})(self, ${deflateBlock.toString()});`], { type: "text/javascript" }));
  const lanes = Math.max(2, threads); // lane 0 is this thread
  const workers = Array.from({ length: lanes - 1 }, () => new Worker(url!, { type: "module" }));
  // This thread's blocks leave zlib's state behind like the workers' do: collected the same way (a full collection
  // every 8 of its blocks).
  const pacer = new GcPacer(BLOCK, 8);
  const results = new Map<number, { out?: Uint8Array; error?: string }>();
  let notify: (() => void) | undefined;
  let failure: Error | undefined;
  for (const w of workers) {
    w.onmessage = (e: MessageEvent) => {
      results.set(e.data.id, e.data);
      notify?.();
      notify = undefined;
    };
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      failure = new Error(`a compression worker failed: ${e.message}`);
      notify?.();
      notify = undefined;
    };
  }
  const wait = () => new Promise<void>((r) => (notify = r));
  let crc = 0;
  let size = 0;
  let sent = 0;
  let next = 0; // the next block to hand out, in order
  let prevTail: Uint8Array | undefined;
  const maxInFlight = workers.length * 2 + 1;
  try {
    yield GZIP_HEADER;
    const take = async function* (): AsyncGenerator<Uint8Array> {
      while (results.has(next)) {
        const r = results.get(next)!;
        results.delete(next);
        if (r.error) throw new Error(`compression failed: ${r.error}`);
        next++;
        yield r.out!;
      }
    };
    for await (const block of blocks(chunks)) {
      crc = zlib.crc32(block, crc);
      size += block.length;
      const dict = prevTail;
      prevTail = block.slice(Math.max(0, block.length - WINDOW));
      while (sent - next >= maxInFlight) {
        if (failure) throw failure;
        if (!results.has(next)) await wait();
        yield* take();
      }
      const lane = sent % lanes;
      if (lane === 0) {
        try {
          results.set(sent, { out: deflateBlock(zlib, block, dict, level) });
        } catch (e) {
          results.set(sent, { error: e instanceof Error ? e.message : String(e) });
        }
        pacer.add(block.length);
      } else workers[lane - 1].postMessage({ id: sent, data: block, dict, level }, [block.buffer as ArrayBuffer]);
      sent++;
      yield* take();
    }
    while (next < sent) {
      if (failure) throw failure;
      if (!results.has(next)) await wait();
      yield* take();
    }
    yield new Uint8Array([0x03, 0x00]); // a final, empty fixed-Huffman block: the end of the deflate stream
    yield le32(crc);
    yield le32(size % 2 ** 32);
  } finally {
    for (const w of workers) w.terminate();
  }
}
