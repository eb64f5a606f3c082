/** retention: apply one destination's retention after a stored archive (never in a run whose store failed). */
import { applyRetention } from "../retention/apply.ts";
import { atTarget } from "../config/load.ts";
import type { Done, Night, Pruned, Target } from "./types.ts";

/** Apply `target`'s retention, never deleting `keep` (tonight's archive); undefined `keep`: a dry run's preview. */
export async function retain(n: Night, target: Target, keep: string | undefined): Promise<Done<Pruned>> {
  const t = await target.open("retention");
  const config = atTarget(n.config, target);
  if (n.dryRun) {
    const r = await applyRetention(t, config, n.startedAt, new Set(), n.log, { dryRun: true });
    const refuse = r.doubt
      ? ` (a real run would delete nothing: clock in doubt)`
      : r.refusal
      ? ` (a real run would refuse: ${r.refusal.message})`
      : "";
    const when = keep ? "" : " (a real night applies retention only after storing an archive: not tonight)";
    const message = `dry run: would delete ${r.doomed.length} of ${r.decisions.length} archive(s)${refuse}${when}`;
    return { status: "ok", message, value: { deleted: [], failed: [] } };
  }
  const r = await applyRetention(t, config, n.startedAt, new Set([keep!]), n.log, { inRun: true });
  const value = { deleted: r.deleted, failed: r.failed };
  if (r.skipped) return { status: "warning", message: r.skipped, value };
  const kept = r.decisions.length - r.deleted.length - r.failed.filter((f) => !f.name.endsWith(".sha256")).length;
  if (r.failed.length) {
    const failed = r.failed.map((f) => f.name).join(", ");
    return {
      status: "warning",
      message: `deleted ${r.deleted.length}, ${r.failed.length} deletion(s) failed: ${failed}; ${kept} kept`,
      value,
    };
  }
  return {
    status: "ok",
    message: r.deleted.length ? `deleted ${r.deleted.length} (${r.deleted.join(", ")}); ${kept} kept` : `nothing to delete; ${kept} kept`,
    value,
  };
}
