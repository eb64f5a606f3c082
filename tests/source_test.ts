/**
 * The source side as people run it: a server that gzip-encodes the zip anyway, zips written by other tools (Info-ZIP
 * from a pipe, Python with a duplicate name), and the hints of HTTP refusals. Each asserts the cause and the hint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { makeCert, makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { type Route, serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { runCli, type Sandbox, sandbox } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-srccert-" }));
const DUMP = sqlDump(100_000);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);
const NOW = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };

async function withSource(
  route: Route,
  fn: (sb: Sandbox, headers: Map<string, Headers>) => Promise<void>,
  extra: Record<string, unknown> = {},
) {
  const src = startHttpsSource(cert, { "/dump.zip": route });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, extra);
  try {
    await fn(sb, src.headers);
  } finally {
    await src.close();
    await sb.cleanup();
  }
}

Deno.test("a server that gzip-encodes the zip (gzip_static, a proxy): archived, not 'truncated'; archivist asks for identity", async () => {
  const gz = gzipSync(ZIP);
  let asked = "";
  const route: Route = (req) => {
    asked = req.headers.get("accept-encoding") ?? "";
    return new Response(gz.slice(), {
      headers: { "content-type": "application/zip", "content-encoding": "gzip", "content-length": String(gz.length) },
    });
  };
  await withSource(route, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the server sent the zip with Content-Encoding: gzip despite Accept-Encoding: identity: decoding it/);
    assert.equal(asked, "identity");
    const out = await Deno.makeTempDir();
    await sh("tar", ["xzf", join(sb.dest, "20261122.tgz"), "-C", out]);
    assert.deepEqual(await Deno.readFile(join(out, "dump.sql")), DUMP);
  });
});

Deno.test("a zip with two entries of the same name is refused as ambiguous (exit 21), naming both sizes", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "real.sql"), DUMP);
  await sh("python3", [
    "-W",
    "ignore",
    "-c",
    `
import zipfile
with zipfile.ZipFile("${dir}/dup.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("dump.sql", "-- decoy\\n")
    z.write("${dir}/real.sql", "dump.sql")
`,
  ]);
  await withSource(serveBytes(await Deno.readFile(join(dir, "dup.zip"))), async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.UNZIP, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `unzip: FAILED: the zip holds 2 entries named "dump\\.sql" \\(9 bytes, ${DUMP.length} bytes\\): refusing to guess which one is the dump \\(hint: fix the export`,
      ),
    );
    assert.throws(() => Deno.statSync(join(sb.dest, "20261122.tgz")), Deno.errors.NotFound);
  });
});

Deno.test("a zip written from a pipe (entry '-', Info-ZIP's `zip - -`): the archive member gets the configured name", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "dump.sql"), DUMP);
  await sh("sh", ["-c", `zip -q - - < ${dir}/dump.sql > ${dir}/pipe.zip`]);
  await withSource(serveBytes(await Deno.readFile(join(dir, "pipe.zip"))), async (sb) => {
    await sb.writeConfig({ source: { entry: "-" } });
    let r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the entry "-" is stored in the archive as dump\.sql \(a zip written from a pipe names its entry '-'\)/);
    assert.match(await sh("tar", ["tzf", join(sb.dest, "20261122.tgz")]), /^dump\.sql\n$/);
    await sb.writeConfig({
      source: { entry: "-" },
      archive: { timezone: "UTC", member_name: "shop.sql" },
      check: { on_unchanged: "archive" },
    });
    r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(await sh("tar", ["tzf", join(sb.dest, "20261123.tgz")]), /^shop\.sql\n$/);
    const to = await Deno.makeTempDir();
    const rest = await runCli(["restore", "latest", "--to", to, "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T03:00:00Z" } });
    assert.equal(rest.stdout.trim(), join(to, "shop.sql"));
    assert.deepEqual(await Deno.readFile(join(to, "shop.sql")), DUMP);
  });
});

Deno.test("HTTP refusals say what to do: 403 without source.auth, 403 with it, 503 with the retries", async () => {
  for (
    const [status, auth, hint] of [
      [403, undefined, /the server wants credentials and source\.auth is not set: add it/],
      [
        403,
        { type: "header", name: "Authorization", value: "Bearer t0k3n" },
        /check source\.auth \(user, password or token\): the server refused them/,
      ],
      [503, undefined, /the server had an error; archivist retries it \(source\.retries: 2\) and the next night tries again/],
    ] as const
  ) {
    await withSource(() => new Response("no", { status }), async (sb) => {
      if (auth) await sb.writeConfig({ source: { auth } });
      const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
      assert.equal(r.code, EXIT.FETCH, r.stderr);
      assert.match(r.stderr, new RegExp(`fetch: FAILED: .*HTTP ${status} `));
      assert.match(r.stderr, hint);
    });
  }
});

Deno.test("an encoded body cut short is a truncated download counted on the wire, retried", async () => {
  const gz = gzipSync(ZIP);
  // Announces the whole encoded length, sends a third of it, then ends the stream.
  const route: Route = () =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(gz.slice(0, Math.floor(gz.length / 3)));
          c.close();
        },
      }),
      { headers: { "content-encoding": "gzip", "content-length": String(gz.length) } },
    );
  await withSource(route, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.FETCH, r.stderr);
    assert.match(
      r.stderr,
      /fetch: FAILED: (truncated download: received \d+ bytes of the \d+ announced by Content-Length \(gzip-encoded\)|connection lost after .*)\s*\(hint: /,
    );
  });
});
