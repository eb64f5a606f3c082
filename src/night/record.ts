/** state: record what was archived. Runs only after store succeeded, so a failed upload never advances it. */
import { writeState } from "../records/state.ts";
import type { RunContext, RunData, Step, StepOutcome } from "./types.ts";

export const stateStep: Step = {
  name: "state",
  run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    if (ctx.options.dryRun) return Promise.resolve({ status: "skipped", message: "dry run: the state is not written" });
    if (!data.stored) return Promise.resolve({ status: "skipped", message: "nothing stored: the state is unchanged" });
    // A catch-up night completes the last archive: it is now where it was, and where it went tonight.
    const stored = data.storedOn?.length ? data.storedOn.map((s) => s.location) : [data.storedLocation!];
    const locations = [...new Set([...(data.catchUp?.from ?? []), ...stored])];
    writeState(ctx.config.state_dir, ctx.config.name, {
      sha256: data.dumpSha256!,
      fingerprint: data.dumpFingerprint,
      etag: data.etag,
      lastModified: data.lastModified,
      archive: data.archiveName!,
      size: data.archiveSize!,
      location: locations.join(", "),
      locations,
      storedAt: ctx.clock.now().toISOString(),
      changedAt: data.unchangedSince ?? ctx.clock.now().toISOString(),
      runId: ctx.runId,
      ...(data.storeFailed?.length ? { missingOn: data.storeFailed.map((f) => f.location) } : {}),
    });
    return Promise.resolve({ status: "ok", message: `recorded sha256 ${data.dumpSha256!.slice(0, 16)}… of ${data.archiveName}` });
  },
};
