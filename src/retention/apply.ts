/**
 * Retention executor: list the destination through the Transport, let the pure policy decide, delete.
 * The same code serves `run`, `prune` and `list` on every destination type.
 */
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import { type LocalParts } from "../clock.ts";
import { parseName, sidecarName } from "../naming.ts";
import type { Config } from "../config/load.ts";
import type { Logger } from "../log.ts";
import type { RemoteEntry, Transport } from "../transports/transport.ts";
import { decide, type Decision, policyActive } from "./policy.ts";

export interface RetentionPlan {
  decisions: Decision[];
  entries: Map<string, RemoteEntry>;
  /** Sidecars whose archive is gone. */
  orphanSidecars: string[];
}

export interface RetentionResult extends RetentionPlan {
  deleted: string[];
  failed: { name: string; error: string }[];
}

/** List the destination and decide, deleting nothing. */
export async function planRetention(t: Transport, cfg: Config, now: LocalParts, protect: ReadonlySet<string>): Promise<RetentionPlan> {
  let list: RemoteEntry[];
  try {
    list = await t.list();
  } catch (e) {
    throw asArchivistError("retention", e, "retention could not list the destination; nothing was deleted");
  }
  const entries = new Map(list.filter((e) => !e.isDir).map((e) => [e.name, e]));
  const archives = [...entries.keys()].map((n) => parseName(cfg.archive.name, n, cfg.name)).filter((p) => p !== undefined);
  const orphanSidecars = [...entries.keys()].filter((n) =>
    n.endsWith(".sha256") && parseName(cfg.archive.name, n.slice(0, -7), cfg.name) && !entries.has(n.slice(0, -7))
  );
  return { decisions: decide(archives, cfg.retention, now, protect), entries, orphanSidecars };
}

/**
 * Apply retention. Refuses to delete anything when more than retention.max_delete archives would go (unless
 * `force`), so that a changed name pattern or a wrong clock cannot wipe a destination.
 */
export async function applyRetention(
  t: Transport,
  cfg: Config,
  now: LocalParts,
  protect: ReadonlySet<string>,
  log: Logger,
  opts: { dryRun?: boolean; force?: boolean; step?: string } = {},
): Promise<RetentionResult> {
  const step = opts.step ?? "retention";
  const plan = await planRetention(t, cfg, now, protect);
  const doomed = plan.decisions.filter((d) => !d.keep);
  const kept = plan.decisions.length - doomed.length;
  const res: RetentionResult = { ...plan, deleted: [], failed: [] };
  if (!policyActive(cfg.retention)) {
    log.info(step, `no retention rule set (retention.max_age or keep_*): keeping all ${plan.decisions.length} archives`);
    return res;
  }
  if (doomed.length > cfg.retention.max_delete && !opts.force) {
    throw new ArchivistError(
      "retention",
      `${doomed.length} archives would be deleted, more than retention.max_delete (${cfg.retention.max_delete}): deleted none (${
        doomed.slice(0, 5).map((d) => d.archive.name).join(", ")
      }${doomed.length > 5 ? ", …" : ""})`,
      "if that is right (e.g. retention was shortened), run `archivist prune --dry-run` to review, then `archivist prune --force`; if not, check archive.name, archive.timezone and the system clock",
      { code: "max_delete" },
    );
  }
  const age = cfg.retention.max_age !== undefined ? `max_age ${formatDuration(cfg.retention.max_age)}` : "no max_age";
  log.info(
    step,
    `${plan.decisions.length} archives on the destination: keeping ${kept}, ${
      opts.dryRun ? "would delete" : "deleting"
    } ${doomed.length} (${age}, min_keep ${cfg.retention.min_keep})`,
  );
  for (const d of doomed) {
    const name = d.archive.name;
    if (opts.dryRun) {
      log.info(step, `would delete ${name}: ${d.reasons.join(", ")}`);
      continue;
    }
    try {
      await t.remove(name);
      res.deleted.push(name);
      log.info(step, `deleted ${name}: ${d.reasons.join(", ")}`);
    } catch (e) {
      const msg = asArchivistError("retention", e).message;
      res.failed.push({ name, error: msg });
      log.warn(step, `could not delete ${name}: ${msg}`);
      continue;
    }
    const side = sidecarName(name);
    if (plan.entries.has(side)) {
      try {
        await t.remove(side);
      } catch (e) {
        const msg = asArchivistError("retention", e).message;
        res.failed.push({ name: side, error: msg });
        log.warn(step, `could not delete ${side}: ${msg}`);
      }
    }
  }
  for (const side of plan.orphanSidecars) {
    if (opts.dryRun) {
      log.info(step, `would delete ${side}: its archive is gone`);
      continue;
    }
    try {
      await t.remove(side);
      log.info(step, `deleted ${side}: its archive is gone`);
    } catch (e) {
      log.warn(step, `could not delete orphan ${side}: ${asArchivistError("retention", e).message}`);
    }
  }
  return res;
}
