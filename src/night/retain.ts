/** retention: apply the retention policy after a stored archive (never in a run whose store failed). */
import { applyRetention } from "../retention/apply.ts";
import type { RunContext, RunData, Step, StepOutcome } from "./types.ts";

export const retentionStep: Step = {
  name: "retention",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    if (ctx.options.dryRun) {
      const t = await ctx.destination("retention");
      const r = await applyRetention(t, ctx.config, ctx.startedAt, new Set(), ctx.log, { dryRun: true });
      const refuse = r.doubt
        ? ` (a real run would delete nothing: clock in doubt)`
        : r.refusal
        ? ` (a real run would refuse: ${r.refusal.message})`
        : "";
      const when = data.archivePath ? "" : " (a real night applies retention only after storing an archive: not tonight)";
      return { status: "ok", message: `dry run: would delete ${r.doomed.length} of ${r.decisions.length} archive(s)${refuse}${when}` };
    }
    if (!data.stored) return { status: "skipped", message: "nothing stored: retention not applied" };
    const t = await ctx.destination("retention");
    const protect = new Set([data.archiveName!]);
    const r = await applyRetention(t, ctx.config, ctx.startedAt, protect, ctx.log, { inRun: true });
    data.deleted = r.deleted;
    data.deleteFailed = r.failed;
    if (r.skipped) return { status: "warning", message: r.skipped };
    const kept = r.decisions.length - r.deleted.length - r.failed.filter((f) => !f.name.endsWith(".sha256")).length;
    if (r.failed.length) {
      return {
        status: "warning",
        message: `deleted ${r.deleted.length}, ${r.failed.length} deletion(s) failed: ${
          r.failed.map((f) => f.name).join(", ")
        }; ${kept} kept`,
      };
    }
    return {
      status: "ok",
      message: r.deleted.length ? `deleted ${r.deleted.length} (${r.deleted.join(", ")}); ${kept} kept` : `nothing to delete; ${kept} kept`,
    };
  },
};
