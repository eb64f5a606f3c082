/**
 * The destination types. Adding a protocol is adding a file in this folder and one line here:
 * the config schema, validation, docs and every command pick it up from this table.
 */
import { posix } from "node:path";
import type { Transport, TransportContext, TransportKind } from "./transport.ts";
import { onCleanup, trackDir } from "../os/cleanup.ts";
import { privateTempDir } from "../os/fs.ts";
import { Logger } from "../report/log.ts";
import { mapEnv } from "../os/env.ts";
import { local } from "./local.ts";
import { sftp } from "./sftp.ts";
import { ftps } from "./ftps.ts";
import { webdav } from "./webdav.ts";
import { smb } from "./smb.ts";
import { rclone } from "./rclone.ts";
import { rsync, rsyncd } from "./rsync.ts";

export const TRANSPORTS = {
  local,
  sftp,
  ftps,
  webdav,
  smb,
  rclone,
  rsync,
  rsyncd,
} satisfies Record<string, TransportKind<any>>;

export type DestinationType = keyof typeof TRANSPORTS;
export type DestinationConfig = {
  [K in DestinationType]: (typeof TRANSPORTS)[K] extends TransportKind<infer C> ? C : never;
}[DestinationType];

/** The transport for a validated destination config. */
export function createTransport(cfg: DestinationConfig, ctx: TransportContext): Transport {
  const kind = TRANSPORTS[cfg.type as DestinationType] as TransportKind<DestinationConfig>;
  return kind.create(cfg, ctx);
}

/** Where a destination is, as its transport names it (the catalogue's and the history's `location`); opens nothing. */
export function locationOf(cfg: DestinationConfig): string {
  const quiet = new Logger({ runId: "location", stderrLevel: "off" });
  return createTransport(cfg, { log: quiet, env: mapEnv({}), privateDir: "/nonexistent" }).location;
}

/** The directory a destination writes, whoever logs in, in one spelling (the jobs guard: two jobs must not share one). */
export function placeOf(cfg: DestinationConfig): string {
  const kind = TRANSPORTS[cfg.type as DestinationType] as TransportKind<DestinationConfig>;
  if (kind.place) return kind.place(cfg);
  const loc = locationOf(cfg).replace(/^([a-z+]+:\/\/)[^@/]*@/, "$1"); // without the user
  const url = /^([a-z+]+:\/\/[^/]*)(\/.*)?$/.exec(loc);
  return url ? url[1] + posix.normalize(url[2] ?? "/").replace(/(.)\/+$/, "$1") : loc;
}

/** The locations of a config's destinations, in order. */
export function targetLocations(targets: { destination: DestinationConfig }[]): string[] {
  return targets.map((t) => locationOf(t.destination));
}

/**
 * Open the destination for one command (list, prune, restore, verify), run `fn`, and always close it and remove
 * its private directory (also on SIGINT/SIGTERM). `fn` gets the private directory for scratch files.
 */
export async function withTransport<T>(
  cfg: DestinationConfig,
  ctx: Omit<TransportContext, "privateDir">,
  fn: (t: Transport, privateDir: string) => Promise<T>,
): Promise<T> {
  const privateDir = privateTempDir("archivist");
  const untrack = trackDir(privateDir);
  const rm = onCleanup(() => {
    Deno.removeSync(privateDir, { recursive: true });
    untrack();
  });
  const t = createTransport(cfg, { ...ctx, privateDir });
  try {
    await t.open();
    return await fn(t, privateDir);
  } finally {
    await t.close().catch(() => {});
    rm();
  }
}
