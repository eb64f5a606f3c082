/**
 * hooks: the admin's own commands around a night (`hooks.before`, `hooks.after`, `hooks.on_failure`). Each is an argv
 * list run without a shell, in a process group of its own (killed whole past `hooks.timeout` or on SIGTERM), with the
 * environment the transfer tools get (no secrets) and the night's facts as ARCHIVIST_* variables; its output goes
 * to the log file only, each line prefixed. `before` failing fails the night before anything is fetched (exit 25);
 * `after` / `on_failure` failing is a warning: it never hides the night's own outcome.
 */
import { ArchivistError, EXIT } from "../errors.ts";
import { formatDuration, shortDuration } from "../config/units.ts";
import { execGroup, MissingToolError } from "../os/exec.ts";
import { targetLocations } from "../transports/registry.ts";
import type { Done, Night } from "./types.ts";

export type HookName = "before" | "after" | "on_failure";

/** What an after hook is told of the night. */
export interface NightFacts {
  status: string;
  exitCode: number;
  archive?: { name: string; sha256: string };
}

/** The ARCHIVIST_* variables of a hook. */
export function hookEnv(n: Night, facts?: NightFacts): Record<string, string> {
  const env: Record<string, string> = {
    ARCHIVIST_JOB: n.config.name,
    ARCHIVIST_RUN_ID: n.runId,
    ARCHIVIST_DESTINATIONS: targetLocations(n.config.targets).join(" "),
    ARCHIVIST_LOG_FILE: n.log.filePath ?? "",
  };
  if (facts) {
    env.ARCHIVIST_STATUS = facts.status;
    env.ARCHIVIST_EXIT_CODE = String(facts.exitCode);
    if (facts.archive) (env.ARCHIVIST_ARCHIVE = facts.archive.name, env.ARCHIVIST_ARCHIVE_SHA256 = facts.archive.sha256);
  }
  return env;
}

/** Run hook `which` (configured: `argv`); throws its failure (the caller decides: fatal before, a warning after). */
export async function runHook(n: Night, which: HookName, argv: string[], env: Record<string, string>): Promise<Done<void>> {
  const key = `hooks.${which}`;
  const what = `${key} (${argv.join(" ")})`;
  const t0 = performance.now();
  let r;
  try {
    r = await execGroup(argv, {
      env,
      timeoutMs: n.config.hooks.timeout,
      onLine: (stream, line) => n.log.fileOnly(stream === "stderr" ? "warn" : "info", "hook", `${which}: ${line}`),
    });
  } catch (e) {
    const missing = e instanceof MissingToolError ? `${argv[0]} was not found` : String(e);
    throw hookError(`${what} could not start: ${missing}`, `check ${key}: a program's path (or a name on PATH), then its arguments`);
  }
  if (r.timedOut) {
    throw hookError(
      `${what} did not finish within hooks.timeout (${
        shortDuration(n.config.hooks.timeout)
      }): it was killed, with every process it started`,
      "see what it waits for in its output in the log; raise hooks.timeout if it is only slow",
    );
  }
  if (r.code !== 0) {
    const said = r.stderrTail.length ? `: ${r.stderrTail.join(" | ")}` : " (nothing on stderr)";
    throw hookError(
      `${what} exited with status ${r.code}${said}`,
      "its whole output is in the log (lines 'hook: …'); fix the hook or what it reports",
    );
  }
  return { status: "ok", message: `${what}: exit 0 in ${formatDuration(performance.now() - t0)}`, value: undefined };
}

function hookError(message: string, hint: string): ArchivistError {
  return new ArchivistError("hook", message, hint, { code: "hook", exitCode: EXIT.HOOK });
}
