/**
 * `type: sftp`: OpenSSH `sftp -b -` batch mode with a key file and strict host key checking.
 * One SSH connection per run: open() starts an `ssh -M -N` master (a child we own, its control socket in the
 * run's private dir); every sftp batch goes through it; close() ends it. No password is ever used: key files
 * only (BatchMode=yes).
 */
import { obj, oneOf } from "../config/fields.ts";
import { exec, type ExecResult } from "../os/exec.ts";
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
  toolSaid,
  verifyField,
} from "./common.ts";
import { firstLine, sshFields, sshSandbox, SshSession } from "./ssh.ts";
import type { RemoteEntry, Removal, Transport, TransportContext, TransportKind } from "./transport.ts";

export const sftpSchema = obj({
  type: oneOf("sftp").doc("SFTP over SSH (OpenSSH client), key authentication.", "sftp"),
  ...networkFields(22),
  ...sshFields(),
  path: remoteDir().doc("Remote directory (absolute, or relative to the login directory).", "/srv/backup/db"),
  verify: verifyField,
});
export type SftpConfig = ReturnType<typeof sftpSchema.parse>;

function q(s: string): string {
  return `"${s}"`;
}

export class SftpTransport implements Transport {
  readonly location: string;
  private readonly ssh: SshSession;

  constructor(private readonly cfg: SftpConfig, private readonly ctx: TransportContext) {
    this.location = `sftp://${cfg.user}@${cfg.host}:${cfg.port}${cfg.path.startsWith("/") ? "" : "/~/"}${cfg.path}`;
    this.ssh = new SshSession(cfg, ctx);
  }

  /** Run an sftp batch; classify a failure. */
  private async batch(lines: string[], what: string, allowFail = false): Promise<ExecResult> {
    let r: ExecResult;
    try {
      r = await exec("sftp", [...this.ssh.options(), "-P", String(this.cfg.port), "-b", "-", `${this.cfg.user}@${this.cfg.host}`], {
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
    const where = this.ssh.where;
    const ssh = this.ssh.classify(err, r.code);
    if (ssh && ssh.code !== "connection") return ssh;
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
    if (ssh) return ssh;
    const said = toolSaid(firstLine(err), "sftp", r.code);
    if (r.code === 141) {
      return storeErr("connection", `${what} failed on ${where}: ${said}`, "check the network and the server; the next run retries");
    }
    return storeErr("transfer", `${what} failed on ${where} (sftp exit ${r.code}): ${said}`);
  }

  async open(): Promise<void> {
    await this.ssh.start();
    const r = await this.batch([`cd ${q(this.cfg.path)}`], `directory ${this.cfg.path}`, true);
    await this.ssh.logNewHostKey();
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
    await this.ssh.close();
  }
}

export const sftp: TransportKind<SftpConfig> = {
  schema: sftpSchema,
  packages: ["openssh-client"],
  create: (cfg, ctx) => new SftpTransport(cfg, ctx),
  sandbox: (cfg) => sshSandbox(cfg),
};
