/**
 * The run history: one JSON object per line, appended with a single O_APPEND write per run, never rewritten.
 * `archivist history` reads it; monitoring can tail it.
 */
import { dirname } from "node:path";
import { errMsg } from "../errors.ts";
import type { StepName } from "../errors.ts";

/** A step's outcome in the history. */
export type StepStatus = "ok" | "warning" | "skipped" | "failed";

/** What the history records for a step. */
export interface StepRecord {
  step: StepName;
  status: StepStatus;
  message: string;
  durationMs: number;
}

export type RunStatus = "ok" | "warning" | "failed";

/** What a run did: one line of the history, the mail's content, the exit code. */
export interface RunResult {
  runId: string;
  job: string;
  host: string;
  command: string;
  configFile: string;
  /** The destinations this line describes (absent in lines of older versions): verify reads only its own. */
  destinations?: string[];
  startedAt: string;
  endedAt: string;
  durationMs: number;
  /** The run's date (archive.timezone), fixed at its start. */
  runDate: string;
  status: RunStatus;
  exitCode: number;
  steps: StepRecord[];
  error?: { step: StepName; code: string; message: string; hint: string };
  warnings: string[];
  dump?: {
    name: string;
    size: number;
    sha256: string;
    fingerprint?: string;
    flavour?: string;
    ignored?: Record<string, number>;
    /** The downloaded zip's size (verify's work_dir rule: a run holds the zip and the .tgz). */
    zipSize?: number;
  };
  archive?: { name: string; size: number; sha256: string; location: string };
  /** The dump was the last archive's data, unchanged since this time (compare, or a 304). */
  unchangedSince?: string;
  retention?: { deleted: string[]; failed: { name: string; error: string }[] };
  /** `archivist check` lines only: the outcome and the archives read back. */
  check?: { status: string; summary: string; read: string[] };
  /** The report mail: whether it went out, and where or why not. Never affects the exit code. */
  mail?: { sent: boolean; message: string };
  logFile: string;
}

/**
 * What the report of a run did, written after the job's own line (which is written as soon as the job ends, so a
 * kill loses no night): the mail's outcome, and the exit code when a signal cut the report (130). Folded into the
 * job's line by {@link readHistory}.
 */
export interface ReportLine {
  command: "report";
  runId: string;
  job: string;
  exitCode: number;
  mail?: { sent: boolean; message: string };
}

export function reportLine(r: RunResult): ReportLine {
  return { command: "report", runId: r.runId, job: r.job, exitCode: r.exitCode, mail: r.mail };
}

/** Append one run (or a report line). Returns an error message instead of throwing: history must never break a run. */
export function appendHistory(path: string, r: RunResult | ReportLine): string | undefined {
  try {
    Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const f = Deno.openSync(path, { append: true, create: true, mode: 0o640 });
    try {
      f.writeSync(new TextEncoder().encode(JSON.stringify(r) + "\n"));
    } finally {
      f.close();
    }
    return undefined;
  } catch (e) {
    return `cannot append to history ${path}: ${errMsg(e)}`;
  }
}

/** All recorded runs, oldest first; unparseable lines are skipped and counted. */
export function readHistory(path: string): { runs: RunResult[]; bad: number } {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { runs: [], bad: 0 };
    throw e;
  }
  const runs: RunResult[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let o: RunResult | ReportLine;
    try {
      o = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    if (o.command !== "report") {
      runs.push(o as RunResult);
      continue;
    }
    const rep = o as ReportLine;
    const run = runs.findLast((r) => r.runId === rep.runId && r.job === rep.job);
    if (run) Object.assign(run, { exitCode: rep.exitCode, ...(rep.mail ? { mail: rep.mail } : {}) });
  }
  return { runs, bad };
}
