/**
 * Errors and exit codes.
 *
 * Every failure that reaches the user is an {@link ArchivistError}: it names the step that failed,
 * the cause in plain words, and a hint that says what to do about it. The step decides the exit code,
 * so a cron mail or a monitoring system can tell "the source was down" from "the backup disk is full"
 * without reading the log.
 */

/** The steps of a run, in the order they happen. Also used as log/step labels. */
export type StepName =
  | "config"
  | "lock"
  | "fetch"
  | "unzip"
  | "check"
  | "compare"
  | "pack"
  | "store"
  | "retention"
  | "state"
  | "hook"
  | "mail"
  | "restore"
  | "internal";

/**
 * Exit codes of `archivist run` (and `prune`, `restore`, `mail-test`). Told once, in docs/USER_GUIDE.md section 6
 * (generated), and in each command's `--help`; tests keep both in sync with this table.
 */
export const EXIT = {
  OK: 0,
  WARNING: 1,
  USAGE: 2,
  CONFIG: 10,
  LOCK: 11,
  UNPACK: 12,
  FETCH: 20,
  UNZIP: 21,
  CHECK: 22,
  COMPARE: 23,
  PACK: 24,
  HOOK: 25,
  STORE: 30,
  RETENTION: 31,
  STATE: 32,
  MAIL: 40,
  RESTORE: 50,
  INTERRUPTED: 130,
  INTERNAL: 70,
} as const;

/** One line per exit code, used by `--help` and the docs test. */
export const EXIT_DESCRIPTIONS: ReadonlyArray<[number, string]> = [
  [EXIT.OK, "success: archive stored (or nothing to do)"],
  [EXIT.WARNING, "warning: dump unchanged and skipped, or a retention deletion failed"],
  [EXIT.USAGE, "bad command line"],
  [EXIT.CONFIG, "config: file missing, unreadable, invalid, or unsafe permissions"],
  [EXIT.LOCK, "lock: another run is still running"],
  [EXIT.UNPACK, "start: the self-extracting file could not unpack or start its runtime (cache dir, noexec mount, damaged file)"],
  [EXIT.FETCH, "fetch: download failed (DNS, TLS, HTTP status, timeout, truncated, not a zip)"],
  [EXIT.UNZIP, "unzip: corrupt zip, entry missing, unsupported method, CRC/size mismatch, zip bomb"],
  [EXIT.CHECK, "check: dump empty, too small, or trailer missing"],
  [EXIT.COMPARE, "compare: dump unchanged and check.on_unchanged is 'fail'"],
  [EXIT.PACK, "pack: could not write the .tgz (disk full, permissions)"],
  [EXIT.HOOK, "hook: hooks.before failed or timed out (nothing was fetched)"],
  [EXIT.STORE, "store: destination missing, not mounted, unwritable, or upload failed"],
  [EXIT.RETENTION, "retention: refused to delete (max_delete exceeded) or could not list"],
  [EXIT.STATE, "state: the state file could not be read or written"],
  [EXIT.MAIL, "mail: mail-test could not send (never used by run)"],
  [EXIT.RESTORE, "restore: archive missing, checksum mismatch, or extraction failed"],
  [EXIT.INTERNAL, "internal error (a bug: please report it with the log)"],
  [EXIT.INTERRUPTED, "interrupted by SIGINT/SIGTERM (temp files removed)"],
];

const STEP_EXIT: Record<StepName, number> = {
  config: EXIT.CONFIG,
  lock: EXIT.LOCK,
  fetch: EXIT.FETCH,
  unzip: EXIT.UNZIP,
  check: EXIT.CHECK,
  compare: EXIT.COMPARE,
  pack: EXIT.PACK,
  store: EXIT.STORE,
  retention: EXIT.RETENTION,
  state: EXIT.STATE,
  hook: EXIT.HOOK,
  mail: EXIT.MAIL,
  restore: EXIT.RESTORE,
  internal: EXIT.INTERNAL,
};

/** The exit code for a failure in `step`. */
export function exitCodeFor(step: StepName): number {
  return STEP_EXIT[step];
}

/**
 * A failure with its step, cause and hint.
 *
 * @example
 * throw new ArchivistError("fetch", "HTTP 404 Not Found from db.example.org", "check source.url");
 */
export class ArchivistError extends Error {
  readonly step: StepName;
  readonly hint: string;
  readonly exitCode: number;
  /** Short machine-friendly code, e.g. "http_status", "dns", "tls". */
  readonly code: string;

  constructor(step: StepName, message: string, hint = "", opts: { code?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ArchivistError";
    this.step = step;
    this.hint = hint;
    this.code = opts.code ?? "error";
    this.exitCode = opts.exitCode ?? exitCodeFor(step);
  }
}

/** A configuration error: always names the file and the key path. */
export class ConfigError extends ArchivistError {
  constructor(message: string, hint = "", code = "config") {
    super("config", message, hint, { code });
    this.name = "ConfigError";
  }
}

/** Wrap any thrown value as an ArchivistError of the given step, keeping ArchivistErrors as they are. */
export function asArchivistError(step: StepName, e: unknown, hint = ""): ArchivistError {
  if (e instanceof ArchivistError) return e;
  if ((e as { code?: string })?.code === "ENOSPC" || /no space left|os error 28/i.test(errMsg(e))) {
    return new ArchivistError(step, `no space left on device: ${errMsg(e)}`, "free disk space (work_dir or destination)", {
      code: "no_space",
      cause: e,
    });
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new ArchivistError(step, `permission denied: ${errMsg(e)}`, hint || "check the owner and mode of that path", {
      code: "permission",
      cause: e,
    });
  }
  return new ArchivistError(step, errMsg(e), hint, { cause: e });
}

/** The message of any thrown value. */
export function errMsg(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
