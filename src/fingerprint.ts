/**
 * The dump's content fingerprint: a sha256 of its lines without the ones a dump tool changes on every run, computed
 * in the same pass as the byte sha256 (the unzip step feeds both), so that "unchanged" means "the same data".
 *
 *  - mysqldump / mariadb-dump: `-- Dump completed on <date>`, `-- Server version\t…`, `-- Host: …`;
 *  - pg_dump: `\restrict KEY` / `\unrestrict KEY` (a random key in every dump since 15.14/16.10/17.6),
 *    `-- Dumped by pg_dump version …`, `-- Dumped from database version …`;
 *  - plus the user's own `check.ignore_lines` regular expressions, tested against every line.
 *
 * The flavour is recognised from the header comment in the dump's first KiB. Lines are hashed in runs (one update per run of kept lines,
 * not per line), and a line is only held in memory while it may be ignored: a built-in volatile line starts with
 * `-` or `\`, and is never longer than 64 KiB; longer lines are hashed as they stream.
 */
import { createHash, type Hash } from "node:crypto";

export interface Flavour {
  name: string;
  /** Recognises the flavour in the dump's first KiB (a header line, not necessarily the first one). */
  detect: RegExp;
  volatile: RegExp[];
}

export const FLAVOURS: Flavour[] = [
  {
    name: "mysqldump",
    // MariaDB 10.11.8+ writes "/*M!999999\- enable the sandbox mode */" before this header.
    detect: /^-- (MySQL|MariaDB) dump /m,
    volatile: [/^-- Dump completed on /, /^-- Server version\t/, /^-- Host: /],
  },
  {
    name: "pg_dump",
    detect: /^-- PostgreSQL database dump/m,
    volatile: [/^\\restrict /, /^\\unrestrict /, /^-- Dumped by pg_dump version /, /^-- Dumped from database version /],
  },
];

export interface FingerprintResult {
  sha256: string;
  flavour: string;
  /** How many lines each pattern removed (pattern source → count). */
  ignored: Record<string, number>;
}

const HOLD_MAX = 64 * 1024;
const NL = 10, DASH = 45, BACKSLASH = 92;

export class Fingerprinter {
  private readonly hash: Hash = createHash("sha256");
  private flavour: Flavour | undefined;
  private detected = false;
  private head = "";
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  private atLineStart = true;
  /** The current line is held (it may be ignored) rather than hashed. */
  private holding = false;
  private held: Uint8Array[] = [];
  private heldLen = 0;
  private readonly ignored = new Map<string, number>();
  private readonly td = new TextDecoder();

  constructor(private readonly extra: RegExp[] = []) {}

  private patterns(): RegExp[] {
    return [...(this.flavour?.volatile ?? []), ...this.extra];
  }

  /** Does a line starting with byte `b` need holding? */
  private candidate(b: number): boolean {
    return this.extra.length > 0 || b === DASH || b === BACKSLASH;
  }

  private judge(): void {
    const line = this.td.decode(this.held.length === 1 ? this.held[0] : concat(this.held, this.heldLen)).replace(/\r?\n$/, "");
    const p = this.patterns().find((re) => re.test(line));
    if (p) this.ignored.set(p.source, (this.ignored.get(p.source) ?? 0) + 1);
    else for (const h of this.held) this.hash.update(h);
    this.held = [];
    this.heldLen = 0;
    this.holding = false;
  }

  update(chunk: Uint8Array): void {
    if (!this.detected) {
      // The first KiB waits until the flavour is known (pg_dump's first line is a bare "--").
      this.pending.push(chunk.slice());
      this.pendingLen += chunk.length;
      if (this.pendingLen < 1024) return;
      this.flush();
      return;
    }
    this.scan(chunk);
  }

  /** Detect the flavour from what is pending, then scan it. */
  private flush(): void {
    const all = concat(this.pending, this.pendingLen);
    this.pending = [];
    this.pendingLen = 0;
    this.head = new TextDecoder().decode(all.subarray(0, 1024));
    this.detect();
    this.scan(all);
  }

  private scan(chunk: Uint8Array): void {
    let pos = 0, runStart = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.atLineStart && !this.holding && this.candidate(chunk[pos])) {
        if (pos > runStart) this.hash.update(chunk.subarray(runStart, pos));
        this.holding = true;
      }
      const nl = chunk.indexOf(NL, pos);
      const end = nl < 0 ? len : nl + 1;
      if (this.holding) {
        this.held.push(chunk.slice(pos, end));
        this.heldLen += end - pos;
        if (nl >= 0) this.judge();
        else if (this.heldLen > HOLD_MAX) {
          for (const h of this.held) this.hash.update(h); // too long to be a volatile line: keep it
          this.held = [];
          this.heldLen = 0;
          this.holding = false;
        }
        runStart = end;
      }
      this.atLineStart = nl >= 0;
      pos = end;
    }
    if (!this.holding && runStart < len) this.hash.update(chunk.subarray(runStart, len));
  }

  private detect(): void {
    this.detected = true;
    this.flavour = FLAVOURS.find((f) => f.detect.test(this.head));
  }

  digest(): FingerprintResult {
    if (!this.detected) this.flush();
    if (this.holding) this.judge(); // a last line without a newline
    return { sha256: this.hash.digest("hex"), flavour: this.flavour?.name ?? "plain", ignored: Object.fromEntries(this.ignored) };
  }
}

function concat(parts: Uint8Array[], len: number): Uint8Array {
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}
