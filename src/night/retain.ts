/** retention: apply one destination's retention after a stored archive (never in a run whose store failed). */
import { applyRetention } from "../retention/apply.ts";
import type { Done, Night, Pruned, Target } from "./types.ts";

/** Apply `target`'s retention, never deleting `keep` (tonight's archive). */
export async function retain(n: Night, target: Target, keep: string): Promise<Done<Pruned>> {
  const t = await target.open("retention");
  const r = await applyRetention(t, n.config, target.retention, n.startedAt, new Set([keep]), n.log, { inRun: true });
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
