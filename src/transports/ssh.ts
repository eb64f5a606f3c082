/**
 * One SSH connection for a run, shared by the transports that go over SSH (sftp, rsync): the config keys, an
 * `ssh -M -N` master (a child we own, its control socket in a short private directory) that every command reuses,
 * the host key rules, and the wording of SSH's own failures (DNS, refused, host key, authentication). No password
 * is ever used: key files only (BatchMode=yes).
 */
import { join } from "node:path";
import { absPath, nonEmpty, oneOf } from "../config/fields.ts";
import { childEnv, exec, MissingToolError } from "../os/exec.ts";
import { trackDir, whileRunning } from "../os/cleanup.ts";
import { privateTempDir } from "../os/fs.ts";
import { commandLine } from "../os/procs.ts";
import type { ArchivistError } from "../errors.ts";
import { storeErr, toolMissing } from "./common.ts";
import type { SandboxNeed, TransportContext } from "./transport.ts";

/** The keys of an SSH login (besides host, port and path). */
export function sshFields() {
  return {
    user: nonEmpty("user name").doc("SSH user.", "backup"),
    key_file: absPath().trust().doc("Private key file (no passphrase, mode 600).", "/etc/archivist/id_ed25519"),
    known_hosts_file: absPath().trust().doc(
      "known_hosts file holding the server's host key (strict checking).",
      "/etc/archivist/known_hosts",
    ),
    host_key: oneOf("strict", "accept-new").default("strict").doc(
      "strict: the host key must already be in known_hosts_file. accept-new: record an unknown key on first contact (its fingerprint is logged); a changed key is still refused.",
    ),
  };
}

export interface SshConfig {
  host: string;
  port: number;
  user: string;
  key_file: string;
  known_hosts_file: string;
  host_key: "strict" | "accept-new";
  timeout: number;
}

/** The sandbox needs of an SSH login: with host_key: accept-new, ssh writes the new key into known_hosts_file. */
export function sshSandbox(cfg: SshConfig): { writes: SandboxNeed[]; capabilities: SandboxNeed[] } {
  const dir = cfg.known_hosts_file.replace(/\/[^/]*$/, "") || "/";
  return { writes: cfg.host_key === "accept-new" ? [{ what: dir, why: "known_hosts_file (host_key: accept-new)" }] : [], capabilities: [] };
}

/** The first meaningful line of a tool's stderr. */
export function firstLine(s: string): string {
  return s.split("\n").map((l) => l.trim()).filter(Boolean).filter((l) => !/^Connection closed$/.test(l))[0] ?? "";
}

export class SshSession {
  private readonly control: string;
  private readonly controlDir: string;
  private master: Deno.ChildProcess | undefined;
  private unregisterMaster: (() => void) | undefined;
  private readonly untrackDir: () => void;
  private known = true;

  constructor(private readonly cfg: SshConfig, private readonly ctx: TransportContext) {
    // A Unix socket path must stay under ~100 bytes (ssh adds a random suffix while creating it): use a short
    // private directory of our own rather than the run's work dir.
    this.controlDir = privateTempDir("arch-ssh");
    this.untrackDir = trackDir(this.controlDir);
    this.control = join(this.controlDir, "cm");
  }

  /** "host:port", for messages. */
  get where(): string {
    return `${this.cfg.host}:${this.cfg.port}`;
  }

  /** ssh's options for a command through the master (or for the master itself). */
  options(master = false): string[] {
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

  /**
   * SSH's own failures, worded: undefined when `err` is not one of them (the protocol's classifier goes on).
   * `pathHint` is added to nothing here; the protocols word their own file errors.
   */
  classify(err: string, code: number): ArchivistError | undefined {
    const where = this.where;
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
    if (code === 255) return storeErr("connection", `cannot connect to ${where}: ${firstLine(err) || "ssh exit 255"}`, "");
    return undefined;
  }

  /** Start the connection master; throw the classified error when it cannot connect. */
  async start(): Promise<void> {
    this.known = await this.hostKnown();
    let child: Deno.ChildProcess;
    const masterArgs = [...this.options(true), "-M", "-N", "-p", String(this.cfg.port), `${this.cfg.user}@${this.cfg.host}`];
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
        throw this.classify(stderr, exited.code) ??
          storeErr("connection", `cannot connect to ${this.where}: ${firstLine(stderr) || `ssh exit ${exited.code}`}`, "");
      }
      try {
        if (Deno.statSync(this.control)) return;
      } catch { /* not yet */ }
      if (Date.now() > until) {
        await this.close();
        throw storeErr(
          "timeout",
          `no SSH session with ${this.where} within ${Math.round(this.cfg.timeout / 1000)}s`,
          "check the network and the server",
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** After the first command: log the fingerprint of a host key `accept-new` has just recorded. */
  async logNewHostKey(): Promise<void> {
    if (this.known) return;
    this.known = true;
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

  private async hostKnown(): Promise<boolean> {
    try {
      const r = await exec("ssh-keygen", ["-F", this.hostSpec(), "-f", this.cfg.known_hosts_file], {}, "openssh-client");
      return r.code === 0 && r.stdout.trim() !== "";
    } catch {
      return false;
    }
  }

  /** End the master and remove its socket directory. Safe to call twice. */
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
