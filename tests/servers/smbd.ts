/** Samba smbd as a plain process with a private smb.conf on a non-standard port, one share, one samba user. */
import { join } from "node:path";
import { sh } from "../../tools/fixtures.ts";
import { ensureUser, freePort, randomPassword, type Server, startProcess, TEST_USER, waitPort } from "./common.ts";

export interface SmbServer extends Server {
  port: number;
  user: string;
  password: string;
  share: string;
  root: string;
}

/**
 * `hardened`: the settings security guides recommend: SMB3 only, encryption and signing required, and dot-files
 * vetoed (a veto files pattern for every name starting with a dot).
 */
/** `share`: more lines for the [backup] share (e.g. `vfs objects = recycle`). */
export async function startSmbd(dir: string, opts: { hardened?: boolean; share?: string[] } = {}): Promise<SmbServer> {
  await Deno.mkdir(dir, { recursive: true });
  const password = randomPassword();
  await ensureUser(password);
  const port = freePort();
  const root = join(dir, "share");
  await Deno.mkdir(root, { recursive: true });
  await sh("chown", [`${TEST_USER}:`, root]);
  await Deno.chmod(dir, 0o755);
  const d = (n: string) => join(dir, n);
  for (const n of ["private", "lock", "state", "cache", "pid", "ncalrpc"]) await Deno.mkdir(d(n), { recursive: true });
  const conf = d("smb.conf");
  await Deno.writeTextFile(
    conf,
    `[global]
  smb ports = ${port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  server role = standalone server
  private dir = ${d("private")}
  lock directory = ${d("lock")}
  state directory = ${d("state")}
  cache directory = ${d("cache")}
  pid directory = ${d("pid")}
  ncalrpc dir = ${d("ncalrpc")}
  log file = ${d("smbd.log")}
  passdb backend = tdbsam:${d("private")}/passdb.tdb
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
${opts.hardened ? "  server min protocol = SMB3\n  server smb encrypt = required\n  server signing = mandatory\n" : ""}
[backup]
  path = ${root}
  read only = no
  valid users = ${TEST_USER}
${opts.hardened ? "  veto files = /.*/\n" : ""}${(opts.share ?? []).map((l) => `  ${l}\n`).join("")}`,
  );
  await sh("smbpasswd", ["-c", conf, "-s", "-a", TEST_USER], { stdin: `${password}\n${password}\n` });
  const p = startProcess("/usr/sbin/smbd", ["-s", conf, "--foreground", "--no-process-group", "--debug-stdout"]);
  await waitPort(port, `smbd (${p.log()})`, 30_000);
  return {
    port,
    user: TEST_USER,
    password,
    share: "backup",
    root,
    stop: p.stop,
  };
}
