/**
 * The specification's "not the same as yesterday's" with REAL dump tools: MariaDB's mariadb-dump and PostgreSQL's
 * pg_dump, from servers the test starts in temp dirs. Two dumps of unchanged data taken a second apart are never
 * byte-identical (mysqldump's "-- Dump completed on" date, pg_dump's random \restrict key); archivist must call them
 * unchanged, and call a changed row changed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCert, makeZip, type TestCert } from "../tools/fixtures.ts";
import { startHttpsSource } from "../tools/https_source.ts";
import { type CliResult, runCli, type Sandbox, sandbox } from "./helpers/cli.ts";
import { type DbServer, startMariadb, startPostgres } from "./servers/dbs.ts";
import { EXIT } from "../src/errors.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-dumpcert-" }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Case {
  name: string;
  start: (dir: string) => Promise<DbServer>;
  db: string;
  setup: string;
  change: string;
  trailer: string;
  volatile: RegExp;
}

const CASES: Case[] = [
  {
    name: "mariadb-dump",
    start: startMariadb,
    db: "shop",
    setup: "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); " +
      "INSERT INTO t VALUES (1,'apple'),(2,'pear'),(3,'plum');",
    change: "USE shop; UPDATE t SET v='quince' WHERE id=2;",
    trailer: "-- Dump completed",
    volatile: /1 × \/\^-- Dump completed on \//,
  },
  {
    name: "pg_dump",
    start: startPostgres,
    db: "postgres",
    setup: "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1,'apple'),(2,'pear'),(3,'plum');",
    change: "UPDATE t SET v='quince' WHERE id=2;",
    trailer: "-- PostgreSQL database dump complete",
    volatile: /\/\^\\\\restrict \//,
  },
];

/**
 * A real database server started for the test, an HTTPS source serving what `night` is given, and a sandbox whose
 * config expects `trailer`: `night(dump, day)` zips that dump, serves it and runs that night.
 */
async function withDumpNights(
  name: string,
  start: (dir: string) => Promise<DbServer>,
  trailer: string,
  fn: (server: DbServer, night: (dump: Uint8Array, day: string) => Promise<CliResult>, sb: Sandbox) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: `archivist-${name}-` });
  await Deno.chmod(dir, 0o755);
  const server = await start(dir);
  let body: Uint8Array = new Uint8Array();
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(body.slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { check: { expect_trailer: trailer } });
  const night = (dump: Uint8Array, day: string) => {
    body = makeZip([{ name: "dump.sql", data: dump }]);
    return runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
  };
  try {
    await fn(server, night, sb);
  } finally {
    await src.close();
    await sb.cleanup();
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

for (const c of CASES) {
  Deno.test(`${c.name}: two dumps of unchanged data a second apart are unchanged; a changed row is archived; bytes mode sees every dump as new`, () =>
    withDumpNights(c.name, c.start, c.trailer, async (server, night, sb) => {
      await server.sql(c.setup);
      const d1 = await server.dump(c.db);
      await sleep(1100);
      const d2 = await server.dump(c.db);
      assert.notDeepEqual(d1, d2, "the premise: two dumps of the same data are not byte-identical");
      await server.sql(c.change);
      const d3 = await server.dump(c.db);
      const n1 = await night(d1, "21");
      assert.equal(n1.code, 0, n1.stderr);
      assert.match(
        n1.stderr,
        new RegExp(`content fingerprint [0-9a-f]+… \\(${c.name === "pg_dump" ? "pg_dump" : "mysqldump"} dump; left out: `),
      );
      const n2 = await night(d2, "22");
      assert.equal(n2.code, EXIT.WARNING, n2.stderr);
      assert.match(
        n2.stderr,
        /compare: the dump is the same data as the one archived as 20261121\.tgz on .*: only volatile lines differ \(/,
      );
      assert.match(n2.stderr, c.volatile);
      assert.match(n2.stderr, /not archived again \(check\.on_unchanged: skip\)/);
      const n3 = await night(d3, "23");
      assert.equal(n3.code, 0, n3.stderr);
      assert.match(n3.stderr, /compare: dump changed since 20261121\.tgz/);
      const hist = Deno.readTextFileSync(sb.historyFile).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(hist[0].dump.fingerprint, hist[1].dump.fingerprint);
      assert.notEqual(hist[0].dump.sha256, hist[1].dump.sha256, "the history shows both: same fingerprint, different bytes");
      assert.notEqual(hist[2].dump.fingerprint, hist[0].dump.fingerprint);
      assert.deepEqual([...Deno.readDirSync(sb.dest)].map((e) => e.name).filter((n) => n.endsWith(".tgz")).sort(), [
        "20261121.tgz",
        "20261123.tgz",
      ]);
      // compare: bytes is the old behaviour: the volatile dump is "changed".
      await sb.writeConfig({ check: { expect_trailer: c.trailer, compare: "bytes" } });
      await sleep(1100); // a dump's own time has one-second steps: within the same second as d3 it is byte-identical
      const n4 = await night(await server.dump(c.db), "24");
      assert.equal(n4.code, 0, n4.stderr);
      assert.match(n4.stderr, /dump changed since 20261123\.tgz .*\(compared byte for byte\)/);
    }));
}

Deno.test("the same dump twice gives a byte-identical archive: a second run the same day finds it already stored", async () => {
  const zip = makeZip([{ name: "dump.sql", data: new TextEncoder().encode("-- MySQL dump 10.13\nINSERT 1;\n-- Dump completed on x\n") }]);
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(zip.slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, {
    check: { on_unchanged: "archive", expect_trailer: "-- Dump completed" },
  });
  try {
    const a = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    assert.equal(a.code, 0, a.stderr);
    const b = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T09:45:00Z" } });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /20261122\.tgz is already on .* \(same size and sidecar sha256\): nothing to upload/);
    assert.deepEqual([...Deno.readDirSync(sb.dest)].map((e) => e.name).sort(), ["20261122.tgz", "20261122.tgz.sha256"], "no -2 copy");
    const members = new TextDecoder().decode(
      (await new Deno.Command("tar", { args: ["tvzf", join(sb.dest, "20261122.tgz")] }).output()).stdout,
    );
    assert.match(members, /dump\.sql/);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

/** Data that reads like the dump tool's own volatile lines, each changed between two nights. */
const LOOKALIKES: {
  name: string;
  start: (dir: string) => Promise<DbServer>;
  db: string;
  args: string[];
  setup: string;
  change: string;
  trailer: string;
  line: RegExp;
}[] = [
  {
    name: "pg_dump, a COPY row",
    start: startPostgres,
    db: "postgres",
    args: [],
    setup: "CREATE TABLE notes (v TEXT, id INT); INSERT INTO notes VALUES ('-- Dumped from database version 15', 1);",
    change: "UPDATE notes SET v = '-- Dumped from database version 16';",
    trailer: "-- PostgreSQL database dump complete",
    line: /^-- Dumped from database version 15\t1$/m,
  },
  {
    name: "pg_dump --inserts, a line of a multi-line string",
    start: startPostgres,
    db: "postgres",
    args: ["--inserts"],
    setup: "CREATE TABLE notes (id INT, v TEXT); INSERT INTO notes VALUES (1, E'first line\\n-- Dumped by pg_dump version 15');",
    change: "UPDATE notes SET v = E'first line\\n-- Dumped by pg_dump version 16';",
    trailer: "-- PostgreSQL database dump complete",
    line: /^-- Dumped by pg_dump version 15'\);$/m,
  },
  {
    name: "mariadb-dump --routines, a routine body",
    start: startMariadb,
    db: "shop",
    args: ["--routines"],
    setup: "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT); " +
      "CREATE PROCEDURE p() SELECT 'x\n-- Dump completed on 2026-11-20  1:00:00\n-- Server version\t10.11';",
    change:
      "USE shop; DROP PROCEDURE p; CREATE PROCEDURE p() SELECT 'x\n-- Dump completed on 2026-11-21  1:00:00\n-- Server version\t10.11';",
    trailer: "-- Dump completed",
    line: /^-- Dump completed on 2026-11-20 {2}1:00:00$/m,
  },
];

for (const c of LOOKALIKES) {
  Deno.test(`${c.name} that reads like the dump tool's volatile line: a change to it is archived, never called unchanged`, () =>
    withDumpNights("lookalike", c.start, c.trailer, async (server, night, sb) => {
      await server.sql(c.setup);
      const d1 = await server.dump(c.db, c.args);
      assert.match(new TextDecoder().decode(d1), c.line, "the premise: the data holds a line like the tool's own");
      await server.sql(c.change);
      const d2 = await server.dump(c.db, c.args);
      assert.equal((await night(d1, "21")).code, 0);
      const n2 = await night(d2, "22");
      assert.equal(n2.code, 0, n2.stderr);
      assert.match(n2.stderr, /compare: dump changed since 20261121\.tgz/);
      assert.ok(Deno.statSync(join(sb.dest, "20261122.tgz")).isFile, "the change is archived");
      // The tool's own volatile lines are still left out: the same data dumped again is unchanged.
      await sleep(1100);
      const n3 = await night(await server.dump(c.db, c.args), "23");
      assert.equal(n3.code, EXIT.WARNING, n3.stderr);
      assert.match(n3.stderr, /compare: the dump is (identical to|the same data as) the one archived as 20261122\.tgz/);
    }));
}
