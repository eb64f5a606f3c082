/**
 * Every command, declared once: its options, its arguments, a one-line summary, an example and the exit codes it
 * uses. The command-line parser, `archivist --help`, `archivist COMMAND --help` and the docs test all read this
 * table, so a command accepts exactly its own options (anything else is exit 2 with that command's usage), and
 * its help cannot drift from what it accepts.
 */
import { parseArgs } from "node:util";
import { EXIT_DESCRIPTIONS } from "./errors.ts";

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
}

const CONFIG: OptionSpec = {
  name: "config",
  short: "c",
  value: "FILE",
  help: "config file; otherwise $ARCHIVIST_CONFIG, /etc/archivist/archive.yaml, ./archive.yaml",
};
const QUIET: OptionSpec = { name: "quiet", short: "q", help: "only errors on stderr (the log file is unchanged)" };
const VERBOSE: OptionSpec = { name: "verbose", short: "v", help: "debug lines on stderr and in the log file" };
const JSON_OUT: OptionSpec = { name: "json", help: "machine-readable output on stdout" };
const COMMON = [CONFIG, QUIET, VERBOSE];
const JOB: OptionSpec = {
  name: "job",
  value: "NAME",
  help: "in a config with jobs: the job to work on (needed there, except by verify and history, which take every job)",
};
const WITH_JOB = [...COMMON, JOB];
const DESTINATION: OptionSpec = {
  name: "destination",
  value: "N",
  help: "with destinations: the one to work on, by its place in the list (default 1)",
};

export const COMMANDS: CommandSpec[] = [
  {
    name: "run",
    summary:
      "the nightly cycle: fetch, unzip, check, compare, pack, store, state, retention (every job, or the JOBs named, one after the other)",
    args: "[JOB...]",
    maxArgs: 100,
    options: [
      ...COMMON,
      {
        name: "dry-run",
        help: "fetch, check and pack for real, then only say what store and retention would do: nothing is written " +
          "to the destination, the state, the catalogue or the history, and no ping or mail goes out",
      },
      {
        name: "progress",
        help: "a progress line (bytes, rate, ETA) on stderr for fetch, verify, pack and the read-back, even when stderr " +
          "is not a terminal (default: only on a terminal; never in the log)",
      },
      { name: "no-progress", help: "no progress line, even on a terminal" },
    ],
    example: "archivist run -c /etc/archivist/archive.yaml",
    exits: "run",
    codes: [0, 1, 10, 11, 20, 21, 22, 23, 24, 30, 31, 32, 70, 130],
  },
  {
    name: "history",
    summary: "the run history, newest last",
    maxArgs: 0,
    options: [CONFIG, JOB, { name: "last", value: "N", help: "only the last N runs" }, JSON_OUT],
    example: "archivist history --last 7",
    exits: "simple",
  },
  {
    name: "list",
    summary: "archives on the destination, stored last first, with what keeps each or when it expires",
    maxArgs: 0,
    options: [...WITH_JOB, DESTINATION, JSON_OUT],
    example: "archivist list",
    exits: "simple",
  },
  {
    name: "prune",
    summary: "apply retention alone",
    maxArgs: 0,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "dry-run", help: "print the whole plan (every archive, keep or delete, and why); delete nothing" },
      { name: "force", help: "apply it beyond retention.max_delete, or with a clock in doubt, once" },
    ],
    example: "archivist prune --dry-run",
    exits: "run",
    codes: [0, 1, 10, 11, 31, 32, 70],
  },
  {
    name: "verify",
    summary: "health check of everything a night needs, archiving nothing (also: archivist --verify)",
    maxArgs: 0,
    options: [...WITH_JOB, JSON_OUT],
    example: "archivist verify",
    exits: "nagios",
  },
  {
    name: "check",
    summary: "restore drill: every archive present with its size; a sample read back whole, checksums and dump verified",
    maxArgs: 0,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "sample", value: "N", help: "read back N archives, the ones checked longest ago (default 1)" },
      { name: "all", help: "read back every archive" },
      JSON_OUT,
    ],
    example: "archivist check --sample 2",
    exits: "nagios",
  },
  {
    name: "restore",
    summary: "download an archive, check its sha256, extract the dump into DIR, print its path",
    args: "[NAME|latest]",
    maxArgs: 1,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "to", value: "DIR", help: "where to extract (default: the current directory)" },
      { name: "force", help: "overwrite an existing dump file there" },
    ],
    example: "archivist restore latest --to /srv/restore",
    exits: "run",
    codes: [0, 10, 50, 70],
  },
  {
    name: "mail-test",
    summary: "send a test message with the mail settings",
    maxArgs: 0,
    options: WITH_JOB,
    example: "archivist mail-test",
    exits: "run",
    codes: [0, 10, 40],
  },
];

export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** A bad command line: exit 2 with this message and the usage of `command` (or the general one). */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

export interface ParsedArgs {
  command: string;
  /** Option values by long name (switches are true). */
  values: Record<string, string | boolean | undefined>;
  args: string[];
}

/**
 * Split argv into the command, its own options and its arguments. `--help`/`-h` anywhere asks for help (of the
 * command when there is one); `--verify` and `--version` stand alone.
 */
export function parseCommandLine(argv: string[]): ParsedArgs {
  const valued = new Set(
    COMMANDS.flatMap((c) => c.options.filter((o) => o.value).flatMap((o) => [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])])),
  );
  // Find the command: the first word that is not an option or an option's value.
  let command = "", at = -1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (a.startsWith("-")) {
      if (valued.has(a)) i++;
      continue;
    }
    command = a;
    at = i;
    break;
  }
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (!command) {
    if (wantsHelp) return { command: "help", values: {}, args: [] };
    if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) return { command: "version", values: {}, args: [] };
    const rest = argv.filter((a) => a !== "--verify");
    if (argv.includes("--verify")) return parseCommandLine(["verify", ...rest]);
    if (argv.length) throw new UsageError(`no command given (${argv.join(" ")})`);
    return { command: "", values: {}, args: [] };
  }
  const spec = commandSpec(command);
  if (!spec) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  if (wantsHelp) return { command: "help", values: { of: command }, args: [] };
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const o of spec.options) options[o.name] = { type: o.value ? "string" : "boolean", ...(o.short ? { short: o.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv.filter((_, i) => i !== at), options, allowPositionals: true, strict: true });
  } catch (e) {
    const m = /Unknown option '([^']+)'/.exec(String(e));
    throw new UsageError(m ? `${command} does not take ${m[1]}` : (e instanceof Error ? e.message : String(e)), command);
  }
  const args = parsed.positionals;
  if (args.length > spec.maxArgs) throw new UsageError(`unexpected argument ${JSON.stringify(args[spec.maxArgs])}`, command);
  return { command, values: parsed.values as Record<string, string | boolean | undefined>, args };
}

/** `text` in lines of at most `width` characters, at word boundaries. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) (lines.push(line), line = word);
    else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

function optionLines(opts: OptionSpec[]): string[] {
  const left = (o: OptionSpec) => `${o.short ? `-${o.short}, ` : "    "}--${o.name}${o.value ? ` ${o.value}` : ""}`;
  const w = Math.max(...opts.map((o) => left(o).length)) + 2;
  return opts.flatMap((o) => wrap(o.help, Math.max(40, 100 - w)).map((l, i) => `  ${(i ? "" : left(o)).padEnd(w)}${l}`));
}

function usageLine(c: CommandSpec): string {
  const opts = c.options.map((o) => (o.value ? `[--${o.name} ${o.value}]` : `[--${o.name}]`)).join(" ");
  return `archivist ${c.name} ${opts}${c.args ? ` ${c.args}` : ""}`;
}

/** Exit code lines of a command. */
function exitLines(c: CommandSpec): string[] {
  if (c.exits === "nagios") return ["  0  OK", "  1  WARNING", "  2  CRITICAL", "  3  UNKNOWN", "  (and 2 for a bad command line)"];
  if (c.exits === "simple") return ["  0  done", "  2  bad command line", " 10  config problem"];
  return EXIT_DESCRIPTIONS.filter(([code]) => code === 2 || c.codes!.includes(code)).map(([code, d]) =>
    `${String(code).padStart(3)}  ${d}`
  );
}

/** `archivist COMMAND --help`. */
export function commandHelp(name: string): string {
  const c = commandSpec(name)!;
  return [
    `archivist ${c.name}: ${c.summary}`,
    "",
    `Usage: ${usageLine(c)}`,
    "",
    "Options:",
    ...optionLines([...c.options, { name: "help", short: "h", help: "this help" }]),
    "",
    "Example:",
    `  ${c.example}`,
    "",
    "Exit codes:",
    ...exitLines(c),
    "",
  ].join("\n");
}

/** `archivist --help`. */
export function generalHelp(version: string): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `archivist ${version}: nightly download, check, archive and rotation of a database dump`,
    "",
    "Usage: archivist COMMAND [options]     (archivist COMMAND --help: its options, an example, its exit codes)",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    "",
    "Common options:",
    ...optionLines(COMMON),
    "  --version          the version, and which form runs (compiled, self-extracting with its cache, deno run)",
    "",
    "Environment:",
    "  ARCHIVIST_CONFIG  the config file when --config is not given",
    "  ARCHIVIST_CACHE   where the self-extracting file unpacks its runtime (default /var/cache/archivist when it",
    "                    is yours, or for root; else ~/.cache/archivist)",
    "",
    "Exit codes (run, prune, restore, mail-test; verify and check use Nagios codes 0-3):",
    ...EXIT_DESCRIPTIONS.map(([c, d]) => `  ${String(c).padStart(3)}  ${d}`),
    "",
    "Docs: README.md, docs/USER_GUIDE.md (operating, troubleshooting by exit code), docs/TECHNICAL.md (every key).",
    "",
  ].join("\n");
}
