/**
 * The command-line vocabulary every command module shares: what an option and a command declare, and the options
 * several commands take. Each command declares its own usage beside its code (src/commands/<name>.ts).
 */
export interface OptionSpec {
  name: string;
  short?: string;
  /** A value it takes ("FILE", "N", "DIR"), or none for a switch. */
  value?: string;
  help: string;
}

export type ExitCodes = "run" | "nagios" | "simple";

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments, e.g. "[NAME|latest]". */
  args?: string;
  maxArgs: number;
  options: OptionSpec[];
  example: string;
  exits: ExitCodes;
  /** Exit codes of the run table this command can end with (for `exits: "run"`). */
  codes?: number[];
  /** It only prints what it read (history, unit): no log file, not even for a config error. */
  printsOnly?: true;
  /** What a code means for this command where the run table's words do not fit (e.g. 0 for restore). */
  exitText?: Record<number, string>;
  /** It only reads: stderr shows warnings and errors, not the info lines (the log file keeps them). */
  readOnly?: true;
  /** Which jobs it takes without --job: "args" those named as arguments (or all), "all" every job; default the only one. */
  jobs?: "args" | "all";
  /** It writes state_dir (the lock, the catalogue): it must run as state_dir's owner. */
  writesState?: (p: { dryRun: boolean }) => boolean;
}

export const CONFIG: OptionSpec = {
  name: "config",
  short: "c",
  value: "FILE",
  help: "config file; otherwise $ARCHIVIST_CONFIG, /etc/archivist/archive.yaml, ./archive.yaml",
};
export const QUIET: OptionSpec = { name: "quiet", short: "q", help: "only errors on stderr (the log file is unchanged)" };
export const VERBOSE: OptionSpec = { name: "verbose", short: "v", help: "debug lines on stderr and in the log file" };
export const JSON_OUT: OptionSpec = { name: "json", help: "machine-readable output on stdout" };
export const COMMON = [CONFIG, QUIET, VERBOSE];
export const JOB: OptionSpec = {
  name: "job",
  value: "NAME",
  help: "in a config with jobs: the job to work on (needed there, except by verify and history, which take every job)",
};
export const WITH_JOB = [...COMMON, JOB];
export const DESTINATION: OptionSpec = {
  name: "destination",
  value: "N",
  help: "with destinations: the one to work on, by its place in the list (default 1)",
};
export const IDENTITY: OptionSpec = {
  name: "identity",
  value: "FILE",
  help: "the age private key that opens encrypted archives (default: archive.encrypt.identity_file)",
};
