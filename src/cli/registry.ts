/**
 * The command registry, the parser and the help. Every command is declared once, in its own module
 * (src/commands/<name>.ts: its options, its arguments, a one-line summary, an example, the exit codes it uses, and
 * its code). The command-line parser, `archivist --help`, `archivist COMMAND --help` and the docs test all read this
 * table, so a command accepts exactly its own options (anything else is exit 2 with that command's usage), and
 * its help cannot drift from what it accepts.
 */
import { parseArgs } from "node:util";
import { EXIT, EXIT_DESCRIPTIONS } from "../errors.ts";

import { type CommandSpec, COMMON, type OptionSpec } from "../commands/options.ts";
import type { Command } from "../commands/context.ts";
import { run } from "../commands/run.ts";
import { history } from "../commands/history.ts";
import { list } from "../commands/list.ts";
import { prune } from "../commands/prune.ts";
import { verify } from "../commands/verify.ts";
import { check } from "../commands/check.ts";
import { restoreCommand } from "../commands/restore.ts";
import { mailTest } from "../commands/mail-test.ts";
import { unit } from "../commands/unit.ts";
import { completion } from "../commands/completion.ts";

export type { CommandSpec, ExitCodes, OptionSpec } from "../commands/options.ts";

/** Every command, in the order --help lists them; each module declares its options beside its code. */
export const COMMAND_MODULES: Command[] = [run, history, list, prune, verify, check, restoreCommand, mailTest, unit, completion];

export const COMMANDS: CommandSpec[] = COMMAND_MODULES.map((m) => m.spec);

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

/** The exit code a bad command line gives: 3 (UNKNOWN) for the Nagios checks, so a typo is never CRITICAL. */
export function usageExit(command: string | undefined): number {
  return command && commandSpec(command)?.exits === "nagios" ? NAGIOS_UNKNOWN : EXIT.USAGE;
}
const NAGIOS_UNKNOWN = 3;

/** The exit codes of a command with what each means for it: the one table its help and its man page show. */
export function exitTable(c: CommandSpec): [number, string][] {
  if (c.exits === "nagios") {
    return [[0, "OK"], [1, "WARNING"], [2, "CRITICAL"], [3, "UNKNOWN (also a bad command line)"]];
  }
  if (c.exits === "simple") return [[0, "done"], [2, "bad command line"], [10, "config problem"]];
  return EXIT_DESCRIPTIONS.filter(([code]) => code === 2 || c.codes!.includes(code)).map(([code, d]) => [code, c.exitText?.[code] ?? d]);
}

/** Exit code lines of a command. */
function exitLines(c: CommandSpec): string[] {
  return exitTable(c).map(([code, d]) => `${String(code).padStart(3)}  ${d}`);
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
    "Docs: README.md, docs/USER_GUIDE.md (first job, operating, exit codes), docs/TECHNICAL.md (every key).",
    "",
  ].join("\n");
}
