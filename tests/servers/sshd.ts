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
}

export async function startSshd(dir: string): Promise<SshdServer> {
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const hostKey = join(dir, "host_ed25519"),
    keyFile = join(dir, "id_ed25519"),
    auth = join(dir, "authorized_keys"),
    knownHosts = join(dir, "known_hosts");
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
  await Deno.copyFile(`${keyFile}.pub`, auth);
  await Deno.chmod(auth, 0o600);
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
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  const root = join(dir, "files");
  await Deno.mkdir(root);
  const logFile = join(dir, "sshd.log");
  const p = startProcess("/usr/sbin/sshd", ["-D", "-E", logFile, "-f", cfg]);
  await waitPort(port, `sshd (${p.log()})`);
  return {
    port,
    user,
    keyFile,
    knownHosts,
    hostLine,
    root,
    logFile,
    async logins() {
      const text = await Deno.readTextFile(logFile).catch(() => "");
      return text.split("\n").filter((l) => /Accepted publickey/.test(l)).length;
    },
    stop: p.stop,
  };
}
