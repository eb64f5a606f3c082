/**
 * The dump's content fingerprint: a sha256 of its lines without the ones a dump tool changes on every run, computed
 * in the same pass as the byte sha256 (the unzip step feeds both), so that "unchanged" means "the same data".
 *
 *  - mysqldump / mariadb-dump: `-- Host: …`, `-- Server version\t…` in its header, `-- Dump completed on <date>` in
 *    its trailer;
 *  - pg_dump: `\restrict KEY` (a random key in every dump since 15.14/16.10/17.6), `-- Dumped from database version …`,
 *    `-- Dumped by pg_dump version …` in its header, `\unrestrict KEY` in its trailer;
 *  - plus the user's own `check.ignore_lines` regular expressions, tested against every line.
 *
 * A built-in line is left out only where the tool writes it: in the header (the comments and blank lines before the
 * first statement) or in the trailer (the comments and blank lines after the last one). The same text anywhere else
 * (a COPY row, a line of a multi-line string, a routine body) is data, and a change to it is a change. A trailer
 * pattern met in the body is held, with the comment and blank lines after it, until the next statement line (then
 * all of them are data) or the end (then it was the trailer); a spurious "changed" is possible, a skipped change
 * is not.
 *
 * The flavour is recognised from the header comment in the dump's first KiB. Lines are hashed in runs (one update per run of kept lines,
 * not per line), and a line is only held in memory while it may be ignored: a built-in volatile line starts with
 * `-` or `\`, and is never longer than 64 KiB; longer lines are hashed as they stream.
 */
import { createHash } from "node:crypto";
import { LINE_SCAN_WASM } from "./line_scan.ts";

/** A flavour of dump: how it is recognised and which of its lines change on every run, where. */
export interface Flavour {
  name: string;
  /** Recognises the flavour in the dump's first KiB (a header line, not necessarily the first one). */
  detect: RegExp;
  /** Left out in the header only. */
  header: RegExp[];
  /** Left out in the trailer only. */
  trailer: RegExp[];
}

export interface FingerprintResult {
  sha256: string;
  /** The plain sha256 of every byte, when asked for (`bytes`). */
  bytesSha256?: string;
  flavour: string;
  /** How many lines each pattern removed (pattern source → count). */
  ignored: Record<string, number>;
}

interface Engine {
  /** The line finder (WebAssembly) is in use. */
  finder: boolean;
  update(chunk: Uint8Array): void;
  digest(): FingerprintResult;
}

/**
 * The fingerprint engine. Self-contained on purpose: it is serialised (Function.prototype.toString) into the worker
 * of {@link FingerprintWorker}, so it uses nothing but its parameters (node:crypto's createHash, the extra patterns'
 * sources) and its own locals; the same function runs in-process in {@link Fingerprinter}.
 * Long on purpose: being serialised whole, it cannot call helpers defined outside it.
 */
function engine(
  makeHash: (alg: string) => { update(b: Uint8Array): unknown; digest(enc: "hex"): string },
  extraSources: string[],
  wasm?: string,
  bytes = false,
  fingerprint = true,
): Engine {
  const FLAVOURS: Flavour[] = [
    {
      name: "mysqldump",
      // MariaDB 10.11.8+ writes "/*M!999999\- enable the sandbox mode */" before this header.
      detect: /^-- (MySQL|MariaDB) dump /m,
      header: [/^-- Server version\t/, /^-- Host: /],
      trailer: [/^-- Dump completed on /],
    },
    {
      name: "pg_dump",
      detect: /^-- PostgreSQL database dump/m,
      header: [/^\\restrict /, /^-- Dumped by pg_dump version /, /^-- Dumped from database version /],
      trailer: [/^\\unrestrict /],
    },
  ];
  /** MariaDB 10.11.8+ writes this before its header: part of the header. */
  const SANDBOX_LINE = /^\/\*M!999999\\- enable the sandbox mode \*\/\s*$/;
  const HOLD_MAX = 64 * 1024;
  const NL = 10, DASH = 45, BACKSLASH = 92;
  const extra = extraSources.map((src) => new RegExp(src));
  const hash = makeHash("sha256");
  const byteHash = bytes ? makeHash("sha256") : undefined;
  let flavour: Flavour | undefined;
  let detected = false;
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  let atLineStart = true;
  /** The current line is held (it may be ignored) rather than hashed. */
  let holding = false;
  let held: Uint8Array[] = [];
  let heldLen = 0;
  const ignored = new Map<string, number>();
  const td = new TextDecoder();
  /**
   * The line finder (src/formats/line_scan.wat): 16 bytes per step where the plain scan costs a call per line (1 GiB of
   * 85-byte lines: 0.27-0.32 s with the copy into its memory, against 0.75 s). Only without ignore_lines patterns
   * (those test every line); without WebAssembly SIMD (a CPU without SSE4.1), the plain scan.
   */
  const WINDOW = 1 << 20;
  const finder = (() => {
    if (!wasm || extra.length > 0) return undefined;
    try {
      const bytes = Uint8Array.from(atob(wasm), (c) => c.charCodeAt(0));
      const x = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
      return {
        find: x.find as (p: number, end: number) => number,
        mem: new Uint8Array((x.memory as WebAssembly.Memory).buffer, 0, WINDOW),
      };
    } catch {
      return undefined;
    }
  })();

  const concat = (parts: Uint8Array[], len: number): Uint8Array => {
    const out = new Uint8Array(len);
    let o = 0;
    for (const p of parts) (out.set(p, o), o += p.length);
    return out;
  };
  /**
   * Where the scan is: in the header (every line is judged, until the first statement line), in the body (only lines
   * that may be left out are held), or deferring (a trailer pattern met: it and the comment and blank lines after it
   * wait, each judged, until a statement line makes them data or the end makes them the trailer).
   */
  let zone: "header" | "body" | "deferring" = "header";
  let deferred: { parts: Uint8Array[]; pattern?: RegExp }[] = [];
  let deferredLen = 0;
  const count = (re: RegExp) => ignored.set(re.source, (ignored.get(re.source) ?? 0) + 1);
  /** The deferred lines are data after all: hash them, in order, the volatile-looking ones too. */
  const flushDeferred = () => {
    for (const d of deferred) for (const h of d.parts) hash.update(h);
    deferred = [];
    deferredLen = 0;
    zone = "body";
  };
  /** Does a line starting with byte `b` need holding? */
  const candidate = (b: number) => zone !== "body" || extra.length > 0 || b === DASH || b === BACKSLASH;
  /** A comment or blank line: what a header or a trailer is made of. */
  const commentOrBlank = (line: string) => line.trim() === "" || line.startsWith("--");
  const judge = () => {
    const parts = held;
    const line = td.decode(parts.length === 1 ? parts[0] : concat(parts, heldLen)).replace(/\r?\n$/, "");
    const len = heldLen;
    held = [];
    heldLen = 0;
    holding = false;
    const user = extra.find((re) => re.test(line)); // the user's patterns apply everywhere
    if (user) return void count(user);
    if (zone === "header") {
      const p = flavour?.header.find((re) => re.test(line));
      if (p) return void count(p);
      for (const h of parts) hash.update(h);
      if (!commentOrBlank(line) && !SANDBOX_LINE.test(line)) zone = "body";
      return;
    }
    const trailer = flavour?.trailer.find((re) => re.test(line));
    if (zone === "body") {
      if (!trailer) { for (const h of parts) hash.update(h); }
      else (zone = "deferring", deferred = [{ parts, pattern: trailer }], deferredLen = len);
      return;
    }
    if (trailer || commentOrBlank(line)) {
      deferred.push({ parts, pattern: trailer });
      deferredLen += len;
      if (deferredLen > HOLD_MAX) flushDeferred(); // too long for a trailer: data
      return;
    }
    flushDeferred(); // a statement after it: what was held is data
    for (const h of parts) hash.update(h);
  };
  /**
   * Hash a chunk's kept lines, holding each line that may be left out until its end. Between such lines it skips
   * ahead to the next line that may need holding: with `find` (the line finder, `chunk` in its memory) straight to
   * the next newline followed by `-` or `\\`, without it line by line.
   */
  const scan = (chunk: Uint8Array, find?: (p: number, end: number) => number) => {
    let pos = 0, runStart = 0;
    const len = chunk.length;
    while (pos < len) {
      if (holding) {
        const nl = chunk.indexOf(NL, pos);
        const end = nl < 0 ? len : nl + 1;
        held.push(chunk.slice(pos, end));
        heldLen += end - pos;
        if (nl >= 0) judge();
        else if (heldLen > HOLD_MAX) {
          // Too long to be a volatile line: data, and a statement (the header ends; what was deferred is data).
          if (zone === "deferring") flushDeferred();
          zone = "body";
          for (const h of held) hash.update(h);
          held = [];
          heldLen = 0;
          holding = false;
        }
        runStart = end;
        atLineStart = nl >= 0;
        pos = end;
      } else if (atLineStart && candidate(chunk[pos])) {
        if (pos > runStart) hash.update(chunk.subarray(runStart, pos));
        holding = true;
      } else {
        const nl = find ? find(pos, len) : chunk.indexOf(NL, pos);
        atLineStart = nl >= 0 || chunk[len - 1] === NL;
        pos = nl < 0 ? len : nl + 1;
      }
    }
    if (!holding && runStart < len) hash.update(chunk.subarray(runStart, len));
  };
  /** Scan through the finder's memory a window at a time (a copy), or plainly. */
  const scanAny = (chunk: Uint8Array) => {
    if (!finder) return scan(chunk);
    for (let off = 0; off < chunk.length; off += WINDOW) {
      const piece = chunk.subarray(off, off + WINDOW);
      finder.mem.set(piece);
      scan(finder.mem.subarray(0, piece.length), finder.find);
    }
  };
  /** Detect the flavour from what is pending, then scan it. */
  const flush = () => {
    const all = concat(pending, pendingLen);
    pending = [];
    pendingLen = 0;
    detected = true;
    const head = td.decode(all.subarray(0, 1024));
    flavour = FLAVOURS.find((f) => f.detect.test(head));
    scanAny(all);
  };
  return {
    finder: finder !== undefined,
    update(chunk: Uint8Array) {
      byteHash?.update(chunk);
      if (!fingerprint) return; // the byte sha256 only (a read-back's)
      if (!detected) {
        // The first KiB waits until the flavour is known (pg_dump's first line is a bare "--").
        pending.push(chunk.slice());
        pendingLen += chunk.length;
        if (pendingLen >= 1024) flush();
        return;
      }
      scanAny(chunk);
    },
    digest(): FingerprintResult {
      if (!detected) flush();
      if (holding) judge(); // a last line without a newline
      // The end: what was deferred was the trailer. Its volatile lines are left out, the rest hashed in order.
      for (const d of deferred) {
        if (d.pattern) count(d.pattern);
        else for (const h of d.parts) hash.update(h);
      }
      deferred = [];
      return {
        sha256: hash.digest("hex"),
        ...(byteHash ? { bytesSha256: byteHash.digest("hex") } : {}),
        flavour: flavour?.name ?? "plain",
        ignored: Object.fromEntries(ignored),
      };
    },
  };
}

/** The fingerprint, computed in this thread (`simd: false`: without the line finder, for tests). */
export class Fingerprinter {
  private readonly e: Engine;
  constructor(extra: RegExp[] = [], opts: { simd?: boolean } = {}) {
    this.e = engine(createHash, extra.map((r) => r.source), opts.simd === false ? undefined : LINE_SCAN_WASM);
  }
  /** Whether the line finder (WebAssembly SIMD) scans, rather than the plain line loop. */
  get usesFinder(): boolean {
    return this.e.finder;
  }
  update(chunk: Uint8Array): void {
    this.e.update(chunk);
  }
  digest(): FingerprintResult {
    return this.e.digest();
  }
}

let workerUrl: string | undefined;
/** The size of the batches handed to the worker. */
const BATCH = 1 << 20;

/**
 * The same fingerprint on a second core (a Web Worker from a Blob URL: `deno bundle` and `deno compile` carry it in
 * main.ts's output). `update` hands over a copy of the chunk; when more than 2 MiB wait in the worker, it returns a
 * promise that resolves when the worker has caught up, so memory stays flat. The main thread inflates and CRCs;
 * the worker scans (with the line finder), hashes the kept lines and, with `bytes`, every byte: about the same work
 * on each core (before the line finder, the per-line scan made the worker the slower side with the byte sha256 on
 * it; 1 GiB: verify 2.0-2.5 s with the sha256 in the main thread, see docs/TECHNICAL.md).
 */
export class FingerprintWorker {
  private readonly w: Worker;
  private inFlight = 0;
  private waiter: (() => void) | undefined;
  private result: Promise<FingerprintResult>;
  private settle!: { ok: (r: FingerprintResult) => void; fail: (e: Error) => void };
  private failed: Error | undefined;
  /**
   * How far this thread may run ahead of the worker: 4 MiB of batches (256 MiB in-process, this thread waited for
   * the worker 163 → 108 ms per pass when 2 → 4 MiB; docs/TECHNICAL.md, "Performance").
   */
  private static readonly MAX_IN_FLIGHT = 4 << 20;

  /**
   * `bytes`: the worker also computes the plain sha256 of every byte (FingerprintResult.bytesSha256);
   * `fingerprint: false`: only that.
   */
  constructor(extra: RegExp[] = [], opts: { bytes?: boolean; fingerprint?: boolean } = {}) {
    workerUrl ??= URL.createObjectURL(
      new Blob([
        `const engine = ${engine.toString()};
const { createHash } = await import("node:crypto");
let e;
self.onmessage = (m) => {
  const d = m.data;
  try {
    if (d.type === "start") e = engine(createHash, d.extra, d.wasm, d.bytes, d.fingerprint);
    else if (d.type === "chunk") { e.update(d.data); self.postMessage({ type: "ack", n: d.data.length, data: d.data }, [d.data.buffer]); }
    else if (d.type === "end") self.postMessage({ type: "done", result: e.digest() });
  } catch (err) { self.postMessage({ type: "error", message: String(err && err.message || err) }); }
};
self.postMessage({ type: "ready" });`,
      ], { type: "text/javascript" }),
    );
    this.result = this.pending();
    this.w = new Worker(workerUrl, { type: "module" });
    const queue: unknown[] = [FingerprintWorker.start(extra, opts)];
    let ready = false;
    this.post = (msg, transfer) => (ready ? this.w.postMessage(msg, transfer ?? []) : queue.push(msg));
    this.w.onmessage = (m: MessageEvent) => {
      const d = m.data;
      if (d.type === "ready") {
        ready = true;
        for (const q of queue) this.w.postMessage(q);
        queue.length = 0;
      } else if (d.type === "ack") {
        this.inFlight -= d.n;
        if (d.data.length === BATCH && this.free.length < 5) this.free.push(d.data);
        if (this.inFlight <= FingerprintWorker.MAX_IN_FLIGHT / 2) this.wake();
      } else if (d.type === "done") this.settle.ok(d.result);
      else if (d.type === "error") this.fail(new Error(`fingerprint worker: ${d.message}`));
    };
    this.w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(new Error(`fingerprint worker: ${e.message}`));
    };
  }

  private post: (msg: unknown, transfer?: Transferable[]) => void;

  private fail(e: Error): void {
    this.failed = e;
    this.settle.fail(e);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Hand a chunk over (a copy: the caller keeps its buffer). Await the result when it is a promise. */
  /** Chunks are gathered into 1 MiB batches (the copy the worker needs anyway): a message per MiB, not per chunk. */
  private batch = new Uint8Array(BATCH);
  /** Batches the worker handed back, reused (no allocation and zero-filling of a new MiB each time). */
  private free: Uint8Array<ArrayBuffer>[] = [];
  private filled = 0;

  private send(): void {
    if (!this.filled) return;
    const data = this.filled === this.batch.length ? this.batch : this.batch.slice(0, this.filled);
    this.inFlight += data.length;
    this.post({ type: "chunk", data }, [data.buffer]);
    this.batch = this.free.pop() ?? new Uint8Array(BATCH);
    this.filled = 0;
  }

  update(chunk: Uint8Array): void | Promise<void> {
    if (this.failed) throw this.failed;
    for (let off = 0; off < chunk.length;) {
      const n = Math.min(chunk.length - off, this.batch.length - this.filled);
      this.batch.set(chunk.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === this.batch.length) this.send();
    }
    if (this.inFlight > FingerprintWorker.MAX_IN_FLIGHT) {
      return new Promise<void>((r) => (this.waiter = r)).then(() => {
        if (this.failed) throw this.failed;
      });
    }
  }

  private pending(): Promise<FingerprintResult> {
    const p = new Promise<FingerprintResult>((ok, fail) => (this.settle = { ok, fail }));
    p.catch(() => {}); // observed by digest()
    return p;
  }

  /**
   * The result of the stream so far. The worker ends with it, unless `keep`: then it waits for {@link restart} (the
   * run's read-back proof reuses it: a second worker's isolate beside the first one's remains cost 15 MiB of peak
   * RSS) and whoever kept it must close it.
   */
  async digest(opts: { keep?: boolean } = {}): Promise<FingerprintResult> {
    if (this.failed) throw this.failed;
    this.send();
    this.post({ type: "end" });
    let ok = false;
    try {
      const r = await this.result;
      ok = true;
      return r;
    } finally {
      if (!opts.keep || !ok) this.close();
      else this.result = this.pending(); // every chunk was acknowledged before "done": nothing is in flight
    }
  }

  /** A new stream on the kept worker, with new options (after `digest({ keep: true })`). */
  restart(extra: RegExp[] = [], opts: { bytes?: boolean; fingerprint?: boolean } = {}): void {
    if (this.failed) throw this.failed;
    this.post(FingerprintWorker.start(extra, opts));
  }

  private static start(extra: RegExp[], opts: { bytes?: boolean; fingerprint?: boolean }) {
    return {
      type: "start",
      extra: extra.map((r) => r.source),
      wasm: LINE_SCAN_WASM,
      bytes: opts.bytes ?? false,
      fingerprint: opts.fingerprint ?? true,
    };
  }

  close(): void {
    this.w.terminate();
  }
}
