/**
 * Real database servers for real dumps: MariaDB and PostgreSQL started by the tests as their own processes in temp
 * dirs, on 127.0.0.1 and a free port (no system service, nothing from /etc/mysql or /etc/postgresql is read).
 */
import { join } from "node:path";
import { sh } from "../../tools/fixtures.ts";
import { freePort, type Server, startProcess } from "./common.ts";

export interface DbServer extends Server {
  /** Run SQL (statements separated by ;). */
  sql(statements: string): Promise<string>;
  /** One dump of `db`, as the dump tool writes it (with the tool's extra options `args`). */
  dump(db: string, args?: string[]): Promise<Uint8Array>;
}

async function waitFor(what: string, probe: () => Promise<boolean>, log: () => string, ms = 30_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not start within ${ms / 1000}s: ${log()}`);
}

async function output(cmd: string, args: string[], stdin?: string): Promise<{ ok: boolean; out: Uint8Array; err: string }> {
  const child = new Deno.Command(cmd, { args, stdin: stdin === undefined ? "null" : "piped", stdout: "piped", stderr: "piped" }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  return { ok: o.success, out: o.stdout, err: new TextDecoder().decode(o.stderr) };
}

/** MariaDB 10.11: mariadb-install-db + mariadbd with --no-defaults, a socket and a TCP port on 127.0.0.1. */
export async function startMariadb(dir: string): Promise<DbServer> {
  const data = join(dir, "data"), sock = join(dir, "mysqld.sock");
  await Deno.mkdir(data, { recursive: true });
  await sh("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal"]);
  const port = freePort();
  const p = startProcess("mariadbd", [
    "--no-defaults",
    `--datadir=${data}`,
    `--socket=${sock}`,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    "--user=root",
    `--pid-file=${join(dir, "mysqld.pid")}`,
    "--skip-log-bin",
  ]);
  const client = ["--no-defaults", `--socket=${sock}`, "-uroot"];
  await waitFor("mariadbd", async () => (await output("mariadb-admin", [...client, "ping"])).ok, p.log);
  return {
    stop: p.stop,
    async sql(statements) {
      const r = await output("mariadb", [...client, "--batch"], statements);
      if (!r.ok) throw new Error(`mariadb: ${r.err}`);
      return new TextDecoder().decode(r.out);
    },
    async dump(db, args = []) {
      const r = await output("mariadb-dump", [...client, "--single-transaction", ...args, db]);
      if (!r.ok) throw new Error(`mariadb-dump: ${r.err}`);
      return r.out;
    },
  };
}

/** PostgreSQL (Debian's, /usr/lib/postgresql/N/bin): initdb and postgres as the postgres user, trust auth on 127.0.0.1. */
export async function startPostgres(dir: string): Promise<DbServer> {
  const bin = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => join("/usr/lib/postgresql", e.name, "bin")).sort().pop()!;
  const data = join(dir, "pgdata");
  await Deno.mkdir(data, { recursive: true });
  await sh("chown", ["-R", "postgres:", dir]);
  await sh("runuser", ["-u", "postgres", "--", join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]);
  const port = freePort();
  const p = startProcess("runuser", [
    "-u",
    "postgres",
    "--",
    join(bin, "postgres"),
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
  ]);
  const conn = ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"];
  await waitFor("postgres", async () => (await output("pg_isready", conn)).ok, p.log);
  return {
    stop: p.stop,
    async sql(statements) {
      const r = await output("psql", [...conn, "-v", "ON_ERROR_STOP=1", "-q", "-d", "postgres"], statements);
      if (!r.ok) throw new Error(`psql: ${r.err}`);
      return new TextDecoder().decode(r.out);
    },
    async dump(db, args = []) {
      const r = await output("pg_dump", [...conn, ...args, db]);
      if (!r.ok) throw new Error(`pg_dump: ${r.err}`);
      return r.out;
    },
  };
}
