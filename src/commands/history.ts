/** `archivist history`: the run history, newest last (every job, or the one of --job). */
import type { Config } from "../config/load.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import { EXIT } from "../errors.ts";
import { readHistory } from "../records/history.ts";
import { localIso } from "../report/log.ts";
import { CONFIG, JOB, JSON_OUT } from "./options.ts";
import { type Command, historyPath, type Parsed } from "./context.ts";

function cmdHistory(cfg: Config, p: Parsed, out: (s: string) => void, job?: string): number {
  const read = readHistory(historyPath(cfg));
  const runs = read.runs.filter((r) => (job === undefined || r.job === job) && (!p.runs || r.command === "run"));
  const bad = read.bad;
  const shown = p.last !== undefined ? runs.slice(-p.last) : runs;
  if (p.json) {
    out(JSON.stringify(shown, null, 2));
    return EXIT.OK;
  }
  if (!shown.length) out(`no runs recorded in ${historyPath(cfg)}`);
  const jobWidth = new Set(shown.map((r) => r.job)).size > 1 ? Math.max(...shown.map((r) => r.job.length)) : 0;
  for (const r of shown) {
    const what = r.error
      ? `${r.error.step}: ${r.error.message}`
      : r.check
      ? `check: ${r.check.summary}`
      : r.archive
      ? `${r.archive.name} ${formatSize(r.archive.size)} → ${r.archive.location}`
      : r.warnings[0] ?? "";
    out(
      `${localIso(new Date(r.startedAt)).slice(0, 19).replace("T", " ")}  ${jobWidth ? `${r.job.padEnd(jobWidth)}  ` : ""}${
        r.status.toUpperCase().padEnd(7)
      } exit ${String(r.exitCode).padEnd(3)} ${formatDuration(r.durationMs).padStart(7)}  ${what}`,
    );
  }
  if (bad) out(`(${bad} unreadable line(s) skipped)`);
  return EXIT.OK;
}

export const history: Command = {
  spec: {
    name: "history",
    summary: "the run history, newest last",
    maxArgs: 0,
    options: [
      CONFIG,
      JOB,
      { name: "last", value: "N", help: "only the last N lines" },
      { name: "runs", help: "only the nightly runs (leave out the lines of check and other commands)" },
      JSON_OUT,
    ],
    example: "archivist history --runs --last 1 --json",
    exits: "simple",
    readOnly: true,
    jobs: "all",
    printsOnly: true,
  },
  run: (c) => cmdHistory(c.cfg, c.p, c.out, c.jobs.length > 1 && c.p.job !== undefined ? c.p.job : undefined),
};
