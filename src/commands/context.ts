/**
 * What the dispatcher (src/cli/main.ts) hands to every command: the parsed command line, the config's jobs and the ones
 * the command works on, the clock, the environment, the logger and stdout.
 */
import { join } from "node:path";
import type { ArchivistError } from "../errors.ts";
import type { Clock } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import type { CommandSpec } from "./options.ts";

/** The command line, parsed against the command's own options. */
export interface Parsed {
  command: string;
  /** For `help`: the command whose help was asked. */
  helpOf?: string;
  config?: string;
  quiet: boolean;
  verbose: boolean;
  json: boolean;
  dryRun: boolean;
  /** history --runs: only the nightly runs' lines. */
  runs: boolean;
  /** --progress (true), --no-progress (false), or neither (the terminal decides). */
  progress?: boolean;
  force: boolean;
  /** restore --fallback. */
  fallback: boolean;
  last?: number;
  sample: number;
  all: boolean;
  target?: string;
  /** run: the jobs named on the command line. */
  targets: string[];
  /** --job NAME. */
  job?: string;
  /** --destination N (1-based). */
  destination?: number;
  to?: string;
  /** unit --user: the service's User=. */
  user?: string;
  /** completion --jobs: the config's job names. */
  jobs: boolean;
  /** restore/check --identity FILE: the age private key. */
  identity?: string;
}

export interface CommandContext {
  p: Parsed;
  /** Every job of the config file. */
  jobs: Config[];
  /** The jobs this command works on (run: those named, or all; verify and history: --job or all; others: one). */
  selected: Config[];
  /** The first selected job, with the destination of --destination. */
  cfg: Config;
  clock: Clock;
  env: Env;
  log: Logger;
  out: (s: string) => void;
}

/** A command: its declaration (options, usage, exit codes) and its code, in one module. */
export interface Command {
  spec: CommandSpec;
  run?(c: CommandContext): Promise<number> | number;
  /** A command that needs no config nor log (completion): run on its own, with every command's declaration. */
  alone?(p: Parsed, env: Env, out: (s: string) => void, commands: CommandSpec[]): number;
  /** How it reports a config that cannot be loaded, when not as a run does (verify: a Nagios CRITICAL). */
  configFailed?(err: ArchivistError, p: Parsed, out: (s: string) => void): number;
  /** How it reports its own crash, when not as a run does (verify: a Nagios UNKNOWN). */
  crashed?(err: ArchivistError, out: (s: string) => void): number;
}

export function historyPath(cfg: Config): string {
  return cfg.history.file ?? join(cfg.state_dir, "history.jsonl");
}
