/**
 * What a night changes, behind one interface: on the destination (the upload, the missing sidecar of an archive
 * already there, a hard link, upload leftovers removed), in state_dir (the catalogue, the state) and retention's
 * deletions. The stages decide what to do; a Writes does it. `run --dry-run` gives the night {@link dryWrites}
 * (./dry.ts), which changes nothing and says what would be done, as restic's dry-run backend wraps a backend: the
 * stages have no dry-run branches.
 */
import { adoptLegacy } from "../retention/adopt.ts";
import { readCatalogue } from "../records/catalogue.ts";
import { completeExisting, makeLink, removeLeftovers, upload } from "./store.ts";
import { recordState } from "./record.ts";
import { retain } from "./retain.ts";
import { runHook } from "./hooks.ts";
import type { Writes } from "./types.ts";

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
  hook: runHook,
  retain: (n, target, keep) => retain(n, target, keep!),
};
