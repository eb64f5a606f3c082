/**
 * The reporters of `archivist run`, behind one interface (borgmatic's monitoring hooks are the model): the heartbeat
 * ping, the Prometheus textfile and the report mail. Each is told when the night starts and, once every job has run,
 * the results of the jobs that share its setting: one ping, one textfile, one mail per distinct setting. A reporter
 * never changes the exit code; a new kind (a hook) is one more entry of `reportersFor`.
 */
import type { Config } from "../config/load.ts";
import { asArchivistError } from "../errors.ts";
import type { RunResult } from "../records/history.ts";
import type { Logger } from "./log.ts";
import { composeJobsReport, composeReport, jobsSummary, sendMail, shouldSend, summary, worstStatus } from "./mail.ts";
import { ping, writeTextfile } from "./monitor.ts";

export interface Reporter {
  /** Before the first job. */
  start?(log: Logger): Promise<void>;
  /** After the last job, with every result (each reporter takes those of its own jobs). */
  end(results: RunResult[], log: Logger): Promise<void>;
}

/** The reporters of these jobs, in the order they report: pings, textfiles, mails. */
export function reportersFor(jobs: Config[]): Reporter[] {
  const mine = (group: Config[]) => (results: RunResult[]) => results.filter((r) => group.some((j) => j.name === r.job));
  return [
    ...groupBy(jobs, (j) => j.monitor.ping_url).map((g) => pinger(g[0], mine(g))),
    ...groupBy(jobs, (j) => j.monitor.prometheus_textfile).map((g): Reporter => ({
      end: (results, log) => Promise.resolve(writeTextfile(g[0].monitor.prometheus_textfile, log, mine(g)(results))),
    })),
    ...groupBy(jobs, (j) => JSON.stringify(j.mail)).map((g): Reporter => ({
      end: (results, log) => mailReport(g[0], mine(g)(results), log),
    })),
  ];
}

/** Jobs grouped by a key (undefined: no such reporter), in run order. */
function groupBy<T>(items: T[], key: (t: T) => string | undefined): T[][] {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    if (k === undefined) continue;
    groups.set(k, [...(groups.get(k) ?? []), it]);
  }
  return [...groups.values()];
}

/** The heartbeat: /start before the jobs, then success or /fail with the summary as its body. */
function pinger(cfg: Config, mine: (rs: RunResult[]) => RunResult[]): Reporter {
  return {
    start: (log) => ping(cfg, log, "/start", log.runId),
    async end(results, log) {
      const rs = mine(results);
      if (!rs.length) return;
      const status = worstStatus(rs);
      const body = rs.length === 1
        ? `${status.toUpperCase()}: ${summary(rs[0])}\n`
        : `${status.toUpperCase()}: ${jobsSummary(rs)}\n${
          rs.map((r) => `${r.job}: ${r.status.toUpperCase()}: ${summary(r)}`).join("\n")
        }\n`;
      await ping(cfg, log, status === "failed" ? "/fail" : "", log.runId, body);
    },
  };
}

/**
 * Mail the report of these runs (the jobs sharing one mail setting: one mail, a section per job) when the config
 * asks for it; a failure is logged and recorded in each result's `mail`, never fatal.
 */
async function mailReport(cfg: Config, results: RunResult[], log: Logger): Promise<void> {
  if (!results.some((r) => shouldSend(cfg.mail, r))) return;
  const lines = log.lines.map((l) => log.redact(l));
  const m = results.length === 1 ? composeReport(cfg.mail, results[0], lines) : composeJobsReport(cfg.mail, results, lines);
  m.text = log.redact(m.text);
  m.subject = log.redact(m.subject);
  let outcome: { sent: boolean; message: string };
  try {
    const how = await sendMail(cfg.mail, m);
    outcome = { sent: true, message: `report to ${m.to.join(", ")} ${how}` };
    log.info("mail", outcome.message);
  } catch (e) {
    const err = asArchivistError("mail", e);
    outcome = { sent: false, message: log.redact(err.message) };
    log.warn("mail", `could not send the report: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ""}`);
  }
  for (const r of results) r.mail = outcome;
}
