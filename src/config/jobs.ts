/**
 * Several jobs in one config: `jobs:` is a list of mappings with a `name`, or a mapping by name; every other
 * top-level key is a default the jobs inherit. A job is the defaults deep-merged with its own keys (mappings merged
 * key by key, lists and values replaced; a `destination` of another `type` replaces the default one whole). Each
 * merged job is then validated by the one config schema, exactly as a single-job file is, so nothing here validates
 * a key of its own but `jobs` itself. A file without `jobs:` is one job, as before.
 */
import { ConfigError } from "../errors.ts";

/** Keys a run has once, whatever the number of jobs: one log, one history, one schedule. */
export const PER_RUN_KEYS = ["log", "history", "verify"] as const;

type Raw = Record<string, unknown>;

const isMap = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/** `over` merged onto `base`: mappings key by key, anything else replaced. */
export function deepMerge(base: Raw, over: Raw): Raw {
  const out: Raw = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isMap(v) && isMap(out[k]) ? deepMerge(out[k] as Raw, v) : v;
  }
  return out;
}

/** One job's raw config and where it came from (for messages). */
export interface RawJob {
  name: string | undefined;
  /** "jobs[2]" or "jobs.shop": the job's place in the file. */
  at: string;
  raw: Raw;
}

/** The raw config of every job of the file (one, unnamed, without `jobs:`). */
export function expandJobs(doc: Raw, path: string): RawJob[] {
  if (!("jobs" in doc)) return [{ name: undefined, at: "", raw: doc }];
  const { jobs, ...defaults } = doc;
  const bad = (at: string, msg: string, hint = "") => new ConfigError(`${path}: ${at}: ${msg}`, hint, "invalid");
  let entries: { at: string; name: unknown; job: unknown }[];
  if (Array.isArray(jobs)) entries = jobs.map((job, i) => ({ at: `jobs[${i}]`, name: isMap(job) ? job.name : undefined, job }));
  else if (isMap(jobs)) {
    entries = Object.entries(jobs).map(([key, job]) => {
      if (isMap(job) && job.name !== undefined && job.name !== key) {
        throw bad(`jobs.${key}.name`, `is ${JSON.stringify(job.name)} but the job is listed as ${key}`, "give the name once: the key");
      }
      return { at: `jobs.${key}`, name: key, job: isMap(job) ? { ...job, name: key } : job ?? {} };
    });
  } else throw bad("jobs", "expected a list of jobs (each with a name) or a mapping of jobs by name", "see jobs: in archive.yaml.example");
  if (!entries.length) throw bad("jobs", "is empty: list at least one job, or remove jobs: for a single job");
  const seen = new Map<string, string>();
  return entries.map(({ at, name, job }) => {
    if (!isMap(job)) throw bad(at, "expected a mapping of the job's keys");
    if (typeof name !== "string" || name === "") {
      throw bad(`${at}.name`, "is required: each job has its own name (it keys the job's state, lock, catalogue and history)");
    }
    if (seen.has(name)) throw bad(`${at}.name`, `${name} is also the name of ${seen.get(name)}: job names must differ`);
    seen.set(name, at);
    for (const k of PER_RUN_KEYS) {
      if (k in job) throw bad(`${at}.${k}`, "is set once for the whole run, at the top level (one log, one history, one schedule)");
    }
    if ("jobs" in job) throw bad(`${at}.jobs`, "jobs do not nest");
    let merged = deepMerge(defaults, job);
    const d = defaults.destination, j = job.destination;
    if (isMap(d) && isMap(j) && j.type !== undefined && j.type !== d.type) merged = { ...merged, destination: j };
    return { name, at, raw: merged };
  });
}
