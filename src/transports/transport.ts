/**
 * The destination interface. Every store (a directory, SFTP, FTPS, WebDAV, SMB) implements it and nothing else;
 * the store, retention, list, prune, restore and verify code only ever talk to this interface.
 * tests/transports/conformance.ts runs the same cases against each implementation.
 */
import type { Field } from "../config/fields.ts";
import type { Logger } from "../report/log.ts";
import type { Env } from "../os/env.ts";
import { tempName } from "../formats/naming.ts";
import { ArchivistError, asArchivistError } from "../errors.ts";

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
  /**
   * Write `localPath` to the destination as `name` (the caller passes a temporary name: {@link uploadAtomic} and
   * the store step do). The client tool ends when this returns: no tool is ever left to rename on its own.
   * `onBytes`, when given (a progress line is shown), hears how many bytes are sent so far where the transport can
   * tell: local (its own copy), ftps and webdav (curl's bar), rsync (--info=progress2), rclone (its stats); sftp
   * (batch mode has no meter) and smb (smbclient has none) do not call it.
   */
  put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void>;
  /** Rename `from` to `to` in the destination directory, as a command of its own (`to` must not exist). */
  rename(from: string, to: string): Promise<void>;
  /** The files of the destination directory (not recursive; directories flagged). */
  list(): Promise<RemoteEntry[]>;
  /** Delete one file. */
  remove(name: string): Promise<void>;
  /**
   * Delete several files in as few round trips as the protocol allows (optional: {@link removeEach} falls back to
   * `remove` one by one). Each name's outcome: `error` set when it could not be deleted. A lost connection throws.
   */
  removeMany?(names: string[]): Promise<Removal[]>;
  /**
   * Make `name` the same file as `existing` in the destination directory: a hard link (one copy on disk), or a copy
   * through a temporary name where the filesystem has no hard links. Optional: only a local directory can.
   */
  link?(existing: string, name: string): Promise<"linked" | "copied">;
  /**
   * The sha256 of `name` computed where it is stored, without downloading it; undefined when the destination cannot
   * (optional: rclone's backends with sha256). verify: checksum then downloads it.
   */
  remoteSha256?(name: string): Promise<string | undefined>;
  /**
   * Where a file deleted a moment ago lives on, if the server keeps deleted files (Samba's recycle bin): found,
   * removed from there, and returned, so that verify can say that retention frees no space. Undefined: gone.
   */
  keptAfterDelete?(name: string): Promise<string | undefined>;
  /** What the operations so far found that the night must report as a warning (then forgotten), if any. */
  notices?(): string[];
  /** Copy `name` to `localPath`. */
  download(name: string, localPath: string): Promise<void>;
  /** Release connections and temporary credentials. Safe to call twice. */
  close(): Promise<void>;
}

/** What became of one name in a {@link Transport.removeMany}. */
export interface Removal {
  name: string;
  error?: string;
}

/**
 * Delete `names`, through `removeMany` when the transport has it; never throws for one file's failure. Each error is
 * the message retention reports (used by retention only).
 */
export async function removeEach(t: Transport, names: string[]): Promise<Removal[]> {
  if (!names.length) return [];
  if (t.removeMany) return await t.removeMany(names);
  const out: Removal[] = [];
  for (const name of names) {
    try {
      await t.remove(name);
      out.push({ name });
    } catch (e) {
      out.push({ name, error: asArchivistError("retention", e).message });
    }
  }
  return out;
}

/** A protocol: its config schema and its constructor. One per file in src/transports/. */
export interface TransportKind<C> {
  /** The schema of `destination:` for this type (includes `type`). */
  schema: Field<C>;
  /** Debian packages holding the client tools it shells out to (for error hints and test setup). */
  packages: string[];
  create(config: C, ctx: TransportContext): Transport;
  /**
   * What a systemd sandbox must let this destination do on this machine (src/config/sandbox.ts): the paths it writes and the
   * capabilities it uses as `runUser`, each with the key that needs it. None when it only talks to a server.
   */
  sandbox?(config: C, runUser: string): { writes: SandboxNeed[]; capabilities: SandboxNeed[] };
  /**
   * The directory it writes, whoever logs in, in one spelling (two jobs must not share one): by default its location
   * without the user, the path normalised (registry.ts placeOf).
   */
  place?(config: C): string;
}

/** A path written, or a capability used (CAP_CHOWN...), and the destination key that needs it. */
export interface SandboxNeed {
  what: string;
  why: string;
}

/**
 * Upload one file atomically: put it under its temporary name, check its size in a listing, rename it into place,
 * check again. Returns the size on the destination. The store step does the same for an archive and its sidecar
 * together; verify's probe and the conformance suite use this.
 * @example await uploadAtomic(t, "/tmp/x.tgz", "20261122.tgz")
 */
export async function uploadAtomic(t: Transport, localPath: string, name: string): Promise<number> {
  const tmp = tempName(name);
  const want = (await Deno.stat(localPath)).size;
  try {
    await t.put(localPath, tmp);
    checkSize(await t.list(), tmp, want, t.location);
    await t.rename(tmp, name);
  } catch (e) {
    await t.remove(tmp).catch(() => {});
    throw e;
  }
  return checkSize(await t.list(), name, want, t.location);
}

/** The size of `name` in a listing, which must be `want`. */
export function checkSize(list: RemoteEntry[], name: string, want: number, location: string): number {
  const got = list.find((e) => e.name === name)?.size;
  if (got === undefined) {
    throw new ArchivistError("store", `${name} is not listed on ${location} after upload`, "the server may hide or refuse that name", {
      code: "size_mismatch",
    });
  }
  if (got !== want) {
    throw new ArchivistError(
      "store",
      `size after upload differs for ${name}: ${got} bytes on ${location}, ${want} expected`,
      "check the destination's free space and storage",
      {
        code: "size_mismatch",
      },
    );
  }
  return got;
}
