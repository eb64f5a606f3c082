/**
 * What the stages of a night take and give. Each stage is a function of the {@link Night} (fixed at the start, never
 * changed by a stage) and of the typed results of the stages before it; it returns its own typed result and one
 * line ({@link Said}) for the log, the history and the mail. Nothing is handed on through a shared bag.
 */
import type { FingerprintWorker } from "../formats/fingerprint.ts";
import type { ZipEntry } from "../formats/zip.ts";
import type { Progress } from "../report/progress.ts";
import type { Clock, LocalParts } from "../os/clock.ts";
import type { Config, Target as ConfigTarget } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import type { StepName } from "../errors.ts";
import type { Logger } from "../report/log.ts";
import type { Transport } from "../transports/transport.ts";
import type { StoredRecord } from "../records/catalogue.ts";
import type { JobState } from "../records/state.ts";
import type { Writes } from "./writes.ts";

export interface RunOptions {
  /**
   * `run --dry-run`: fetch, unzip, check, compare and pack for real; store and retention only say what they would
   * do. No lock is taken (nothing is changed that a lock protects), nothing is written to the destination or
   * state_dir. A run never overrides retention.max_delete or the clock check.
   */
  dryRun?: boolean;
}

/** The night's fixed inputs: what every stage may read. */
export interface Night {
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
  /** run --dry-run: for the runner (no lock; an unchanged night still previews store and retention). Stages act through `writes`. */
  dryRun: boolean;
  /** What the night changes, done or (run --dry-run) only said (./writes.ts). */
  writes: Writes;
  /** Aborted on SIGINT/SIGTERM: long steps stop at the next chunk. */
  signal: AbortSignal;
  /** The terminal's progress line for long steps (a no-op without a terminal). */
  progress: Progress;
  /** The last archive's state, read once when first asked (a corrupt file throws in the step that asks). */
  last: LastState;
}

/** The state file as this night sees it. */
export interface LastState {
  /** The state as written, whatever destinations it names (undefined on a first run). */
  raw(): JobState | undefined;
  /** `state` when it describes every destination of this config, else `other` (see records/state.ts stateFor). */
  here(): { state?: JobState; other?: JobState };
}

/** One destination of the night: where it is, its retention, and its transport, opened on first use. */
export interface Target extends ConfigTarget {
  location: string;
  open(step: StepName): Promise<Transport>;
}

export type StepStatus = "ok" | "warning" | "skipped" | "failed";

/** What a stage says of itself: one line for the log, the mail and the history. */
export interface Said {
  status: StepStatus;
  message: string;
}

/** A stage's line and its typed result. */
export type Done<T> = Said & { value: T };

/** What the history records for a step. */
export interface StepRecord {
  step: StepName;
  status: StepStatus;
  message: string;
  durationMs: number;
}

/** fetch: the zip on disk, with the validators worth keeping for the next conditional download. */
export interface Download {
  kind: "zip";
  path: string;
  size: number;
  etag?: string;
  lastModified?: string;
}

/** fetch: a 304 under check.on_unchanged: skip: nothing downloaded, the night stops. */
export interface NotModified {
  kind: "not-modified";
  unchangedSince?: string;
}

/** unzip: the verified entry of the zip and what was measured of it in the same pass. */
export interface Dump {
  zip: Download;
  /** Its base name in the .tgz. */
  name: string;
  entry: ZipEntry;
  /** Where its compressed bytes start in the zip (pack reads them again from there). */
  dataStart: number;
  size: number;
  sha256: string;
  /** sha256 of the lines without the volatile ones, the dump tool that wrote it, the lines left out. */
  fingerprint: string;
  flavour: string;
  ignored: Record<string, number>;
  /** The entry's modification time (Unix seconds): the tar member's mtime. */
  mtime: number;
  /** Its last KiB (check's trailer test). */
  tail: Uint8Array;
  /** With archive.verify, the fingerprint's worker, kept for pack's read-back; the runner closes an unused one. */
  readBackWorker?: FingerprintWorker;
}

/** What a destination that missed the last archive gets on an unchanged night (store.require: any). */
export interface CatchUpPlan {
  /** The destinations that miss it. */
  onlyTo: string[];
  /** The archive they miss, and where it is. */
  name: string;
  from: string[];
}

/** compare: is tonight's dump new, or the last archive's data (and then what to do with it)? */
export type Verdict =
  | { kind: "new"; unchangedSince?: undefined }
  | { kind: "unchanged"; unchangedSince: string; then: "skip" | "archive" }
  | { kind: "unchanged"; unchangedSince: string; then: "link"; linkTo: string }
  | { kind: "unchanged"; unchangedSince: string; then: "catch-up"; catchUp: CatchUpPlan };

/** pack: the .tgz and its sidecar in the work dir. */
export interface Archive {
  name: string;
  path: string;
  size: number;
  sha256: string;
  sidecarPath: string;
  dump: { name: string; size: number; sha256: string };
  /** A catch-up copy's catalogue identity (the run date and dump of the archive it completes). */
  catalogueAs?: Partial<StoredRecord>;
}

/** store: where the archive is now, under which name (in a dry run: where it would be, `planned`). */
export interface Stored {
  location: string;
  name: string;
  size: number;
  sha256: string;
  planned?: true;
}

/** retention: what went, and what could not. */
export interface Pruned {
  deleted: string[];
  failed: { name: string; error: string }[];
}
