/**
 * `type: sftp`: OpenSSH `sftp -b -` batch mode with a key file and strict host key checking.
 * One SSH connection per run: open() starts an `ssh -M -N` master (a child we own, its control socket in the
 * run's private dir); every sftp batch goes through it; close() ends it. No password is ever used: key files
 * only (BatchMode=yes).
 */
import { join } from "node:path";
import { absPath, nonEmpty, obj, oneOf } from "../config/fields.ts";
import { childEnv, exec, type ExecResult, MissingToolError } from "../exec.ts";
import { trackDir, whileRunning } from "../cleanup.ts";
import { privateTempDir } from "../fsutil.ts";
import { commandLine } from "../procs.ts";
import {
  dirLevels,
  diskFull,
  missingDir,
  networkFields,
  parseLsListing,
  remoteDir,
  rjoin,
  storeErr,
  toolMissing,
  verifyField,
} from "./common.ts";
import type { RemoteEntry, Removal, Transport, TransportContext, TransportKind } from "./transport.ts";

export const sftpSchema = obj({
  type: oneOf("sftp").doc("SFTP over SSH (OpenSSH client), key authentication.", "sftp"),
  ...networkFields(22),
  user: nonEmpty("user name").doc("SSH user.", "backup"),
  key_file: absPath().doc("Private key file (no passphrase, mode 600).", "/etc/archivist/id_ed25519"),
  known_hosts_file: absPath().doc("known_hosts file holding the server's host key (strict checking).", "/etc/archivist/known_hosts"),
  host_key: oneOf("strict", "accept-new").default("strict").doc(
    "strict: the host key must already be in known_hosts_file. accept-new: record an unknown key on first contact (its fingerprint is logged); a changed key is still refused.",
  ),
  path: remoteDir().doc("Remote directory (absolute, or relative to the login directory).", "/srv/backup/db"),
  verify: verifyField,
});
export type SftpConfig = ReturnType<typeof sftpSchema.parse>;

function q(s: string): string {
  return `"${s}"`;
}

export class SftpTransport implements Transport {
  readonly location: string;
  private readonly control: string;
  private readonly controlDir: string;
  private master: Deno.ChildProcess | undefined;
  private unregisterMaster: (() => void) | undefined;
  private readonly untrackDir: () => void;

  constructor(private readonly cfg: SftpConfig, private readonly ctx: TransportContext) {
    this.location = `sftp://${cfg.user}@${cfg.host}:${cfg.port}${cfg.path.startsWith("/") ? "" : "/~/"}${cfg.path}`;
    // A Unix socket path must stay under ~100 bytes (ssh adds a random suffix while creating it): use a short
    // private directory of our own rather than the run's work dir.
    this.controlDir = privateTempDir("arch-ssh");
    this.untrackDir = trackDir(this.controlDir);
    this.control = join(this.controlDir, "cm");
  }

  private sshOptions(master = false): string[] {
    return [
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      `UserKnownHostsFile=${this.cfg.known_hosts_file}`,
      "-o",
      `StrictHostKeyChecking=${this.cfg.host_key === "strict" ? "yes" : "accept-new"}`,
      "-o",
      `ConnectTimeout=${Math.max(1, Math.round(this.cfg.timeout / 1000))}`,
      "-o",
      "ServerAliveInterval=15",
      "-o",
      `ServerAliveCountMax=${Math.max(2, Math.round(this.cfg.timeout / 15000))}`,
      // The master is started with -M alone: -M plus ControlMaster=yes means "ask", and with BatchMode every
      // multiplexed session is then refused, so each command would log in anew.
      ...(master ? [] : ["-o", "ControlMaster=no"]),
      "-o",
      `ControlPath=${this.control}`,
      "-o",
      "LogLevel=ERROR",
      "-i",
      this.cfg.key_file,
    ];
  }

  private hostSpec(): string {
    return this.cfg.port === 22 ? this.cfg.host : `[${this.cfg.host}]:${this.cfg.port}`;
  }

  /** Run an sftp batch; classify a failure. */
  private async batch(lines: string[], what: string, allowFail = false): Promise<ExecResult> {
    let r: ExecResult;
    try {
      r = await exec("sftp", [...this.sshOptions(), "-P", String(this.cfg.port), "-b", "-", `${this.cfg.user}@${this.cfg.host}`], {
        stdin: lines.join("\n") + "\n",
      }, "openssh-client");
    } catch (e) {
      toolMissing(e);
    }
    if (r.code !== 0 && !allowFail) throw this.classify(r, what);
    return r;
  }

  private classify(r: ExecResult, what: string) {
    const err = r.stderr.trim();
    const where = `${this.cfg.host}:${this.cfg.port}`;
    if (/Could not resolve hostname|Name or service not known|Temporary failure in name resolution/i.test(err)) {
      return storeErr("dns", `cannot resolve host ${this.cfg.host}`, "check destination.host and DNS");
    }
    if (/Connection refused/i.test(err)) {
      return storeErr("refused", `connection refused by ${where}`, "is sshd running there, on that port?");
    }
    if (/timed out|No route to host|Network is unreachable/i.test(err)) {
      return storeErr("unreachable", `cannot reach ${where} (${firstLine(err)})`, "check the network and firewall");
    }
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(err)) {
      return storeErr(
        "host_key_mismatch",
        `the host key of ${where} does not match ${this.cfg.known_hosts_file}: possible man-in-the-middle, or the server was reinstalled`,
        `verify the new key with the server's admin, then update ${this.cfg.known_hosts_file}`,
      );
    }
    if (/Host key verification failed|No \S+ host key is known/i.test(err)) {
      return storeErr(
        "host_key_unknown",
        `the host key of ${where} is not in ${this.cfg.known_hosts_file}`,
        `add it (ssh-keyscan -p ${this.cfg.port} ${this.cfg.host} >> ${this.cfg.known_hosts_file}, after checking its fingerprint), or set destination.host_key: accept-new for the first contact`,
      );
    }
    if (/Permission denied \(|Too many authentication failures|no such identity|Load key/i.test(err)) {
      return storeErr(
        "auth",
        `authentication refused by ${where} for user ${this.cfg.user} with key ${this.cfg.key_file} (${firstLine(err)})`,
        "check destination.user, the key file, and the server's authorized_keys",
      );
    }
    if (/No such file|not found/i.test(err) && !/^write remote/im.test(err)) {
      return storeErr(
        "missing_dir",
        `${what}: no such file or directory on ${where} (${firstLine(err)})`,
        this.cfg.path.startsWith("/")
          ? "check destination.path, or set destination.create_dirs: true; if the server confines the user (ChrootDirectory, a hosting account), give the path as the user sees it (e.g. /files/db, or a path relative to the login directory), not as it is on the server's disk"
          : "check destination.path, or set destination.create_dirs: true",
      );
    }
    if (/Permission denied/i.test(err)) {
      return storeErr(
        "permission",
        `${what}: permission denied on ${where} (${firstLine(err)})`,
        "check the remote directory's owner and mode",
      );
    }
    if (/No space left|quota|disk full/i.test(err)) return diskFull(what, where, firstLine(err));
    // SFTP has no "disk full" status: a write the server answers with the generic "Failure" is, in practice, a full
    // disk or an exhausted quota (a missing file or a permission problem have their own statuses).
    if (/^write remote .*: Failure$|Couldn't write to remote file.*Failure/im.test(err)) {
      return diskFull(what, where, `the server answered "Failure" to a write: ${firstLine(err)}`);
    }
    if (r.code === 255) return storeErr("connection", `cannot connect to ${where}: ${firstLine(err) || "ssh exit 255"}`, "");
    return storeErr("transfer", `${what} failed on ${where} (sftp exit ${r.code}): ${firstLine(err)}`);
  }

  /** Start the connection master; throw the classified error when it cannot connect. */
  private async startMaster(): Promise<void> {
    let child: Deno.ChildProcess;
    const masterArgs = [...this.sshOptions(true), "-M", "-N", "-p", String(this.cfg.port), `${this.cfg.user}@${this.cfg.host}`];
    try {
      child = new Deno.Command("ssh", {
        args: masterArgs,
        clearEnv: true,
        env: childEnv(),
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) toolMissing(new MissingToolError("ssh", "openssh-client"));
      throw e;
    }
    this.master = child;
    const dir = this.controlDir;
    this.unregisterMaster = whileRunning(() => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone */ }
    }, { pid: child.pid, what: "ssh -M (connection master)", args: commandLine("ssh", masterArgs) });
    let stderr = "";
    const td = new TextDecoder();
    const drained = (async () => {
      for await (const c of child.stderr) stderr += td.decode(c);
    })().catch(() => {});
    let exited: Deno.CommandStatus | undefined;
    child.status.then((s) => (exited = s));
    const until = Date.now() + this.cfg.timeout + 5000;
    for (;;) {
      if (exited) {
        await drained;
        this.master = undefined;
        this.unregisterMaster?.();
        throw this.classify({ code: exited.code, stdout: "", stderr, timedOut: false }, "connection");
      }
      try {
        if (Deno.statSync(this.control)) return;
      } catch { /* not yet */ }
      if (Date.now() > until) {
        await this.close();
        throw storeErr(
          "timeout",
          `no SSH session with ${this.cfg.host}:${this.cfg.port} within ${Math.round(this.cfg.timeout / 1000)}s`,
          "check the network and the server",
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async open(): Promise<void> {
    const known = await this.hostKnown();
    await this.startMaster();
    const r = await this.batch([`cd ${q(this.cfg.path)}`], `directory ${this.cfg.path}`, true);
    if (!known) await this.logNewHostKey();
    if (r.code !== 0) {
      const e = this.classify(r, `directory ${this.cfg.path}`);
      if (e.code !== "missing_dir") throw e;
      if (!this.cfg.create_dirs) {
        const e = missingDir(this.cfg.path, `${this.cfg.host}:${this.cfg.port}`);
        if (!this.cfg.path.startsWith("/")) throw e;
        throw storeErr(
          "missing_dir",
          e.message,
          `${e.hint}; if the server confines the user (ChrootDirectory, a hosting account), give the path as the user sees it (e.g. /files/db, or relative to the login directory), not as it is on the server's disk`,
        );
      }
      const lines = [...dirLevels(this.cfg.path).map((d) => `-mkdir ${q(d)}`), `cd ${q(this.cfg.path)}`];
      await this.batch(lines, `creating ${this.cfg.path}`);
      this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.cfg.path}`);
    }
  }

  private async hostKnown(): Promise<boolean> {
    try {
      const r = await exec("ssh-keygen", ["-F", this.hostSpec(), "-f", this.cfg.known_hosts_file], {}, "openssh-client");
      return r.code === 0 && r.stdout.trim() !== "";
    } catch {
      return false;
    }
  }

  private async logNewHostKey(): Promise<void> {
    const r = await exec("ssh-keygen", ["-l", "-F", this.hostSpec(), "-f", this.cfg.known_hosts_file], {}, "openssh-client").catch(() =>
      undefined
    );
    const fp = r?.stdout.split("\n").find((l) => /SHA256:/.test(l))?.match(/(\S+ SHA256:\S+|SHA256:\S+)/)?.[0];
    if (fp) {
      this.ctx.log.warn(
        this.ctx.step ?? "store",
        `first contact with ${this.hostSpec()}: recorded its host key ${fp} in ${this.cfg.known_hosts_file}; compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)`,
      );
    }
  }

  async put(localPath: string, name: string): Promise<void> {
    const dest = rjoin(this.cfg.path, name);
    const r = await this.batch([`put ${q(localPath)} ${q(dest)}`], `upload of ${name}`, true);
    if (r.code !== 0) {
      await this.batch([`-rm ${q(dest)}`], "cleanup", true).catch(() => {});
      throw this.classify(r, `upload of ${name}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.batch([`rename ${q(rjoin(this.cfg.path, from))} ${q(rjoin(this.cfg.path, to))}`], `rename of ${from} to ${to}`);
  }

  async list(): Promise<RemoteEntry[]> {
    const r = await this.batch([`ls -lan ${q(this.cfg.path)}`], `listing ${this.cfg.path}`);
    return parseLsListing(r.stdout);
  }

  async remove(name: string): Promise<void> {
    await this.batch([`rm ${q(rjoin(this.cfg.path, name))}`], `deleting ${name}`);
  }

  /**
   * Up to 200 `rm` commands per sftp batch over the run's one connection (a `-` prefix lets the batch go on past a
   * failure). OpenSSH names the path of each failed delete (`remote delete PATH: why`); when it prints an error it
   * does not attribute, one listing decides: what is still listed was not deleted. 10,000 deletions are 50 batches,
   * not 10,000 sessions.
   */
  async removeMany(names: string[]): Promise<Removal[]> {
    const failed = new Map<string, string>();
    let unattributed = false;
    const byPath = new Map(names.map((n) => [rjoin(this.cfg.path, n), n]));
    for (let i = 0; i < names.length; i += 200) {
      const part = names.slice(i, i + 200);
      const r = await this.batch(part.map((n) => `-rm ${q(rjoin(this.cfg.path, n))}`), `deleting ${part.length} files`, true);
      if (r.code !== 0) throw this.classify(r, `deleting ${part.length} files`);
      for (const line of r.stderr.split("\n").map((l) => l.trim()).filter(Boolean)) {
        const m = /^remote delete "?(.*?)"?: ([^:]+)$/.exec(line);
        const name = m && byPath.get(m[1]);
        if (name) failed.set(name, m![2]);
        else unattributed = true;
      }
    }
    const still = unattributed ? new Set((await this.list()).map((e) => e.name)) : new Set<string>();
    return names.map((name) =>
      failed.has(name)
        ? { name, error: `cannot delete ${name} on ${this.location}: ${failed.get(name)}` }
        : still.has(name)
        ? { name, error: `${name} is still on ${this.location} after rm` }
        : { name }
    );
  }

  async download(name: string, localPath: string): Promise<void> {
    await this.batch([`get ${q(rjoin(this.cfg.path, name))} ${q(localPath)}`], `download of ${name}`);
  }

  async close(): Promise<void> {
    const m = this.master;
    await Deno.remove(this.controlDir, { recursive: true }).catch(() => {});
    this.untrackDir();
    if (!m) return;
    this.master = undefined;
    try {
      m.kill("SIGTERM");
    } catch { /* gone */ }
    await m.status;
    this.unregisterMaster?.();
    await Deno.remove(this.control).catch(() => {});
  }
}

function firstLine(s: string): string {
  return s.split("\n").map((l) => l.trim()).filter(Boolean).filter((l) => !/^Connection closed$/.test(l))[0] ?? "";
}

export const sftp: TransportKind<SftpConfig> = {
  schema: sftpSchema,
  packages: ["openssh-client"],
  create: (cfg, ctx) => new SftpTransport(cfg, ctx),
};
