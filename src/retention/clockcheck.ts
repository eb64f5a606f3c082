/**
 * Is the clock believable? Retention acts on ages, so a clock that jumped would delete real archives. The
 * reference is the last archive stored with a trusted clock (the catalogue), or the state file's last archive
 * for an install that has no catalogue yet.
 *
 *  - **behind**: now is earlier than that archive's storage time (10 minutes of slack for NTP corrections);
 *  - **ahead**: now is later than it by more than retention.max_age (30 days when max_age is unset) plus a day:
 *    applying max_age then would delete every archive but the min_keep newest, which is never what a clock jump
 *    should do. A real outage that long is accepted by the operator with `archivist prune --force`.
 *
 * While in doubt, retention deletes nothing and the run ends with a warning; the archive stored that night is
 * flagged in the catalogue and later dated by the next archive stored with a trusted clock.
 */
import type { Catalogue, ClockFlag } from "../records/catalogue.ts";
import { formatDuration } from "../config/units.ts";
import type { JobState } from "../records/state.ts";

export interface ClockDoubt {
  flag: ClockFlag;
  /** One line: what disagrees with what. */
  message: string;
}

const SLACK_MS = 10 * 60_000;
const DAY = 86_400_000;

/** The doubt about `now`, or undefined when the clock agrees with the history. */
export function clockDoubt(now: Date, cat: Catalogue, state: JobState | undefined, maxAgeMs: number | undefined): ClockDoubt | undefined {
  const ref = cat.lastTrusted
    ? { name: cat.lastTrusted.name, at: cat.lastTrusted.storedAt }
    : state
    ? { name: state.archive, at: state.storedAt }
    : undefined;
  if (!ref) return undefined;
  const at = Date.parse(ref.at);
  if (Number.isNaN(at)) return undefined;
  const nowIso = now.toISOString().slice(0, 16).replace("T", " ");
  const refIso = new Date(at).toISOString().slice(0, 16).replace("T", " ");
  if (now.getTime() < at - SLACK_MS) {
    return {
      flag: "behind",
      message: `the clock (${nowIso} UTC) is earlier than the storage of the last archive ${ref.name} (${refIso} UTC): the clock went back`,
    };
  }
  const limit = (maxAgeMs ?? 30 * DAY) + DAY;
  if (now.getTime() - at > limit) {
    return {
      flag: "ahead",
      message: `the clock (${nowIso} UTC) is ${
        formatDuration(now.getTime() - at)
      } after the storage of the last archive ${ref.name} (${refIso} UTC), more than retention.max_age allows: the clock jumped ahead, or no archive was stored for that long`,
    };
  }
  return undefined;
}
