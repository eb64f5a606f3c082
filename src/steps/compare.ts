/**
 * compare: the dump's sha256 against the last archived one (the state file). Unchanged → check.on_unchanged:
 * skip (warning, exit 1), archive anyway, or fail (exit 23).
 */
import { ArchivistError } from "../errors.ts";
import { readState } from "../state.ts";
import type { RunContext, RunData, Step, StepOutcome } from "../context.ts";

export const compareStep: Step = {
  name: "compare",
  run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const last = readState(ctx.config.state_dir, ctx.config.name);
    if (!last) return Promise.resolve({ status: "ok", message: "no previous archive recorded: first run" });
    if (last.sha256 !== data.dumpSha256) {
      return Promise.resolve({ status: "ok", message: `dump changed since ${last.archive} (${last.storedAt})` });
    }
    const same = `the dump is identical to the one archived as ${last.archive} on ${last.storedAt} (sha256 ${last.sha256.slice(0, 16)}…)`;
    switch (ctx.config.check.on_unchanged) {
      case "skip":
        return Promise.resolve({
          status: "warning",
          message: `${same}: not archived again (check.on_unchanged: skip)`,
          stop: true,
        });
      case "archive":
        return Promise.resolve({ status: "ok", message: `${same}: archiving anyway (check.on_unchanged: archive)` });
      case "fail":
        throw new ArchivistError("compare", same, "the export on the server did not run or did not change; check.on_unchanged is 'fail'", {
          code: "unchanged",
        });
    }
  },
};
