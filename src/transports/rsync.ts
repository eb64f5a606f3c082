/**
 * `type: rsync` (over SSH, through the run's one SSH connection) and `type: rsyncd` (an `rsync://` daemon module,
 * its password in a mode-600 file given with `--password-file`): RESIF's transport. Everything goes through the
 * rsync protocol, so a server that allows nothing but rsync (a daemon, or `rrsync` as the key's forced command) works:
 *
 *  - list: `rsync --list-only DIR/`;
 *  - upload: `rsync -t --inplace FILE DIR/NAME.part` (rsync checks the whole file's checksum after the transfer);
 *  - rename: rsync has none; the same local file is sent again as the final name with `--fuzzy`, which takes the
 *    `.part` (same size and time) as its basis: only block checksums cross the network and the server builds the
 *    final file under rsync's own temporary name before renaming it, so it appears whole. Then the `.part` goes;
 *  - delete: an empty directory synced onto DIR with `--delete`, `--include` of the exact anchored names and
 *    `--exclude '*'`: a dry run first must list nothing but those names, then the real run with `--max-delete`;
 *  - create_dirs: a tree of empty directories sent to the parent (any rsync version; `--mkpath` needs 3.2.3).
 *
 * The daemon protocol is not encrypted: rsyncd is for a trusted network; use `type: rsync` (SSH) elsewhere.
 */
import { join } from "node:path";
import { nonEmpty, obj, oneOf, secretFields } from "../config/fields.ts";
import { exec, type ExecProgress, type ExecResult, writePrivateFile } from "../os/exec.ts";
import { ArchivistError } from "../errors.ts";
import {
  checkName,
  dirLevels,
  diskFull,
  missingDir,
  networkFields,
  remoteDir,
  storeErr,
  toolMissing,
  toolSaid,
  verifyField,
} from "./common.ts";
import { firstLine, sshFields, sshSandbox, SshSession } from "./ssh.ts";
import type { RemoteEntry, Removal, Transport, TransportContext, TransportKind } from "./transport.ts";

export const rsyncSchema = obj({
  type: oneOf("rsync").doc("rsync over SSH (OpenSSH client, key authentication; rsync on both ends).", "rsync"),
  ...networkFields(22),
  ...sshFields(),
  path: remoteDir().doc("Remote directory (absolute, or relative to the login directory).", "/srv/backup/db"),
  verify: verifyField,
});
export type RsyncConfig = ReturnType<typeof rsyncSchema.parse>;

export const rsyncdSchema = obj({
  type: oneOf("rsyncd").doc("An rsync daemon module (rsync://, port 873; not encrypted: trusted networks only).", "rsyncd"),
  ...networkFields(873),
  module: nonEmpty("module name").doc("The daemon's module (a [section] of its rsyncd.conf).", "backup"),
  path: remoteDir().optional().doc("Directory inside the module (default: the module's top).", "db"),
  user: nonEmpty("user name").optional().doc("User of the module's `auth users` (omit for an anonymous module).", "backup"),
  ...secretFields("password", "rsync daemon password (the module's secrets file)"),
  verify: verifyField,
});
export type RsyncdConfig = ReturnType<typeof rsyncdSchema.parse>;

/** How to reach the remote directory: over SSH or a daemon. */
interface Remote {
  /** For messages: "host:port". */
  where: string;
  location: string;
  /** The remote directory, as rsync's argument (ends with "/"). */
  dir: string;
  /** The directory path as the user wrote it, for messages. */
  path: string;
  /** The options every rsync command gets. */
  args(): string[];
  open(): Promise<void>;
  close(): Promise<void>;
  /** Connection-level failures (SSH's own, a daemon's @ERROR), worded; undefined for the others. */
  classify(err: string, code: number): ArchivistError | undefined;
  /** The parent into which a tree of empty directories is sent to create `path`, and the levels below it. */
  mkdirBase(): { dest: string; levels: string[] };
}

/** One rsync -e argument: rsync splits on spaces and honours quotes (no backslashes). */
function word(s: string): string {
  if (!/[\s'"]/.test(s)) return s;
  if (!s.includes("'")) return `'${s}'`;
  if (!s.includes('"')) return `"${s}"`;
  throw storeErr("bad_name", `cannot pass ${JSON.stringify(s)} to ssh through rsync -e (both quote kinds)`, "rename the file");
}

class SshRemote implements Remote {
  readonly where: string;
  readonly location: string;
  readonly dir: string;
  readonly path: string;
  private readonly ssh: SshSession;
  constructor(private readonly cfg: RsyncConfig, ctx: TransportContext) {
    this.ssh = new SshSession(cfg, ctx);
    this.where = this.ssh.where;
    this.path = cfg.path;
    this.location = `rsync://${cfg.user}@${cfg.host}:${cfg.port} (ssh)${cfg.path.startsWith("/") ? "" : "/~/"}${cfg.path}`;
    this.dir = `${cfg.user}@${cfg.host}:${cfg.path.replace(/\/+$/, "")}/`;
  }
  args(): string[] {
    return ["-e", ["ssh", ...this.ssh.options(), "-p", String(this.cfg.port)].map(word).join(" ")];
  }
  async open() {
    await this.ssh.start();
  }
  async close() {
    await this.ssh.close();
  }
  classify(err: string, code: number) {
    if (/rsync: (command )?not found|rsync: No such file or directory|command not found/i.test(err) && /rsync/.test(err)) {
      return storeErr(
        "missing_tool",
        `rsync is not installed on ${this.where} (${firstLine(err)})`,
        "install rsync on the server (apt-get install rsync)",
      );
    }
    const e = this.ssh.classify(err, code);
    return e?.code === "connection" && !/^ssh|kex_|Connection closed/m.test(err) ? undefined : e;
  }
  mkdirBase() {
    const abs = this.cfg.path.startsWith("/");
    const levels = dirLevels(this.cfg.path);
    return { dest: `${this.cfg.user}@${this.cfg.host}:${abs ? "/" : ""}`, levels: levels.map((l) => l.replace(/^\//, "")) };
  }
  async logNewHostKey() {
    await this.ssh.logNewHostKey();
  }
}

class DaemonRemote implements Remote {
  readonly where: string;
  readonly location: string;
  readonly dir: string;
  readonly path: string;
  private readonly passFile: string;
  constructor(private readonly cfg: RsyncdConfig, private readonly ctx: TransportContext) {
    this.where = `${cfg.host}:${cfg.port}`;
    const sub = (cfg.path ?? "").replace(/^\/+|\/+$/g, "");
    this.path = `${cfg.module}${sub ? `/${sub}` : ""}`;
    const userAt = cfg.user ? `${encodeURIComponent(cfg.user)}@` : "";
    this.location = `rsync://${userAt}${cfg.host}:${cfg.port}/${this.path}`;
    this.dir = `rsync://${userAt}${cfg.host}:${cfg.port}/${this.path}/`;
    this.passFile = join(ctx.privateDir, "rsync.password");
  }
  args(): string[] {
    const s = String(Math.max(1, Math.round(this.cfg.timeout / 1000)));
    // No password: /dev/null, so that rsync never waits for one on a terminal.
    return ["--contimeout", s, `--password-file=${this.cfg.password !== undefined ? this.passFile : "/dev/null"}`];
  }
  open() {
    if (this.cfg.password !== undefined) writePrivateFile(this.passFile, this.cfg.password + "\n");
    return Promise.resolve();
  }
  async close() {
    await Deno.remove(this.passFile).catch(() => {});
  }
  classify(err: string) {
    const where = this.where;
    if (/@ERROR: auth failed/i.test(err)) {
      return storeErr(
        "auth",
        `authentication refused by the rsync daemon ${where} for user ${this.cfg.user ?? "(none)"} on module ${this.cfg.module}`,
        "check destination.user and the password against the module's `auth users` and secrets file",
      );
    }
    if (/@ERROR: Unknown module/i.test(err)) {
      return storeErr(
        "missing_module",
        `the rsync daemon ${where} has no module ${this.cfg.module}`,
        "check destination.module (rsync rsync://HOST/ lists the visible ones)",
      );
    }
    if (/@ERROR: max connections/i.test(err)) {
      return storeErr(
        "busy",
        `the rsync daemon ${where} refuses more connections (max connections), still after 15 s of retries`,
        "another client holds the module's connections: try later, or raise `max connections` on the server",
      );
    }
    if (/@ERROR: access denied/i.test(err)) {
      return storeErr(
        "permission",
        `the rsync daemon ${where} denies this host access to module ${this.cfg.module} (${firstLine(err)})`,
        "check `hosts allow` on the server",
      );
    }
    if (/module is read only|read-only module/i.test(err)) {
      return storeErr(
        "permission",
        `module ${this.cfg.module} on ${where} is read only`,
        "set `read only = false` for the module on the server",
      );
    }
    if (/Name or service not known|getaddrinfo|Temporary failure in name resolution/i.test(err)) {
      return storeErr("dns", `cannot resolve host ${this.cfg.host}`, "check destination.host and DNS");
    }
    if (/Connection refused/i.test(err)) {
      return storeErr("refused", `connection refused by ${where}`, "is the rsync daemon running there, on that port?");
    }
    if (/timed out|No route to host|Network is unreachable|timeout waiting for daemon/i.test(err)) {
      return storeErr("unreachable", `cannot reach ${where} (${firstLine(err)})`, "check the network and firewall");
    }
    return undefined;
  }
  mkdirBase() {
    const sub = (this.cfg.path ?? "").replace(/^\/+|\/+$/g, "");
    const userAt = this.cfg.user ? `${encodeURIComponent(this.cfg.user)}@` : "";
    return { dest: `rsync://${userAt}${this.cfg.host}:${this.cfg.port}/${this.cfg.module}/`, levels: sub ? dirLevels(sub) : [] };
  }
}

/** rsync's escape of unusual bytes in names it prints (`\#ooo`, octal). */
function unescape(s: string): string {
  if (!s.includes("\\#")) return s;
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length;) {
    const m = /^\\#([0-7]{3})/.exec(s.slice(i));
    if (m) (bytes.push(parseInt(m[1], 8)), i += 5);
    else {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...enc.encode(ch));
      i += ch.length;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** One line of `rsync --list-only --no-h`: "-rw-r--r--        300000 2026/11/29 10:00:00 name". */
export function parseListLine(line: string): RemoteEntry | undefined {
  const m = /^([\-dlpscb])[rwxsStT\-]{9}\s+(\d+) (\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d) (.*)$/.exec(line);
  if (!m) return undefined;
  let name = m[7];
  if (m[1] === "l") name = name.replace(/ -> .*$/, "");
  name = unescape(name);
  if (name === ".") return undefined;
  const t = Date.parse(`${m[3]}-${m[4]}-${m[5]}T${m[6]}Z`);
  return { name, size: Number(m[2]), isDir: m[1] === "d", mtime: Number.isNaN(t) ? undefined : new Date(t) };
}

/** An anchored, literal rsync filter pattern for one file of the directory. */
function anchored(name: string): string {
  // A backslash escapes a wildcard only when the pattern has one: escaping all of them makes the name literal.
  return "/" + name.replace(/[*?[\\]/g, (c) => `\\${c}`);
}

export class RsyncTransport implements Transport {
  readonly location: string;
  /** The local file sent as each temporary name: a rename sends it again as the final name. */
  private readonly sent = new Map<string, string>();

  private readonly timeout: number;
  private readonly createDirs: boolean;

  constructor(private readonly remote: Remote, private readonly ctx: TransportContext, opts: { timeout: number; create_dirs: boolean }) {
    this.location = remote.location;
    this.timeout = opts.timeout;
    this.createDirs = opts.create_dirs;
  }

  private async rsync(args: string[], what: string, allowFail = false, progress?: ExecProgress): Promise<ExecResult> {
    let r!: ExecResult;
    // A daemon with `max connections` frees a slot only once the previous connection's process has ended: the next
    // command of the same night may arrive first. Wait and retry briefly (about 15 s in all) before giving up.
    for (let attempt = 0, wait = 250; attempt < 7; attempt++, wait *= 2) {
      try {
        const opts = progress ? { progress } : {};
        r = await exec(
          "rsync",
          [`--timeout=${Math.max(1, Math.round(this.timeout / 1000))}`, ...this.remote.args(), ...args],
          opts,
          "rsync",
        );
      } catch (e) {
        toolMissing(e);
      }
      if (r.code !== 5 || !/@ERROR: max connections/i.test(r.stderr)) break;
      this.ctx.log.debug(this.ctx.step ?? "store", `${this.remote.where}: max connections reached, retrying in ${wait} ms`);
      await new Promise((ok) => setTimeout(ok, wait));
    }
    if (r.code !== 0 && !allowFail) throw this.classify(r, what);
    return r;
  }

  /**
   * Can archivist delete here? A server that refuses --delete (rsyncd's `refuse options = delete`, rrsync -no-del)
   * would keep every temporary upload and never let retention work: found out before anything is uploaded, by a dry
   * run that could delete nothing but a name that is not there.
   */
  private async probeDelete(): Promise<void> {
    const empty = join(this.ctx.privateDir, "rsync-empty");
    await Deno.mkdir(empty, { recursive: true });
    const r = await this.rsync(
      ["--dry-run", "-r", "--delete", "--include=/.archivist-no-such-name", "--exclude=*", `${empty}/`, this.remote.dir],
      "checking that archivist may delete",
      true,
    );
    if (!/refuse --delete|--delete.* (disabled|refused|not allowed)|option --delete has been disabled/i.test(r.stderr)) return;
    const daemon = this.remote instanceof DaemonRemote;
    const step = this.ctx.step === "retention" || this.ctx.step === "prune" ? "retention" : "store";
    throw new ArchivistError(
      step,
      `${this.location} refuses --delete (${
        firstLine(r.stderr)
      }): archivist could neither replace its temporary uploads nor apply retention there`,
      daemon
        ? "remove delete from `refuse options` of the module in rsyncd.conf, or store elsewhere (type: rsync over SSH, sftp)"
        : "remove -no-del from rrsync in the key's command= (authorized_keys), or store elsewhere",
      { code: "delete_refused" },
    );
  }

  private classify(r: ExecResult, what: string): ArchivistError {
    const err = r.stderr.trim();
    const where = this.remote.where;
    // What the server's side says about the account comes first: its hints are the right ones.
    if (/This service allows sftp connections only/i.test(err)) {
      return storeErr(
        "sftp_only",
        `${what}: the account on ${where} allows sftp only (ForceCommand internal-sftp): rsync cannot run there`,
        "use type: sftp with the same host, user, key and path",
      );
    }
    if (/sending to read-only server is not allowed|read-only server/i.test(err)) {
      return storeErr(
        "read_only",
        `${what}: ${where} takes rsync read-only (rrsync -ro in the key's command=): archivist cannot upload there`,
        "remove -ro from the rrsync command of this key in the server's authorized_keys",
      );
    }
    if (/protocol version mismatch -- is your shell clean\?/i.test(err)) {
      return storeErr(
        "shell_not_clean",
        `${what}: what answers on ${where} is not rsync (protocol version mismatch): the account may allow sftp only (ForceCommand internal-sftp), or its login prints something first`,
        "for an sftp-only account use type: sftp with the same host, user, key and path; otherwise make the account's shell startup files print nothing for a non-interactive login",
      );
    }
    const conn = this.remote.classify(err, r.code);
    if (conn) return conn;
    if (/No space left on device|Disk quota exceeded|\(28\)|\(122\)/i.test(err)) return diskFull(what, where, firstLine(err));
    if (
      /change_dir .* failed: No such file or directory|mkdir .* failed: No such file or directory|link_stat .* failed: No such file|rrsync error: .*No such file or directory/i
        .test(err)
    ) {
      return storeErr(
        "missing_dir",
        `${what}: no such file or directory on ${where} (${firstLine(err)})`,
        "check destination.path, or set destination.create_dirs: true",
      );
    }
    if (/Permission denied \(13\)|Operation not permitted \(1\)|Read-only file system/i.test(err)) {
      return storeErr(
        "permission",
        `${what}: permission denied on ${where} (${firstLine(err)})`,
        "check the remote directory's owner and mode",
      );
    }
    if (r.code === 30 || r.code === 35) {
      return storeErr(
        "timeout",
        `${what}: no data from ${where} for ${Math.round(this.timeout / 1000)}s (rsync exit ${r.code})`,
        "check the network and the server",
      );
    }
    if (r.code === 10 || r.code === 12 || r.code === 255) {
      return storeErr(
        "connection",
        `${what}: the connection to ${where} failed (rsync exit ${r.code}: ${firstLine(err)})`,
        "check the network and the server's logs",
      );
    }
    return storeErr(
      "transfer",
      `${what} failed on ${where} (rsync exit ${r.code}): ${toolSaid(firstLine(err), "rsync", r.code)}`,
      "run the same rsync command by hand with -v to see more",
    );
  }

  async open(): Promise<void> {
    await this.remote.open();
    const r = await this.rsync(["--list-only", "--no-h", this.remote.dir], `directory ${this.remote.path}`, true);
    if (this.remote instanceof SshRemote) await this.remote.logNewHostKey();
    if (r.code === 0) return await this.probeDelete();
    const e = this.classify(r, `directory ${this.remote.path}`);
    if (e.code !== "missing_dir") throw e;
    if (!this.createDirs) throw missingDir(this.remote.path, this.remote.where);
    const { dest, levels } = this.remote.mkdirBase();
    const tree = join(this.ctx.privateDir, "rsync-mkdir");
    await Deno.mkdir(join(tree, levels.at(-1) ?? ""), { recursive: true });
    try {
      // Directories only, recursive, no attributes: existing levels are left as they are.
      await this.rsync(["-r", "--include=*/", "--exclude=*", `${tree}/`, dest], `creating ${this.remote.path}`);
    } finally {
      await Deno.remove(tree, { recursive: true }).catch(() => {});
    }
    this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.remote.path}`);
    await this.probeDelete();
  }

  async put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void> {
    checkName(name);
    // --inplace: written straight into the temporary name (no hidden ".NAME.XXXXXX" beside it); --ignore-times:
    // a leftover of the same size and time is not taken for this file. With progress wanted, --info=progress2 on
    // stdout: "   12,345,678  45%  12.34MB/s    0:00:05".
    const progress: ExecProgress | undefined = onBytes && {
      stream: "stdout",
      parse: (seg) => {
        const m = /^\s*([\d,]+)\s+\d+%/.exec(seg);
        return m ? Number(m[1].replaceAll(",", "")) : undefined;
      },
      onBytes,
    };
    const args = ["-t", "--inplace", "--ignore-times", ...(progress ? ["--info=progress2"] : []), localPath, this.remote.dir + name];
    const r = await this.rsync(args, `upload of ${name}`, true, progress);
    if (r.code !== 0) {
      await this.deleteNames([name]).catch(() => {});
      throw this.classify(r, `upload of ${name}`);
    }
    this.sent.set(name, localPath);
  }

  async rename(from: string, to: string): Promise<void> {
    checkName(from);
    checkName(to);
    let local = this.sent.get(from);
    if (!local) {
      local = join(this.ctx.privateDir, "rsync-rename");
      await this.download(from, local);
    }
    try {
      // --ignore-existing: never replace `to`; -i prints the file when it was written.
      const r = await this.rsync(["-t", "--fuzzy", "--ignore-existing", "-i", local, this.remote.dir + to], `rename of ${from} to ${to}`);
      if (!/^[<>c]f/m.test(r.stdout)) {
        throw storeErr("rename", `rename of ${from} to ${to} on ${this.location}: ${to} already exists`, "check the destination");
      }
    } finally {
      if (!this.sent.has(from)) await Deno.remove(local).catch(() => {});
    }
    this.sent.delete(from);
    const [gone] = await this.deleteNames([from]);
    if (gone.error) {
      this.ctx.log.warn(
        this.ctx.step ?? "store",
        `${from} stays on ${this.location} after the rename (${gone.error}); the next run removes it`,
      );
    }
  }

  async list(): Promise<RemoteEntry[]> {
    const r = await this.rsync(["--list-only", "--no-h", this.remote.dir], `listing ${this.remote.path}`);
    return r.stdout.split("\n").map(parseListLine).filter((e): e is RemoteEntry => e !== undefined);
  }

  async remove(name: string): Promise<void> {
    const [r] = await this.deleteNames([name]);
    if (r.error) throw storeErr(/not found/.test(r.error) ? "not_found" : "transfer", r.error, "");
  }

  async removeMany(names: string[]): Promise<Removal[]> {
    const out: Removal[] = [];
    for (let i = 0; i < names.length; i += 1000) out.push(...await this.deleteNames(names.slice(i, i + 1000)));
    return out;
  }

  /**
   * Delete exactly `names` from the directory: an empty directory synced onto it with `--delete`, only these names
   * included (anchored, literal), everything else excluded (and so protected). A dry run first: if it would delete
   * anything else, nothing is deleted. Then the real run, with `--max-delete` as a last guard.
   */
  private async deleteNames(names: string[]): Promise<Removal[]> {
    for (const n of names) checkName(n);
    const empty = join(this.ctx.privateDir, "rsync-empty");
    const rules = join(this.ctx.privateDir, "rsync-delete.rules");
    await Deno.mkdir(empty, { recursive: true });
    writePrivateFile(rules, names.map(anchored).join("\n") + "\n");
    const wanted = new Set(names);
    const deleting = (out: string) =>
      out.split("\n").map((l) => /^\*deleting +(.*)$/.exec(l)?.[1]).filter((n): n is string => n !== undefined).map(unescape);
    try {
      const base = ["-r", "--delete", "-i", `--include-from=${rules}`, "--exclude=*", `${empty}/`, this.remote.dir];
      const dry = await this.rsync(["--dry-run", ...base], `deleting ${names.length} files`);
      const planned = deleting(dry.stdout);
      const foreign = planned.filter((n) => !wanted.has(n));
      if (foreign.length) {
        throw storeErr(
          "unsafe_delete",
          `deleting ${names.length} files on ${this.location}: rsync's dry run would also delete ${
            foreign.slice(0, 5).join(", ")
          }: nothing deleted`,
          "report this: the rsync on one end does not read the filter rules as expected",
        );
      }
      const r = planned.length
        ? await this.rsync([`--max-delete=${planned.length}`, ...base], `deleting ${planned.length} files`, true)
        : undefined;
      if (r && r.code !== 0 && r.code !== 23 && r.code !== 25) throw this.classify(r, `deleting ${planned.length} files`);
      const done = new Set(r ? deleting(r.stdout) : []);
      const failures = new Map<string, string>();
      for (const line of (r?.stderr ?? "").split("\n")) {
        const m = /delete_file: \w+\("?(.*?)"?\) failed: (.*)$/.exec(line);
        if (m) failures.set(unescape(m[1]), m[2]);
      }
      const was = new Set(planned);
      return names.map((name) =>
        !was.has(name)
          ? { name, error: `cannot delete ${name} on ${this.location}: not found` }
          : failures.has(name)
          ? { name, error: `cannot delete ${name} on ${this.location}: ${failures.get(name)}` }
          : !done.has(name) || r!.code === 25
          ? { name, error: `${name} is still on ${this.location} after rsync --delete (exit ${r!.code}: ${firstLine(r!.stderr)})` }
          : { name }
      );
    } finally {
      await Deno.remove(rules).catch(() => {});
    }
  }

  async download(name: string, localPath: string): Promise<void> {
    checkName(name);
    await this.rsync(["-t", this.remote.dir + name, localPath], `download of ${name}`);
  }

  async close(): Promise<void> {
    this.sent.clear();
    await Deno.remove(join(this.ctx.privateDir, "rsync-empty"), { recursive: true }).catch(() => {});
    await this.remote.close();
  }
}

export const rsync: TransportKind<RsyncConfig> = {
  schema: rsyncSchema,
  packages: ["rsync", "openssh-client"],
  create: (cfg, ctx) => new RsyncTransport(new SshRemote(cfg, ctx), ctx, cfg),
  sandbox: (cfg) => sshSandbox(cfg),
};

export const rsyncd: TransportKind<RsyncdConfig> = {
  schema: rsyncdSchema,
  packages: ["rsync"],
  create: (cfg, ctx) => new RsyncTransport(new DaemonRemote(cfg, ctx), ctx, cfg),
};
