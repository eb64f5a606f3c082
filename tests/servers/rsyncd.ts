/**
 * An rsync daemon on 127.0.0.1 (RESIF's second form): one module `backup` with `auth users` and a secrets file,
 * writing as the unprivileged test user (the daemon drops root as a real one does with `uid`/`gid`), no chroot.
 */
import { join } from "node:path";
import { sh } from "../../tools/fixtures.ts";
import { ensureUser, freePort, randomPassword, type Server, startProcess, TEST_USER, waitPort } from "./common.ts";

export interface RsyncdServer extends Server {
  port: number;
  module: string;
  user: string;
  password: string;
  /** The module's directory on disk (owned by the test user). */
  root: string;
  /** Make a planted file the daemon's user's. */
  own(path: string): Promise<void>;
}

/** `module`: more lines for the module (`refuse options = delete`, `max connections = 1`). */
export async function startRsyncd(dir: string, module: string[] = []): Promise<RsyncdServer> {
  await Deno.mkdir(dir, { recursive: true });
  await ensureUser(randomPassword());
  const port = freePort();
  const root = join(dir, "module");
  await Deno.mkdir(root, { recursive: true });
  await sh("chown", [`${TEST_USER}:`, root]);
  const user = "backup", password = randomPassword();
  const secrets = join(dir, "secrets");
  await Deno.writeTextFile(secrets, `${user}:${password}\n`, { mode: 0o600 });
  await Deno.chmod(secrets, 0o600);
  const conf = join(dir, "rsyncd.conf");
  await Deno.writeTextFile(
    conf,
    [
      `pid file = ${join(dir, "rsyncd.pid")}`,
      "use chroot = no",
      `log file = ${join(dir, "rsyncd.log")}`,
      `lock file = ${join(dir, "rsyncd.lock")}`,
      "[backup]",
      `  path = ${root}`,
      "  read only = false",
      `  uid = ${TEST_USER}`,
      `  gid = ${TEST_USER}`,
      `  auth users = ${user}`,
      `  secrets file = ${secrets}`,
      "  strict modes = yes",
      ...module.map((l) => `  ${l}`),
      "",
    ].join("\n"),
  );
  const p = startProcess("rsync", ["--daemon", "--no-detach", `--config=${conf}`, `--port=${port}`, "--address=127.0.0.1"]);
  await waitPort(port, "rsync --daemon");
  return {
    port,
    module: "backup",
    user,
    password,
    root,
    own: async (path) => void await sh("chown", ["-R", `${TEST_USER}:`, path]),
    stop: p.stop,
  };
}
