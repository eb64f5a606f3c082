/**
 * Writing commands (run, prune, check) run as the user who owns state_dir. Run by hand as root on an install for
 * user `backup`, they would leave root-owned state, catalogue and history files that the next night (as backup)
 * cannot write: exit 32 every night after. So they refuse, and say how to run them instead.
 */
import { ArchivistError, EXIT } from "../errors.ts";

/** The name of a uid from /etc/passwd, or the number. */
export function userName(uid: number): string {
  try {
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const f = line.split(":");
      if (f.length > 2 && Number(f[2]) === uid) return f[0];
    }
  } catch { /* no passwd */ }
  return String(uid);
}

/**
 * The error when this process is not the owner of `stateDir` (which exists), or undefined.
 * @example runUserProblem("/var/lib/archivist", "run", "/etc/archivist/archive.yaml")
 */
export function runUserProblem(stateDir: string, command: string, configFile: string): ArchivistError | undefined {
  let owner: number | null;
  try {
    owner = Deno.statSync(stateDir).uid;
  } catch {
    return undefined; // not created yet: this run creates it as its own
  }
  const me = Deno.uid();
  if (owner === null || me === null || owner === me) return undefined;
  const who = userName(owner);
  return new ArchivistError(
    "lock",
    `state_dir ${stateDir} belongs to ${who}, but this is ${userName(me)}: files written now would belong to ${
      userName(me)
    } and the nightly run as ${who} could not write them; nothing was done`,
    `run it as ${who}: sudo -u ${who} archivist ${command} -c ${configFile}  (or: runuser -u ${who} -- archivist ${command} -c ${configFile})`,
    { code: "run_user", exitCode: EXIT.STATE },
  );
}
