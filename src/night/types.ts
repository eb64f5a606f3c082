/**
 * The run context and the step/result model. A run is a list of steps over one {@link RunContext}; each step
 * reads and extends the {@link RunData} and returns a {@link StepOutcome} that the log, the history, the mail
 * and the exit code are built from.
 */
import type { FingerprintWorker } from "../formats/fingerprint.ts";
import type { ZipEntry } from "../formats/zip.ts";
import type { Progress } from "../report/progress.ts";
import type { Clock, LocalParts } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import type { StepName } from "../errors.ts";
import type { Logger } from "../report/log.ts";
import type { Transport } from "../transports/transport.ts";

export interface RunOptions {
  /**
   * `run --dry-run`: fetch, unzip, check, compare and pack for real; store and retention only say what they would
   * do. No lock is taken (nothing is changed that a lock protects), nothing is written to the destination or
   * state_dir. A run never overrides retention.max_delete or the clock check.
   */
  dryRun?: boolean;
}

export interface RunContext {
  config: Config;
  clock: Clock;
  env: Env;
  log: Logger;
  runId: string;
  startedAt: Date;
  /** The run's date, fixed at its start in archive.timezone. */
  runDate: LocalParts;
  /** A private directory for this run's temporary files (under work_dir), removed at exit. */
  workDir: string;
  options: RunOptions;
  /** Aborted on SIGINT/SIGTERM: long steps stop at the next chunk. */
  signal: AbortSignal;
  /** The destination, connected and opened on first use; closed by the run at its end. */
  destination(step: StepName): Promise<Transport>;
  /** The terminal's progress line for long steps (a no-op without a terminal). */
  progress: Progress;
}

/** What the steps hand to each other. Every field is set by the step named in its comment. */
export interface RunData {
  zipPath?: string; // fetch
  zipSize?: number; // fetch
  etag?: string; // fetch: the response's ETag
  lastModified?: string; // fetch: the response's Last-Modified
  dumpName?: string; // unzip: base name of the entry
  entry?: ZipEntry; // unzip: the verified entry of the zip (pack reads it from zipPath again)
  entryDataStart?: number; // unzip: where its compressed bytes start in the zip
  dumpSize?: number; // unzip
  dumpSha256?: string; // unzip
  /** unzip → pack: the fingerprint's worker, kept for the read-back proof's sha256 (archive.verify); the run closes it. */
  readBackWorker?: FingerprintWorker;
  dumpFingerprint?: string; // unzip: sha256 of the lines without the volatile ones
  dumpFlavour?: string; // unzip: mysqldump, pg_dump or plain
  dumpMtime?: number; // unzip: the entry's modification time in the zip (Unix seconds): the tar member's mtime
  dumpIgnored?: Record<string, number>; // unzip: volatile lines left out, by pattern
  dumpTail?: Uint8Array; // unzip
  onlyTo?: string[]; // compare: an unchanged dump still goes to these destinations (they missed the last one)
  /** compare, with onlyTo: the archive they missed, and where it is (the catch-up copy sends that one). */
  catchUp?: { name: string; from: string[] };
  /** store, for a catch-up copy: the catalogue identity of the archive it completes (run date, dump). */
  catalogueAs?: Partial<import("../records/catalogue.ts").StoredRecord>;
  storedOn?: { location: string; name: string }[]; // store, with several destinations: where it went
  storeFailed?: { location: string; message: string }[]; // store, with several destinations: where it did not
  unchangedSince?: string; // compare or fetch (304): the dump is the last archive's data, unchanged since then
  linkTo?: string; // compare: with check.on_unchanged: link, the archive tonight's dump equals (store links to it)
  archiveName?: string; // pack (store may add a -N counter)
  archivePath?: string; // pack
  archiveSize?: number; // pack
  archiveSha256?: string; // pack
  sidecarPath?: string; // pack
  stored?: boolean; // store
  storedLocation?: string; // store
  clockDoubt?: string; // store: why the clock is in doubt (the archive is flagged in the catalogue)
  deleted?: string[]; // retention
  deleteFailed?: { name: string; error: string }[]; // retention
}

export type StepStatus = "ok" | "warning" | "skipped" | "failed";

export interface StepOutcome {
  status: StepStatus;
  /** One line for the log, the mail and the history. */
  message: string;
  /** Stop the run here with this status (e.g. the dump is unchanged). */
  stop?: boolean;
}

/** One step of a run. */
export interface Step {
  name: StepName;
  run(ctx: RunContext, data: RunData): Promise<StepOutcome>;
}

/** What the history records for a step. */
export interface StepRecord {
  step: StepName;
  status: StepStatus;
  message: string;
  durationMs: number;
}
