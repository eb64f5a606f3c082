/**
 * Flat memory while a dump streams through: a young-generation garbage collection every few MiB.
 *
 * Every inflated piece is a new buffer (node:zlib allocates its output), and V8 frees a dead buffer only when a
 * collection runs, which its own heuristics put off while the JavaScript heap is small: the garbage piled up to
 * ~100 MiB before. With the V8 flag `--expose-gc` (declared with the permissions in src/permissions.ts, so every way
 * archivist is started has it), a minor collection every 4 MiB (under 1 ms each) keeps it to a few MiB. Measured on the
 * verify of a 1 GiB dump: peak RSS 166-176 → 119 MiB, and faster (1.8 s against 2.1-2.2 s: the same memory is
 * reused while it is in the CPU's caches, rather than fresh pages). Without the flag (a plain `deno run`) this does
 * nothing. What survives a few minor collections (stream and promise bookkeeping) is promoted to the old generation
 * and stays until a full collection: one every 64th time (256 MiB; a few ms on this small heap) keeps a 4 GiB run as
 * flat as a 1 GiB one. The companion flag `--max-semi-space-size=2` (MiB) keeps the young generation itself small:
 * 1 GiB default run, 5 runs each: peak RSS 127 → 121 MiB, wall 3.46 → 3.25 s (no cost, now that collections are
 * paced; before, it cost 12 %).
 */
const gc = (globalThis as { gc?: (options?: { type?: "minor" | "major"; execution?: "sync" }) => void }).gc;

/** How many bytes go through between two collections. */
export const GC_EVERY = 4 << 20;

/** Counts bytes through a stream and collects young garbage every {@link GC_EVERY}. */
export class GcPacer {
  private since = 0;
  private minors = 0;
  /** A collection every `every` bytes; every `majorEvery`-th one a full collection. */
  constructor(private readonly every = GC_EVERY, private readonly majorEvery = 64) {}
  /** `n` more bytes went through. */
  add(n: number): void {
    this.since += n;
    if (this.since < this.every || !gc) return;
    this.since = 0;
    gc({ type: ++this.minors % this.majorEvery ? "minor" : "major", execution: "sync" });
  }
}

/** Whether collections can be asked for (the runtime was started with --expose-gc). */
export const canCollect = (): boolean => gc !== undefined;
