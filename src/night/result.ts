/**
 * What a night did, as one line of the history, the mail's content and the exit code: built once, at the end, from
 * the book and the stages' typed results.
 */
import { hostname } from "node:os";
import { localDate } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import { EXIT } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import type { Logger } from "../report/log.ts";
import { targetLocations } from "../transports/registry.ts";
import type { Book } from "./book.ts";
import type { Spread } from "./destinations.ts";
import type { Archive, Dump, Pruned, Stored } from "./types.ts";
import type { RunResult, RunStatus } from "../records/history.ts";

/** What the stages of a night gave, kept by the runner for the result (each set when its stage ran). */
export interface Outcome {
  dump?: Dump;
  unchangedSince?: string;
  archive?: Archive;
  spread?: Spread;
  pruned?: Pruned;
}

/** The night's status and exit code, from its book. */
export function outcomeOf(book: Book): { status: RunStatus; exitCode: number } {
  const error = book.error;
  if (error) return { status: "failed", exitCode: error.exitCode };
  return book.warnings.length ? { status: "warning", exitCode: EXIT.WARNING } : { status: "ok", exitCode: EXIT.OK };
}

/** What was stored for real (not what a dry run would store), destination by destination. */
export function storedOf(out: Outcome): Stored[] {
  return (out.spread?.done ?? []).flatMap((d) => d.stored && !d.stored.planned ? [d.stored] : []);
}

/** The result of a night; logs its summary line. */
export function runResult(
  deps: { config: Config; log: Logger; command?: string; dry: boolean },
  book: Book,
  out: Outcome,
  times: { startedAt: Date; endedAt: Date; durationMs: number },
): RunResult {
  const { config, log } = deps;
  const error = book.error;
  const { status, exitCode } = outcomeOf(book);
  const stored = storedOf(out);
  const dump = out.dump;
  const result: RunResult = {
    runId: log.runId,
    job: config.name,
    host: hostname(),
    command: deps.command ?? "run",
    configFile: config.file,
    destinations: targetLocations(config.targets),
    startedAt: times.startedAt.toISOString(),
    endedAt: times.endedAt.toISOString(),
    durationMs: times.durationMs,
    runDate: localDate(times.startedAt, config.archive.timezone),
    status,
    exitCode,
    steps: book.steps,
    error: error ? { step: error.step, code: error.code, message: log.redact(error.message), hint: error.hint } : undefined,
    warnings: book.warnings.map((w) => log.redact(w)),
    dump: dump
      ? {
        name: dump.name,
        size: dump.size,
        sha256: dump.sha256,
        fingerprint: dump.fingerprint,
        flavour: dump.flavour,
        ignored: dump.ignored,
        zipSize: dump.zip.size,
      }
      : undefined,
    archive: stored.length
      ? { name: stored[0].name, size: stored[0].size, sha256: stored[0].sha256, location: stored.map((s) => s.location).join(", ") }
      : undefined,
    unchangedSince: out.unchangedSince,
    retention: out.pruned,
    logFile: log.filePath,
  };
  const would = out.spread?.done.find((d) => d.stored)?.stored?.name ?? out.archive?.name;
  const summary = deps.dry && !error
    ? `DRY RUN ${status.toUpperCase()}${would ? `: would store ${would}` : ""} in ${
      formatDuration(result.durationMs)
    } (exit ${exitCode}); nothing was written`
    : error
    ? `FAILED${log.job ? ` (job ${log.job})` : ""} at ${error.step} (exit ${exitCode}) in ${formatDuration(result.durationMs)}`
    : `${status.toUpperCase()}${result.archive ? `: ${result.archive.name} on ${result.archive.location}` : ""} in ${
      formatDuration(result.durationMs)
    } (exit ${exitCode})`;
  log.log(error ? "error" : status === "warning" ? "warn" : "info", "run", summary);
  return result;
}
