/**
 * The destination interface. Every store (a directory, SFTP, FTPS, WebDAV, SMB) implements it and nothing else;
 * the store, retention, list, prune, restore and verify code only ever talk to this interface.
 * tests/transports/conformance.ts runs the same cases against each implementation.
 */
import type { Field } from "../config/fields.ts";
import type { Logger } from "../log.ts";
import type { Env } from "../env.ts";

/** One file in the destination directory. */
export interface RemoteEntry {
  name: string;
  size: number;
  /** As reported by the server: informative only, never used for retention. */
  mtime?: Date;
  isDir?: boolean;
}

/** What a transport gets from the run. */
export interface TransportContext {
  log: Logger;
  env: Env;
  /** A private (0700) directory for auth files, removed at exit. */
  privateDir: string;
  /** Step name for log lines ("store", "retention", "verify"...). */
  step?: string;
}

export interface Transport {
  /** Where the archives go, for logs and mails: never contains a secret. */
  readonly location: string;
  /** Connect and authenticate; make sure the directory exists (creating it when `create_dirs` is on). */
  open(): Promise<void>;
  /** Upload `localPath` as `name`: to a temporary name, then rename, then check the size. Returns the remote size. */
  upload(localPath: string, name: string): Promise<number>;
  /** The files of the destination directory (not recursive; directories flagged). */
  list(): Promise<RemoteEntry[]>;
  /** Delete one file. */
  remove(name: string): Promise<void>;
  /** Copy `name` to `localPath`. */
  download(name: string, localPath: string): Promise<void>;
  /** Release connections and temporary credentials. Safe to call twice. */
  close(): Promise<void>;
}

/** A protocol: its config schema and its constructor. One per file in src/transports/. */
export interface TransportKind<C> {
  /** The schema of `destination:` for this type (includes `type`). */
  schema: Field<C>;
  /** Debian packages holding the client tools it shells out to (for error hints and test setup). */
  packages: string[];
  create(config: C, ctx: TransportContext): Transport;
}
