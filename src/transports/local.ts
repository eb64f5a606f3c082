/**
 * `type: local`: a directory on this machine: a local disk, or an NFS/CIFS share mounted by the system.
 * With `require_mount: true` the run refuses to write when the directory is not on a mounted filesystem,
 * so that an unmounted share never silently fills the root disk.
 */
import { join } from "node:path";
import { ArchivistError, errMsg } from "../errors.ts";
import { absPath, bool, Field, FieldError, obj, oneOf } from "../config/fields.ts";
import { exec } from "../os/exec.ts";
import { isStaleMount, nearestExisting, resolvedPath, staleMountPoint } from "../os/fs.ts";
import { diskFull, verifyField } from "./common.ts";
import { tempName } from "../formats/naming.ts";
import type { RemoteEntry, Transport, TransportContext, TransportKind } from "./transport.ts";

/** A file mode written as chmod takes it: 640, 0640, "0640" (YAML reads 0640 as the number 640: the digits count). */
const fileMode = new Field<number>("file mode", (raw, path) => {
  const digits = typeof raw === "number" && Number.isInteger(raw) ? String(raw) : typeof raw === "string" ? raw : "";
  if (!/^0?[0-7]{3,4}$/.test(digits)) throw new FieldError(path, `expected an octal mode like 0640, got ${JSON.stringify(raw)}`);
  const mode = parseInt(digits, 8);
  if (mode & 0o7000) throw new FieldError(path, `setuid, setgid and sticky bits make no sense on an archive (${digits})`);
  if (mode & 0o002) {
    throw new FieldError(path, `${digits} lets anyone on the machine replace an archive: leave out the write bit for others`);
  }
  if (!(mode & 0o400)) throw new FieldError(path, `${digits} leaves the owner unable to read the archive`);
  return mode;
});

/** The mode of an archive and its sidecar without `mode:`: a whole database, for its owner only. */
export const ARCHIVE_MODE = 0o600;

/** A user or group: a name, or a numeric id. */
const nameOrId = new Field<string>("name or id", (raw, path) => {
  const v = typeof raw === "number" && Number.isInteger(raw) && raw >= 0 ? String(raw) : raw;
  if (typeof v !== "string" || !/^([a-z_][a-z0-9_.-]*\$?|[0-9]+)$/i.test(v)) {
    throw new FieldError(path, `expected a user or group name, or a numeric id, got ${JSON.stringify(raw)}`);
  }
  return v;
});

export const localSchema = obj({
  type: oneOf("local").doc("A directory on this machine (local disk, or an NFS/CIFS mount).", "local"),
  path: absPath().doc("The directory that receives the archives.", "/mnt/backup/db"),
  create_dirs: bool().default(false).doc("Create the directory (and parents) when it is missing. Off: a missing directory is an error."),
  require_mount: bool().default(false).doc(
    "Refuse to write unless the directory is on a mounted filesystem other than /. Recommended for NFS/CIFS mounts.",
  ),
  owner: nameOrId.optional().doc(
    "Owner given to each archive and sidecar written here (a name or a uid; Cedar's staging). Other than the run user: archivist must run as root.",
    "backup",
  ),
  group: nameOrId.optional().doc(
    "Group given to each archive and sidecar (a name or a gid); as another user than root, one of the run user's groups.",
    "backup",
  ),
  strict_ownership: bool().default(false).doc(
    "With owner, group or mode: a filesystem that does not keep them (a FUSE or CIFS mount that ignores chown and chmod) fails the store (exit 30). Off: a warning naming the mount.",
  ),
  mode: fileMode.optional().doc(
    "Permissions of each archive and sidecar (octal, as chmod). Default 0600: an archive holds a whole database, readable by its owner only.",
    "0640",
  ),
  verify: verifyField,
});
export type LocalConfig = typeof localSchema extends { parse(r: unknown, p: string): infer T } ? T : never;

/**
 * The mount point holding `path` (an existing, real path), or "/" when it is on the root filesystem: the nearest
 * ancestor whose device differs from its parent's, as mountpoint(1) decides. Only stat() is needed: no /proc
 * (which Deno 2 grants only with --allow-all), so the installed program's permissions suffice.
 * @example mountPointOf("/mnt/backup/db") // "/mnt/backup" when an NFS share is mounted there
 */
export function mountPointOf(path: string): string {
  const dev = (p: string) => Deno.statSync(p).dev;
  let p = path;
  while (p !== "/") {
    const up = p.replace(/\/[^/]+\/?$/, "") || "/";
    if (dev(up) !== dev(p)) return p;
    p = up;
  }
  return "/";
}

/** Classify a filesystem error; `dirOp`: a NotFound means the directory is gone (else the named file is). */
function fsError(e: unknown, what: string, path: string, dirOp = false): ArchivistError {
  if (e instanceof ArchivistError) return e;
  const msg = errMsg(e);
  if (isStaleMount(e)) return staleMount(what, path, e);
  if (e instanceof Deno.errors.NotFound) {
    let dirThere = false;
    try {
      dirThere = Deno.statSync(path).isDirectory;
    } catch { /* gone */ }
    if (dirThere && !dirOp) {
      return new ArchivistError("store", `${what}: no such file in ${path}`, "see `archivist list` for what is there", {
        code: "missing_file",
        cause: e,
      });
    }
    return new ArchivistError("store", `${what}: ${path} does not exist`, "", { code: "missing_dir", cause: e });
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new ArchivistError("store", `${what}: permission denied on ${path}`, "check the owner and mode of the destination directory", {
      code: "permission",
      cause: e,
    });
  }
  if (/no space|ENOSPC|os error 28|quota|EDQUOT|os error 122/i.test(msg)) {
    return diskFull(what, path, msg.replace(/\s*\(os error \d+\).*$/, ""));
  }
  if (/read-only|EROFS|os error 30/i.test(msg)) {
    return new ArchivistError("store", `${what}: ${path} is on a read-only filesystem`, "check the mount options of the destination", {
      code: "read_only",
      cause: e,
    });
  }
  return new ArchivistError("store", `${what} ${path}: ${msg}`, "", { cause: e });
}

/** A stale FUSE or network mount: its process died (or its server went away); only a remount brings it back. */
function staleMount(what: string, path: string, cause: unknown): ArchivistError {
  const mp = staleMountPoint(path);
  return new ArchivistError(
    "store",
    `${what}: ${mp} is a stale mount (transport endpoint is not connected): the process or server behind it is gone`,
    `unmount it (umount -l ${mp}, or fusermount3 -u ${mp}) and mount it again; then find out why it died (its log, the network)`,
    { code: "stale_mount", cause },
  );
}

/** The uid or gid of `nameOrId` from the system's databases (getent: files, LDAP, whatever nsswitch says). */
async function lookupId(db: "passwd" | "group", nameOrId: string, key: string): Promise<number> {
  const r = await exec("getent", [db, nameOrId], {}, "libc-bin").catch(() => undefined);
  const id = r?.code === 0 ? Number(r.stdout.split(":")[2]) : NaN;
  if (Number.isInteger(id)) return id;
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId); // a bare id need not be in the database
  throw new ArchivistError(
    "store",
    `${key}: no ${db === "passwd" ? "user" : "group"} ${JSON.stringify(nameOrId)} on this machine`,
    `check ${key} (getent ${db} ${nameOrId})`,
    {
      code: "config",
    },
  );
}

/**
 * Copy `from` to `to` (its mode too, as Deno.copyFile does) in 1 MiB pieces, telling `onBytes` how far it got: for
 * the progress line on a terminal; without one, Deno.copyFile (the kernel's copy) does it.
 */
async function copyCounting(from: string, to: string, onBytes: (done: number) => void): Promise<void> {
  const src = await Deno.open(from, { read: true });
  try {
    const out = await Deno.open(to, { write: true, create: true, truncate: true, mode: (await src.stat()).mode! & 0o777 });
    try {
      const buf = new Uint8Array(1 << 20);
      let done = 0;
      for (let n = await src.read(buf); n !== null; n = await src.read(buf)) {
        for (let w = 0; w < n;) w += await out.write(buf.subarray(w, n));
        onBytes(done += n);
      }
    } finally {
      out.close();
    }
  } finally {
    src.close();
  }
}

export class LocalTransport implements Transport {
  readonly location: string;
  private uid: number | null = null;
  private gid: number | null = null;
  constructor(
    private readonly cfg: LocalConfig,
    private readonly ctx: TransportContext,
  ) {
    this.location = cfg.path;
  }

  private p(name: string): string {
    if (name.includes("/") || name === "" || name === "." || name === "..") {
      throw new ArchivistError("store", `refusing the file name ${JSON.stringify(name)}`, "", { code: "bad_name" });
    }
    return join(this.cfg.path, name);
  }

  /** Resolve owner and group; refuse an owner the run user cannot give. */
  private async ownership(): Promise<void> {
    if (this.cfg.owner !== undefined) this.uid = await lookupId("passwd", this.cfg.owner, "destination.owner");
    if (this.cfg.group !== undefined) this.gid = await lookupId("group", this.cfg.group, "destination.group");
    const me = Deno.uid();
    if (this.uid !== null && me !== 0 && me !== this.uid) {
      throw new ArchivistError(
        "store",
        `destination.owner is ${this.cfg.owner} (uid ${this.uid}) but archivist runs as uid ${me}, not root: only root can give files to another user`,
        "run archivist as root, or as that user, or leave out destination.owner (destination.group and mode need no root)",
        { code: "permission" },
      );
    }
  }

  /** Give a file just written the configured owner, group and mode (before it is renamed into place). */
  private async applyOwnership(path: string, name: string): Promise<void> {
    if (this.uid !== null || this.gid !== null) {
      try {
        await Deno.chown(path, this.uid, this.gid);
      } catch (e) {
        if (e instanceof Deno.errors.PermissionDenied || /EPERM|os error 1\b/.test(errMsg(e))) {
          throw new ArchivistError(
            "store",
            `cannot give ${name} to ${this.cfg.owner ?? ""}${
              this.cfg.group !== undefined ? `:${this.cfg.group}` : ""
            } in ${this.cfg.path}: ${errMsg(e)}`,
            this.gid !== null && Deno.uid() !== 0
              ? "as another user than root, destination.group must be one of the run user's groups (id -Gn)"
              : "the filesystem may not keep owners (a CIFS mount: set uid/gid in its mount options instead)",
            { code: "permission", cause: e },
          );
        }
        throw e;
      }
    }
    await Deno.chmod(path, this.cfg.mode ?? ARCHIVE_MODE);
    this.checkOwnership(path, name);
  }

  private found: string[] = [];
  notices(): string[] {
    const n = this.found;
    this.found = [];
    return n;
  }

  /**
   * Did the filesystem keep what was given? A FUSE mount (rclone, sshfs) or a CIFS mount may accept chown and chmod
   * and ignore them. What the config asked for is a warning, or an error with strict_ownership; the default mode
   * only a log line (the mount's options decide there).
   */
  private checkOwnership(path: string, name: string): void {
    const st = Deno.statSync(path);
    const want = this.cfg.mode ?? ARCHIVE_MODE, mode = (st.mode ?? 0) & 0o7777;
    const off = [
      this.uid !== null && st.uid !== this.uid ? `owner ${this.cfg.owner} (uid ${this.uid}; it is uid ${st.uid})` : "",
      this.gid !== null && st.gid !== this.gid ? `group ${this.cfg.group} (gid ${this.gid}; it is gid ${st.gid})` : "",
      mode !== want ? `mode ${want.toString(8).padStart(4, "0")} (it is ${mode.toString(8).padStart(4, "0")})` : "",
    ].filter(Boolean);
    if (!off.length) return;
    let where = this.cfg.path;
    try {
      where = `the filesystem mounted at ${mountPointOf(Deno.realPathSync(this.cfg.path))}`;
    } catch { /* the path itself */ }
    const msg = `${where} did not keep the ${off.join(", ")} given to ${name}: it ignores chown/chmod (a FUSE or CIFS mount?)`;
    const asked = this.cfg.owner !== undefined || this.cfg.group !== undefined || this.cfg.mode !== undefined;
    if (!asked) return void this.ctx.log.info(this.ctx.step ?? "store", `${msg}; set the mount's own options (uid, gid, file_mode)`);
    if (this.cfg.strict_ownership) {
      throw new ArchivistError("store", msg, "set uid, gid and file_mode in the mount's options, or store elsewhere", {
        code: "permission",
      });
    }
    if (!this.found.length) {
      this.found.push(`${msg} (hint: set uid, gid and file_mode in the mount's options; strict_ownership: true makes this an error)`);
    }
  }

  async open(): Promise<void> {
    await this.ownership();
    const dir = this.cfg.path;
    if (this.cfg.require_mount) {
      let mp: string;
      try {
        mp = mountPointOf(Deno.realPathSync(nearestExisting(dir)));
      } catch (e) {
        if (isStaleMount(e)) throw staleMount("cannot check that the destination is mounted", dir, e);
        throw new ArchivistError("store", `cannot check that ${dir} is mounted: ${errMsg(e)}`, "check the path and its permissions", {
          code: "not_mounted",
        });
      }
      if (mp === "/") {
        throw new ArchivistError(
          "store",
          `${dir} is not on a mounted filesystem (it is on the root filesystem); refusing to write`,
          "mount the share (check /etc/fstab, `mount -a`), or set destination.require_mount: false for a local disk",
          { code: "not_mounted" },
        );
      }
      this.ctx.log.debug(this.ctx.step ?? "store", `${dir} is on the filesystem mounted at ${mp}`);
    }
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw fsError(e, "cannot open destination", dir);
      if (!this.cfg.create_dirs) {
        throw new ArchivistError(
          "store",
          `destination directory ${dir} does not exist`,
          "create it, or set destination.create_dirs: true",
          {
            code: "missing_dir",
          },
        );
      }
      try {
        Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
      } catch (e2) {
        throw fsError(e2, "cannot create destination directory", dir);
      }
      this.ctx.log.info(this.ctx.step ?? "store", `created destination directory ${dir}`);
      return;
    }
    if (!st.isDirectory) {
      throw new ArchivistError("store", `destination ${dir} exists but is not a directory`, "check destination.path", {
        code: "missing_dir",
      });
    }
  }

  async put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void> {
    const dest = this.p(name);
    try {
      if (onBytes) await copyCounting(localPath, dest, onBytes);
      else await Deno.copyFile(localPath, dest);
      await this.applyOwnership(dest, name);
      const f = await Deno.open(dest, { read: true }); // fsync needs no write access (mode may forbid it)
      try {
        await f.sync();
      } finally {
        f.close();
      }
    } catch (e) {
      await Deno.remove(dest).catch(() => {});
      throw fsError(e, `cannot write ${name}`, this.cfg.path, true);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await Deno.rename(this.p(from), this.p(to));
      // Make the rename itself durable.
      const d = await Deno.open(this.cfg.path, { read: true });
      try {
        await d.sync();
      } catch {
        /* some filesystems (CIFS) refuse fsync on a directory */
      } finally {
        d.close();
      }
    } catch (e) {
      throw fsError(e, `cannot rename ${from} to ${to}`, this.cfg.path);
    }
  }

  async list(): Promise<RemoteEntry[]> {
    const out: RemoteEntry[] = [];
    try {
      for await (const e of Deno.readDir(this.cfg.path)) {
        try {
          const st = await Deno.lstat(join(this.cfg.path, e.name));
          out.push({ name: e.name, size: st.size, mtime: st.mtime ?? undefined, isDir: st.isDirectory });
        } catch { /* vanished while listing */ }
      }
    } catch (e) {
      throw fsError(e, "cannot list destination", this.cfg.path, true);
    }
    return out;
  }

  async remove(name: string): Promise<void> {
    try {
      await Deno.remove(this.p(name));
    } catch (e) {
      throw fsError(e, `cannot delete ${name}`, this.cfg.path);
    }
  }

  async link(existing: string, name: string): Promise<"linked" | "copied"> {
    const from = this.p(existing), to = this.p(name);
    try {
      await Deno.link(from, to);
    } catch (e) {
      // No hard links on this filesystem (FAT, some CIFS or NFS mounts), or a link refused: a copy, made whole under a
      // temporary name and renamed, as every upload.
      if (!/os error (1|18|31|95)\b|EPERM|EXDEV|EMLINK|EOPNOTSUPP|not supported|not permitted/i.test(errMsg(e))) {
        throw fsError(e, `cannot link ${name} to ${existing}`, this.cfg.path);
      }
      this.ctx.log.info(this.ctx.step ?? "store", `no hard link in ${this.cfg.path} (${errMsg(e)}): copying ${existing} to ${name}`);
      const tmp = tempName(name);
      await this.put(from, tmp);
      await this.rename(tmp, name);
      return "copied";
    }
    return "linked";
  }

  async download(name: string, localPath: string): Promise<void> {
    try {
      await Deno.copyFile(this.p(name), localPath);
    } catch (e) {
      throw fsError(e, `cannot read ${name}`, this.cfg.path);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Can root write into `dir` without CAP_DAC_OVERRIDE (by its mode bits alone)? A missing dir will be root's. */
function rootWritesByMode(dir: string): boolean {
  try {
    const st = Deno.statSync(dir);
    const mode = st.mode ?? 0;
    return st.uid === 0 ? !!(mode & 0o200) : !!(mode & 0o002) || (st.gid === 0 && !!(mode & 0o020));
  } catch {
    return true;
  }
}

export const local: TransportKind<LocalConfig> = {
  schema: localSchema,
  packages: [],
  create: (cfg, ctx) => new LocalTransport(cfg, ctx),
  place: (cfg) => resolvedPath(cfg.path),
  sandbox(cfg, runUser) {
    const capabilities = [];
    if (runUser === "root" && !rootWritesByMode(cfg.path)) {
      capabilities.push({ what: "CAP_DAC_OVERRIDE", why: `path (${cfg.path} is not writable by root without it)` });
    }
    if (runUser === "root" && (cfg.owner !== undefined || cfg.group !== undefined)) {
      // Given away, the file is another user's: setting its mode takes CAP_FOWNER, reopening it (fsync, read-back)
      // CAP_DAC_READ_SEARCH.
      capabilities.push(
        { what: "CAP_CHOWN", why: "owner/group" },
        { what: "CAP_FOWNER", why: "mode, set after the owner" },
        { what: "CAP_DAC_READ_SEARCH", why: "owner (the archive is read again once given away)" },
      );
    }
    return { writes: [{ what: cfg.path, why: "path" }], capabilities };
  },
};
