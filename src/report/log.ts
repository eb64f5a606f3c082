/**
 * The human log: one line per event, `TIME LEVEL [run ID] step: message`, appended to `log.file` and mirrored to
 * stderr. The lines of the current run are also kept in memory for the mail attachment.
 * Every line passes through redaction, so a secret that slips into an error message never reaches the file.
 */
import { dirname } from "node:path";

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  runId: string;
  /** Minimum level written to the file. */
  fileLevel?: Level;
  /** Minimum level mirrored to stderr; "off" for none (--quiet keeps errors only). */
  stderrLevel?: Level | "off";
  /** Called with each formatted line (tests). */
  sink?: (line: string) => void;
  now?: () => Date;
}

/** ISO 8601 in the machine's local time with its offset: what an admin reads next to syslog. */
export function localIso(d: Date): string {
  const off = -d.getTimezoneOffset();
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 23);
  const sign = off >= 0 ? "+" : "-";
  const a = Math.abs(off);
  return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

export class Logger {
  readonly runId: string;
  /** The lines of this run (for the mail attachment). */
  readonly lines: string[] = [];
  /** Where the log file ended up ("" when none could be opened). */
  filePath = "";
  private file: Deno.FsFile | undefined;
  private secrets: string[] = [];
  private readonly enc = new TextEncoder();
  private fileLevel: Level;
  private stderrLevel: Level | "off";

  constructor(private readonly opts: LoggerOptions) {
    this.runId = opts.runId;
    this.fileLevel = opts.fileLevel ?? "info";
    this.stderrLevel = opts.stderrLevel ?? "info";
  }

  /**
   * Open the log file, trying `path` then each fallback; returns the warning to log when a fallback was used.
   */
  openFile(path: string, fallbacks: string[]): string | undefined {
    const tried: string[] = [];
    for (const p of [path, ...fallbacks]) {
      try {
        Deno.mkdirSync(dirname(p), { recursive: true });
        this.file = Deno.openSync(p, { append: true, create: true, mode: 0o640 });
        this.filePath = p;
        if (tried.length) return `cannot write log file ${tried.join("; ")}: logging to ${p} instead`;
        return undefined;
      } catch (e) {
        tried.push(`${p} (${e instanceof Error ? e.message : e})`);
      }
    }
    return `cannot write any log file (${tried.join("; ")}): logging to stderr only`;
  }

  /** Called before a line goes to stderr (the progress line erases itself). */
  beforeStderr?: () => void;

  setLevels(fileLevel: Level, stderrLevel: Level | "off"): void {
    this.fileLevel = fileLevel;
    this.stderrLevel = stderrLevel;
  }

  /** Register secret values: any occurrence in a log line is replaced by "***". */
  addSecret(value: string | undefined): void {
    if (value && value.length >= 3 && !this.secrets.includes(value)) this.secrets.push(value);
  }

  redact(s: string): string {
    let out = s;
    for (const v of this.secrets) out = out.split(v).join("***");
    return out;
  }

  log(level: Level, step: string, message: string, toStderr = true): void {
    const now = this.opts.now?.() ?? new Date();
    const text = this.redact(message);
    const line = `${localIso(now)} ${level.toUpperCase().padEnd(5)} [${this.runId}] ${step}: ${text}`;
    if (RANK[level] >= RANK[this.fileLevel]) {
      this.lines.push(line);
      if (this.file) {
        try {
          this.file.writeSync(this.enc.encode(line + "\n"));
        } catch {
          // A full log disk must not stop the backup; the line still goes to stderr.
        }
      }
    }
    if (toStderr && this.stderrLevel !== "off" && RANK[level] >= RANK[this.stderrLevel]) {
      this.beforeStderr?.();
      Deno.stderr.writeSync(this.enc.encode(`${level === "error" ? "ERROR " : level === "warn" ? "WARN  " : ""}${step}: ${text}\n`));
    }
    this.opts.sink?.(line);
  }

  /**
   * The job whose lines these are, when one command runs several jobs: failure lines then name it, so that a
   * FAILED line read alone says which job failed.
   */
  job?: string;

  /** The one line that says which step failed, the cause and the hint: "step: FAILED: cause (hint: ...)". */
  failure(step: string, err: { message: string; hint?: string }, level: Level = "error", where = ""): void {
    const job = this.job ? ` (job ${this.job})` : "";
    this.log(level, step, `${where}FAILED${job}: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ""}`);
  }

  /** A line for the log file only: what the command prints on stdout already (e.g. prune's plan). */
  fileOnly(level: Level, step: string, msg: string): void {
    this.log(level, step, msg, false);
  }

  debug(step: string, msg: string): void {
    this.log("debug", step, msg);
  }
  info(step: string, msg: string): void {
    this.log("info", step, msg);
  }
  warn(step: string, msg: string): void {
    this.log("warn", step, msg);
  }
  error(step: string, msg: string): void {
    this.log("error", step, msg);
  }

  close(): void {
    try {
      this.file?.close();
    } catch { /* already closed */ }
    this.file = undefined;
  }
}

/** A run id: local start time plus 4 random hex digits, e.g. "20261122T023000-9f3a". */
export function newRunId(d: Date): string {
  const iso = localIso(d).slice(0, 19).replace(/[-:]/g, "");
  const rnd = crypto.getRandomValues(new Uint8Array(2));
  return `${iso}-${[...rnd].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
