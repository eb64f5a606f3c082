/**
 * Which processes are running, through `ps` (procps, Priority: important on Debian). Not through /proc: Deno 2
 * grants /proc only with --allow-all, and archivist runs with the narrower set of src/permissions.ts; `ps` needs
 * only --allow-run, which the transfer tools need anyway.
 *
 * A process is identified by its pid *and* its exact command line: the command lines archivist starts always
 * hold a private path of the run (a ControlPath, a netrc or auth file), so a reused pid never matches.
 */

export interface Proc {
  pid: number;
  /** The command line as ps shows it (arguments joined by spaces, never truncated). */
  args: string;
}

/** Every process of this machine, or undefined when `ps` cannot be run (then nothing is killed or removed). */
export function processes(): Map<number, Proc> | undefined {
  let out: Deno.CommandOutput;
  try {
    out = new Deno.Command("ps", {
      args: ["-ww", "-eo", "pid=,args="],
      clearEnv: true,
      env: { LC_ALL: "C", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
  } catch {
    return undefined;
  }
  if (!out.success) return undefined;
  const map = new Map<number, Proc>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s(.*)$/.exec(line);
    if (m) map.set(Number(m[1]), { pid: Number(m[1]), args: m[2] });
  }
  return map;
}

/** The command line of a child as `ps` will show it. */
export function commandLine(cmd: string, args: string[]): string {
  return [cmd, ...args].join(" ");
}

/**
 * True when the command line `ps` shows is `recorded` (from {@link commandLine}). The program may appear as a
 * resolved path ("/usr/bin/curl" for "curl"): its base name and every argument must agree.
 */
export function sameCommand(shown: string, recorded: string): boolean {
  const split = (s: string) => {
    const sp = s.indexOf(" ");
    return sp < 0 ? [s, ""] : [s.slice(0, sp), s.slice(sp + 1)];
  };
  const [a0, ar] = split(shown), [b0, br] = split(recorded);
  return ar === br && a0.split("/").pop() === b0.split("/").pop();
}
