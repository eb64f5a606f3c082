/** OpenSSH sshd on 127.0.0.1 with a generated host key and user key; logs in as the current user. */
import { join } from "node:path";
import { sh } from "../../tools/fixtures.ts";
import { freePort, type Server, startProcess, waitPort } from "./common.ts";

export interface SshdServer extends Server {
  port: number;
  user: string;
  keyFile: string;
  knownHosts: string;
  /** The known_hosts line for this server (to pre-trust it). */
  hostLine: string;
  /** A directory the user can write to. */
  root: string;
  /** sshd's log (LogLevel VERBOSE): one "Accepted publickey" line per login. */
  logFile: string;
  /** How many logins the log shows so far. */
  logins(): Promise<number>;
  /** archivist's `destination:` for this server: sftp to `path` with its key and known_hosts (and any other keys). */
  destination(path: string, over?: Record<string, unknown>): Record<string, unknown>;
}

/** A chrooted SFTP-only account (the usual hardened setup): its chroot (root-owned) and the directory it may write. */
export interface ChrootAccount {
  user: string;
  /** The chroot on the server's disk. */
  chroot: string;
  /** Inside the chroot: the writable directory, as the client sees it ("/files"). */
  writable: string;
}

/**
 * `chroot`: also create the user `archsftp` confined by `Match User` / `ChrootDirectory %h` / `ForceCommand
 * internal-sftp`, with a root-owned home and a writable `files` directory inside.
 */
export async function startSshd(dir: string, opts: { chroot?: boolean } = {}): Promise<SshdServer & { chrootAccount?: ChrootAccount }> {
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const hostKey = join(dir, "host_ed25519"),
    keyFile = join(dir, "id_ed25519"),
    auth = join(dir, "authorized_keys"),
    knownHosts = join(dir, "known_hosts");
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
  await Deno.copyFile(`${keyFile}.pub`, auth);
  await Deno.chmod(auth, 0o644); // read by sshd as the logging-in user (archsftp too); public keys only
  const user = (await sh("id", ["-un"])).trim();
  const hostPub = (await Deno.readTextFile(`${hostKey}.pub`)).trim().split(" ").slice(0, 2).join(" ");
  const hostLine = `[127.0.0.1]:${port} ${hostPub}`;
  await Deno.writeTextFile(knownHosts, hostLine + "\n");
  const cfg = join(dir, "sshd_config");
  await Deno.writeTextFile(
    cfg,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${auth}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      "UsePAM no",
      "StrictModes no",
      "Subsystem sftp internal-sftp",
      ...(opts.chroot ? ["Match User archsftp", "  ChrootDirectory %h", "  ForceCommand internal-sftp", "  AllowTcpForwarding no"] : []),
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  const root = join(dir, "files");
  await Deno.mkdir(root);
  let chrootAccount: ChrootAccount | undefined;
  if (opts.chroot) {
    // sshd requires every component of the chroot path to be root-owned and not writable by group or others:
    // /tmp (1777) cannot be one, so the chroot gets a directory of its own under /, removed by stop().
    const home = `/archivist-chroot-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(join(home, "files"), { recursive: true });
    await Deno.chmod(home, 0o755);
    const exists = await new Deno.Command("id", { args: ["archsftp"], stdout: "null", stderr: "null" }).output();
    if (!exists.success) await sh("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "archsftp"]);
    await sh("usermod", ["-d", home, "-p", "*", "archsftp"]); // '*': key login without a password (UsePAM no)
    await sh("chown", ["archsftp:", join(home, "files")]);
    chrootAccount = { user: "archsftp", chroot: home, writable: "/files" };
  }
  const logFile = join(dir, "sshd.log");
  const p = startProcess("/usr/sbin/sshd", ["-D", "-E", logFile, "-f", cfg]);
  await waitPort(port, `sshd (${p.log()})`);
  return {
    port,
    user,
    keyFile,
    knownHosts,
    destination: (path, over = {}) => ({
      type: "sftp",
      host: "127.0.0.1",
      port,
      user,
      key_file: keyFile,
      known_hosts_file: knownHosts,
      path,
      ...over,
    }),
    hostLine,
    root,
    chrootAccount,
    logFile,
    async logins() {
      const text = await Deno.readTextFile(logFile).catch(() => "");
      return text.split("\n").filter((l) => /Accepted publickey/.test(l)).length;
    },
    async stop() {
      await p.stop();
      if (chrootAccount) await Deno.remove(chrootAccount.chroot, { recursive: true }).catch(() => {});
    },
  };
}
