/** `archivist prune`: apply retention alone, under the job's lock. */
import type { Config } from "../config/load.ts";
import type { Clock } from "../clock.ts";
import type { Env } from "../env.ts";
import type { Logger } from "../log.ts";
import { ArchivistError, asArchivistError, EXIT } from "../errors.ts";
import { applyRetention } from "../retention/apply.ts";
import { acquireLock } from "../lock.ts";
import { onCleanup } from "../cleanup.ts";
import { withTransport } from "../transports/registry.ts";
import { DESTINATION, WITH_JOB } from "./options.ts";
import type { Command, Parsed } from "./context.ts";

async function cmdPrune(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed): Promise<number> {
  try {
    // A prune changes the destination: one at a time, never beside a run.
    const lock = acquireLock(cfg.state_dir, cfg.name, clock.now(), log);
    onCleanup(() => lock.release());
    const r = await withTransport(
      cfg.destination,
      { log, env, step: "prune" },
      (t) => applyRetention(t, cfg, clock.now(), new Set(), log, { dryRun: p.dryRun, force: p.force, step: "prune" }),
    );
    if (p.dryRun) log.info("prune", `dry run: ${r.doomed.length} archive(s) would be deleted, nothing deleted`);
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
      { name: "dry-run", help: "print the whole plan (every archive, keep or delete, and why); delete nothing" },
      { name: "force", help: "apply it beyond retention.max_delete, or with a clock in doubt, once" },
    ],
    example: "archivist prune --dry-run",
    exits: "run",
    codes: [0, 1, 10, 11, 31, 32, 70],
  },
  run: (c) => cmdPrune(c.cfg, c.clock, c.env, c.log, c.p),
};
