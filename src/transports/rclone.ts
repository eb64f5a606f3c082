/**
 * `type: rclone`: any remote of the user's rclone.conf (S3, B2, Azure Blob, GCS, OneDrive, Swift, sftp, WebDAV, a
 * local path, ...) through the `rclone` command: `lsjson` to list, `copyto` to upload under the temporary name,
 * `moveto` to rename (server-side where the backend can), `deletefile` / `delete --files-from-raw` to delete,
 * `copyto` back to download. rclone checks each upload's hash itself where both ends have one.
 *
 * The remote must be defined in `config_file` (mode 600): an on-the-fly remote (`:s3,access_key_id=…:`) would put its
 * secrets on the command line, so it is refused. rclone's cache goes to the run's private directory, and it sees only
 * the child environment of every tool (no `RCLONE_*` variable of the caller changes what a night does).
 */
import { join } from "node:path";
import { absPath, bool, duration, obj, oneOf, str } from "../config/fields.ts";
import { exec, type ExecProgress, type ExecResult } from "../os/exec.ts";
import { writePrivateFile } from "../os/exec.ts";
import {
  checkName,
  diskFull,
  isBodyTempOf,
  percentProgress,
  storeErr,
  toolMissing,
  toolSaid,
  uploadProgress,
  verifyField,
} from "./common.ts";
import type { RemoteEntry, Removal, Transport, TransportContext, TransportKind } from "./transport.ts";

export const rcloneSchema = obj({
  type: oneOf("rclone").doc("Any rclone remote (S3, B2, Azure, GCS, OneDrive, sftp, WebDAV...), defined in an rclone.conf.", "rclone"),
  remote: str((s) => {
    if (/["\n\r\\]/.test(s)) return "must not contain quotes, backslashes or newlines";
    if (s.startsWith(":")) {
      return "on-the-fly remotes (':backend,key=value:') would put their settings on the command line: define the remote in config_file";
    }
    if (!/^[\w.][\w. -]*:/.test(s)) return "must be NAME:PATH, a remote defined in config_file followed by the directory";
    return undefined;
  }, "rclone remote").doc(
    "NAME:PATH: a remote of config_file and the directory (or bucket/prefix) that receives the archives.",
    "offsite:backups/db",
  ),
  config_file: absPath().trust().doc(
    "The rclone.conf defining the remote (mode 600; writable by the run user when the remote refreshes OAuth tokens).",
    "/etc/archivist/rclone.conf",
  ),
  ca_file: absPath().trust().optional().doc(
    "PEM file of the CA that signed the server's certificate, when it is not in the system's store (rclone --ca-cert).",
    "/etc/archivist/ca.pem",
  ),
  create_dirs: bool().default(false).doc(
    "Create the directory when it is missing (rclone mkdir). Off: a missing directory is an error. Bucket stores have no directories: it is then a no-op.",
  ),
  timeout: duration().timer().default(30_000).doc("Connect timeout, and the longest a transfer may stall.", "30s"),
  verify: verifyField,
});
export type RcloneConfig = ReturnType<typeof rcloneSchema.parse>;

/** rclone's `lsjson` record (the fields archivist reads). */
interface LsJson {
  Name: string;
  Size: number;
  ModTime?: string;
  IsDir: boolean;
}

/** The oldest rclone whose `delete --files-from-raw` limits a deletion to the names given (1.52, 2020). */
const MIN_VERSION = [1, 52];

export class RcloneTransport implements Transport {
  readonly location: string;
  private readonly dir: string;
  private checked = false;

  constructor(private readonly cfg: RcloneConfig, private readonly ctx: TransportContext) {
    this.dir = cfg.remote.replace(/\/+$/, "");
    this.location = `rclone:${this.dir}`;
  }

  private path(name: string): string {
    checkName(name);
    return this.dir.endsWith(":") ? `${this.dir}${name}` : `${this.dir}/${name}`;
  }

  private async rclone(args: string[], what: string, allowFail = false, progress?: ExecProgress): Promise<ExecResult> {
    const s = `${Math.max(1, Math.round(this.cfg.timeout / 1000))}s`;
    const common = [
      "--config",
      this.cfg.config_file,
      "--cache-dir",
      join(this.ctx.privateDir, "rclone-cache"),
      "--contimeout",
      s,
      "--timeout",
      s,
      "--retries",
      "1",
      "--low-level-retries",
      "2",
      "--log-level",
      "ERROR",
      "--ask-password=false",
      ...(this.cfg.ca_file ? ["--ca-cert", this.cfg.ca_file] : []),
    ];
    let r: ExecResult;
    try {
      r = await exec("rclone", [...args, ...common], progress ? { progress } : {}, "rclone");
    } catch (e) {
      toolMissing(e);
    }
    if (r.code !== 0 && !allowFail) throw this.classify(r, what);
    return r;
  }

  private classify(r: ExecResult, what: string) {
    const err = r.stderr.split("\n").map((l) =>
      l.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (ERROR|NOTICE|Failed to \w+) ?:? */, "").trim()
    )
      .filter(Boolean);
    const text = err.join("\n");
    // A server's HTML error page arrives spread over lines: keep its words, drop its tags.
    const plain = text.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ");
    const first = err.find((l) => !/^Usage:|^Run 'rclone/.test(l) && !/^</.test(l))?.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim() ||
      `rclone exit ${r.code}`;
    const said: RcloneSaid = {
      text,
      plain,
      first,
      what,
      where: this.location,
      code: r.code,
      remote: this.cfg.remote,
      config: this.cfg.config_file,
    };
    const rule = RCLONE_ERRORS.find(([test]) => test(said));
    if (rule) return rule[1](said);
    return storeErr(
      "transfer",
      `${what} failed on ${said.where} (rclone exit ${r.code}): ${toolSaid(first, "rclone", r.code)}`,
      "run the same rclone command by hand with -vv to see more",
    );
  }

  /** rclone must be recent enough for a deletion limited to the names given, and the config file private. */
  private async preflight(): Promise<void> {
    if (this.checked) return;
    let mode: number;
    try {
      mode = (await Deno.stat(this.cfg.config_file)).mode! & 0o777;
    } catch (e) {
      throw storeErr(
        "config",
        `destination.config_file ${this.cfg.config_file} cannot be read (${e instanceof Error ? e.message : e})`,
        "create it with `rclone config --config FILE`, or point destination.config_file at the rclone.conf",
      );
    }
    if (mode & 0o077) {
      throw storeErr(
        "config",
        `destination.config_file ${this.cfg.config_file} is readable by group or others (mode ${
          mode.toString(8).padStart(4, "0")
        }): it holds the remote's credentials`,
        `chmod 600 ${this.cfg.config_file}`,
      );
    }
    const v = await this.rclone(["version"], "rclone version", true);
    const m = /rclone v(\d+)\.(\d+)/.exec(v.stdout);
    if (!m || Number(m[1]) < MIN_VERSION[0] || (Number(m[1]) === MIN_VERSION[0] && Number(m[2]) < MIN_VERSION[1])) {
      throw storeErr(
        "missing_tool",
        `rclone ${m ? `${m[1]}.${m[2]}` : "(version unknown)"} is too old: archivist needs rclone ${MIN_VERSION.join(".")} or later`,
        "install a newer rclone (Debian 11 and later have one)",
      );
    }
    this.checked = true;
  }

  async open(): Promise<void> {
    await this.preflight();
    const r = await this.rclone(["lsjson", "--max-depth", "1", "--no-mimetype", this.dir], `directory ${this.cfg.remote}`, true);
    if (r.code === 0) return;
    const e = this.classify(r, `directory ${this.cfg.remote}`);
    if (e.code !== "missing_dir") throw e;
    if (!this.cfg.create_dirs) throw e;
    await this.rclone(["mkdir", this.dir], `creating ${this.cfg.remote}`);
    this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.cfg.remote}`);
  }

  async put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void> {
    // --ignore-times: always send (a leftover of the same size and time must not pass for this file). With
    // progress wanted, one stats line every 500 ms at the log level shown ("ERROR :  1.2 MiB / 3 MiB, 41%, ...").
    const p = await uploadProgress(localPath, onBytes);
    const progress = p && percentProgress(p, "stderr", /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \w+\s*:\s+[\d.]+ \S+ \/ [\d.]+ \S+, (\d+)%,/);
    const stats = progress ? ["--stats", "500ms", "--stats-one-line", "--stats-log-level", "ERROR"] : [];
    const r = await this.rclone(["copyto", "--ignore-times", ...stats, localPath, this.path(name)], `upload of ${name}`, true, progress);
    if (r.code !== 0) {
      // Whatever the failed upload left: the file itself, and a WebDAV server's body temp file beside it.
      for (const e of await this.list().catch(() => [])) {
        if (e.name === name || isBodyTempOf(e.name, name)) {
          await this.rclone(["deletefile", this.path(e.name)], "cleanup", true).catch(() => {});
        }
      }
      throw this.classify(r, `upload of ${name}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    // --ignore-existing: never replace `to`; the listing then tells whether the move happened.
    await this.rclone(["moveto", "--ignore-existing", this.path(from), this.path(to)], `rename of ${from} to ${to}`);
    const names = new Set((await this.list()).map((e) => e.name));
    if (names.has(from) || !names.has(to)) {
      throw storeErr(
        "rename",
        `rename of ${from} to ${to} on ${this.location} did not happen${names.has(to) && names.has(from) ? ` (${to} already exists)` : ""}`,
        "check the remote's rights",
      );
    }
  }

  async list(): Promise<RemoteEntry[]> {
    const r = await this.rclone(["lsjson", "--max-depth", "1", "--no-mimetype", this.dir], `listing ${this.cfg.remote}`);
    let rows: LsJson[];
    try {
      rows = JSON.parse(r.stdout || "[]");
    } catch {
      throw storeErr("transfer", `listing ${this.cfg.remote}: rclone printed something else than JSON`, "run rclone lsjson by hand");
    }
    return rows.map((e) => ({
      name: e.Name,
      size: e.IsDir ? 0 : e.Size,
      isDir: e.IsDir,
      mtime: e.ModTime ? new Date(e.ModTime) : undefined,
    }));
  }

  async remove(name: string): Promise<void> {
    await this.rclone(["deletefile", this.path(name)], `deleting ${name}`);
  }

  /**
   * One `rclone delete --files-from-raw LIST --max-depth 1` for all names (one connection, one process), between two
   * listings: a name not listed before is reported missing, one still listed after is reported not deleted.
   */
  async removeMany(names: string[]): Promise<Removal[]> {
    if (!names.length) return [];
    for (const n of names) checkName(n);
    const before = new Set((await this.list()).filter((e) => !e.isDir).map((e) => e.name));
    const present = names.filter((n) => before.has(n));
    let r: ExecResult | undefined;
    if (present.length) {
      const listFile = join(this.ctx.privateDir, "rclone-delete.txt");
      writePrivateFile(listFile, present.join("\n") + "\n");
      try {
        r = await this.rclone(
          ["delete", "--files-from-raw", listFile, "--max-depth", "1", this.dir],
          `deleting ${present.length} files`,
          true,
        );
      } finally {
        await Deno.remove(listFile).catch(() => {});
      }
    }
    const after = new Set((await this.list()).map((e) => e.name));
    if (r && r.code !== 0 && present.every((n) => after.has(n))) throw this.classify(r, `deleting ${present.length} files`);
    const why = (n: string) => r?.stderr.split("\n").find((l) => l.includes(n))?.replace(/^.*?: /, "").trim();
    return names.map((name) =>
      !before.has(name)
        ? { name, error: `cannot delete ${name} on ${this.location}: not found` }
        : after.has(name)
        ? { name, error: `${name} is still on ${this.location} after delete${why(name) ? ` (${why(name)})` : ""}` }
        : { name }
    );
  }

  /** `rclone hashsum sha256` where the backend has sha256 (local, some others); undefined elsewhere (S3: MD5 only). */
  async remoteSha256(name: string): Promise<string | undefined> {
    const r = await this.rclone(["hashsum", "sha256", this.path(name)], `sha256 of ${name}`, true);
    if (r.code !== 0) {
      if (/hash type not supported|unsupported|not supported/i.test(r.stderr)) return undefined;
      throw this.classify(r, `sha256 of ${name}`);
    }
    return /^([0-9a-f]{64}) /m.exec(r.stdout)?.[1];
  }

  async download(name: string, localPath: string): Promise<void> {
    await this.rclone(["copyto", "--ignore-times", this.path(name), localPath], `download of ${name}`);
  }

  async close(): Promise<void> {
    await Deno.remove(join(this.ctx.privateDir, "rclone-cache"), { recursive: true }).catch(() => {});
  }
}

export const rclone: TransportKind<RcloneConfig> = {
  schema: rcloneSchema,
  packages: ["rclone"],
  create: (cfg, ctx) => new RcloneTransport(cfg, ctx),
};

/** What a failed rclone command said, for the rules below. */
interface RcloneSaid {
  text: string;
  plain: string;
  first: string;
  what: string;
  where: string;
  code: number;
  remote: string;
  config: string;
}

/** rclone's failures in plain words, the first matching rule wins (order matters: a 403 page may also say "not found"). */
const RCLONE_ERRORS: [(s: RcloneSaid) => boolean, (s: RcloneSaid) => ReturnType<typeof storeErr>][] = [
  [
    (s) => /didn't find section in config file|config file .*not found|couldn't find type of fs|NewFs: didn't find/i.test(s.text),
    (s) =>
      storeErr(
        "config",
        `the remote ${s.remote.split(":")[0]}: is not defined in ${s.config} (${s.first})`,
        `check destination.remote against \`rclone listremotes --config ${s.config}\``,
      ),
  ],
  [
    (s) => /no such host|lookup .* on .*:|server misbehaving/i.test(s.text),
    (s) =>
      storeErr(
        "dns",
        `${s.what}: cannot resolve the host of ${s.where} (${s.first})`,
        "check the remote's host in the rclone.conf and DNS",
      ),
  ],
  [
    (s) => /connection refused/i.test(s.text),
    (s) => storeErr("refused", `${s.what}: connection refused by the server of ${s.where} (${s.first})`, "is the server up, on that port?"),
  ],
  [
    (s) => /i\/o timeout|deadline exceeded|no route to host|network is unreachable|timed out/i.test(s.text),
    (s) => storeErr("unreachable", `${s.what}: cannot reach the server of ${s.where} (${s.first})`, "check the network and firewall"),
  ],
  [
    (s) => /host key mismatch|knownhosts: key mismatch|key is unknown|ssh: handshake failed: knownhosts/i.test(s.text),
    (s) =>
      storeErr(
        "host_key_mismatch",
        `${s.what}: the server's host key is refused by the remote's known_hosts_file (${s.first})`,
        "verify the key with the server's admin, then update the known_hosts_file named in the rclone.conf",
      ),
  ],
  [
    (s) => /x509|certificate/i.test(s.text),
    (s) => storeErr("tls", `${s.what}: the server's TLS certificate is refused (${s.first})`, "check the remote's URL and the CA"),
  ],
  [
    (s) =>
      /\b401\b|\b403\b|unable to authenticate|permission denied \(publickey|authentication|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Unauthorized|Forbidden/i
        .test(s.text),
    (s) =>
      storeErr(
        "auth",
        `${s.what}: the server of ${s.where} refused the credentials of the rclone remote (${s.first})`,
        "check the remote's user, key or token in the rclone.conf",
      ),
  ],
  [
    (s) =>
      /no space left|disk quota|quota exceeded|insufficient storage|\b507\b|InsufficientStorage|file too large|too big for remaining disk space/i
        .test(s.text),
    (s) => diskFull(s.what, s.where, s.first),
  ],
  [
    (s) => /\b500 Internal Server Error\b/i.test(s.plain),
    (s) =>
      storeErr(
        "transfer",
        `${s.what}: the server of ${s.where} failed to store it (HTTP 500 Internal Server Error)`,
        "see the server's error log: a full disk, a quota or a permission problem are the usual causes",
      ),
  ],
  [
    (s) => s.code === 3 || /directory not found|dir not found|no such bucket|NoSuchBucket/i.test(s.text),
    (s) =>
      storeErr(
        "missing_dir",
        `${s.what}: the directory ${s.remote} does not exist (${s.first})`,
        "create it, or set destination.create_dirs: true",
      ),
  ],
  [
    (s) => s.code === 4 || /object not found|file not found|no such file|not found/i.test(s.text),
    (s) => storeErr("not_found", `${s.what}: not found on ${s.where} (${s.first})`, ""),
  ],
  [
    (s) => /permission denied|operation not permitted|read-only/i.test(s.text),
    (s) =>
      storeErr(
        "permission",
        `${s.what}: permission denied on ${s.where} (${s.first})`,
        "check the directory's owner and mode, or the remote's rights",
      ),
  ],
];
