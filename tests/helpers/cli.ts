/** Run the CLI (main.ts through `deno run`, with the launcher's permissions) and write test configs. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { DENO_PERMISSIONS } from "../../src/permissions.ts";
import { readHistory } from "../../src/records/history.ts";
import { sh } from "../../tools/fixtures.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const MAIN = join(ROOT, "main.ts");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The runs of a history file as archivist reads them (each job's line with its report folded in); [] when none. */
export function historyRuns(path: string): any[] {
  return readHistory(path).runs;
}

/** Run `archivist ARGS` in a subprocess. */
export async function runCli(args: string[], opts: { env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await spawnCli(args, opts.env).output();
  const td = new TextDecoder();
  return { code: r.code, stdout: td.decode(r.stdout), stderr: td.decode(r.stderr) };
}

/** Start `archivist ARGS` and return the child (for concurrency and signal tests). */
export function spawnCli(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    // The permissions users run with (src/permissions.ts), not --allow-all: a feature that needs more fails here.
    args: ["run", ...DENO_PERMISSIONS, "--quiet", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Deep-merge plain objects (override wins; `undefined` deletes). */
export function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else if (v && typeof v === "object" && !Array.isArray(v) && out[k] && typeof out[k] === "object") {
      out[k] = merge(out[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

/** A fresh sandbox: temp root with state, work, log and destination dirs, plus a config writer. */
export interface Sandbox {
  root: string;
  dest: string;
  stateDir: string;
  logFile: string;
  historyFile: string;
  configPath: string;
  base: Record<string, unknown>;
  writeConfig(over?: Record<string, unknown>, mode?: number): Promise<string>;
  cleanup(): Promise<void>;
}

export async function sandbox(source: { url: string; caFile: string }, extra: Record<string, unknown> = {}): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "archivist-test-" });
  const dest = join(root, "dest");
  const stateDir = join(root, "state");
  const logFile = join(root, "log", "archivist.log");
  const configPath = join(root, "archive.yaml");
  const base = merge({
    name: "testjob",
    state_dir: stateDir,
    work_dir: join(root, "work"),
    source: {
      url: source.url,
      entry: "dump.sql",
      ca_file: source.caFile,
      retries: 2,
      retry_delay: "50ms",
      connect_timeout: "5s",
      timeout: "30s",
    },
    check: { expect_trailer: "-- Dump completed" },
    archive: { timezone: "UTC" },
    destination: { type: "local", path: dest, create_dirs: true },
    retention: { max_age: "30d", min_keep: 3 },
    log: { file: logFile },
  }, extra);
  const sb: Sandbox = {
    root,
    dest,
    stateDir,
    logFile,
    historyFile: join(stateDir, "history.jsonl"),
    configPath,
    base,
    async writeConfig(over = {}, mode = 0o600) {
      await Deno.writeTextFile(configPath, stringify(merge(base, over)));
      await Deno.chmod(configPath, mode);
      return configPath;
    },
    async cleanup() {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
  await sb.writeConfig();
  return sb;
}

/** A fresh age key pair in the sandbox: the key file and its public key. */
export async function ageKeyPair(sb: Sandbox, name = "key.txt"): Promise<{ key: string; pub: string }> {
  const key = join(sb.root, name);
  await sh("age-keygen", ["-o", key]);
  const pub = /public key: (age1\S+)/.exec(await Deno.readTextFile(key))![1];
  return { key, pub };
}

/** The paths of the files in the sandbox's work dir (each run's private dir), none when it is not there. */
export function workFiles(sb: Sandbox): string[] {
  const work = join(sb.root, "work");
  try {
    return [...Deno.readDirSync(work)].flatMap((d) => [...Deno.readDirSync(join(work, d.name))].map((f) => join(work, d.name, f.name)));
  } catch {
    return [];
  }
}

/**
 * Wait until `cond` gives a truthy value (polled every `every` ms) and return it; fail naming `what` after `ms`. An
 * event awaited, not a guessed sleep.
 */
export async function waitFor<T>(
  cond: () => T | undefined | null | false | 0 | Promise<T | undefined | null | false | 0>,
  what: string,
  ms = 30_000,
  every = 5,
): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (performance.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The pid of a running process whose command line matches `test` (read from /proc), or undefined. */
export function findProcess(test: (argv: string[], cmd: string) => boolean): number | undefined {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (test(cmd.split("\0"), cmd)) return Number(e.name);
    } catch { /* gone */ }
  }
  return undefined;
}

/** True once process `pid` is gone. */
export function processGone(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return false;
  } catch {
    return true;
  }
}
