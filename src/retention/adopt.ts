/**
 * Upgrade from a version without a catalogue: the archives already on the destination are adopted into a new
 * catalogue, so that retention goes on pruning them, but only when the state file proves that the current
 * `archive.name` is the pattern they were written with (its last archive parses under it to the date it was
 * stored). Otherwise nothing is adopted and those files stay "not in the catalogue": listed, never deleted.
 */
import { appendCatalogue, cataloguePath, type StoredRecord } from "../records/catalogue.ts";
import { localDate } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { Logger } from "../report/log.ts";
import { parseName } from "../formats/naming.ts";
import { readState } from "../records/state.ts";
import type { RemoteEntry } from "../transports/transport.ts";

const DAY = 86_400_000;

/**
 * Adopt the archives of `listing` when there is no catalogue yet and the state file vouches for the pattern.
 * Returns the records; with `write: false` (dry runs) they are only returned, for the caller to fold in memory.
 */
export function adoptLegacy(
  cfg: Config,
  location: string,
  listing: RemoteEntry[],
  log: Logger,
  step: string,
  write = true,
): StoredRecord[] {
  try {
    Deno.statSync(cataloguePath(cfg.state_dir, cfg.name));
    return []; // a catalogue exists: nothing to adopt, ever again
  } catch { /* none yet */ }
  const state = readState(cfg.state_dir, cfg.name);
  if (!state || state.location !== location) return [];
  const parsed = listing.filter((e) => !e.isDir).map((e) => ({ e, p: parseName(cfg.archive.name, e.name, cfg.name) }))
    .filter((x) => x.p !== undefined).sort((a, b) => a.p!.stamp - b.p!.stamp || a.p!.seq - b.p!.seq);
  if (!parsed.length) return [];
  const last = parseName(cfg.archive.name, state.archive, cfg.name);
  const storedDay = Date.parse(localDate(new Date(state.storedAt), cfg.archive.timezone));
  if (!last || Math.abs(Date.UTC(last.year, last.month - 1, last.day) - storedDay) > DAY) {
    log.warn(
      step,
      `archive.name ${cfg.archive.name} does not explain the last archive ${state.archive} (stored ${state.storedAt}): the pattern changed, so the ${parsed.length} archive(s) already there are not adopted into the catalogue and will never be deleted by retention`,
    );
    return [];
  }
  const pad = (n: number) => String(n).padStart(2, "0");
  const records: StoredRecord[] = parsed.map(({ e, p }) => {
    const runDate = `${p!.year}-${pad(p!.month)}-${pad(p!.day)}T${pad(p!.hour)}:${pad(p!.minute)}`;
    const mine = e.name === state.archive;
    return {
      op: "stored",
      name: e.name,
      location,
      pattern: cfg.archive.name,
      runDate,
      storedAt: mine ? state.storedAt : new Date(p!.stamp).toISOString(),
      size: e.size,
      sha256: "",
      dumpName: "",
      dumpSize: 0,
      dumpSha256: mine ? state.sha256 : "",
      runId: mine ? state.runId : "",
      origin: "adopted",
    };
  });
  // The state's archive goes last: it is the reference of the clock check.
  records.sort((a, b) => (a.name === state.archive ? 1 : 0) - (b.name === state.archive ? 1 : 0));
  if (!write) {
    log.info(step, `would adopt ${records.length} archive(s) already on ${location} into a new catalogue (dry run: not written)`);
    return records;
  }
  const mended = appendCatalogue(cfg.state_dir, cfg.name, ...records);
  if (mended) log.warn(step, mended);
  log.info(step, `adopted ${records.length} archive(s) already on ${location} into the new catalogue (written before it existed)`);
  return records;
}
