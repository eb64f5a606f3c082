/**
 * Progress of the long steps (fetch, verify, pack, read back, upload where the transport can tell) on a terminal: one line on
 * stderr, rewritten in place at most five times a second, with bytes, rate and ETA when the total is known, and
 * erased when the step ends or a log line is printed. Never in the log file, never without a terminal: cron and
 * systemd see nothing of it (`--progress` / `--no-progress` override the terminal test).
 */
import { formatSize } from "../config/units.ts";

export interface Progress {
  /** A line is drawn at all (a terminal, or --progress): work done only for the line can be skipped otherwise. */
  readonly shown: boolean;
  /** A long step begins; `total` in bytes when known. */
  start(label: string, total?: number): void;
  /** `done` bytes so far (absolute, not a delta). */
  update(done: number): void;
  /** The step is over: erase the line. */
  end(): void;
  /** Erase the line now (a log line is about to be printed); the next update draws it again. */
  clear(): void;
}

export const NO_PROGRESS: Progress = { shown: false, start() {}, update() {}, end() {}, clear() {} };

const CLEAR = "\r\x1b[K";

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** The line for `done` of `total` bytes after `elapsedMs` (exported for tests). */
export function progressLine(label: string, done: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const parts = [label.padEnd(10), total ? `${formatSize(done)} / ${formatSize(total)}` : formatSize(done)];
  if (total) parts.push(`${Math.min(100, Math.floor((done / total) * 100))}%`);
  if (rate > 0) parts.push(`${formatSize(rate)}/s`);
  if (total && rate > 0 && done < total) parts.push(`ETA ${clock((total - done) / rate)}`);
  return parts.join("  ");
}

/** A progress line written with `write` (the terminal), redrawn at most every `everyMs`. */
export function terminalProgress(
  write: (s: string) => void,
  now: () => number = () => performance.now(),
  everyMs = 200,
): Progress {
  let label = "", total: number | undefined, started = 0, last = -Infinity, shown = false, active = false;
  return {
    shown: true,
    start(l, t) {
      label = l;
      total = t;
      started = now();
      last = -Infinity;
      active = true;
    },
    update(done) {
      if (!active) return;
      const t = now();
      if (t - last < everyMs) return;
      last = t;
      write(CLEAR + progressLine(label, done, total, t - started));
      shown = true;
    },
    end() {
      active = false;
      this.clear();
    },
    clear() {
      if (shown) write(CLEAR);
      shown = false;
      last = -Infinity;
    },
  };
}

/** `--progress`, `--no-progress`, or the terminal test on stderr (and never with --quiet). */
export function progressFor(flag: boolean | undefined, quiet: boolean): Progress {
  const on = flag ?? (!quiet && Deno.stderr.isTerminal());
  if (!on) return NO_PROGRESS;
  const enc = new TextEncoder();
  return terminalProgress((s) => Deno.stderr.writeSync(enc.encode(s)));
}
