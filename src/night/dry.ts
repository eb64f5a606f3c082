/**
 * `run --dry-run`'s writes: nothing is changed on the destination or in state_dir; each write says what a real night
 * would do there (the stages run as on a real night up to that point: the listing, the catalogue, the names).
 */
import { adoptLegacy } from "../retention/adopt.ts";
import { applyRetention } from "../retention/apply.ts";
import { readCatalogue } from "../records/catalogue.ts";
import { formatSize } from "../config/units.ts";
import { sidecarName } from "../formats/naming.ts";
import { stored } from "./store.ts";
import type { Writes } from "./types.ts";

export const dryWrites: Writes = {
  catalogue(n, location, list) {
    const adopted = adoptLegacy(n.config, location, list, n.log, "store", false);
    return readCatalogue(n.config.state_dir, n.config.name, adopted);
  },
  leftovers(n, _t, temps) {
    for (const e of temps) n.log.info("store", `dry run: would remove ${e.name}, left by an interrupted upload`);
    return Promise.resolve();
  },
  upload(p, a) {
    const side = sidecarName(a.name);
    return Promise.resolve({
      status: "ok",
      message: `dry run: would upload ${a.name} (${formatSize(a.size)}) and ${side} to ${p.t.location}${
        p.entries.has(side) ? `, after removing the orphan ${side}` : ""
      }${p.doubt ? "; the clock is in doubt: it would be flagged" : ""}`,
      value: { ...stored(p, a, a.name), planned: true },
    });
  },
  completeExisting(p, a, name, ex) {
    const missing = ex.sidecar ? "" : `; would upload its missing ${sidecarName(name)}`;
    return Promise.resolve({
      status: "ok",
      message: `dry run: ${name} is already on ${p.t.location} (${ex.how})${missing}`,
      value: { ...stored(p, a, name), planned: true },
    });
  },
  link(p, a, old) {
    const message = `dry run: would make ${a.name} a hard link to ${old} on ${p.t.location}, with its own ${sidecarName(a.name)}`;
    return Promise.resolve({ status: "ok", message, value: { ...stored(p, a, a.name), planned: true } });
  },
  state: () => Promise.resolve({ status: "skipped", message: "dry run: the state is not written", value: undefined }),
  hook: (_n, which, argv) =>
    Promise.resolve({ status: "skipped", message: `dry run: would run hooks.${which} (${argv.join(" ")})`, value: undefined }),
  async retain(n, target, keep) {
    const t = await target.open("retention");
    const r = await applyRetention(t, n.config, target.retention, n.startedAt, new Set(), n.log, { dryRun: true });
    const refuse = r.doubt
      ? ` (a real run would delete nothing: clock in doubt)`
      : r.refusal
      ? ` (a real run would refuse: ${r.refusal.message})`
      : "";
    const when = keep ? "" : " (a real night applies retention only after storing an archive: not tonight)";
    return {
      status: "ok",
      message: `dry run: would delete ${r.doomed.length} of ${r.decisions.length} archive(s)${refuse}${when}`,
      value: undefined,
    };
  },
};
