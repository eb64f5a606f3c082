/**
 * Several jobs in one config: one cron line runs them all, one after the other; each has its own lock, state,
 * catalogue and history tag; one failing does not stop the others; the exit code, the history, the one mail, the
 * ping and the textfile say which job did what; the other commands take --job.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { makeCert, makeZip, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { historyRuns, runCli, spawnCli, waitFor } from "./helpers/cli.ts";
import { startSmtpServer } from "./servers/smtp.ts";
import { EXIT } from "../src/errors.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-jobs-" }));
const PW = "smtp-Jobs-4410";

Deno.test("three jobs in one run: one fails, one is unchanged, one is stored; exit code, history, one mail with three sections, ping, textfile", async () => {
  const smtp = await startSmtpServer(cert, PW);
  let blogZip = makeZip([{ name: "dump.sql", data: sqlDump(50_000, { seed: 2 }) }]);
  const pings: string[] = [];
  const src = startHttpsSource(cert, {
    "/shop.zip": serveBytes(makeZip([{ name: "dump.sql", data: sqlDump(50_000, { seed: 1 }) }])),
    "/blog.zip": () => new Response(blogZip.slice()),
  });
  // The heartbeat service: plain HTTP on 127.0.0.1, recording what it is told.
  const ac = new AbortController();
  const pingServer = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} }, async (req) => {
    const kind = new URL(req.url).pathname.replace(/^\/ping\/?/, "") || "success";
    pings.push(`${kind}: ${await req.text()}`);
    return new Response("ok");
  });
  const root = await Deno.makeTempDir({ prefix: "archivist-jobs-" });
  try {
    const cfgPath = join(root, "archive.yaml");
    await Deno.writeTextFile(join(root, "smtp.pw"), PW + "\n");
    const text = stringify({
      state_dir: join(root, "state"),
      work_dir: join(root, "work"),
      log: { file: join(root, "archivist.log") },
      source: { entry: "dump.sql", ca_file: cert.caFile, retries: 0 },
      check: { expect_trailer: "-- Dump completed" },
      archive: { timezone: "UTC", name: "{job}-{YYYY}{MM}{DD}.tgz" },
      destination: { type: "local", path: join(root, "dest"), create_dirs: true },
      retention: { max_age: "30d", min_keep: 2 },
      mail: {
        enabled: true,
        when: "always",
        to: ["dba@example.org"],
        transport: "smtp",
        host: "127.0.0.1",
        port: smtp.port,
        security: "starttls",
        ca_file: cert.caFile,
        username: "archivist",
        password_file: join(root, "smtp.pw"),
      },
      monitor: { ping_url: `http://127.0.0.1:${pingServer.addr.port}/ping`, prometheus_textfile: join(root, "archivist.prom") },
      jobs: {
        shop: { source: { url: src.url("/shop.zip") } },
        // The export of this one is missing: a failure in the middle must not stop the third.
        wiki: { source: { url: src.url("/wiki.zip") } },
        // Its own directory and retention: a job's keys are merged over the top-level ones.
        blog: { source: { url: src.url("/blog.zip") }, destination: { path: join(root, "blog") }, retention: { min_keep: 5 } },
      },
    });
    await Deno.writeTextFile(cfgPath, text, { mode: 0o600 });
    const night = (iso: string, ...args: string[]) => runCli(["run", "-c", cfgPath, ...args], { env: { ARCHIVIST_NOW: iso } });

    // The first night stores shop's and blog's archives, each in its place; wiki fails.
    let r = await night("2026-11-21T02:30:00Z");
    assert.equal(r.code, EXIT.FETCH, r.stderr);
    assert.ok(Deno.statSync(join(root, "dest", "shop-20261121.tgz")).isFile);
    assert.ok(Deno.statSync(join(root, "blog", "blog-20261121.tgz")).isFile);
    // The second night: blog is run alone first (unchanged: a warning); then all three, blog's export having
    // changed meanwhile: shop unchanged (skip: warning), wiki failing, blog stored (OK).
    r = await night("2026-11-22T02:30:00Z", "blog");
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    blogZip = makeZip([{ name: "dump.sql", data: sqlDump(50_000, { seed: 3 }) }]);
    smtp.received.length = 0;
    pings.length = 0;
    const history0 = historyRuns(join(root, "state", "history.jsonl")).length;
    r = await night("2026-11-22T03:30:00Z");
    assert.equal(r.code, EXIT.FETCH, "the worst job's code: wiki's fetch failure");
    // A FAILED line read alone says which job failed, in the log file and on stderr.
    assert.match(r.stderr, /fetch: FAILED \(job wiki\): HTTP 404/);
    assert.match(r.stderr, /run: FAILED \(job wiki\) at fetch \(exit 20\)/);
    assert.match(Deno.readTextFileSync(join(root, "archivist.log")), /ERROR \[\S+\] fetch: FAILED \(job wiki\): HTTP 404/);

    const lines = historyRuns(join(root, "state", "history.jsonl")).slice(history0);
    assert.deepEqual(lines.map((l) => [l.job, l.status, l.exitCode]), [["shop", "warning", 1], ["wiki", "failed", EXIT.FETCH], [
      "blog",
      "ok",
      0,
    ]]);
    assert.ok(Deno.statSync(join(root, "blog", "blog-20261122.tgz")).isFile, "the OK job stored its archive");
    assert.equal(new Set(lines.map((l) => l.runId)).size, 1, "one run id for the invocation");

    assert.equal(smtp.received.length, 1, "one mail for the run");
    const m = smtp.received[0];
    assert.match(m.subject, /^\[archivist\] FAILED 3 jobs: FAILED 1 \(wiki\), WARNING 1 \(shop\), OK 1/);
    for (const job of ["shop", "wiki", "blog"]) assert.match(m.text, new RegExp(`=== job ${job}: `));
    assert.match(m.text, /=== job wiki: FAILED ===[\s\S]*Cause: HTTP 404/);
    assert.ok(!m.text.includes(PW));
    assert.ok(lines.every((l) => l.mail.sent === true));

    assert.deepEqual(pings.map((p) => p.split(":")[0]), ["start", "fail"], "one start, one end for the shared ping URL");
    assert.match(
      pings[1],
      /FAILED: FAILED 1 \(wiki\), WARNING 1 \(shop\), OK 1\nshop: WARNING: [\s\S]*wiki: FAILED: fetch: HTTP 404[\s\S]*blog: OK: blog-20261122\.tgz/,
    );

    const prom = Deno.readTextFileSync(join(root, "archivist.prom"));
    for (const [job, code] of [["shop", 1], ["wiki", EXIT.FETCH], ["blog", 0]]) {
      assert.match(prom, new RegExp(`^archivist_last_run_exit_code\\{archivist_job="${job}"\\} ${code}$`, "m"));
    }
    assert.equal(prom.match(/^# HELP archivist_last_run_exit_code /gm)!.length, 1, "each metric declared once");
    // One job run alone keeps the others' lines in the shared textfile.
    r = await night("2026-11-23T02:30:00Z", "shop");
    const prom2 = Deno.readTextFileSync(join(root, "archivist.prom"));
    assert.match(prom2, /^archivist_last_run_exit_code\{archivist_job="wiki"\} 20$/m);
    assert.match(prom2, /^archivist_last_run_exit_code\{archivist_job="blog"\} 0$/m);

    // Each job has its own state and catalogue; the other commands take --job, and ask for it when it is missing.
    for (const j of ["shop", "blog"]) assert.ok(Deno.statSync(join(root, "state", `${j}.catalogue.jsonl`)).isFile);
    const list = await runCli(["list", "-c", cfgPath]);
    assert.equal(list.code, EXIT.USAGE);
    assert.match(list.stderr, /has 3 jobs \(shop, wiki, blog\): name one with --job NAME/);
    const listBlog = await runCli(["list", "-c", cfgPath, "--job", "blog"]);
    assert.equal(listBlog.code, 0, listBlog.stderr);
    assert.match(listBlog.stdout, /blog-20261121\.tgz/);
    assert.ok(!listBlog.stdout.includes("shop-"), "blog's list only");
    const unknown = await runCli(["run", "-c", cfgPath, "nope"]);
    assert.equal(unknown.code, EXIT.USAGE);
    assert.match(unknown.stderr, /no job "nope" in .*archive\.yaml \(its jobs: shop, wiki, blog\)/);
    const hist = await runCli(["history", "-c", cfgPath, "--job", "wiki"]);
    assert.equal(hist.code, 0);
    assert.ok(hist.stdout.trim().split("\n").every((l) => /FAILED/.test(l)), hist.stdout);
    const verify = await runCli(["verify", "-c", cfgPath], { env: { ARCHIVIST_NOW: "2026-11-23T03:00:00Z" } });
    assert.match(verify.stdout, /^ARCHIVIST CRITICAL - .*wiki: last run/m);
    assert.match(verify.stdout, /shop: destination/);
    // The file's mode and the schedule concern the file: checked once, not once per job.
    assert.equal(verify.stdout.match(/^\S+ \w+: schedule /gm)?.length, 1, verify.stdout);
    assert.equal(verify.stdout.match(/ permissions 0600$/gm)?.length, 1, verify.stdout);
  } finally {
    await src.close();
    await smtp.close();
    ac.abort();
    await pingServer.finished;
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("jobs: a wrong jobs section is refused naming the job and the key", async () => {
  const root = await Deno.makeTempDir({ prefix: "archivist-jobs-cfg-" });
  const cfg = join(root, "archive.yaml");
  const base = {
    state_dir: join(root, "state"),
    source: { entry: "dump.sql", url: "https://127.0.0.1:9/x.zip" },
    destination: { type: "local", path: join(root, "dest") },
  };
  for (const f of ["k", "kh"]) await Deno.writeTextFile(join(root, f), "x\n", { mode: 0o600 });
  const sftpAt = (user: string, path: string) => ({
    type: "sftp",
    host: "h",
    user,
    key_file: join(root, "k"),
    known_hosts_file: join(root, "kh"),
    path,
  });
  const cases: [unknown, RegExp][] = [
    [[{ source: {} }], /jobs\[0\]\.name: is required: each job has its own name/],
    [[{ name: "a" }, { name: "a" }], /jobs\[1\]\.name: a is also the name of jobs\[0\]/],
    [{ a: { log: { level: "debug" } } }, /jobs\.a\.log: is set once for the whole run, at the top level/],
    [{ a: {}, b: {} }, /jobs a and b store archives named \{YYYY\}\{MM\}\{DD\}\.tgz in the same place[\s\S]*put \{job\} in archive\.name/],
    // The same directory written otherwise: a trailing slash, "./" and "..", a symlink to it.
    [{ a: {}, b: { destination: { path: join(root, "dest") + "/" } } }, /jobs a and b store archives named .* in the same place/],
    [{ a: {}, b: { destination: { path: `${root}/x/.././dest` } } }, /jobs a and b store archives named .* in the same place/],
    [{ a: {}, b: { destination: { path: join(root, "link") } } }, /jobs a and b store archives named .* in the same place/],
    // A server's directory: the same whoever logs in and however its path is written; another host is another place.
    [
      { a: { destination: sftpAt("u", "/srv/db") }, b: { destination: sftpAt("v", "/srv/./db/") } },
      /jobs a and b store archives named .* in the same place/,
    ],
    [
      { a: { destination: sftpAt("u", "/srv/db") }, b: { destination: { ...sftpAt("u", "/srv/db"), host: "h2" } } },
      /^(?![\s\S]*same place)/,
    ],
    [{ a: { source: { timeout: "soon" } } }, /jobs\.a: source\.timeout: /],
    [[], /jobs: is empty/],
    [
      { a: { destination: { type: "sftp", host: "h", user: "u", key_file: "/k", known_hosts_file: "/kh", path: "/p" } }, b: {} },
      /^(?![\s\S]*unknown key)/,
    ],
  ];
  await Deno.mkdir(join(root, "dest"));
  await Deno.symlink(join(root, "dest"), join(root, "link"));
  try {
    for (const [jobs, re] of cases) {
      await Deno.writeTextFile(cfg, stringify({ ...base, jobs }), { mode: 0o600 });
      const r = await runCli(["list", "-c", cfg, "--job", "a"]);
      assert.match(r.stderr, re, JSON.stringify(jobs));
      if (!String(re).includes("?!")) assert.equal(r.code, EXIT.CONFIG, r.stderr);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("SIGKILL during a later job: the jobs already finished keep their history lines (each is written when its job ends)", async () => {
  let stalled = false;
  const src = startHttpsSource(cert, {
    "/shop.zip": serveBytes(makeZip([{ name: "dump.sql", data: sqlDump(20_000, { seed: 1 }) }])),
    // wiki's export never comes: the run hangs in its fetch until it is killed.
    "/wiki.zip": () => (stalled = true, new Response(new ReadableStream({ start() {} }), { headers: { "content-length": "999999" } })),
  });
  const root = await Deno.makeTempDir({ prefix: "archivist-jobskill-" });
  try {
    const cfgPath = join(root, "archive.yaml");
    await Deno.writeTextFile(
      cfgPath,
      stringify({
        state_dir: join(root, "state"),
        work_dir: join(root, "work"),
        log: { file: join(root, "archivist.log") },
        source: { entry: "dump.sql", ca_file: cert.caFile, retries: 0 },
        check: { expect_trailer: "-- Dump completed" },
        archive: { timezone: "UTC", name: "{job}-{YYYY}{MM}{DD}.tgz" },
        destination: { type: "local", path: join(root, "dest"), create_dirs: true },
        jobs: {
          shop: { source: { url: src.url("/shop.zip") } },
          blog: { source: { url: src.url("/missing.zip") } },
          wiki: { source: { url: src.url("/wiki.zip") } },
        },
      }),
      { mode: 0o600 },
    );
    const child = spawnCli(["run", "-c", cfgPath], { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" });
    await waitFor(() => stalled, "the run reached wiki's fetch");
    child.kill("SIGKILL");
    await child.output();
    const lines = historyRuns(join(root, "state", "history.jsonl"));
    assert.deepEqual(lines.map((l) => [l.job, l.status, l.exitCode]), [["shop", "ok", 0], ["blog", "failed", EXIT.FETCH]]);
    const h = await runCli(["history", "--job", "blog", "-c", cfgPath]);
    assert.match(h.stdout, /FAILED +exit 20 .*fetch: HTTP 404/);
  } finally {
    await src.close();
    await Deno.remove(root, { recursive: true });
  }
});
