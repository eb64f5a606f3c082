/** `archivist list`: the archives on a destination, what keeps each or when it expires. */
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { formatSize } from "../config/units.ts";
import { EXIT } from "../errors.ts";
import { planRetention } from "../retention/apply.ts";
import { withTransport } from "../transports/registry.ts";
import { DESTINATION, JSON_OUT, WITH_JOB } from "./options.ts";
import type { Command, Parsed } from "./context.ts";

async function cmdList(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const plan = await withTransport(
    cfg.destination,
    { log, env, step: "list" },
    (t) => planRetention(t, cfg, cfg.retention, clock.now(), new Set(), log, { dryRun: true }),
  );
  const pad = (n: number) => String(n).padStart(2, "0");
  const rows = plan.decisions.map((d) => ({
    name: d.archive.name,
    date: `${d.archive.year}-${pad(d.archive.month)}-${pad(d.archive.day)}`,
    dated: d.archive.dated,
    storedAt: d.archive.entry?.storedAt,
    size: d.archive.size,
    catalogued: d.archive.catalogued,
    complete: d.archive.complete,
    problem: d.archive.problem,
    clock: d.archive.clock,
    lastCheck: d.archive.entry?.lastCheck ? { at: d.archive.entry.lastCheck.at, ok: d.archive.entry.lastCheck.ok } : undefined,
    keep: d.keep,
    reasons: d.reasons,
    expiresOn: d.expiresOn,
    sidecar: plan.entries.has(`${d.archive.name}.sha256`),
  }));
  const missing = plan.missing.map((e) => ({ name: e.name, storedAt: e.storedAt, size: e.size }));
  if (p.json) {
    out(JSON.stringify([...rows, ...missing.map((m) => ({ ...m, missing: true }))], null, 2));
    return EXIT.OK;
  }
  if (!rows.length) out("no archives on the destination");
  else out("newest (stored last) first:");
  for (const r of rows) {
    const why = r.keep
      ? `kept by ${r.reasons.filter((x) => x !== "max_age").join(", ") || "max_age"}${
        r.expiresOn && r.reasons.length === 1 && r.reasons[0] === "max_age" ? `; expires on ${r.expiresOn}` : ""
      }`
      : `to delete: ${r.reasons.join(", ")}`;
    const flags = [r.problem ? `INCOMPLETE: ${r.problem}` : "", r.dated !== "stored" && r.catalogued ? `dated by ${r.dated}` : ""].filter(
      Boolean,
    );
    out(`${r.name.padEnd(28)} ${r.date}  ${formatSize(r.size).padStart(10)}  ${flags.length ? `(${flags.join("; ")}) ` : ""}${why}`);
  }
  for (const m of missing) out(`${m.name.padEnd(28)} MISSING: stored ${m.storedAt}, no longer on the destination`);
  if (plan.doubt) out(`clock in doubt: ${plan.doubt.message}; retention deletes nothing until it is resolved`);
  return EXIT.OK;
}

export const list: Command = {
  spec: {
    name: "list",
    summary: "archives on the destination, stored last first, with what keeps each or when it expires",
    maxArgs: 0,
    options: [...WITH_JOB, DESTINATION, JSON_OUT],
    example: "archivist list",
    exits: "simple",
    readOnly: true,
  },
  run: (c) => cmdList(c.cfg, c.clock, c.env, c.log, c.p, c.out),
};
