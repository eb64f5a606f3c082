/**
 * The destination types. Adding a protocol is adding a file in this folder and one line here:
 * the config schema, validation, docs and every command pick it up from this table.
 */
import type { Transport, TransportContext, TransportKind } from "./transport.ts";
import { local } from "./local.ts";
import { sftp } from "./sftp.ts";
import { ftps } from "./ftps.ts";
import { webdav } from "./webdav.ts";
import { smb } from "./smb.ts";

export const TRANSPORTS = {
  local,
  sftp,
  ftps,
  webdav,
  smb,
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
