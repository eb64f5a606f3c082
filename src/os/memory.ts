/**
 * Flat memory while a dump streams through: a young-generation garbage collection every few MiB.
 *
 * Every inflated piece is a new buffer (node:zlib allocates its output), and V8 frees a dead buffer only when a
 * collection runs, which its own heuristics put off while the JavaScript heap is small, so the garbage piles up.
 * With the V8 flag `--expose-gc` (declared with the permissions in src/permissions.ts, so every way archivist is
 * started has it) a minor collection every 4 MiB keeps it to a few MiB, and a full one every 64th time catches what
 * was promoted meanwhile (stream and promise bookkeeping), so a 4 GiB run stays as flat as a 1 GiB one. Without the
 * flag (a plain `deno run`) this does nothing. The measurements (peak RSS and time, with and without, and the
 * companion `--max-semi-space-size=2`) are in docs/TECHNICAL.md, "Performance".
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
