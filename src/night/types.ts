/**
 * What the stages of a night take and give. Each stage is a function of the {@link Night} (fixed at the start, never
 * changed by a stage) and of the typed results of the stages before it; it returns its own typed result and one
 * line ({@link Said}) for the log, the history and the mail. Nothing is handed on through a shared bag.
 */
import type { FingerprintResult, FingerprintWorker } from "../formats/fingerprint.ts";
import type { Extracted, ZipEntry } from "../formats/zip.ts";
import type { Progress } from "../report/progress.ts";
import type { Clock, LocalParts } from "../os/clock.ts";
import type { Config, Target as ConfigTarget } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import type { StepName } from "../errors.ts";
import type { Logger } from "../report/log.ts";
import type { LastState } from "../records/state.ts";
import type { StepStatus } from "../records/history.ts";
import type { HookName } from "./hooks.ts";

export type { StepRecord, StepStatus } from "../records/history.ts";
import type { Catalogue, ClockFlag, StoredRecord } from "../records/catalogue.ts";
import type { RemoteEntry, Transport } from "../transports/transport.ts";

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

/** One destination of the night: where it is, its retention, and its transport, opened on first use. */
export interface Target extends ConfigTarget {
  location: string;
  open(step: StepName): Promise<Transport>;
}

/** What a stage says of itself: one line for the log, the mail and the history. */
export interface Said {
  status: StepStatus;
  message: string;
}

/** A stage's line and its typed result. */
export type Done<T> = Said & { value: T };

/** fetch: the zip on disk, with the validators worth keeping for the next conditional download. */
export interface Download {
  kind: "zip";
  path: string;
  size: number;
  etag?: string;
  lastModified?: string;
  /** The first entry read while it downloaded (./early.ts), for unzip to use when the central directory agrees. */
  early?: EarlyPass;
}

/** The pass made while downloading: its result, and its progress line once the download's own line is gone. */
export interface EarlyPass {
  result: Promise<Measured | { why: string }>;
  /** Draw the pass's progress on `line` from now on (it was silent during the download); returns the undo. */
  show(line: Progress): () => void;
}

/** unzip's one pass over an entry: inflated and checked (CRC-32, size), its sha256, fingerprint and last KiB. */
export interface Measured {
  entry: ZipEntry;
  extracted: Extracted;
  fingerprint: FingerprintResult;
  /** Kept for pack's read-back (archive.verify). */
  worker?: FingerprintWorker;
  /** The .tgz written from the entry's bytes as they were read (the early pass only). */
  packed?: PrePacked;
}

/** A .tgz written while the zip downloaded (./pack.ts packAlong), and what it was written for. */
export interface PrePacked {
  path: string;
  /** Size and sha256 of the file at `path`: the .tgz.age's when `encrypted`. */
  size: number;
  sha256: string;
  /** Written through age (archive.encrypt without archive.verify): `path` is the .tgz.age. */
  encrypted: boolean;
  fit: { memberName: string; mtime: number; level: number; crc32: number; size: number; compressedSize: number };
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
  /** The .tgz written while the zip downloaded, for pack to adopt when it fits. */
  packed?: PrePacked;
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

/** What store found on the destination before it writes: the listing, the catalogue, the clock's standing. */
export interface Place {
  n: Night;
  t: Transport;
  target: Target;
  entries: Map<string, RemoteEntry>;
  cat: Catalogue;
  /** Why the clock is in doubt (the archive is flagged in the catalogue), or undefined. */
  doubt?: { message: string; flag: ClockFlag };
  /** What the night must say besides its outcome (a torn catalogue line set aside, a damaged link target). */
  notes: string[];
}

/** The archive at a name is this very one: whether its sidecar is there, and how that was known. */
export type Same = { kind: "same"; sidecar: boolean; how: string };

/** What the state records of a stored night: the dump, where its archive went, where it did not. */
export interface Recorded {
  dump: Dump;
  verdict: Verdict;
  /** The archive as stored (its name may have a -N counter), and every place it went. */
  archive: Pick<Archive, "name" | "size">;
  stored: Stored[];
  /** Destinations whose store failed (store.require: any): the next unchanged night catches them up. */
  missingOn: string[];
}

/**
 * What a night changes, behind one interface: done (./writes.ts) or, in a dry run, only said (./dry.ts). The stages
 * decide what to do; a Writes does it.
 */
export interface Writes {
  /** The catalogue as the night sees it, after adopting the archives of a version without one. */
  catalogue(n: Night, location: string, list: RemoteEntry[]): Catalogue;
  /** Remove upload leftovers of ours. */
  leftovers(n: Night, t: Transport, temps: RemoteEntry[]): Promise<void>;
  upload(p: Place, a: Archive): Promise<Done<Stored>>;
  /** This very archive is already there: its missing sidecar, its missing catalogue record. */
  completeExisting(p: Place, a: Archive, name: string, ex: Same): Promise<Done<Stored>>;
  /** check.on_unchanged: link: tonight's name a hard link to the archive `rec` it equals. */
  link(p: Place, a: Archive, old: string, rec: StoredRecord): Promise<Done<Stored>>;
  state(n: Night, o: Recorded): Promise<Done<void>>;
  /** Run the admin's hook `which` (its failure thrown). */
  hook(n: Night, which: HookName, argv: string[], env: Record<string, string>): Promise<Done<void>>;
  /** Apply `target`'s retention, never deleting `keep`; undefined `keep`: nothing was stored tonight. */
  retain(n: Night, target: Target, keep: string | undefined): Promise<Done<Pruned | undefined>>;
}
