/** `archivist prune`: apply retention alone, under the job's lock. */
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { ArchivistError, asArchivistError, EXIT } from "../errors.ts";
import { applyRetention, decisionDate, type RetentionResult } from "../retention/apply.ts";
import { acquireLock } from "../records/lock.ts";
import { onCleanup } from "../os/cleanup.ts";
import { withTransport } from "../transports/registry.ts";
import { DESTINATION, JSON_OUT, WITH_JOB } from "./options.ts";
import type { Command, Parsed } from "./context.ts";

/** What `prune --json` prints: the plan, and what was deleted. */
function pruneJson(cfg: Config, location: string, p: Parsed, r: RetentionResult): string {
  const archives = r.decisions.map((d) => ({
    name: d.archive.name,
    date: decisionDate(d),
    keep: d.keep,
    reasons: d.reasons,
    dated: d.archive.dated,
    ...(d.archive.problem ? { problem: d.archive.problem } : {}),
    ...(d.expiresOn ? { expiresOn: d.expiresOn } : {}),
  }));
  return JSON.stringify(
    {
      job: cfg.name,
      destination: location,
      dryRun: p.dryRun,
      archives,
      orphanSidecars: r.orphanSidecars,
      refusal: r.refusal ? { message: r.refusal.message, hint: r.refusal.hint } : null,
      deleted: r.deleted,
      failed: r.failed,
    },
    null,
    2,
  );
}

async function cmdPrune(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  try {
    // A prune changes the destination: one at a time, never beside a run.
    const lock = acquireLock(cfg.state_dir, cfg.name, clock.now(), log);
    onCleanup(() => lock.release());
    // The plan on stdout (text, or JSON with --json): a script or a reviewer reads it there, not in the log lines.
    const planTo = p.dryRun && !p.json ? out : p.dryRun ? () => {} : undefined;
    const { location, r } = await withTransport(cfg.destination, { log, env, step: "prune" }, async (t) => ({
      location: t.location,
      r: await applyRetention(t, cfg, cfg.retention, clock.now(), new Set(), log, {
        dryRun: p.dryRun,
        force: p.force,
        step: "prune",
        planTo,
      }),
    }));
    if (p.dryRun) log.info("prune", `dry run: ${r.doomed.length} archive(s) would be deleted, nothing deleted`);
    if (p.json) out(pruneJson(cfg, location, p, r));
    return r.failed.length ? EXIT.WARNING : EXIT.OK;
  } catch (e) {
    const err = asArchivistError("retention", e);
    log.failure("prune", err);
    return err instanceof ArchivistError ? err.exitCode : EXIT.RETENTION;
  }
}

export const prune: Command = {
  spec: {
    name: "prune",
    summary: "apply retention alone",
    maxArgs: 0,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "dry-run", short: "n", help: "print the whole plan on stdout (every archive, keep or delete, and why); delete nothing" },
      { ...JSON_OUT, help: "the plan (and, without --dry-run, what was deleted) on stdout as JSON" },
      { name: "force", help: "apply it beyond retention.max_delete, or with a clock in doubt, once" },
    ],
    example: "archivist prune --dry-run",
    exits: "run",
    writesState: (p) => !p.dryRun,
    codes: [0, 1, 10, 11, 31, 32, 70],
    exitText: {
      0: "success: retention applied (or, with --dry-run, the plan printed)",
      1: "warning: a deletion failed (the others were made)",
    },
  },
  run: (c) => cmdPrune(c.cfg, c.clock, c.env, c.log, c.p, c.out),
};
