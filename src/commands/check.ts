/** `archivist check`: the restore drill: every archive listed, a sample read back whole. */
import { hostname } from "node:os";
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { asArchivistError } from "../errors.ts";
import { appendHistory } from "../records/history.ts";
import { locationOf } from "../transports/registry.ts";
import type { RunResult } from "../records/history.ts";
import { NAGIOS } from "../ops/verify.ts";
import { type CheckReport, runCheck } from "../ops/check.ts";
import { DESTINATION, IDENTITY, JSON_OUT, WITH_JOB } from "./options.ts";
import { type Command, historyPath, type Parsed } from "./context.ts";

async function cmdCheck(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  const started = clock.now();
  const t0 = performance.now();
  let report: CheckReport;
  try {
    report = await runCheck(cfg, clock, env, log, {
      sample: p.sample,
      all: p.all,
      identity: p.identity ?? cfg.archive.encrypt.identity_file,
    });
  } catch (e) {
    const err = asArchivistError("store", e);
    report = { location: "", status: "crit", code: NAGIOS.UNKNOWN, summary: `cannot check the destination: ${err.message}`, archives: [] };
  }
  const label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][report.code];
  if (p.json) out(JSON.stringify({ ...report, status: label }, null, 2));
  else {
    out(`ARCHIVIST CHECK ${label} - ${report.summary}`);
    for (const a of report.archives) {
      out(
        `${a.status === "ok" ? "✓" : a.status === "warn" ? "!" : "✗"} ${a.name.padEnd(28)} ${
          a.depth === "content" ? "read back" : "listed   "
        }  ${a.message}`,
      );
    }
  }
  const bad = report.archives.filter((a) => a.status !== "ok").map((a) => `${a.name}: ${a.message}`);
  const result: RunResult = {
    runId: log.runId,
    job: cfg.name,
    host: hostname(),
    command: "check",
    configFile: cfg.file,
    destinations: [locationOf(cfg.destination)],
    startedAt: started.toISOString(),
    endedAt: clock.now().toISOString(),
    durationMs: Math.round(performance.now() - t0),
    runDate: started.toISOString().slice(0, 10),
    status: report.code === 0 ? "ok" : report.code === 1 ? "warning" : "failed",
    exitCode: report.code,
    steps: [],
    warnings: report.code === 0 ? [] : bad.length ? bad : [report.summary],
    check: { status: label, summary: report.summary, read: report.archives.filter((a) => a.depth === "content").map((a) => a.name) },
    logFile: log.filePath,
  };
  const herr = appendHistory(historyPath(cfg), result);
  if (herr) log.warn("history", herr);
  return report.code;
}

export const check: Command = {
  spec: {
    name: "check",
    summary: "restore drill: every archive present with its size; a sample read back whole, checksums and dump verified",
    maxArgs: 0,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "sample", value: "N", help: "read back N archives, the ones checked longest ago (default 1)" },
      IDENTITY,
      { name: "all", help: "read back every archive" },
      JSON_OUT,
    ],
    example: "archivist check --sample 2",
    exits: "nagios",
    readOnly: true,
    writesState: () => true,
  },
  run: (c) => cmdCheck(c.cfg, c.clock, c.env, c.log, c.p, c.out),
};
