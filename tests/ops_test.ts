/**
 * Operations: install.sh into a temporary --destdir (the bundle + launcher path, since deno compile cannot fetch
 * its runtime offline), `archivist verify` passing and failing on purpose, restore, the heartbeat ping and the
 * Prometheus textfile.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCert, makeZip, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { type Route, startHttpsSource } from "../tools/https_source.ts";
import { ROOT, runCli, type Sandbox, sandbox } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";
import { DENO_PERMISSIONS } from "../src/permissions.ts";
import { freePort } from "./servers/common.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-opscert-" }));
const DUMP = sqlDump(120_000);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);
const NOW = "2026-11-22T02:30:00Z";

/** Serves bytes with HEAD and Range support, like a real web server. */
function rangeRoute(body: Uint8Array): Route {
  return (req) => {
    const headers: Record<string, string> = { "content-type": "application/zip", "accept-ranges": "bytes" };
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
    if (m) {
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.length - 1)];
      return new Response(req.method === "HEAD" ? null : body.slice(a, b + 1), {
        status: 206,
        headers: { ...headers, "content-range": `bytes ${a}-${b}/${body.length}`, "content-length": String(b - a + 1) },
      });
    }
    return new Response(req.method === "HEAD" ? null : body.slice(), { headers: { ...headers, "content-length": String(body.length) } });
  };
}

async function bash(args: string[], env: Record<string, string> = {}) {
  const r = await new Deno.Command("bash", { args, env, stdout: "piped", stderr: "piped" }).output();
  const td = new TextDecoder();
  return { code: r.code, out: td.decode(r.stdout) + td.decode(r.stderr) };
}

Deno.test("install.sh into a --destdir: files, modes, cron line, launcher, idempotence, upgrade, uninstall", async (t) => {
  const dd = await Deno.makeTempDir({ prefix: "archivist-install-" });
  const install = join(ROOT, "install.sh");
  const mode = (p: string) => (Deno.statSync(join(dd, p)).mode! & 0o777).toString(8);
  try {
    await t.step("first install (bundle + launcher, since compile is off)", async () => {
      const r = await bash([install, "--destdir", dd, "--no-compile", "--schedule", "15 3 * * *"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /installed as \/usr\/local\/bin\/archivist \(bundle\)/);
      assert.match(r.out, /archivist verify:\nARCHIVIST (CRITICAL|WARNING) - /, "the last step runs verify and shows it");
      assert.equal(mode("etc/archivist/archive.yaml"), "600");
      assert.equal(mode("etc/archivist"), "750");
      assert.equal(mode("var/log/archivist"), "750");
      assert.equal(mode("var/lib/archivist"), "750");
      assert.equal(mode("usr/local/bin/archivist"), "755");
      assert.equal(mode("etc/cron.d/archivist"), "644");
      const cron = await Deno.readTextFile(join(dd, "etc/cron.d/archivist"));
      const lines = cron.split("\n").filter((l) => l && !l.startsWith("#") && !/^[A-Z]+=/.test(l));
      assert.equal(lines.length, 1);
      assert.match(
        lines[0],
        /^15 3 \* \* \* root \/usr\/local\/bin\/archivist run --quiet -c \/etc\/archivist\/archive\.yaml >>\/var\/log\/archivist\/cron\.log 2>&1$/,
      );
      assert.match(cron, /^PATH=\/usr\/local\/bin:/m);
      const launcher = await Deno.readTextFile(join(dd, "usr/local/bin/archivist"));
      assert.match(launcher, /^#!\/bin\/sh\n/);
      assert.match(
        launcher,
        new RegExp(`exec /\\S+deno run ${DENO_PERMISSIONS.join(" ")} .* "\\$here/\\.\\./lib/archivist/archivist\\.js" "\\$@"`),
      );
      assert.match(
        await Deno.readTextFile(join(dd, "etc/logrotate.d/archivist")),
        /\/var\/log\/archivist\/\*\.log \{[\s\S]*rotate 12[\s\S]*\}/,
      );
      // The installed bundle runs on its own, from any directory.
      const v = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "--quiet", "--no-config", join(dd, "usr/local/lib/archivist/archivist.js"), "--version"],
        cwd: "/",
      }).output();
      assert.match(new TextDecoder().decode(v.stdout), /^archivist \d+\.\d+\.\d+/);
    });
    await t.step("second run changes nothing", async () => {
      const r = await bash([install, "--destdir", dd, "--no-compile", "--schedule", "15 3 * * *", "--no-verify"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /nothing changed \(already installed\)/);
    });
    await t.step("upgrade keeps an edited config; the new example goes beside it", async () => {
      await Deno.writeTextFile(join(dd, "etc/archivist/archive.yaml"), "name: mine\n");
      await Deno.writeTextFile(join(dd, "etc/archivist/archive.yaml.example"), "old example\n");
      const r = await bash([install, "--destdir", dd, "--no-compile", "--no-verify"]);
      assert.equal(r.code, 0, r.out);
      assert.equal(await Deno.readTextFile(join(dd, "etc/archivist/archive.yaml")), "name: mine\n");
      assert.equal(
        await Deno.readTextFile(join(dd, "etc/archivist/archive.yaml.example")),
        await Deno.readTextFile(join(ROOT, "archive.yaml.example")),
      );
      assert.match(r.out, /installed \/etc\/cron\.d\/archivist/, "the schedule went back to the default");
    });
    await t.step("--systemd writes a service and a Persistent timer instead of the cron entry", async () => {
      const r = await bash([install, "--destdir", dd, "--no-compile", "--no-verify", "--systemd", "--schedule", "5 1 * * *"]);
      assert.equal(r.code, 0, r.out);
      assert.throws(() => Deno.statSync(join(dd, "etc/cron.d/archivist")));
      const timer = await Deno.readTextFile(join(dd, "etc/systemd/system/archivist.timer"));
      assert.match(timer, /OnCalendar=\*-\*-\* 01:05:00/);
      assert.match(timer, /Persistent=true/);
      assert.match(timer, /RandomizedDelaySec=/);
      assert.match(
        await Deno.readTextFile(join(dd, "etc/systemd/system/archivist.service")),
        /ExecStart=\/usr\/local\/bin\/archivist run --quiet -c \/etc\/archivist\/archive\.yaml/,
      );
    });
    await t.step("bad input: a wrong schedule or an unknown user stops with a message", async () => {
      let r = await bash([install, "--destdir", dd, "--schedule", "every night"]);
      assert.equal(r.code, 1);
      assert.match(r.out, /--schedule must be five cron fields/);
      r = await bash([install, "--destdir", dd, "--user", "no-such-user-xyz"]);
      assert.equal(r.code, 1);
      assert.match(r.out, /user no-such-user-xyz does not exist/);
    });
    await t.step("--uninstall keeps config, logs and state; --purge removes them", async () => {
      let r = await bash([install, "--destdir", dd, "--uninstall"]);
      assert.equal(r.code, 0, r.out);
      for (
        const p of ["usr/local/bin/archivist", "usr/local/lib/archivist", "etc/systemd/system/archivist.timer", "etc/logrotate.d/archivist"]
      ) assert.throws(() => Deno.statSync(join(dd, p)), p);
      assert.ok(Deno.statSync(join(dd, "etc/archivist/archive.yaml")).isFile);
      assert.ok(Deno.statSync(join(dd, "var/lib/archivist")).isDirectory);
      r = await bash([install, "--destdir", dd, "--uninstall", "--purge"]);
      assert.equal(r.code, 0, r.out);
      for (const p of ["etc/archivist", "var/lib/archivist", "var/log/archivist"]) assert.throws(() => Deno.statSync(join(dd, p)), p);
    });
  } finally {
    await Deno.remove(dd, { recursive: true });
  }
});

async function withSandbox(
  route: Route | undefined,
  fn: (sb: Sandbox, cron: string) => Promise<void>,
  extra: Record<string, unknown> = {},
) {
  const src = startHttpsSource(cert, route ? { "/dump.zip": route } : {});
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, extra);
  const cron = join(sb.root, "cron.archivist");
  await Deno.writeTextFile(
    cron,
    `30 2 * * * root /usr/local/bin/archivist run --quiet -c ${sb.configPath} >>/var/log/archivist/cron.log 2>&1\n`,
  );
  await sb.writeConfig({ verify: { schedule_file: cron } });
  try {
    await fn(sb, cron);
  } finally {
    await src.close();
    await sb.cleanup();
  }
}

Deno.test("verify: every check passes after a good run (exit 0), and --json is machine-readable", async () => {
  await withSandbox(rangeRoute(ZIP), async (sb) => {
    assert.equal((await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } })).code, 0);
    const r = await runCli(["--verify", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T09:00:00Z" } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines[0], /^ARCHIVIST OK - \d+ checks passed$/);
    for (
      const re of [
        /✓ config +.* is valid/,
        /✓ source +https:\/\/127\.0\.0\.1:\d+\/dump\.zip reachable \(HTTP 200, TLS verified/,
        /✓ source +entry dump\.sql present/,
        /✓ work_dir +.* free/,
        /✓ destination +.*write \+ rename \+ delete of a probe file work/,
        /✓ schedule +.*30 2 \* \* \* as root/,
        /✓ last run +OK 6h 30m ago: 20261122\.tgz/,
      ]
    ) {
      assert.match(r.stdout, re);
    }
    assert.deepEqual([...Deno.readDirSync(sb.dest)].map((e) => e.name).filter((n) => n.includes("probe")), [], "the probe file is gone");
    const j = JSON.parse(
      (await runCli(["verify", "--json", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T09:00:00Z" } })).stdout,
    );
    assert.equal(j.status, "OK");
    assert.equal(j.code, 0);
    assert.ok(j.checks.every((c: { status: string }) => c.status === "ok"));
  });
});

Deno.test("verify: each check fails on purpose with its line, hint and Nagios code", async (t) => {
  const later = { ARCHIVIST_NOW: "2026-11-22T09:00:00Z" };
  await t.step("source down, destination missing: CRITICAL (2)", async () => {
    await withSandbox(undefined, async (sb) => {
      const closed = freePort();
      await sb.writeConfig({
        source: { url: `https://127.0.0.1:${closed}/dump.zip` },
        destination: { create_dirs: false },
        verify: { schedule_file: join(sb.root, "cron.archivist") },
      });
      const r = await runCli(["verify", "-c", sb.configPath], { env: later });
      assert.equal(r.code, 2, r.stdout);
      assert.match(
        r.stdout,
        /^ARCHIVIST CRITICAL - source: connection refused by 127\.0\.0\.1:\d+; destination: destination directory .* does not exist/,
      );
      assert.match(r.stdout, /✗ source +connection refused[\s\S]*hint: is the export server up/);
      assert.match(
        r.stdout,
        /✗ destination +destination directory .* does not exist\n +hint: create it, or set destination\.create_dirs: true/,
      );
      assert.match(r.stdout, /! last run +no run recorded/);
    });
  });
  await t.step("the entry is missing from the zip (read with byte ranges): CRITICAL", async () => {
    await withSandbox(rangeRoute(makeZip([{ name: "other.sql", data: DUMP }])), async (sb) => {
      const r = await runCli(["verify", "-c", sb.configPath], { env: later });
      assert.equal(r.code, 2);
      assert.match(r.stdout, /✗ source +entry "dump\.sql" not found in the zip \(it holds: other\.sql\)/);
    });
  });
  await t.step("no schedule, config readable by others: WARNING (1)", async () => {
    await withSandbox(rangeRoute(ZIP), async (sb, cron) => {
      await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } });
      await Deno.remove(cron);
      await Deno.chmod(sb.configPath, 0o644);
      const r = await runCli(["verify", "-c", sb.configPath], { env: later });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^ARCHIVIST WARNING - /);
      assert.match(r.stdout, /! config +.* is readable by group or others \(mode 0644\)\n +hint: chmod 600/);
      assert.match(r.stdout, /! schedule +no cron entry .* and no systemd timer/);
    });
  });
  await t.step("the last run is older than verify.max_age: CRITICAL (the night the job never ran)", async () => {
    await withSandbox(rangeRoute(ZIP), async (sb) => {
      await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } });
      const r = await runCli(["verify", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-24T02:30:00Z" } });
      assert.equal(r.code, 2);
      assert.match(r.stdout, /✗ last run +the last run was 2d ago .* more than verify\.max_age \(1d 2h\)/);
    });
  });
  await t.step("the last run failed: CRITICAL with its cause", async () => {
    await withSandbox((_r) => new Response("no", { status: 404 }), async (sb) => {
      await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } });
      const r = await runCli(["verify", "-c", sb.configPath], { env: later });
      assert.equal(r.code, 2);
      assert.match(r.stdout, /✗ last run +FAILED 6h 30m ago at fetch: HTTP 404/);
    });
  });
  await t.step("an invalid config: CRITICAL naming the key, exit 2 (not 10)", async () => {
    await withSandbox(rangeRoute(ZIP), async (sb) => {
      await sb.writeConfig({ retention: { max_agee: "1d" } });
      const r = await runCli(["verify", "-c", sb.configPath]);
      assert.equal(r.code, 2);
      assert.match(r.stdout, /^ARCHIVIST CRITICAL - config: .*retention\.max_agee: unknown key; did you mean 'max_age'\?/);
    });
  });
});

Deno.test("restore: round trip, by name, tampered archive refused, nothing overwritten or half-written", async () => {
  await withSandbox(rangeRoute(ZIP), async (sb) => {
    assert.equal((await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } })).code, 0);
    const to = join(sb.root, "restored");
    let r = await runCli(["restore", "-c", sb.configPath, "--to", to]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), join(to, "dump.sql"));
    assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
    assert.match(r.stderr, /20261122\.tgz: sha256 [0-9a-f]{64} matches its sidecar/);

    r = await runCli(["restore", "20261122.tgz", "-c", sb.configPath, "--to", to]);
    assert.equal(r.code, EXIT.RESTORE);
    assert.match(r.stderr, /dump\.sql already exists[\s\S]*--force/);
    r = await runCli(["restore", "20261122.tgz", "--force", "-c", sb.configPath, "--to", to]);
    assert.equal(r.code, 0, r.stderr);

    r = await runCli(["restore", "20200101.tgz", "-c", sb.configPath, "--to", to]);
    assert.equal(r.code, EXIT.RESTORE);
    assert.match(r.stderr, /no archive 20200101\.tgz on /);

    // Tamper with the stored archive: one byte changed.
    const tgz = join(sb.dest, "20261122.tgz");
    const bytes = await Deno.readFile(tgz);
    bytes[bytes.length >> 1] ^= 0xff;
    await Deno.writeFile(tgz, bytes);
    const to2 = join(sb.root, "restored2");
    r = await runCli(["restore", "latest", "-c", sb.configPath, "--to", to2]);
    assert.equal(r.code, EXIT.RESTORE);
    assert.match(r.stderr, /restore: FAILED: checksum mismatch for 20261122\.tgz: sha256 [0-9a-f]{64}, the sidecar says [0-9a-f]{64}/);
    assert.deepEqual([...Deno.readDirSync(to2)], [], "nothing left in --to");
  });
});

Deno.test("heartbeat ping: /start, success and /fail with the run id and the summary; a dead ping URL is not fatal", async () => {
  const hits: { path: string; rid: string | null; method: string; body: string }[] = [];
  const ac = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} }, async (req) => {
    const u = new URL(req.url);
    hits.push({ path: u.pathname, rid: u.searchParams.get("rid"), method: req.method, body: await req.text() });
    return new Response("OK");
  });
  const port = (server.addr as Deno.NetAddr).port;
  try {
    await withSandbox(rangeRoute(ZIP), async (sb) => {
      const textfile = join(sb.root, "archivist.prom");
      await sb.writeConfig({
        monitor: { ping_url: `http://127.0.0.1:${port}/ping/abc`, prometheus_textfile: textfile },
        verify: { schedule_file: "/nonexistent" },
      });
      assert.equal((await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: NOW } })).code, 0);
      const rid = JSON.parse(Deno.readTextFileSync(sb.historyFile).trim()).runId;
      assert.deepEqual(hits.map((h) => [h.method, h.path, h.rid]), [["GET", "/ping/abc/start", rid], ["POST", "/ping/abc", rid]]);
      assert.match(hits[1].body, /^OK: 20261122\.tgz /);
      let prom = await Deno.readTextFile(textfile);
      assert.match(prom, /^archivist_last_run_timestamp_seconds\{job="testjob"\} \d+$/m);
      assert.match(prom, /^archivist_last_run_exit_code\{job="testjob"\} 0$/m);
      assert.match(prom, /^archivist_last_run_status\{job="testjob",status="ok"\} 1$/m);
      assert.match(
        prom,
        new RegExp(`^archivist_last_archive_size_bytes\\{job="testjob"\\} ${Deno.statSync(join(sb.dest, "20261122.tgz")).size}$`, "m"),
      );
      const success = /^archivist_last_success_timestamp_seconds\{job="testjob"\} (\d+)$/m.exec(prom)![1];
      assert.ok(Number(success) > 0);

      // A failing run pings /fail with the cause; the last success timestamp is kept.
      hits.length = 0;
      await sb.writeConfig({
        source: { url: sb.base.source && (sb.base.source as { url: string }).url.replace("/dump.zip", "/missing.zip") },
        monitor: { ping_url: `http://127.0.0.1:${port}/ping/abc`, prometheus_textfile: textfile },
      });
      assert.equal((await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } })).code, EXIT.FETCH);
      assert.deepEqual(hits.map((h) => h.path), ["/ping/abc/start", "/ping/abc/fail"]);
      assert.match(hits[1].body, /^FAILED: fetch: HTTP 404/);
      prom = await Deno.readTextFile(textfile);
      assert.match(prom, /^archivist_last_run_status\{job="testjob",status="failed"\} 1$/m);
      assert.match(prom, new RegExp(`^archivist_last_success_timestamp_seconds\\{job="testjob"\\} ${success}$`, "m"));
      assert.ok(![...Deno.readDirSync(sb.root)].some((e) => e.name.endsWith(".tmp")), "written atomically, no temp file left");

      // The ping service is down: the run still succeeds, the log says why.
      const dead = freePort();
      await sb.writeConfig({ monitor: { ping_url: `http://127.0.0.1:${dead}/ping/abc`, ping_timeout: "2s" } });
      await Deno.remove(join(sb.stateDir, "testjob.state.json"));
      const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-24T02:30:00Z" } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`WARN +monitor: ping /start to 127\\.0\\.0\\.1:${dead} failed`));
    });
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("install.sh tries deno compile first, and says so when it falls back to the bundle", async () => {
  const dd = await Deno.makeTempDir({ prefix: "archivist-install-compile-" });
  try {
    const r = await bash([join(ROOT, "install.sh"), "--destdir", dd, "--no-verify"]);
    assert.equal(r.code, 0, r.out);
    if (/\(binary\)/.test(r.out)) {
      // A machine that can download Deno's runtime: the compiled binary runs on its own.
      const v = await new Deno.Command(join(dd, "usr/local/bin/archivist"), { args: ["--version"] }).output();
      assert.match(new TextDecoder().decode(v.stdout), /^archivist \d/);
    } else {
      assert.match(r.out, /deno compile is not possible here \(it downloads Deno's runtime: .*\): installing the bundle and a launcher/);
      assert.match(r.out, /installed as \/usr\/local\/bin\/archivist \(bundle\)/);
    }
  } finally {
    await Deno.remove(dd, { recursive: true });
  }
});
