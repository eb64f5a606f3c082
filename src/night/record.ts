/** state: record what was archived. Runs only after store succeeded, so a failed upload never advances it. */
import { writeState } from "../records/state.ts";
import type { Done, Night, Recorded } from "./types.ts";

export function recordState(n: Night, o: Recorded): Promise<Done<void>> {
  // A catch-up night completes the last archive: it is now where it was, and where it went tonight.
  const from = o.verdict.kind === "unchanged" && o.verdict.then === "catch-up" ? o.verdict.catchUp.from : [];
  const locations = [...new Set([...from, ...o.stored.map((s) => s.location)])];
  writeState(n.config.state_dir, n.config.name, {
    sha256: o.dump.sha256,
    fingerprint: o.dump.fingerprint,
    etag: o.dump.zip.etag,
    lastModified: o.dump.zip.lastModified,
    archive: o.archive.name,
    size: o.archive.size,
    location: locations.join(", "),
    locations,
    storedAt: n.clock.now().toISOString(),
    changedAt: o.verdict.unchangedSince ?? n.clock.now().toISOString(),
    runId: n.runId,
    ...(o.missingOn.length ? { missingOn: o.missingOn } : {}),
  });
  return Promise.resolve({
    status: "ok",
    message: `recorded sha256 ${o.dump.sha256.slice(0, 16)}… of ${o.archive.name}`,
    value: undefined,
  });
}
