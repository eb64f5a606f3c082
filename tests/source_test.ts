/**
 * The source side as people run it: a server that gzip-encodes the zip anyway, zips written by other tools (Info-ZIP
 * from a pipe, Python with a duplicate name), and the hints of HTTP refusals. Each asserts the cause and the hint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { type Route, serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { runCli, sandbox } from "./helpers/cli.ts";
import { startNginx } from "./servers/nginx.ts";
import { EXIT } from "../src/errors.ts";
import { testCert, withSource } from "./helpers/source.ts";

const cert: TestCert = await testCert();
const DUMP = sqlDump(100_000);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);
const NOW = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };

Deno.test("a server that gzip-encodes the zip (gzip_static, a proxy): archived, not 'truncated'; archivist asks for identity", async () => {
  const gz = gzipSync(ZIP);
  let asked = "";
  const route: Route = (req) => {
    asked = req.headers.get("accept-encoding") ?? "";
    return new Response(gz.slice(), {
      headers: { "content-type": "application/zip", "content-encoding": "gzip", "content-length": String(gz.length) },
    });
  };
  await withSource({ route: route }, async (sb) => {
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
  await withSource({ route: serveBytes(await Deno.readFile(join(dir, "dup.zip"))) }, async (sb) => {
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
  await withSource({ route: serveBytes(await Deno.readFile(join(dir, "pipe.zip"))) }, async (sb) => {
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
    await withSource({ route: () => new Response("no", { status }) }, async (sb) => {
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
  await withSource({ route: route }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.FETCH, r.stderr);
    assert.match(
      r.stderr,
      /fetch: FAILED: (truncated download: received \d+ bytes of the \d+ announced by Content-Length \(gzip-encoded\)|connection lost after .*)\s*\(hint: /,
    );
  });
});

/** Certificates made the ways people make them, with openssl: each TLS failure must be named in plain words. */
async function tlsCerts(dir: string) {
  const o = (args: string[]) => sh("openssl", args);
  await o([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${dir}/ss.key`,
    "-out",
    `${dir}/ss.pem`,
    "-days",
    "30",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  await o([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "30",
    "-subj",
    "/CN=Test CA",
  ]);
  await o(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/name.key`, "-out", `${dir}/name.csr`, "-subj", "/CN=db.example.org"]);
  await Deno.writeTextFile(`${dir}/name.ext`, "basicConstraints=CA:FALSE\nsubjectAltName=DNS:db.example.org,DNS:www.example.org\n");
  await o([
    "x509",
    "-req",
    "-in",
    `${dir}/name.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    `${dir}/name.ext`,
    "-out",
    `${dir}/name.pem`,
  ]);
  // An expired certificate: `openssl ca` is the tool that takes explicit dates.
  await Deno.mkdir(`${dir}/ca/new`, { recursive: true });
  await Deno.writeTextFile(`${dir}/ca/index.txt`, "");
  await Deno.writeTextFile(`${dir}/ca/serial`, "01\n");
  await Deno.writeTextFile(
    `${dir}/ca.cnf`,
    `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/ca/index.txt\nnew_certs_dir = ${dir}/ca/new\nserial = ${dir}/ca/serial\n` +
      `certificate = ${dir}/ca.pem\nprivate_key = ${dir}/ca.key\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n`,
  );
  await o([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${dir}/exp.key`,
    "-out",
    `${dir}/exp.csr`,
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-addext",
    "basicConstraints=CA:FALSE",
  ]);
  await o([
    "ca",
    "-batch",
    "-config",
    `${dir}/ca.cnf`,
    "-startdate",
    "20240101000000Z",
    "-enddate",
    "20240201000000Z",
    "-in",
    `${dir}/exp.csr`,
    "-out",
    `${dir}/exp.pem`,
  ]);
  const cert = (name: string, ca: string): TestCert => ({
    dir,
    caFile: `${dir}/${ca}`,
    certFile: `${dir}/${name}.pem`,
    keyFile: `${dir}/${name}.key`,
    cert: Deno.readTextFileSync(`${dir}/${name}.pem`),
    key: Deno.readTextFileSync(`${dir}/${name}.key`),
  });
  return { selfSigned: cert("ss", "ss.pem"), wrongName: cert("name", "ca.pem"), expired: cert("exp", "ca.pem") };
}

Deno.test("TLS failures in plain words with their own hints: expired (the date), wrong name (the names), a CA:TRUE self-signed certificate, an unknown issuer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-tlscerts-" });
  const c = await tlsCerts(dir);
  const cases: Array<[TestCert, string | undefined, RegExp]> = [
    [
      c.expired,
      c.expired.caFile,
      /TLS: the certificate of 127\.0\.0\.1:\d+ expired on 2024-02-01 00:00 UTC \(hint: the server's certificate must be renewed \(source\.ca_file cannot help\)/,
    ],
    [
      c.wrongName,
      c.wrongName.caFile,
      /TLS: the certificate of 127\.0\.0\.1:\d+ is not for 127\.0\.0\.1: it names db\.example\.org, www\.example\.org \(hint: use a name the certificate has in source\.url \(e\.g\. https:\/\/db\.example\.org\/\.\.\.\)/,
    ],
    [
      c.selfSigned,
      c.selfSigned.caFile,
      /TLS: the certificate of 127\.0\.0\.1:\d+ is a CA certificate used as the server's own \(what `openssl req -x509` makes\): Deno's TLS refuses it, even as source\.ca_file \(hint: set source\.client: curl .*or give the server a certificate signed by a small CA/,
    ],
    [
      c.wrongName,
      cert.caFile,
      /TLS: the certificate of 127\.0\.0\.1:\d+ is signed by an issuer this machine does not trust \(hint: source\.ca_file \(.*\) does not hold the CA that signed it/,
    ],
  ];
  try {
    for (const [server, ca, re] of cases) {
      const src = startHttpsSource(server, { "/dump.zip": serveBytes(ZIP) });
      const sb = await sandbox({ url: src.url("/dump.zip"), caFile: ca ?? cert.caFile });
      try {
        const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
        assert.equal(r.code, EXIT.FETCH, r.stderr);
        assert.match(r.stderr, re);
        assert.doesNotMatch(r.stderr, /client error|Connect\)|\.\.\.$/m, "no library-internal text");
      } finally {
        await src.close();
        await sb.cleanup();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nginx as the source (it offers HTTP/2; archivist downloads over HTTP/1.1), gzip_static beside the zip, gzip_static always (encoded anyway), a 301 redirect", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-nginx-" });
  await Deno.chmod(dir, 0o755);
  const root = join(dir, "www");
  await Deno.mkdir(join(root, "always"), { recursive: true });
  for (const d of [root, join(root, "always")]) {
    await Deno.writeFile(join(d, "dump.zip"), ZIP);
    await Deno.writeFile(join(d, "dump.zip.gz"), gzipSync(ZIP));
  }
  const nginx = await startNginx(join(dir, "nginx"), root, cert);
  try {
    for (
      const [path, expect] of [
        ["/dump.zip", /fetch: downloaded/],
        ["/always/dump.zip", /the server sent the zip with Content-Encoding: gzip despite Accept-Encoding: identity: decoding it/],
        ["/old.zip", /fetch: downloaded/],
      ] as const
    ) {
      const sb = await sandbox({ url: nginx.url(path), caFile: cert.caFile });
      try {
        const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
        assert.equal(r.code, 0, `${path}: ${r.stderr}`);
        assert.match(r.stderr, expect);
        const out = await Deno.makeTempDir();
        await sh("tar", ["xzf", join(sb.dest, "20261122.tgz"), "-C", out]);
        assert.deepEqual(await Deno.readFile(join(out, "dump.sql")), DUMP, path);
      } finally {
        await sb.cleanup();
      }
    }
    const log = await Deno.readTextFile(join(dir, "nginx", "logs", "access.log"));
    // HTTP/1.1 on purpose (src/source/http.ts makeClient: Deno's HTTP/2 client downloads 3-5× slower).
    assert.match(log, /"GET \/dump\.zip HTTP\/1\.1" 200/);
    assert.doesNotMatch(log, /HTTP\/2\.0/);
  } finally {
    await nginx.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("source.client: curl accepts a self-signed CA:TRUE certificate given as ca_file; same messages for 404, cut bodies and TLS; verify uses it too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-curlsrc-" });
  const c = await tlsCerts(dir);
  try {
    // The certificate `openssl req -x509` makes: refused by the Deno client, accepted by curl.
    const src = startHttpsSource(c.selfSigned, {
      "/dump.zip": serveBytes(ZIP),
      "/auth.zip": (req) =>
        req.headers.get("authorization") === "Basic " + btoa("backup:s3cr3t-pw")
          ? new Response(ZIP.slice())
          : new Response("no", { status: 401 }),
      "/cut.zip": () =>
        new Response(
          new ReadableStream({
            start(ctl) {
              ctl.enqueue(ZIP.slice(0, 1000));
              ctl.close();
            },
          }),
          { headers: { "content-length": String(ZIP.length) } },
        ),
      "/page.zip": () => new Response("<html>login</html>", { headers: { "content-type": "text/html" } }),
    });
    const sb = await sandbox({ url: src.url("/dump.zip"), caFile: c.selfSigned.caFile });
    try {
      let r = await runCli(["run", "-c", sb.configPath], { env: NOW });
      assert.equal(r.code, EXIT.FETCH);
      assert.match(r.stderr, /is a CA certificate used as the server's own .*\(hint: set source\.client: curl/);
      await sb.writeConfig({ source: { client: "curl" } });
      r = await runCli(["run", "-c", sb.configPath], { env: NOW });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /fetch: GET .* with curl/);
      const v = await runCli(["verify", "-c", sb.configPath], { env: NOW });
      assert.match(v.stdout, /✓ source +https:\/\/127\.0\.0\.1:\d+\/dump\.zip reachable with curl \(HTTP 200, TLS verified/);
      const pw = join(dir, "pw");
      await Deno.writeTextFile(pw, "s3cr3t-pw\n");
      const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
        ["/auth.zip", { auth: { type: "basic", username: "backup", password_file: pw } }, 0, /fetch: downloaded/],
        ["/nope.zip", {}, EXIT.FETCH, /fetch: FAILED: HTTP 404 from 127\.0\.0\.1:\d+ for \/nope\.zip \(hint: check source\.url/],
        [
          "/cut.zip",
          {},
          EXIT.FETCH,
          /fetch: FAILED: connection lost before the end of the download .*\(after 3 attempts\) \(hint: the download was cut/,
        ],
        [
          "/page.zip",
          {},
          EXIT.FETCH,
          /the body is not a zip \(it starts with "<html>login<\/html>"\) \(hint: the URL probably serves an error or login page/,
        ],
      ];
      for (const [path, extra, code, re] of cases) {
        await sb.writeConfig({ source: { client: "curl", url: src.url(path), ...extra }, check: { on_unchanged: "archive" } });
        r = await runCli(["run", "-c", sb.configPath], { env: NOW });
        assert.equal(r.code, code, `${path}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.ok(!r.stderr.includes("s3cr3t-pw"));
      }
    } finally {
      await src.close();
      await sb.cleanup();
    }
    // TLS in plain words through curl too.
    const exp = startHttpsSource(c.expired, { "/dump.zip": serveBytes(ZIP) });
    const sb2 = await sandbox({ url: exp.url("/dump.zip"), caFile: c.expired.caFile }, { source: { client: "curl" } });
    try {
      const r = await runCli(["run", "-c", sb2.configPath], { env: NOW });
      assert.equal(r.code, EXIT.FETCH);
      assert.match(r.stderr, /TLS: the certificate of 127\.0\.0\.1:\d+ expired \(hint: the server's certificate must be renewed/);
    } finally {
      await exp.close();
      await sb2.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("conditional download: a 304 is 'unchanged upstream' without downloading; a new ETag is archived; on_unchanged: archive downloads anyway; both clients", async () => {
  for (const client of ["deno", "curl"]) {
    let version = 1;
    let fullGets = 0, requests = 0;
    const zips: Record<number, Uint8Array> = { 1: ZIP, 2: makeZip([{ name: "dump.sql", data: sqlDump(100_000, { seed: 5 }) }]) };
    const route: Route = (req) => {
      requests++;
      const etag = `"v${version}"`;
      if (req.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers: { etag } });
      fullGets++;
      return new Response(zips[version].slice(), { headers: { etag, "last-modified": "Sun, 22 Nov 2026 01:00:00 GMT" } });
    };
    await withSource({ route: route }, async (sb) => {
      if (client === "curl") await sb.writeConfig({ source: { client } });
      const night = (day: string) => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
      let r = await night("21");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(Deno.readTextFileSync(join(sb.stateDir, "testjob.state.json"))).etag, '"v1"');
      r = await night("22");
      assert.equal(r.code, EXIT.WARNING, `${client}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /fetch: unchanged upstream \(304 Not Modified\) since the zip archived as 20261121\.tgz \(ETag "v1"\): nothing downloaded \(check\.on_unchanged: skip\)/,
      );
      assert.equal(fullGets, 1, "the 304 night downloaded nothing");
      // A 304 is an answer: with on_unchanged: fail it is exit 23 at once, never retried as a network error.
      await sb.writeConfig({ source: { client, retries: 3, retry_delay: "5s" }, check: { on_unchanged: "fail" } });
      const asked = requests;
      r = await night("22");
      assert.equal(r.code, EXIT.COMPARE, `${client}: ${r.stderr}`);
      assert.match(r.stderr, /compare: FAILED: unchanged upstream \(304 Not Modified\).*\(hint: the export on the server did not run/);
      assert.doesNotMatch(r.stderr, /retrying/);
      assert.equal(requests - asked, 1, "one request, no retry");
      // A dry run of a 304 night still shows the store and the retention a real night would meet.
      await sb.writeConfig({ source: { client } });
      r = await runCli(["run", "--dry-run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
      assert.equal(r.code, EXIT.WARNING, `${client}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /store: .*dry run: the dump is unchanged: nothing would be stored on .* \(reachable; 1 archive\(s\) of this job there, the last 20261121\.tgz\)/,
      );
      assert.match(r.stderr, /retention: .*dry run: would delete 0 of 1 archive\(s\)/);
      await sb.writeConfig({ source: { client } });
      version = 2;
      r = await night("23");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fullGets, 2);
      assert.ok(Deno.statSync(join(sb.dest, "20261123.tgz")).isFile);
      await sb.writeConfig({ source: { client }, check: { on_unchanged: "archive" } });
      r = await night("24");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /check\.on_unchanged: archive: downloading it anyway/);
      assert.equal(fullGets, 3);
      await sb.writeConfig({ source: { client, conditional: false } });
      r = await night("25");
      assert.equal(fullGets, 4, "conditional: false never sends the validators");
      assert.match(r.stderr, /the dump is identical to the one archived as 20261124\.tgz/);
    });
  }
});

Deno.test("a zip rewritten within the second of the last download is downloaded and archived, not answered 304 (a Last-Modified within a second of Date is weak); both clients", async () => {
  for (const client of ["deno", "curl"]) {
    // A static server of one-second resolution (Python's http.server, many others): Last-Modified, no ETag, and
    // If-Modified-Since honoured by comparing whole seconds.
    const mtime = "Sun, 22 Nov 2026 01:00:00 GMT";
    let zip = ZIP, date = mtime, sentIms: (string | null)[] = [];
    const route: Route = (req) => {
      const ims = req.headers.get("if-modified-since");
      sentIms.push(ims);
      const headers = { "last-modified": mtime, date };
      if (ims && Date.parse(mtime) <= Date.parse(ims)) return new Response(null, { status: 304, headers });
      return new Response(zip.slice(), { headers });
    };
    await withSource({ route: route }, async (sb) => {
      await sb.writeConfig({ source: { client } });
      const night = (day: string) => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
      // Night 1: downloaded in the very second the zip was written.
      let r = await night("21");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /fetch: Last-Modified Sun, 22 Nov 2026 01:00:00 GMT is within a second of the response .*: not kept for a conditional download/,
      );
      // The export rewrites the zip within that same second: same Last-Modified, new data.
      zip = makeZip([{ name: "dump.sql", data: sqlDump(100_000, { seed: 9 }) }]);
      sentIms = [];
      r = await night("22");
      assert.equal(r.code, 0, `${client}: ${r.stderr}`);
      assert.deepEqual(sentIms, [null], "no If-Modified-Since from a weak validator");
      assert.match(r.stderr, /compare: dump changed since 20261121\.tgz/);
      // A Last-Modified a second or more before the response is a validator: sent, and its 304 respected.
      date = "Sun, 22 Nov 2026 01:00:05 GMT";
      zip = makeZip([{ name: "dump.sql", data: sqlDump(100_000, { seed: 10 }) }]);
      assert.equal((await night("23")).code, 0);
      sentIms = [];
      r = await night("24");
      assert.deepEqual(sentIms, [mtime]);
      assert.equal(r.code, EXIT.WARNING, r.stderr);
      assert.match(r.stderr, /unchanged upstream \(304 Not Modified\)/);
    });
  }
});

Deno.test("ready marker: not there is 'the export was not ready' (exit 20); ready_wait polls until it appears; ready_newer refuses yesterday's marker", async () => {
  await withSource({ route: serveBytes(ZIP) }, async (sb) => {
    const marker = join(sb.root, "export.ready");
    await sb.writeConfig({ source: { ready_file: marker } });
    let r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.FETCH, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `fetch: FAILED: the export was not ready: ${
          marker.replaceAll(".", "\\.")
        } does not exist \\(hint: the export job on the server has not finished: check it, or set source\\.ready_wait`,
      ),
    );
    // The export finishes while archivist waits.
    await sb.writeConfig({ source: { ready_file: marker, ready_wait: "6s", ready_newer: true } });
    const child = runCli(["run", "-c", sb.configPath], { env: NOW });
    await new Promise((ok) => setTimeout(ok, 1500));
    await Deno.writeTextFile(marker, "done\n");
    r = await child;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /fetch: waiting for the export: .* does not exist; next look in/);
    assert.match(r.stderr, /fetch: ready marker: .*export\.ready is there/);
    // The next night, yesterday's marker (older than the archive) is not ready.
    await Deno.utime(marker, new Date("2026-01-01T00:00:00Z"), new Date("2026-01-01T00:00:00Z"));
    await sb.writeConfig({ source: { ready_file: marker, ready_newer: true, ready_wait: "2s" }, check: { on_unchanged: "archive" } });
    r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(r.code, EXIT.FETCH);
    assert.match(
      r.stderr,
      /the export was not ready after waiting 2\.0s: .*export\.ready \(2026-01-01T00:00:00\.000Z\) is not newer than the last archive/,
    );
    // A config naming both markers, or ready_wait without one, is refused.
    await sb.writeConfig({ source: { ready_wait: "1h" } });
    r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.CONFIG);
    assert.match(r.stderr, /source\.ready_wait.*needs source\.ready_url or source\.ready_file/);
  });
});

Deno.test("ready_url: the zip is fetched only once the marker URL answers 2xx", async () => {
  let ready = false;
  const src = startHttpsSource(cert, {
    "/dump.zip": serveBytes(ZIP),
    "/dump.ready":
      () => (ready ? new Response(null, { headers: { "last-modified": new Date().toUTCString() } }) : new Response("no", { status: 404 })),
  });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { source: { ready_url: src.url("/dump.ready") } });
  try {
    let r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.FETCH);
    assert.match(r.stderr, /the export was not ready: https:\/\/127\.0\.0\.1:\d+\/dump\.ready answers HTTP 404/);
    assert.equal(src.hits.get("/dump.zip") ?? 0, 0, "the zip was not touched");
    ready = true;
    r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});
