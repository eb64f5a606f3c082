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
import { changedAt, type JobState, stateLocations, storedLocations, unchangedFor } from "../records/state.ts";
import { formatDuration } from "../config/units.ts";
import type { Done, Dump, Night, NotModified, Verdict } from "./types.ts";

/** compare: tonight's dump against the last archive recorded for these destinations. */
export function judge(n: Night, dump: Dump): Promise<Done<Verdict>> {
  const { state: last, other } = n.last.here();
  const changed = (message: string): Promise<Done<Verdict>> => Promise.resolve({ status: "ok", message, value: { kind: "new" } });
  if (other) {
    return changed(
      `the last archive recorded (${other.archive}) is on ${
        stateLocations(other).join(", ")
      }, not on every destination of this config: archiving tonight's dump (another config with this name and state_dir, or an edited destination)`,
    );
  }
  if (!last) return changed("no previous archive recorded: first run");
  const byContent = n.config.check.compare === "content" && !!last.fingerprint && !!dump.fingerprint;
  const sameBytes = last.sha256 === dump.sha256;
  const same = byContent ? last.fingerprint === dump.fingerprint : sameBytes;
  if (!same) return changed(`dump changed since ${last.archive} (${last.storedAt})${byContent ? "" : " (compared byte for byte)"}`);
  return Promise.resolve(unchanged(n, dump, last, sameBytes));
}

/** The dump is the last archive's data: what check.on_unchanged (and a destination that missed it) make of that. */
function unchanged(n: Night, dump: Dump, last: JobState, sameBytes: boolean): Done<Verdict> {
  const ignored = Object.entries(dump.ignored).map(([re, k]) => `${k} × /${re}/`).join(", ");
  const how = sameBytes
    ? `identical to the one archived as ${last.archive} on ${last.storedAt} (sha256 ${last.sha256.slice(0, 16)}…)`
    : `the same data as the one archived as ${last.archive} on ${last.storedAt}: only volatile lines differ (${
      ignored || "none left out"
    }; content fingerprint ${dump.fingerprint.slice(0, 16)}…)`;
  const same = `the dump is ${how}`;
  const since = changedAt(last);
  const rule = n.config.check.on_unchanged;
  // A destination that missed the last archive (store.require: any) gets tonight's, unchanged or not.
  if (last.missingOn?.length && (rule === "skip" || rule === "link")) {
    const catchUp = { onlyTo: last.missingOn, name: last.archive, from: storedLocations(last).filter((l) => !last.missingOn!.includes(l)) };
    return {
      status: "ok",
      message: `${same}, but it is not on ${last.missingOn.join(", ")} yet (that store failed): sending ${last.archive} there only`,
      value: { kind: "unchanged", unchangedSince: since, then: "catch-up", catchUp },
    };
  }
  switch (rule) {
    case "skip":
      return {
        status: "warning",
        message: `${same}: not archived again (check.on_unchanged: skip); ${
          unchangedFor(last, n.clock.now(), n.config.check.max_unchanged, formatDuration)
        }`,
        value: { kind: "unchanged", unchangedSince: since, then: "skip" },
      };
    case "archive":
      return {
        status: "ok",
        message: `${same}: archiving anyway (check.on_unchanged: archive)`,
        value: { kind: "unchanged", unchangedSince: since, then: "archive" },
      };
    case "link":
      return {
        status: "ok",
        message: `${same}: tonight's name will be a hard link to it (check.on_unchanged: link)`,
        value: { kind: "unchanged", unchangedSince: since, then: "link", linkTo: last.archive },
      };
    case "fail":
      throw unchangedError(same);
  }
}

function unchangedError(same: string): ArchivistError {
  return new ArchivistError("compare", same, "the export on the server did not run or did not change; check.on_unchanged is 'fail'", {
    code: "unchanged",
  });
}

/**
 * A 304 Not Modified: the zip is the last archive's, unchanged upstream. check.on_unchanged decides here too: skip
 * stops the night (a warning), fail fails it, archive and link download it anyway ("download").
 */
export function judgeNotModified(n: Night): Done<NotModified> | "download" {
  const last = n.last.raw();
  const same = `unchanged upstream (304 Not Modified) since the zip archived as ${last?.archive ?? "?"} (${
    last?.etag ? `ETag ${last.etag}` : `Last-Modified ${last?.lastModified}`
  }): nothing downloaded`;
  const rule = n.config.check.on_unchanged;
  if (rule === "fail") throw unchangedError(same);
  if (rule !== "skip") {
    n.log.info("fetch", `${same}; check.on_unchanged: ${rule}: downloading it anyway`);
    return "download";
  }
  const forHowLong = last ? `; ${unchangedFor(last, n.clock.now(), n.config.check.max_unchanged, formatDuration)}` : "";
  return {
    status: "warning",
    message: `${same} (check.on_unchanged: skip)${forHowLong}`,
    value: { kind: "not-modified", unchangedSince: last ? changedAt(last) : undefined },
  };
}
