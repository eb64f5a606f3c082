/**
 * compare: is tonight's dump the same as the last archived one (the state file)? Unchanged → check.on_unchanged:
 * skip (warning, exit 1), archive anyway, fail (exit 23), or link (the store step makes tonight's name a hard link
 * to that archive on a local destination).
 *
 * With `check.compare: content` (the default) "the same" means the same content fingerprint (src/formats/fingerprint.ts):
 * the lines without those the dump tool changes on every run, so two mysqldump or pg_dump runs over unchanged data
 * are unchanged. With `bytes`, or when the last state has no fingerprint (written by an earlier version), the byte
 * sha256 decides.
 */
import { ArchivistError } from "../errors.ts";
import { changedAt, stateFor, stateLocations, storedLocations, unchangedFor } from "../records/state.ts";
import { targetLocations } from "../transports/registry.ts";
import { formatDuration } from "../config/units.ts";
import type { RunContext, RunData, Step, StepOutcome } from "./types.ts";

export const compareStep: Step = {
  name: "compare",
  run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const { state: last, other } = stateFor(
      ctx.config.state_dir,
      ctx.config.name,
      targetLocations(ctx.config.targets),
    );
    if (other) {
      return Promise.resolve({
        status: "ok",
        message: `the last archive recorded (${other.archive}) is on ${
          stateLocations(other).join(", ")
        }, not on every destination of this config: archiving tonight's dump (another config with this name and state_dir, or an edited destination)`,
      });
    }
    if (!last) return Promise.resolve({ status: "ok", message: "no previous archive recorded: first run" });
    const byContent = ctx.config.check.compare === "content" && !!last.fingerprint && !!data.dumpFingerprint;
    const sameBytes = last.sha256 === data.dumpSha256;
    const same = byContent ? last.fingerprint === data.dumpFingerprint : sameBytes;
    if (!same) {
      return Promise.resolve({
        status: "ok",
        message: `dump changed since ${last.archive} (${last.storedAt})${byContent ? "" : " (compared byte for byte)"}`,
      });
    }
    const ignored = Object.entries(data.dumpIgnored ?? {}).map(([re, n]) => `${n} × /${re}/`).join(", ");
    const how = sameBytes
      ? `identical to the one archived as ${last.archive} on ${last.storedAt} (sha256 ${last.sha256.slice(0, 16)}…)`
      : `the same data as the one archived as ${last.archive} on ${last.storedAt}: only volatile lines differ (${
        ignored || "none left out"
      }; content fingerprint ${data.dumpFingerprint!.slice(0, 16)}…)`;
    const same_ = `the dump is ${how}`;
    data.unchangedSince = changedAt(last);
    const forHowLong = unchangedFor(last, ctx.clock.now(), ctx.config.check.max_unchanged, formatDuration);
    // A destination that missed the last archive (store.require: any) gets tonight's, unchanged or not.
    const unchangedRule = ctx.config.check.on_unchanged;
    if (last.missingOn?.length && (unchangedRule === "skip" || unchangedRule === "link")) {
      data.onlyTo = last.missingOn;
      data.catchUp = {
        name: last.archive,
        from: storedLocations(last).filter((l) => !last.missingOn!.includes(l)),
      };
      return Promise.resolve({
        status: "ok",
        message: `${same_}, but it is not on ${last.missingOn.join(", ")} yet (that store failed): sending ${last.archive} there only`,
      });
    }
    switch (ctx.config.check.on_unchanged) {
      case "skip":
        return Promise.resolve({
          status: "warning",
          message: `${same_}: not archived again (check.on_unchanged: skip); ${forHowLong}`,
          stop: true,
        });
      case "archive":
        return Promise.resolve({ status: "ok", message: `${same_}: archiving anyway (check.on_unchanged: archive)` });
      case "link":
        data.linkTo = last.archive;
        return Promise.resolve({ status: "ok", message: `${same_}: tonight's name will be a hard link to it (check.on_unchanged: link)` });
      case "fail":
        throw new ArchivistError("compare", same_, "the export on the server did not run or did not change; check.on_unchanged is 'fail'", {
          code: "unchanged",
        });
    }
  },
};
