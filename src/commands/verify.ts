/** `archivist verify`: the health check of every job (or the one of --job), archiving nothing. */
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { type Check, checkSandbox, formatChecks, NAGIOS, nagios, runVerify } from "../ops/verify.ts";
import { JSON_OUT, WITH_JOB } from "./options.ts";
import { type Command, historyPath, type Parsed } from "./context.ts";

async function cmdVerify(
  jobs: Config[],
  named: boolean,
  clock: Clock,
  env: Env,
  log: Logger,
  p: Parsed,
  out: (s: string) => void,
): Promise<number> {
  let mode = 0;
  try {
    mode = (Deno.statSync(jobs[0].file).mode ?? 0) & 0o777;
  } catch { /* read a moment ago */ }
  const checks: Check[] = [];
  const mailsSeen = new Set<string>();
  for (const [k, job] of jobs.entries()) {
    // The file's mode, the schedule and each distinct mail server are checked once, not once per job.
    const mail = JSON.stringify(job.mail);
    const once = { run: k === 0, mail: !mailsSeen.has(mail) };
    mailsSeen.add(mail);
    const own = await runVerify({
      config: job,
      clock,
      env,
      log,
      configMode: mode,
      historyFile: historyPath(job),
      programHint: env.get("ARCHIVIST_PROGRAM") ?? (Deno.execPath().endsWith("/archivist") ? Deno.execPath() : undefined),
      once,
    });
    // With several jobs in the file, each check names its job ("shop: destination").
    checks.push(...(named ? own.map((c) => ({ ...c, name: `${job.name}: ${c.name}` })) : own));
  }
  const sandbox = checkSandbox(jobs);
  if (sandbox) checks.push(sandbox);
  const n = nagios(checks);
  if (p.json) out(JSON.stringify({ status: n.label, code: n.code, summary: n.summary, checks }, null, 2));
  else out(`ARCHIVIST ${n.label} - ${n.summary}\n${formatChecks(checks)}`);
  log.info("verify", `${n.label}: ${n.summary}`);
  return n.code;
}

export const verify: Command = {
  spec: {
    name: "verify",
    summary: "health check of everything a night needs, archiving nothing (also: archivist --verify)",
    maxArgs: 0,
    options: [...WITH_JOB, JSON_OUT],
    example: "archivist verify",
    exits: "nagios",
    readOnly: true,
    jobs: "all",
  },
  run: (c) => cmdVerify(c.selected, c.jobs.length > 1, c.clock, c.env, c.log, c.p, c.out),
  configFailed(err, p, out) {
    // As a monitoring check: Nagios CRITICAL, the cause on the first line.
    const checks: Check[] = [{ name: "config", status: "crit", message: err.message, hint: err.hint }];
    out(
      p.json
        ? JSON.stringify({ status: "CRITICAL", code: NAGIOS.CRITICAL, checks }, null, 2)
        : `ARCHIVIST CRITICAL - config: ${err.message}\n${formatChecks(checks)}`,
    );
    return NAGIOS.CRITICAL;
  },
  crashed(err, out) {
    out(`ARCHIVIST UNKNOWN - verify itself failed: ${err.message}`);
    return NAGIOS.UNKNOWN;
  },
};
