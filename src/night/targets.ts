/**
 * The night's destinations: each with its retention and its transport, created on first use (its location names it
 * even when it cannot open), opened once, closed by the runner at the end.
 */
import { join } from "node:path";
import type { Config } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import type { StepName } from "../errors.ts";
import { createTransport, locationOf } from "../transports/registry.ts";
import { type Catalogue, entriesAt, readCatalogue, vanished } from "../records/catalogue.ts";
import type { Transport } from "../transports/transport.ts";
import type { Target } from "./types.ts";

export interface Targets {
  list: Target[];
  closeAll(): Promise<void>;
}

/** The config's destinations as targets; transports get a private dir each under `workDir`. */
export function targetsOf(config: Config, workDir: string, log: Logger, env: Env): Targets {
  const transports: (Transport | undefined)[] = [];
  const opened = new Set<number>();
  /**
   * The catalogue, when it records archives at destination `i` (two or more): its directory existed, so a missing
   * one is not created afresh (create_dirs is for the first night): it is another place (a wrong crypt password).
   */
  const knownAt = (i: number): Catalogue | undefined => {
    try {
      const cat = readCatalogue(config.state_dir, config.name);
      return entriesAt(cat, locationOf(config.targets[i].destination)).length >= 2 ? cat : undefined;
    } catch {
      return undefined;
    }
  };
  const transportAt = (i: number, step: StepName): Transport => {
    if (!transports[i]) {
      const privateDir = join(workDir, i ? `private-${i + 1}` : "private");
      Deno.mkdirSync(privateDir, { recursive: true, mode: 0o700 });
      const dest = config.targets[i].destination;
      const own = knownAt(i) && (dest as { create_dirs?: boolean }).create_dirs ? { ...dest, create_dirs: false } : dest;
      transports[i] = createTransport(own as typeof dest, { log, env, privateDir, step });
    }
    return transports[i]!;
  };
  const openAt = async (i: number, step: StepName): Promise<Transport> => {
    const t = transportAt(i, step);
    if (opened.has(i)) return t;
    try {
      await t.open();
    } catch (e) {
      await t.close().catch(() => {});
      transports[i] = undefined;
      const cat = (e as { code?: string }).code === "missing_dir" ? knownAt(i) : undefined;
      throw (cat && vanished(cat, t.location, [])) || e;
    }
    opened.add(i);
    return t;
  };
  return {
    list: config.targets.map((t, i) => ({
      ...t,
      get location() {
        return transportAt(i, "store").location;
      },
      open: (step: StepName) => openAt(i, step),
    })),
    async closeAll() {
      for (const t of transports) {
        if (t) await t.close().catch((e) => log.warn("store", `closing the destination ${t.location}: ${e}`));
      }
    },
  };
}
