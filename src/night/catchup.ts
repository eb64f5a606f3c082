/**
 * The catch-up copy: with store.require: any, a destination that missed the last archive gets *that* archive the
 * next night the dump is unchanged: the same bytes under the same name, downloaded from a destination that has it and
 * proven by the catalogue's sha256, recorded with its run date. (Tonight's archive of the same data would put a
 * second name, and other bytes, on the destination: `restore NAME` there would find nothing.)
 */
import { join } from "node:path";
import { sha256File } from "../ops/restore.ts";
import { entriesAt, readCatalogue } from "../records/catalogue.ts";
import type { Config } from "../config/load.ts";
import { sidecarName } from "../formats/naming.ts";
import type { Transport } from "../transports/transport.ts";
import type { Archive } from "./types.ts";

/** Fetch archive `name` from `from` for the catch-up copy, or say why it cannot be had (then tonight's is stored). */
export async function catchUpCopy(
  cfg: Config,
  from: Transport,
  name: string,
  workDir: string,
  dump: Archive["dump"],
): Promise<Archive | string> {
  const rec = entriesAt(readCatalogue(cfg.state_dir, cfg.name), from.location).findLast((e) => e.name === name);
  if (!rec) return `${name} is not in the catalogue at ${from.location}`;
  const local = join(workDir, `catchup-${name}`);
  try {
    await from.download(name, local);
  } catch (e) {
    return `${name} could not be read from ${from.location} (${e instanceof Error ? e.message : e})`;
  }
  const sha = await sha256File(local);
  if (sha !== rec.sha256) return `${name} on ${from.location} has sha256 ${sha}, the catalogue recorded ${rec.sha256}`;
  return {
    path: local,
    name,
    size: rec.size,
    sha256: rec.sha256,
    sidecarPath: join(workDir, `catchup-${sidecarName(name)}`),
    dump,
    catalogueAs: { runDate: rec.runDate, dumpName: rec.dumpName, dumpSize: rec.dumpSize, dumpSha256: rec.dumpSha256 },
  };
}
