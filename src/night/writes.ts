/**
 * What a night changes, behind one interface: on the destination (the upload, the missing sidecar of an archive
 * already there, a hard link, upload leftovers removed), in state_dir (the catalogue, the state) and retention's
 * deletions. The stages decide what to do; a Writes does it. `run --dry-run` gives the night {@link dryWrites}
 * (./dry.ts), which changes nothing and says what would be done, as restic's dry-run backend wraps a backend: the
 * stages have no dry-run branches.
 */
import { adoptLegacy } from "../retention/adopt.ts";
import { type Catalogue, readCatalogue, type StoredRecord } from "../records/catalogue.ts";
import type { RemoteEntry, Transport } from "../transports/transport.ts";
import { completeExisting, makeLink, type Place, removeLeftovers, type Same, upload } from "./store.ts";
import { type Outcome, recordState } from "./record.ts";
import { retain } from "./retain.ts";
import type { Archive, Done, Night, Pruned, Stored, Target } from "./types.ts";

export interface Writes {
  /** The catalogue as the night sees it, after adopting the archives of a version without one. */
  catalogue(n: Night, location: string, list: RemoteEntry[]): Catalogue;
  /** Remove upload leftovers of ours. */
  leftovers(n: Night, t: Transport, temps: RemoteEntry[]): Promise<void>;
  upload(p: Place, a: Archive): Promise<Done<Stored>>;
  /** This very archive is already there: its missing sidecar, its missing catalogue record. */
  completeExisting(p: Place, a: Archive, name: string, ex: Same): Promise<Done<Stored>>;
  /** check.on_unchanged: link: tonight's name a hard link to the archive `rec` it equals. */
  link(p: Place, a: Archive, old: string, rec: StoredRecord): Promise<Done<Stored>>;
  state(n: Night, o: Outcome): Promise<Done<void>>;
  /** Apply `target`'s retention, never deleting `keep`; undefined `keep`: nothing was stored tonight. */
  retain(n: Night, target: Target, keep: string | undefined): Promise<Done<Pruned | undefined>>;
}

/** A real night's writes. */
export const realWrites: Writes = {
  catalogue(n, location, list) {
    adoptLegacy(n.config, location, list, n.log, "store", true);
    return readCatalogue(n.config.state_dir, n.config.name);
  },
  leftovers: removeLeftovers,
  upload,
  completeExisting,
  link: makeLink,
  state: recordState,
  retain: (n, target, keep) => retain(n, target, keep!),
};
