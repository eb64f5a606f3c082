/**
 * Finding, reading and validating the config file, once, at the edge. Everything after this works on the typed
 * {@link Config}; every error here names the file and the key path.
 */
import { isAlias, parseDocument, visit } from "yaml";
import { ConfigError, errMsg } from "../errors.ts";
import type { Env } from "../os/env.ts";
import { Field, FieldError } from "./fields.ts";
import { configSchema, type RawConfig, type RetentionConfig } from "./schema.ts";
import { type DestinationConfig, placeOf } from "../transports/registry.ts";
import { expandJobs } from "./jobs.ts";
import { checkTrustedFiles, unsafeFile } from "./trust.ts";

export const DEFAULT_CONFIG_PATHS = ["/etc/archivist/archive.yaml", "./archive.yaml"];

/** One place the archives go, with the retention that applies there. */
export interface Target {
  destination: DestinationConfig;
  retention: RetentionConfig;
}

/** The validated config, secrets resolved. */
export type Config = Omit<RawConfig, "destination" | "destinations"> & {
  /** The first (or only) destination; `retention` is its retention. Commands on one destination use these. */
  destination: DestinationConfig;
  /** Every destination, in order, each with its retention (destination: alone is one target). */
  targets: Target[];
  /** The file it came from. */
  file: string;
  /** Every secret value, for redaction from logs, history and mail. */
  secretValues: string[];
};

/**
 * The config as the commands on one destination see it (list, prune, restore, check, retention in a night): that
 * destination and its retention in `destination` and `retention`. The one place a config is viewed per destination.
 */
export function atTarget(config: Config, target: Target): Config {
  return { ...config, destination: target.destination, retention: target.retention };
}

/** Which config file to use: --config, then $ARCHIVIST_CONFIG, then /etc/archivist/archive.yaml, then ./archive.yaml. */
export function findConfigPath(flag: string | undefined, env: Env, exists = fileExists): { path: string; how: string } {
  if (flag) return { path: flag, how: "--config" };
  const fromEnv = env.get("ARCHIVIST_CONFIG");
  if (fromEnv) return { path: fromEnv, how: "$ARCHIVIST_CONFIG" };
  for (const p of DEFAULT_CONFIG_PATHS) if (exists(p)) return { path: p, how: "default location" };
  throw new ConfigError(
    `no config file: none given with --config or $ARCHIVIST_CONFIG, and none at ${DEFAULT_CONFIG_PATHS.join(" or ")}`,
    "copy archive.yaml.example to /etc/archivist/archive.yaml (mode 600) and edit it",
    "missing",
  );
}

function fileExists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Read, parse and validate `path`, a one-job file. Throws ConfigError naming the file and the key. */
export function loadConfig(path: string, env: Env): Config {
  return onlyJob(loadJobs(path, env), path);
}

/** The one job of a file, or an error naming its jobs. */
function onlyJob(jobs: Config[], path: string): Config {
  if (jobs.length > 1) {
    throw new ConfigError(`${path} has ${jobs.length} jobs (${jobs.map((j) => j.name).join(", ")})`, "name one with --job NAME", "jobs");
  }
  return jobs[0];
}

/** Read, parse and validate `path`: every job it holds (one without `jobs:`). */
export function loadJobs(path: string, env: Env): Config[] {
  let text: string;
  let mode = 0;
  try {
    mode = (Deno.statSync(path).mode ?? 0) & 0o777;
    const unsafe = unsafeFile(path, "config file");
    if (unsafe) throw unsafe;
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`config file ${path} not found`, "check the path given with --config or $ARCHIVIST_CONFIG", "missing");
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(
        `cannot read config file ${path}: permission denied`,
        "run archivist as the user that owns the config (see the cron entry), or fix its owner",
        "unreadable",
      );
    }
    if (e instanceof Deno.errors.IsADirectory) throw new ConfigError(`config file ${path} is a directory`, "", "unreadable");
    throw new ConfigError(`cannot read config file ${path}: ${errMsg(e)}`, "", "unreadable");
  }
  return parseJobsText(text, path, env, mode);
}

/** The machine's time zone (TZ, else /etc/localtime), as cron sees it; UTC when unknown. */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** Validate one-job config text (a file with jobs: is refused: see parseJobsText). */
export function parseConfigText(text: string, path: string, env: Env, mode = 0o600): Config {
  return onlyJob(parseJobsText(text, path, env, mode), path);
}

/** The first alias whose anchor is not set above it, with its line (1-based), or undefined. */
function firstUnresolvedAlias(doc: ReturnType<typeof parseDocument>, text: string): { name: string; line: number } | undefined {
  const anchors = new Set<string>();
  let found: { name: string; line: number } | undefined;
  visit(doc, {
    Node(_key, node) {
      if (found) return visit.BREAK;
      if (isAlias(node)) {
        if (!anchors.has(node.source)) {
          const at = node.range?.[0] ?? 0;
          found = { name: node.source, line: text.slice(0, at).split("\n").length };
          return visit.BREAK;
        }
      } else if ((node as { anchor?: string }).anchor) anchors.add((node as { anchor: string }).anchor);
      return undefined;
    },
  });
  return found;
}

/** Validate config text into its jobs; `mode` is the file's permission bits (for the inline-secret rule). */
export function parseJobsText(text: string, path: string, env: Env, mode = 0o600): Config[] {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  // An alias used before its anchor is no parse error: toJS() throws, naming neither file nor line.
  const unresolved = doc.errors.length ? undefined : firstUnresolvedAlias(doc, text);
  if (unresolved) {
    throw new ConfigError(
      `${path}: line ${unresolved.line}: the alias *${unresolved.name} is used before its anchor &${unresolved.name} is set`,
      "YAML reads top to bottom: define the &anchor above every *alias to it",
      "yaml",
    );
  }
  if (doc.errors.length) {
    const e = doc.errors[0];
    const where = e.linePos?.[0] ? ` line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "";
    throw new ConfigError(
      `${path}:${where}: invalid YAML: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`,
      "check indentation and quoting at that line",
      "yaml",
    );
  }
  const raw = doc.toJS();
  if (raw === null || raw === undefined) throw new ConfigError(`${path}: the file is empty`, "start from archive.yaml.example", "empty");
  // Not a mapping: the schema says so, as for any other config.
  const expanded = typeof raw === "object" && !Array.isArray(raw) ? expandJobs(raw as Record<string, unknown>, path) : [{ at: "", raw }];
  const jobs = expanded.map(({ at, raw: jobRaw }) => {
    const where = at ? `${at}: ` : "";
    let cfg: RawConfig;
    try {
      cfg = configSchema.parse(jobRaw, "");
    } catch (e) {
      if (e instanceof FieldError) throw new ConfigError(`${path}: ${where}${e.path}: ${e.message}`, e.hint, "invalid");
      throw e;
    }
    if (cfg.archive.timezone === "local") cfg.archive.timezone = systemTimeZone();
    checkTrustedFiles(configSchema as Field<unknown>, cfg, "", at ? `${path} (${at})` : path);
    const secretValues: string[] = [];
    resolveSecrets(configSchema as Field<unknown>, cfg as unknown as Record<string, unknown>, "", {
      path: at ? `${path} (${at})` : path,
      mode,
      env,
      secretValues,
    });
    const targets = (cfg.destinations ?? [cfg.destination!]).map((d) => {
      const { retention, ...destination } = d as typeof d & { retention?: Record<string, unknown> };
      const own = Object.fromEntries(Object.entries(retention ?? {}).filter(([, v]) => v !== undefined));
      return { destination: destination as DestinationConfig, retention: { ...cfg.retention, ...own } as RetentionConfig };
    });
    const { destinations: _d, destination: _one, ...rest } = cfg;
    return {
      ...rest,
      destination: targets[0].destination,
      retention: targets[0].retention,
      targets,
      file: path,
      secretValues,
    };
  });
  checkJobsApart(jobs, path);
  return jobs;
}

/**
 * Two jobs writing the same archive names into the same place would take each other's names: refused, unless the
 * name pattern holds {job}. (Retention never deletes another job's archives: each job has its own catalogue.)
 */
function checkJobsApart(jobs: { name: string; archive: { name: string }; targets: Target[] }[], path: string): void {
  const seen = new Map<string, string>();
  for (const j of jobs) {
    if (j.archive.name.includes("{job}")) continue;
    for (const t of j.targets) {
      // The directory as its transport names it, whoever logs in, however it is written ("dest/", "./dest", a symlink).
      const place = placeOf(t.destination);
      const key = `${place}\u0000${j.archive.name}`;
      const other = seen.get(key);
      if (other) {
        throw new ConfigError(
          `${path}: jobs ${other} and ${j.name} store archives named ${j.archive.name} in the same place: they would take each other's names`,
          'put {job} in archive.name (e.g. "{job}-{YYYY}{MM}{DD}.tgz"), or give each job its own directory',
          "invalid",
        );
      }
      seen.set(key, j.name);
    }
  }
}

interface SecretCtx {
  path: string;
  mode: number;
  env: Env;
  secretValues: string[];
}

/** Replace each secret triple (x, x_file, x_env) by the resolved value in `x`. */
function resolveSecrets(f: Field<unknown>, data: Record<string, unknown> | undefined, at: string, ctx: SecretCtx): void {
  if (!data || typeof data !== "object") return;
  let shape = f.children;
  if (f.variants) shape = f.variants[String(data.type)]?.children;
  if (!shape) return;
  for (const [k, child] of Object.entries(shape)) {
    const keyPath = at ? `${at}.${k}` : k;
    if (child.secret) {
      const given = [k, `${k}_file`, `${k}_env`].filter((n) => data[n] !== undefined);
      if (given.length > 1) throw new ConfigError(`${ctx.path}: ${at}: give only one of ${given.join(", ")}`, "", "invalid");
      let value: string | undefined;
      if (data[k] !== undefined) {
        if (ctx.mode & 0o077) {
          throw new ConfigError(
            `${ctx.path}: ${keyPath}: inline secret in a config readable by group or others (mode ${
              ctx.mode.toString(8).padStart(4, "0")
            })`,
            `run: chmod 600 ${ctx.path}  (or move the secret to ${keyPath}_file)`,
            "unsafe_permissions",
          );
        }
        value = String(data[k]);
      } else if (data[`${k}_file`] !== undefined) {
        const file = String(data[`${k}_file`]);
        try {
          value = Deno.readTextFileSync(file).split(/\r?\n/)[0];
        } catch (e) {
          throw new ConfigError(
            `${ctx.path}: ${keyPath}_file: cannot read ${file}: ${errMsg(e)}`,
            "check that the file exists and is readable by the run user",
            "secret",
          );
        }
        if (!value) throw new ConfigError(`${ctx.path}: ${keyPath}_file: ${file} is empty`, "put the secret on its first line", "secret");
      } else if (data[`${k}_env`] !== undefined) {
        const name = String(data[`${k}_env`]);
        value = ctx.env.get(name);
        if (!value) {
          throw new ConfigError(
            `${ctx.path}: ${keyPath}_env: environment variable ${name} is not set or empty`,
            "export it in the cron entry or the systemd unit",
            "secret",
          );
        }
      }
      if (!value && child.secret === "required") {
        throw new ConfigError(`${ctx.path}: ${keyPath}: is required: give ${keyPath}_file, ${keyPath}_env or ${keyPath}`, "", "invalid");
      }
      data[k] = value;
      if (value) ctx.secretValues.push(value);
    } else if (child.children || child.variants) {
      resolveSecrets(child, data[k] as Record<string, unknown>, keyPath, ctx);
    } else if ((child as { item?: Field<unknown> }).item && Array.isArray(data[k])) {
      const item = (child as unknown as { item: Field<unknown> }).item;
      (data[k] as Record<string, unknown>[]).forEach((d, i) => resolveSecrets(item, d, `${keyPath}[${i}]`, ctx));
    }
  }
}
