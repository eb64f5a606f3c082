/**
 * Retention executor: list the destination through the Transport, build the inventory with the catalogue, let
 * the pure policy decide, check the clock and max_delete, delete. `run`, `prune`, `prune --dry-run` and `list`
 * all go through {@link planRetention}, so the plan a dry run prints is the plan a real prune executes.
 */
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import { localParts } from "../os/clock.ts";
import { appendCatalogue, type Catalogue, type CatalogueRecord, readCatalogue } from "../records/catalogue.ts";
import { sidecarName } from "../formats/naming.ts";
import { readState } from "../records/state.ts";
import type { Config } from "../config/load.ts";
import type { RetentionConfig } from "../config/schema.ts";
import type { Logger } from "../report/log.ts";
import { type RemoteEntry, removeEach, type Transport } from "../transports/transport.ts";
import { decide, type Decision, policyActive } from "./policy.ts";
import { buildInventory, type Inventory } from "./inventory.ts";
import { type ClockDoubt, clockDoubt } from "./clockcheck.ts";
import { adoptLegacy } from "./adopt.ts";

export interface RetentionPlan extends Inventory {
  decisions: Decision[];
  doomed: Decision[];
  /** The clock disagrees with the history: nothing may be deleted without --force. */
  doubt?: ClockDoubt;
  /** Why a real prune would delete nothing (clock doubt, max_delete), or undefined. */
  refusal?: ArchivistError;
  catalogue: Catalogue;
}

export interface RetentionResult extends RetentionPlan {
  deleted: string[];
  failed: { name: string; error: string }[];
  /** Set when retention deleted nothing on purpose (clock in doubt during a run). */
  skipped?: string;
}

/** List the destination and decide, deleting nothing. */
export async function planRetention(
  t: Transport,
  cfg: Config,
  retention: RetentionConfig,
  now: Date,
  protect: ReadonlySet<string>,
  log?: Logger,
  opts: { dryRun?: boolean } = {},
): Promise<RetentionPlan> {
  let list: RemoteEntry[];
  try {
    list = await t.list();
  } catch (e) {
    throw asArchivistError("retention", e, "retention could not list the destination; nothing was deleted");
  }
  const adopted = log ? adoptLegacy(cfg, t.location, list, log, "retention", !opts.dryRun) : [];
  const cat = readCatalogue(cfg.state_dir, cfg.name, opts.dryRun ? adopted : []);
  const inv = buildInventory(list, cat, t.location, cfg.archive.name, cfg.name, now, cfg.archive.timezone);
  const decisions = decide(inv.archives, retention, localParts(now, cfg.archive.timezone), protect);
  const doomed = policyActive(retention) ? decisions.filter((d) => !d.keep) : [];
  const doubt = clockDoubt(now, cat, readState(cfg.state_dir, cfg.name), retention.max_age);
  let refusal: ArchivistError | undefined;
  if (doomed.length && doubt) {
    refusal = new ArchivistError(
      "retention",
      `clock in doubt, deleted none of the ${doomed.length} archive(s) due: ${doubt.message}`,
      "check the system clock (timedatectl, NTP); if it is right (a long outage), review with `archivist prune --dry-run` and accept it with `archivist prune --force`",
      { code: "clock" },
    );
  } else if (doomed.length > retention.max_delete) {
    refusal = new ArchivistError(
      "retention",
      `${doomed.length} archives would be deleted, more than retention.max_delete (${retention.max_delete}): deleted none`,
      "if that is right (e.g. retention was shortened), review with `archivist prune --dry-run`, then run `archivist prune --force`; if not, check retention, archive.timezone and the system clock",
      { code: "max_delete" },
    );
  }
  return { ...inv, decisions, doomed, doubt, refusal, catalogue: cat };
}

/** The local date an archive is judged by (YYYY-MM-DD). */
export function decisionDate(d: Decision): string {
  const a = d.archive;
  return `${a.year}-${String(a.month).padStart(2, "0")}-${String(a.day).padStart(2, "0")}`;
}

/** One line per archive for the log and `prune --dry-run`. */
export function describeDecision(d: Decision): string {
  const a = d.archive;
  const date = decisionDate(d);
  const how = a.dated === "stored" ? "" : ` (dated by ${a.dated})`;
  const state = a.problem ? ` [incomplete: ${a.problem}]` : "";
  return `${d.keep ? "keep  " : "delete"} ${a.name} ${date}${how}${state}: ${d.reasons.join(", ")}`;
}

/**
 * Apply retention. Deletes nothing when the clock is in doubt (a run ends with a warning, prune fails) or when more
 * than retention.max_delete archives would go (both fail), unless `force`: a changed setting or a wrong clock cannot
 * wipe a destination. Every deletion is recorded in the catalogue.
 */
export async function applyRetention(
  t: Transport,
  cfg: Config,
  retention: RetentionConfig,
  now: Date,
  protect: ReadonlySet<string>,
  log: Logger,
  opts: { dryRun?: boolean; force?: boolean; step?: string; inRun?: boolean; planTo?: (line: string) => void } = {},
): Promise<RetentionResult> {
  const step = opts.step ?? "retention";
  const plan = await planRetention(t, cfg, retention, now, protect, log, { dryRun: opts.dryRun });
  const res: RetentionResult = { ...plan, deleted: [], failed: [] };
  const uncatalogued = plan.archives.filter((a) => !a.catalogued).length;
  if (uncatalogued) {
    log.info(
      step,
      `${uncatalogued} archive(s) on the destination are not in the catalogue: listed, never deleted (see \`archivist list\`)`,
    );
  }
  if (!policyActive(retention)) {
    log.info(step, `no retention rule set (retention.max_age or keep_*): keeping all ${plan.decisions.length} archives`);
    return res;
  }
  const kept = plan.decisions.length - plan.doomed.length;
  const age = retention.max_age !== undefined ? `max_age ${formatDuration(retention.max_age)}` : "no max_age";
  log.info(
    step,
    `${plan.decisions.length} archives on the destination: keeping ${kept}, ${
      opts.dryRun ? "would delete" : "deleting"
    } ${plan.doomed.length} (${age}, min_keep ${retention.min_keep})`,
  );
  if (opts.dryRun) return (sayPlan(plan, log, step, opts.planTo), res);
  if (plan.doubt && opts.inRun) {
    // Whether or not anything was due: a clock in doubt is never silent, and deletes nothing. The step logs it.
    res.skipped =
      `clock in doubt, deleted none of the ${plan.doomed.length} archive(s) due: ${plan.doubt.message} (hint: check the system clock; if it is right, review with \`archivist prune --dry-run\` and accept it with \`archivist prune --force\`)`;
    return res;
  }
  if (plan.refusal && !opts.force) throw plan.refusal;
  if (plan.doubt && opts.force) {
    appendCatalogue(cfg.state_dir, cfg.name, { op: "trust", at: now.toISOString(), reason: `prune --force: ${plan.doubt.message}` });
    log.warn(step, `--force: the clock is accepted as right (${plan.doubt.message})`);
  }
  await deleteDoomed(t, cfg, now, plan, res, log, step);
  for (const o of await removeEach(t, plan.orphanSidecars)) {
    if (o.error) log.warn(step, `could not delete orphan ${o.name}: ${o.error}`);
    else log.info(step, `deleted ${o.name}: its archive is gone`);
  }
  return res;
}

/**
 * A dry run's whole plan, always: the case max_delete refuses is the one a user most needs to review. With planTo
 * (prune --dry-run) it goes to stdout, and to the log file only.
 */
function sayPlan(plan: RetentionPlan, log: Logger, step: string, planTo?: (line: string) => void): void {
  const say = (level: "info" | "warn", line: string) => {
    if (planTo) (planTo(line), log.fileOnly(level, step, line));
    else log.log(level, step, line);
  };
  for (const d of plan.decisions) say("info", describeDecision(d));
  for (const side of plan.orphanSidecars) say("info", `delete ${side}: its archive is gone`);
  if (plan.refusal) say("warn", `a real prune would delete nothing: ${plan.refusal.message} (hint: ${plan.refusal.hint})`);
}

/**
 * Delete the doomed archives and their sidecars in batches of 100: the transport deletes a batch in few round trips
 * (sftp: one session), then the batch's deletions are recorded with one catalogue write. An interruption can leave at
 * most one batch deleted but not yet recorded (listed by `archivist list` as MISSING).
 */
async function deleteDoomed(t: Transport, cfg: Config, now: Date, plan: RetentionPlan, res: RetentionResult, log: Logger, step: string) {
  const BATCH = 100;
  const failed = (name: string, error: string) => {
    res.failed.push({ name, error });
    log.warn(step, `could not delete ${name}: ${error}`);
  };
  for (let i = 0; i < plan.doomed.length; i += BATCH) {
    const batch = plan.doomed.slice(i, i + BATCH);
    const why = new Map(batch.map((d) => [d.archive.name, d.reasons.join(", ")]));
    const outcomes = await removeEach(t, batch.map((d) => d.archive.name));
    const records: CatalogueRecord[] = [];
    for (const o of outcomes) {
      if (o.error) {
        failed(o.name, o.error);
        continue;
      }
      res.deleted.push(o.name);
      log.info(step, `deleted ${o.name}: ${why.get(o.name)}`);
      records.push({ op: "deleted", name: o.name, location: t.location, at: now.toISOString(), reason: why.get(o.name)! });
    }
    try {
      const mended = records.length ? appendCatalogue(cfg.state_dir, cfg.name, ...records) : undefined;
      if (mended) log.warn(step, mended);
    } catch (e) {
      log.warn(step, asArchivistError("state", e).message);
    }
    const sides = outcomes.filter((o) => !o.error).map((o) => sidecarName(o.name)).filter((side) => plan.entries.has(side));
    for (const o of await removeEach(t, sides)) if (o.error) failed(o.name, o.error);
  }
}
