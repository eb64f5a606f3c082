/**
 * The nightly cycle end to end: the CLI as a subprocess against Deno's HTTPS server on 127.0.0.1 with a generated
 * certificate, into a directory destination. Every bad input gets its own case asserting message and exit code.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { historyRuns, ROOT, runCli, type Sandbox, spawnCli, waitFor } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";
import { withSource } from "./helpers/source.ts";

const DUMP = sqlDump(300_000);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);

function ls(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

function history(sb: Sandbox): any[] {
  return historyRuns(sb.historyFile);
}

Deno.test("a first run archives the dump as a dated .tgz with a sha256sum sidecar, logs and records it", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ls(sb.dest), ["20261122.tgz", "20261122.tgz.sha256"]);
    // sha256sum -c accepts the sidecar; GNU tar lists the dump under its original name with the right size.
    assert.match(await sh("sha256sum", ["-c", "20261122.tgz.sha256"], { cwd: sb.dest }), /20261122\.tgz: OK/);
    const listing = await sh("tar", ["tvzf", join(sb.dest, "20261122.tgz")]);
    assert.match(listing, new RegExp(`\\s${DUMP.length}\\s.*dump\\.sql`));
    const extracted = await Deno.makeTempDir();
    await sh("tar", ["xzf", join(sb.dest, "20261122.tgz"), "-C", extracted]);
    assert.deepEqual(await Deno.readFile(join(extracted, "dump.sql")), DUMP);
    // Each step named in the log; the history line has the archive and every step.
    const log = await Deno.readTextFile(sb.logFile);
    for (const step of ["fetch", "unzip", "check", "compare", "pack", "store", "state", "retention"]) {
      assert.match(log, new RegExp(`\\] ${step}: `));
    }
    assert.match(log, /using .*archive\.yaml \(--config\)/);
    const [h] = history(sb);
    assert.equal(h.status, "ok");
    assert.equal(h.exitCode, 0);
    assert.equal(h.archive.name, "20261122.tgz");
    assert.equal(h.dump.size, DUMP.length);
    assert.deepEqual(h.steps.map((s: any) => s.step), [
      "lock",
      "fetch",
      "unzip",
      "check",
      "compare",
      "pack",
      "store",
      "state",
      "retention",
    ]);
    // Nothing left behind in work_dir; the lock is released.
    assert.deepEqual(ls(join(sb.root, "work")), []);
    assert.equal(Deno.readTextFileSync(join(sb.stateDir, "testjob.lock")), "", "the lock file is kept, empty: released");
  });
});

Deno.test("an unchanged dump is skipped with a warning (exit 1); a changed one is archived; same day keeps both", async () => {
  let body = ZIP;
  await withSource({ routes: { "/dump.zip": () => new Response(body.slice()) } }, async (sb) => {
    const env = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };
    assert.equal((await runCli(["run", "-c", sb.configPath], { env })).code, 0);
    const again = await runCli(["run", "-c", sb.configPath], { env });
    assert.equal(again.code, EXIT.WARNING);
    assert.match(again.stderr, /identical to the one archived as 20261122\.tgz/);
    assert.deepEqual(ls(sb.dest), ["20261122.tgz", "20261122.tgz.sha256"]);
    // New content on the same day: the first archive is kept, the new one gets -2.
    body = makeZip([{ name: "dump.sql", data: sqlDump(300_000, { seed: 7 }) }]);
    const changed = await runCli(["run", "-c", sb.configPath], { env });
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /already exists .* with different content.*: keeping it, storing this one as 20261122-2\.tgz/);
    assert.deepEqual(ls(sb.dest), ["20261122-2.tgz", "20261122-2.tgz.sha256", "20261122.tgz", "20261122.tgz.sha256"]);
    assert.match(await sh("sha256sum", ["-c", "20261122-2.tgz.sha256"], { cwd: sb.dest }), /OK/);
    // on_unchanged: fail turns the unchanged dump into exit 23.
    await sb.writeConfig({ check: { on_unchanged: "fail" } });
    const fail = await runCli(["run", "-c", sb.configPath], { env });
    assert.equal(fail.code, EXIT.COMPARE);
    assert.match(fail.stderr, /compare: FAILED: the dump is identical/);
  });
});

Deno.test("source failures: each gets its own message and exit code 20", async (t) => {
  const cases: Array<[string, Parameters<typeof startHttpsSource>[1], RegExp]> = [
    ["404", {}, /HTTP 404 Not Found from 127\.0\.0\.1:\d+ for \/dump\.zip[\s\S]*hint: check source\.url/],
    ["HTML page with 200", {
      "/dump.zip": () => new Response("<!DOCTYPE html><html>Please log in</html>", { headers: { "content-type": "text/html" } }),
    }, /answered 200 but the body is not a zip \(Content-Type: text\/html; it starts with "<!DOCTYPE html><html>Please log in/],
    ["empty 200", { "/dump.zip": () => new Response("") }, /answered 200 with an empty body: not a zip/],
    [
      "500 every time",
      { "/dump.zip": () => new Response("boom", { status: 500 }) },
      /HTTP 500 Internal Server Error .* \(after 3 attempts\)/,
    ],
    ["401", { "/dump.zip": () => new Response("no", { status: 401 }) }, /HTTP 401 [\s\S]*hint: .*source\.auth/],
  ];
  for (const [name, routes, re] of cases) {
    await t.step(name, async () => {
      await withSource({ routes: routes }, async (sb, src) => {
        const r = await runCli(["run", "-c", sb.configPath]);
        assert.equal(r.code, EXIT.FETCH, r.stderr);
        assert.match(r.stderr, re);
        assert.match(await Deno.readTextFile(sb.logFile), /ERROR .* fetch: FAILED: /);
        if (name === "404" || name === "401") assert.equal(src.hits.get("/dump.zip"), 1, "4xx is not retried");
        assert.deepEqual(ls(sb.dest), []);
        assert.equal(history(sb)[0].error.step, "fetch");
      });
    });
  }
});

Deno.test("a 500 then a 200 is retried and archived", async () => {
  await withSource(
    { routes: { "/dump.zip": (_r, n) => (n === 1 ? new Response("busy", { status: 503 }) : new Response(ZIP.slice())) } },
    async (sb, src) => {
      const r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(src.hits.get("/dump.zip"), 2);
      assert.match(r.stderr, /attempt 1\/3 failed: HTTP 503 .* retrying in 50ms/);
      assert.match(r.stderr, /after 2 attempts/);
    },
  );
});

Deno.test("a body cut short of its Content-Length is a truncated download", async () => {
  const route = () => {
    const half = ZIP.slice(0, ZIP.length >> 1);
    const body = new ReadableStream({
      start(c) {
        c.enqueue(half);
        setTimeout(() => c.error(new Error("cut")), 100);
      },
    });
    return new Response(body, { headers: { "content-length": String(ZIP.length) } });
  };
  await withSource({ routes: { "/dump.zip": route } }, async (sb, src) => {
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH, r.stderr);
    assert.match(r.stderr, /fetch: FAILED: (truncated download|connection lost)/);
    assert.equal(src.hits.get("/dump.zip"), 3, "a truncated download is retried");
  });
});

Deno.test("TLS: an untrusted certificate is refused and names source.ca_file", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await sb.writeConfig({ source: { ca_file: undefined } });
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH);
    assert.match(
      r.stderr,
      /TLS: the certificate of 127\.0\.0\.1:\d+ is signed by an issuer this machine does not trust \(hint: .*set source\.ca_file/,
    );
  });
});

Deno.test("DNS failure and refused connection say so", async () => {
  await withSource({ routes: {} }, async (sb) => {
    await sb.writeConfig({ source: { url: "https://no-such-host.invalid/dump.zip", retries: 0 } });
    let r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH);
    assert.match(r.stderr, /cannot resolve host no-such-host\.invalid[\s\S]*check source\.url and DNS/);
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (l.addr as Deno.NetAddr).port;
    l.close();
    await sb.writeConfig({ source: { url: `https://127.0.0.1:${closedPort}/dump.zip`, retries: 0 } });
    r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH);
    assert.match(r.stderr, new RegExp(`connection refused by 127\\.0\\.0\\.1:${closedPort}`));
  });
});

Deno.test("zip failures: corrupt zip, missing entry, unsupported method, zip bomb → exit 21", async (t) => {
  const corrupt = ZIP.slice();
  corrupt[100] ^= 0xff; // inside the deflate data
  const bomb = makeZip([{ name: "dump.sql", data: new Uint8Array(5_000_000).fill(0x41) }]);
  const method12 = makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]);
  new DataView(method12.buffer).setUint16(8, 12, true); // local header
  const cdOff = method12.length - 22 - (46 + 8);
  new DataView(method12.buffer).setUint16(cdOff + 10, 12, true); // central directory
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["truncated zip (no central directory)", ZIP.slice(0, ZIP.length - 30), /end of central directory not found: the zip is truncated/],
    ["corrupt deflate data", corrupt, /(compressed data of dump\.sql is corrupt|CRC-32 mismatch for dump\.sql|inflated to \d+ bytes)/],
    ["missing entry", makeZip([{ name: "other.sql", data: DUMP }]), /entry "dump\.sql" not found in the zip \(it holds: other\.sql\)/],
    ["unsupported method", method12, /compression method 12 \(bzip2\): only stored \(0\) and deflate \(8\)/],
    ["zip bomb", bomb, /compression ratio of \d+:1, above check\.max_ratio \(1000\)/],
  ];
  for (const [name, body, re] of cases) {
    await t.step(name, async () => {
      await withSource({ routes: { "/dump.zip": serveBytes(body) } }, async (sb) => {
        const r = await runCli(["run", "-c", sb.configPath]);
        assert.equal(r.code, EXIT.UNZIP, r.stderr);
        assert.match(r.stderr, re);
        assert.deepEqual(ls(sb.dest), []);
        assert.deepEqual(ls(join(sb.root, "work")), [], "temp files removed");
      });
    });
  }
});

Deno.test("dump checks: empty dump and missing trailer → exit 22", async (t) => {
  await t.step("empty", async () => {
    await withSource({ routes: { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: new Uint8Array(0) }])) } }, async (sb) => {
      const r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.CHECK, r.stderr);
      assert.match(r.stderr, /check: FAILED: the dump dump\.sql is empty \(0 bytes\)/);
    });
  });
  await t.step("missing trailer", async () => {
    await withSource(
      { routes: { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: sqlDump(50_000, { trailer: false }) }])) } },
      async (sb) => {
        const r = await runCli(["run", "-c", sb.configPath]);
        assert.equal(r.code, EXIT.CHECK, r.stderr);
        assert.match(r.stderr, /does not end with check\.expect_trailer \/-- Dump completed\/: it is probably truncated/);
        assert.deepEqual(ls(sb.dest), []);
      },
    );
  });
});

Deno.test("config: unreadable file, invalid key, world-readable inline secret → exit 10 naming file and key", async () => {
  await withSource({ routes: {} }, async (sb) => {
    let r = await runCli(["run", "-c", join(sb.root, "nope.yaml")]);
    assert.equal(r.code, EXIT.CONFIG);
    assert.match(r.stderr, /config file .*nope\.yaml not found/);

    await sb.writeConfig({ source: { urll: "x" } });
    r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.CONFIG);
    assert.match(r.stderr, /archive\.yaml: source\.urll: unknown key; did you mean 'url'\?/);

    await sb.writeConfig({ source: { url: "http://example.org/x.zip" } });
    r = await runCli(["run", "-c", sb.configPath]);
    assert.match(r.stderr, /source\.url: expected an https:\/\/ URL, got http:/);

    await sb.writeConfig({ source: { auth: { type: "basic", username: "u", password: "s3cret-pw" } } }, 0o644);
    r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.CONFIG);
    assert.match(r.stderr, /source\.auth\.password: inline secret in a config readable by group or others \(mode 0644\)[\s\S]*chmod 600/);
    assert.doesNotMatch(r.stderr, /s3cret-pw/);

    if (Deno.uid() !== 0) {
      await sb.writeConfig({}, 0o000);
      r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.CONFIG);
      assert.match(r.stderr, /cannot read config file .*: permission denied/);
    } else {
      // root reads anything: use a directory to get an unreadable "file".
      r = await runCli(["run", "-c", sb.root]);
      assert.equal(r.code, EXIT.CONFIG);
      assert.match(r.stderr, /config file .* is a directory|cannot read config file/);
    }
  });
});

Deno.test("basic auth reaches the server; the password is in no log, history or stderr", async () => {
  const pw = "pw-Zq81-never-logged";
  let seen = "";
  await withSource({
    routes: {
      "/dump.zip": (req) => {
        seen = req.headers.get("authorization") ?? "";
        return seen === "Basic " + btoa(`backup:${pw}`) ? new Response(ZIP.slice()) : new Response("no", { status: 401 });
      },
    },
  }, async (sb) => {
    const pwFile = join(sb.root, "pw");
    await Deno.writeTextFile(pwFile, pw + "\n");
    await sb.writeConfig({ source: { auth: { type: "basic", username: "backup", password_file: pwFile } } });
    const r = await runCli(["run", "-c", sb.configPath, "--verbose"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(seen.startsWith("Basic "));
    for (const text of [r.stderr, r.stdout, await Deno.readTextFile(sb.logFile), await Deno.readTextFile(sb.historyFile)]) {
      assert.ok(!text.includes(pw));
    }
  });
});

Deno.test("a failed store leaves the state file unchanged, so the next night archives the same dump", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await sb.writeConfig({ destination: { create_dirs: false } });
    const env = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };
    const r = await runCli(["run", "-c", sb.configPath], { env });
    assert.equal(r.code, EXIT.STORE, r.stderr);
    assert.match(
      r.stderr,
      /store: FAILED: destination directory .*dest does not exist[\s\S]*create it, or set destination\.create_dirs: true/,
    );
    assert.ok(!ls(sb.stateDir).includes("testjob.state.json"), "state not advanced");
    await Deno.mkdir(sb.dest);
    const next = await runCli(["run", "-c", sb.configPath], { env });
    assert.equal(next.code, 0, "the same dump is archived once the destination is back");
    assert.deepEqual(ls(sb.dest), ["20261122.tgz", "20261122.tgz.sha256"]);
  });
});

Deno.test("require_mount refuses a directory on the root filesystem and accepts a real mount (stat only, no /proc)", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    // A directory right under / is on the root filesystem whatever the machine mounts on /tmp.
    const onRoot = `/archivist-test-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await sb.writeConfig({ destination: { path: join(onRoot, "dest"), require_mount: true } });
      const r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.STORE);
      assert.match(r.stderr, /is not on a mounted filesystem \(it is on the root filesystem\); refusing to write[\s\S]*mount the share/);
      assert.throws(() => Deno.statSync(onRoot), Deno.errors.NotFound, "nothing written to the root filesystem");
      // A real filesystem mounted there is accepted.
      await Deno.mkdir(join(onRoot, "dest"), { recursive: true });
      await sh("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", join(onRoot, "dest")]);
      try {
        const ok = await runCli(["run", "-c", sb.configPath]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(ls(join(onRoot, "dest")).filter((n) => n.endsWith(".tgz")).length, 1);
      } finally {
        await sh("umount", [join(onRoot, "dest")]);
      }
    } finally {
      await Deno.remove(onRoot, { recursive: true }).catch(() => {});
    }
  });
});

Deno.test("a second run while one is running exits at once with 'already running'; a stale lock is taken over", async () => {
  // The source holds the first run inside fetch until the second one has been tried.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  await withSource({ routes: { "/dump.zip": async () => (await gate, new Response(ZIP.slice())) } }, async (sb, src) => {
    const first = spawnCli(["run", "-c", sb.configPath]);
    await waitFor(() => src.hits.get("/dump.zip"), "the first run's download");
    const second = await runCli(["run", "-c", sb.configPath]);
    release();
    const out = await first.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(second.code, EXIT.LOCK);
    assert.match(second.stderr, /lock: FAILED: already running \(pid \d+, since 20\d\d-/);

    // A record left in the lock file by a killed run: the lock is free (the kernel released it), and the next run
    // says whose run died.
    await Deno.writeTextFile(
      join(sb.stateDir, "testjob.lock"),
      JSON.stringify({ pid: 999999, procStart: "1", since: "2026-11-21T02:30:00Z", host: Deno.hostname() }),
    );
    const third = await runCli(["run", "-c", sb.configPath]);
    assert.equal(third.code, EXIT.WARNING, third.stderr); // unchanged dump
    assert.match(third.stderr, /the previous run \(pid 999999, since 2026-11-21T02:30:00Z\) died without releasing the lock/);
  });
});

Deno.test("SIGTERM during a run stops it, records and reports the interruption, removes temp files and the lock (exit 130)", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const pings: { path: string; body: string }[] = [];
  const ac = new AbortController();
  const pingServer = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} }, async (req) => {
    pings.push({ path: new URL(req.url).pathname, body: await req.text() });
    return new Response("OK");
  });
  try {
    await withSource({ routes: { "/dump.zip": async () => (await gate, new Response(ZIP.slice())) } }, async (sb, src) => {
      await sb.writeConfig({ monitor: { ping_url: `http://127.0.0.1:${(pingServer.addr as Deno.NetAddr).port}/hc` } });
      const child = spawnCli(["run", "-c", sb.configPath]);
      await waitFor(() => src.hits.get("/dump.zip"), "the run's download");
      assert.ok(ls(join(sb.root, "work")).length === 1, "a work dir exists while running");
      child.kill("SIGTERM");
      const out = await child.output();
      release();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, stderr);
      assert.match(stderr, /run: interrupted by SIGTERM: stopping/);
      assert.match(stderr, /fetch: FAILED: interrupted by SIGTERM during fetch/);
      assert.deepEqual(ls(join(sb.root, "work")), []);
      assert.equal(Deno.readTextFileSync(join(sb.stateDir, "testjob.lock")), "", "lock released (the file stays, empty)");
      const h = history(sb)[0];
      assert.equal(h.error.code, "interrupted");
      assert.equal(h.error.step, "fetch");
      assert.equal(h.exitCode, 130);
      assert.deepEqual(pings.map((p) => p.path), ["/hc/start", "/hc/fail"], "the monitoring hears about it");
      assert.match(pings[1].body, /^FAILED: fetch: interrupted by SIGTERM during fetch/);
    });
  } finally {
    ac.abort();
    await pingServer.finished;
  }
});

Deno.test("history shows runs newest last, and --json is machine-readable", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await runCli(["run", "-c", sb.configPath]);
    await runCli(["run", "-c", sb.configPath]);
    const h = await runCli(["history", "-c", sb.configPath]);
    assert.equal(h.code, 0);
    const lines = h.stdout.trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0], /OK +exit 0 .*\.tgz/);
    assert.match(lines[1], /WARNING exit 1 .*identical/);
    const j = JSON.parse((await runCli(["history", "-c", sb.configPath, "--json", "--last", "1"])).stdout);
    assert.equal(j.length, 1);
    assert.equal(j[0].status, "warning");
    // docs/SCRIPTING.md documents every field a history line has.
    const all = JSON.parse((await runCli(["history", "-c", sb.configPath, "--json"])).stdout);
    const doc = Deno.readTextFileSync(join(ROOT, "docs", "SCRIPTING.md"));
    for (const k of new Set(all.flatMap((r: Record<string, unknown>) => Object.keys(r)))) {
      assert.ok(doc.includes(`\`${k}\``), `docs/SCRIPTING.md documents the history field ${k}`);
    }
  });
});

Deno.test("--help lists every exit code; --version prints the version; a bad flag is exit 2", async () => {
  const h = await runCli(["--help"]);
  assert.equal(h.code, 0);
  for (const [code] of Object.entries(EXIT)) assert.ok(h.stdout.includes(String(EXIT[code as keyof typeof EXIT])), code);
  assert.match((await runCli(["--version"])).stdout, /^archivist \d+\.\d+\.\d+/);
  const bad = await runCli(["run", "--nope"]);
  assert.equal(bad.code, EXIT.USAGE);
});

Deno.test("a corrupt state file is exit 32 with the fix, never a silent reset", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await Deno.mkdir(sb.stateDir, { recursive: true });
    await Deno.writeTextFile(join(sb.stateDir, "testjob.state.json"), "{not json");
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.STATE, r.stderr);
    assert.match(r.stderr, /state: FAILED: state file .*testjob\.state\.json is corrupt[\s\S]*hint: move it away \(mv /);
    assert.deepEqual(ls(sb.dest), [], "nothing archived on a state we cannot read");
  });
});

Deno.test("an unwritable log.file falls back to <state_dir>/archivist.log with a warning", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    const blocker = join(sb.root, "not-a-dir");
    await Deno.writeTextFile(blocker, "a file where the log directory should be");
    await sb.writeConfig({ log: { file: join(blocker, "archivist.log") } });
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARN +log: cannot write log file .*not-a-dir\/archivist\.log .*: logging to .*state\/archivist\.log instead/);
    assert.match(await Deno.readTextFile(join(sb.stateDir, "archivist.log")), /run: OK: 20\d{6}\.tgz/);
  });
});

Deno.test("upload temp files left by an interrupted run (NAME.part, and .NAME.part of earlier versions) are removed, never taken for archives", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await Deno.mkdir(sb.dest, { recursive: true });
    await Deno.writeTextFile(join(sb.dest, ".20261121.tgz.part"), "half an upload");
    await Deno.writeTextFile(join(sb.dest, "20261120.tgz.sha256.part"), "half");
    await Deno.writeTextFile(join(sb.dest, ".notes.part"), "not ours");
    await Deno.writeTextFile(join(sb.dest, "notes.part"), "not ours");
    const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARN +store: removed \.20261121\.tgz\.part \(14 B\), left by an interrupted upload/);
    assert.match(r.stderr, /WARN +store: removed 20261120\.tgz\.sha256\.part \(4 B\), left by an interrupted upload/);
    assert.deepEqual(ls(sb.dest), [".notes.part", "20261122.tgz", "20261122.tgz.sha256", "notes.part"]);
  });
});

Deno.test("redirects: followed to https (auth only to the original host), refused to plain http", async () => {
  await withSource({
    routes: {
      "/dump.zip": () => new Response(null, { status: 302, headers: { location: "/real/dump.zip" } }),
      "/real/dump.zip": serveBytes(ZIP),
      "/downgrade.zip": () => new Response(null, { status: 301, headers: { location: "http://127.0.0.1:1/dump.zip" } }),
    },
  }, async (sb, src) => {
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(src.hits.get("/real/dump.zip"), 1);
    await sb.writeConfig({ source: { url: src.url("/downgrade.zip") } });
    const d = await runCli(["run", "-c", sb.configPath]);
    assert.equal(d.code, EXIT.FETCH);
    assert.match(d.stderr, /redirected to http:\/\/127\.0\.0\.1:1\/dump\.zip, which is not HTTPS: refused/);
  });
});

Deno.test("size guards: a zip above source.max_size and a dump below check.min_size are refused", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await sb.writeConfig({ source: { max_size: "10KiB" } });
    let r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH);
    assert.match(r.stderr, /the server announces 47\.\d KiB, above source\.max_size \(10\.0 KiB\)/);
    await sb.writeConfig({ check: { min_size: "1MB" } });
    r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.CHECK);
    assert.match(r.stderr, /the dump dump\.sql is 293\.1 KiB, below check\.min_size \(976\.6 KiB\)/);
  });
});

Deno.test("a full destination disk (a real 64 KiB tmpfs mount) is exit 30 'disk full', leaves no partial file and no state", async () => {
  const big = makeZip([{ name: "dump.sql", data: sqlDump(900_000, { seed: 5 }) }]);
  await withSource({ routes: { "/dump.zip": serveBytes(big) } }, async (sb) => {
    await Deno.mkdir(sb.dest, { recursive: true });
    const m = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", sb.dest], stderr: "piped" }).output();
    assert.ok(m.success, `mounting a tmpfs (the suite runs as root): ${new TextDecoder().decode(m.stderr)}`);
    try {
      // require_mount is satisfied by the real mount point.
      await sb.writeConfig({ destination: { require_mount: true } });
      const r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.STORE, r.stderr);
      assert.match(
        r.stderr,
        /store: FAILED: cannot write \.?20\d{6}\.tgz(\.part)?: no space left on the destination .*dest \(.*\) \(hint: free space on the destination/,
      );
      assert.deepEqual(ls(sb.dest), [], "the partial upload was removed");
      assert.ok(!ls(sb.stateDir).includes("testjob.state.json"));
    } finally {
      await new Deno.Command("umount", { args: [sb.dest] }).output();
    }
  });
});
