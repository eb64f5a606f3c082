/** Helpers for the real test servers: free ports, waiting for a port, the test system user, processes. */
import { sh } from "../../tools/fixtures.ts";

export const TEST_USER = "archtest";

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Wait until something accepts connections on 127.0.0.1:port. */
export async function waitPort(port: number, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${what} did not start listening on 127.0.0.1:${port} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A system user with a home dir and this password (root only). Returns its home. */
export async function ensureUser(password: string): Promise<string> {
  if (Deno.uid() !== 0) throw new Error("the FTPS and SMB test servers need root (to create the test user); run deno task test as root");
  const home = `/home/${TEST_USER}`;
  const exists = await sh("id", [TEST_USER]).then(() => true, () => false);
  if (!exists) await sh("useradd", ["--create-home", "--home-dir", home, "--shell", "/bin/bash", TEST_USER]);
  await sh("chpasswd", [], { stdin: `${TEST_USER}:${password}\n` });
  return home;
}

export interface Server {
  stop(): Promise<void>;
}

/**
 * Start a long-running server in its own process group (through setsid), so that stop() ends it and every
 * helper process it forked (smbd's notifyd and cleanupd, vsftpd's session processes, sshd's sessions).
 */
export function startProcess(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): { child: Deno.ChildProcess; stop(): Promise<void>; log(): string } {
  const child = new Deno.Command("setsid", {
    args: [cmd, ...args],
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const td = new TextDecoder();
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += td.decode(c);
  };
  const done = Promise.all([drain(child.stdout), drain(child.stderr)]).catch(() => {});
  let stopped = false;
  return {
    child,
    log: () => out,
    async stop() {
      if (stopped) return;
      stopped = true;
      const group = (sig: Deno.Signal) => {
        try {
          Deno.kill(-child.pid, sig);
        } catch { /* gone */ }
      };
      group("SIGTERM");
      const t = setTimeout(() => group("SIGKILL"), 3000);
      await child.status;
      clearTimeout(t);
      group("SIGKILL"); // helpers that ignored SIGTERM
      await Promise.race([done, new Promise((r) => setTimeout(r, 1000))]);
    },
  };
}

/** A random password with characters that would break naive quoting. */
export function randomPassword(): string {
  return `Pw-${crypto.randomUUID().slice(0, 12)}!x`;
}
