/**
 * Never lose or misreport an archive: each bad night provoked for real, through the CLI, against real
 * directories, a real sshd, a hanging SMTP listener, real signals and concurrent processes. Each case asserts the
 * exit code, the cause line, the history, the state and the destination's exact contents afterwards.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes } from "../tools/https_source.ts";
import { findProcess, historyRuns, processGone, runCli, type Sandbox, spawnCli, waitFor } from "./helpers/cli.ts";
import { startSshd } from "./servers/sshd.ts";
import { startVsftpd } from "./servers/vsftpd.ts";
import { EXIT } from "../src/errors.ts";
import { parseLsLine } from "../src/transports/common.ts";
import { acquireLock } from "../src/records/lock.ts";
import { testCert, withSource } from "./helpers/source.ts";

const cert: TestCert = await testCert();
const ZIP = makeZip([{ name: "dump.sql", data: sqlDump(60_000) }]);
const TRAILER = "-- Dump completed";

const at = (day: string) => ({ ARCHIVIST_NOW: `${day}T02:30:00Z` });
const compact = (day: string) => day.replaceAll("-", "");
/** `n` consecutive days from `first` ("2026-11-07"). */
function days(first: string, n: number): string[] {
  const t = Date.parse(`${first}T00:00:00Z`);
  return Array.from({ length: n }, (_, i) => new Date(t + i * 86_400_000).toISOString().slice(0, 10));
}
function ls(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}
/** Archive names with their sidecars, sorted like ls. */
function withSidecars(names: string[]): string[] {
  return names.flatMap((n) => [n, `${n}.sha256`]).sort();
}
function history(sb: Sandbox): any[] {
  return historyRuns(sb.historyFile);
}
async function nights(sb: Sandbox, list: string[]) {
  for (const d of list) {
    const r = await runCli(["run", "-c", sb.configPath], { env: at(d) });
    assert.equal(r.code, 0, `night ${d}: ${r.stderr}`);
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NIGHTLY = { check: { on_unchanged: "archive", expect_trailer: TRAILER } };

Deno.test("editing archive.name never makes a young archive look expired; the dry run prints the plan the run executes", async () => {
  await withSource(
    { route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "10d", min_keep: 2, max_delete: 50 } } },
    async (sb) => {
      await nights(sb, days("2026-11-07", 14));
      // max_age 10d on 2026-11-20 leaves 11-10 … 11-20.
      assert.deepEqual(ls(sb.dest), withSidecars(days("2026-11-10", 11).map((d) => `${compact(d)}.tgz`)));
      // The user switches to the day-before-month form: 20261111 … 20261120 now read as impossible or far-off dates.
      await sb.writeConfig({
        ...NIGHTLY,
        retention: { max_age: "10d", min_keep: 2, max_delete: 50 },
        archive: { timezone: "UTC", name: "{YYYY}{DD}{MM}.tgz" },
      });
      const dry = await runCli(["prune", "--dry-run", "-c", sb.configPath], { env: at("2026-11-21") });
      assert.equal(dry.code, 0, dry.stderr);
      const planned = [...dry.stdout.matchAll(/^delete (\S+)/gm)].map((m) => m[1]);
      assert.deepEqual(planned, ["20261110.tgz"], "only the archive stored 11 days ago is due");
      assert.equal([...dry.stdout.matchAll(/^keep /gm)].length, 10, "the dry run prints every archive on stdout");
      const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-21") });
      assert.equal(r.code, 0, r.stderr);
      const h = history(sb).at(-1);
      assert.deepEqual(h.retention.deleted, planned, "the run executes the plan the dry run printed");
      assert.equal(h.archive.name, "20262111.tgz");
      assert.deepEqual(ls(sb.dest), withSidecars([...days("2026-11-11", 10).map((d) => `${compact(d)}.tgz`), "20262111.tgz"]));
      const list = await runCli(["list", "-c", sb.configPath], { env: at("2026-11-21") });
      assert.match(list.stdout, /newest \(stored last\) first:\n20262111\.tgz .*\n20261120\.tgz /, "list orders by what was stored last");
    },
  );
});

Deno.test("an upgrade that also changes archive.name adopts nothing and deletes nothing: the old archives stay, with a warning", async () => {
  await withSource({
    route: serveBytes(ZIP),
    config: { ...NIGHTLY, retention: { max_age: "30d", min_keep: 3 }, archive: { timezone: "UTC", name: "{YYYY}{DD}{MM}.tgz" } },
  }, async (sb) => {
    // What a version without a catalogue left: 30 archives and the state file naming the last one.
    const old = days("2026-10-22", 30).map((d) => `${compact(d)}.tgz`);
    await Deno.mkdir(sb.dest, { recursive: true });
    for (const n of old) {
      await Deno.writeTextFile(join(sb.dest, n), "old archive\n");
      await Deno.writeTextFile(join(sb.dest, `${n}.sha256`), `${"0".repeat(64)}  ${n}\n`);
    }
    await Deno.mkdir(sb.stateDir, { recursive: true });
    await Deno.writeTextFile(
      join(sb.stateDir, "testjob.state.json"),
      JSON.stringify({
        sha256: "b".repeat(64),
        archive: "20261120.tgz",
        size: 12,
        location: sb.dest,
        storedAt: "2026-11-20T02:31:00Z",
        runId: "x",
      }),
    );
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-21") });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /does not explain the last archive 20261120\.tgz .*the pattern changed/);
    assert.match(r.stderr, /not in the catalogue: listed, never deleted/);
    assert.deepEqual(ls(sb.dest), withSidecars([...old, "20262111.tgz"]), "all 30 old archives are still there");
    assert.deepEqual(history(sb).at(-1).retention.deleted, []);
  });
});

Deno.test("a clock one year ahead deletes nothing and warns; the archive it stored is dated by the next right night", async () => {
  await withSource({ route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "5d", min_keep: 2 } } }, async (sb) => {
    await nights(sb, days("2026-11-13", 8));
    const before = ls(sb.dest);
    const ahead = await runCli(["run", "-c", sb.configPath], { env: at("2027-11-21") });
    assert.equal(ahead.code, EXIT.WARNING, ahead.stderr);
    assert.match(
      ahead.stderr,
      /retention: clock in doubt, deleted none of the \d+ archive\(s\) due: the clock .* jumped ahead.*\(hint: check the system clock/,
    );
    assert.deepEqual(ls(sb.dest), [...before, ...withSidecars(["20271121.tgz"])].sort(), "nothing deleted");
    const h = history(sb).at(-1);
    assert.equal(h.status, "warning");
    assert.equal(h.archive.name, "20271121.tgz", "the archive itself is stored");
    // The next night with a right clock: normal retention, and the 2027 archive is not taken for the newest.
    const right = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-21") });
    assert.equal(right.code, 0, right.stderr);
    assert.ok(ls(sb.dest).includes("20271121.tgz"), "the archive stored under the wrong clock is kept");
    assert.deepEqual(history(sb).at(-1).retention.deleted, ["20261115.tgz"], "only what is really older than 5 days");
    const to = await Deno.makeTempDir();
    const rest = await runCli(["restore", "latest", "--to", to, "-c", sb.configPath], { env: at("2026-11-21") });
    assert.equal(rest.code, 0, rest.stderr);
    assert.match(rest.stderr, /downloading 20261121\.tgz/, "restore latest takes what was stored last, not the highest date");
    const list = await runCli(["list", "-c", sb.configPath], { env: at("2026-11-21") });
    assert.match(list.stdout, /first:\n20261121\.tgz .*\n20271121\.tgz .*dated by next trusted archive/);
    await Deno.remove(to, { recursive: true });
  });
});

Deno.test("a clock one year behind stores a 2025 archive with a warning; the next right night does not delete it as expired", async () => {
  await withSource({ route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "5d", min_keep: 1 } } }, async (sb) => {
    await nights(sb, days("2026-11-13", 8));
    const behind = await runCli(["run", "-c", sb.configPath], { env: at("2025-11-21") });
    assert.equal(behind.code, EXIT.WARNING, behind.stderr);
    assert.match(behind.stderr, /the clock .* is earlier than the storage of the last archive 20261120\.tgz .*the clock went back/);
    assert.ok(ls(sb.dest).includes("20251121.tgz"));
    const right = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(right.code, 0, right.stderr);
    assert.ok(ls(sb.dest).includes("20251121.tgz"), "a young archive with an old name is not expired");
    assert.ok(!history(sb).at(-1).retention.deleted.includes("20251121.tgz"));
    // Its real age counts: five days later it is due like any other.
    await nights(sb, ["2026-11-28"]);
    assert.ok(!ls(sb.dest).includes("20251121.tgz"), "deleted once really older than max_age");
  });
});

Deno.test("same name already there: a truncated copy with an intact sidecar is not 'already stored'; a corrupt one is caught by verify: checksum", async () => {
  await withSource({ route: serveBytes(ZIP), config: NIGHTLY }, async (sb) => {
    await nights(sb, ["2026-11-22"]);
    const a = join(sb.dest, "20261122.tgz");
    const size = Deno.statSync(a).size;
    await Deno.truncate(a, Math.floor(size / 2));
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /20261122\.tgz already exists .*its sidecar names this archive's sha256 but it has \d+ bytes.*damaged: keeping it, storing this one as 20261122-2\.tgz/,
    );
    assert.deepEqual(ls(sb.dest), withSidecars(["20261122.tgz", "20261122-2.tgz"]));
    assert.match(await sh("sha256sum", ["-c", "20261122-2.tgz.sha256"], { cwd: sb.dest }), /20261122-2\.tgz: OK/);
    assert.equal(history(sb).at(-1).archive.name, "20261122-2.tgz");
    // Same size, one byte flipped, sidecar intact: only reading it back can tell.
    await sb.writeConfig({ ...NIGHTLY, destination: { type: "local", path: sb.dest, verify: "checksum" } });
    const b = join(sb.dest, "20261122-2.tgz");
    const bytes = Deno.readFileSync(b);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    Deno.writeFileSync(b, bytes);
    const c = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /20261122\.tgz already exists .*damaged/);
    assert.match(c.stderr, /20261122-2\.tgz already exists .*different content \(sha256 [0-9a-f]+… read back\)/);
    assert.match(c.stderr, /stored 20261122-3\.tgz \(.*sha256 verified by reading it back\)/);
  });
});

Deno.test("an archive left without its sidecar is finished by the next run, not duplicated; min_keep skips incomplete ones, restore latest only when told", async () => {
  await withSource({ route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "30d", min_keep: 1 } } }, async (sb) => {
    await nights(sb, ["2026-11-22"]);
    await Deno.remove(join(sb.dest, "20261122.tgz.sha256"));
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /20261122\.tgz is already on .*: uploaded its missing 20261122\.tgz\.sha256/);
    assert.deepEqual(ls(sb.dest), withSidecars(["20261122.tgz"]), "no -2 copy");
    assert.match(await sh("sha256sum", ["-c", "20261122.tgz.sha256"], { cwd: sb.dest }), /OK/);

    // A run that died between the renames (sidecar in place, archive still under its temp name): both leftovers go,
    // the archive is stored whole.
    await Deno.writeTextFile(join(sb.dest, "20261123.tgz.sha256"), `${"1".repeat(64)}  20261123.tgz\n`);
    await Deno.writeTextFile(join(sb.dest, ".20261123.tgz.part"), "half");
    const d = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stderr, /removed 20261123\.tgz\.sha256, a sidecar without its archive/);
    assert.deepEqual(ls(sb.dest), withSidecars(["20261122.tgz", "20261123.tgz"]));
    assert.match(await sh("sha256sum", ["-c", "20261123.tgz.sha256"], { cwd: sb.dest }), /OK/);

    // Sidecar lost again on the newest: list says so; restore latest refuses to fall back silently (exit 50, both
    // archives named), and takes the newest complete one with --fallback, saying so.
    await Deno.remove(join(sb.dest, "20261123.tgz.sha256"));
    const list = await runCli(["list", "-c", sb.configPath], { env: at("2026-11-23") });
    assert.match(list.stdout, /20261123\.tgz .*INCOMPLETE: no \.sha256 sidecar/);
    assert.match(list.stdout, /20261122\.tgz .*kept by min_keep/, "min_keep goes to the newest complete archive");
    const to = await Deno.makeTempDir();
    const refused = await runCli(["restore", "latest", "--to", to, "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(refused.code, EXIT.RESTORE, refused.stderr);
    assert.match(
      refused.stderr,
      /restore: FAILED: the newest archive is not complete: 20261123\.tgz \(no \.sha256 sidecar\); refusing to restore an older one without being told \(hint: restore 20261122\.tgz, the newest complete one, with: archivist restore latest --fallback/,
    );
    assert.deepEqual([...Deno.readDirSync(to)], [], "nothing restored");
    const rest = await runCli(["restore", "latest", "--fallback", "--to", to, "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(rest.code, 0, rest.stderr);
    assert.match(
      rest.stderr,
      /restore: --fallback: the newest archive is not complete \(20261123\.tgz \(no \.sha256 sidecar\)\): restoring 20261122\.tgz/,
    );
    assert.match(rest.stderr, /downloading 20261122\.tgz/);
    // Asked by name, the sidecar-less archive is restored when its bytes are the ones the catalogue recorded, with
    // the sidecar's absence said (not "directory does not exist"); without a catalogue record it is refused.
    const named = await runCli(["restore", "20261123.tgz", "--force", "--to", to, "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(named.code, 0, named.stderr);
    assert.match(named.stderr, /20261123\.tgz\.sha256 cannot be read, but 20261123\.tgz has the sha256 recorded when it was stored/);
    assert.doesNotMatch(named.stderr, /does not exist/);
    await Deno.remove(to, { recursive: true });
  });
});

Deno.test("many runs started together after a crash: exactly one takes the lock, none dies with exit 70, every run has one history line", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  await withSource({ config: NIGHTLY, route: async () => (await gate, new Response(ZIP.slice())) }, async (sb) => {
    await Deno.mkdir(sb.stateDir, { recursive: true });
    await Deno.writeTextFile(
      join(sb.stateDir, "testjob.lock"),
      JSON.stringify({ pid: 999999, procStart: "1", since: "2026-11-21T02:30:00Z", host: Deno.hostname(), children: [], dirs: [] }),
    );
    const N = 6;
    const kids = Array.from({ length: N }, () => spawnCli(["run", "-c", sb.configPath], at("2026-11-22")));
    const outs: { code: number; stderr: string }[] = [];
    const done = kids.map(async (k) => {
      const o = await k.output();
      outs.push({ code: o.code, stderr: new TextDecoder().decode(o.stderr) });
      if (outs.length === N - 1) release(); // the winner waits in fetch until every other run has ended
    });
    const timer = setTimeout(release, 60_000);
    await Promise.all(done);
    clearTimeout(timer);
    const codes = outs.map((o) => o.code).sort((a, b) => a - b);
    assert.deepEqual(codes, [0, ...Array(N - 1).fill(EXIT.LOCK)], outs.map((o) => o.stderr).join("\n---\n"));
    for (const o of outs.filter((o) => o.code === EXIT.LOCK)) {
      assert.match(o.stderr, /lock: FAILED: already running \((pid \d+, since |another archivist)/);
    }
    assert.match(
      outs.find((o) => o.code === 0)!.stderr,
      /the previous run \(pid 999999, since 2026-11-21T02:30:00Z\) died without releasing the lock/,
    );
    const h = history(sb);
    assert.equal(h.length, N, "one history line per run");
    assert.equal(h.filter((x) => x.archive).length, 1);
    assert.equal(h.filter((x) => x.error?.code === "running").length, N - 1);
    assert.deepEqual(ls(sb.dest), withSidecars(["20261122.tgz"]));
  });
});

Deno.test("the work dir removed under a run: a clear failure with its history line, not exit 70", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  await withSource({ config: NIGHTLY, route: async () => (await gate, new Response(ZIP.slice())) }, async (sb, src) => {
    const child = spawnCli(["run", "-c", sb.configPath], at("2026-11-22"));
    await waitFor(() => src.hits.get("/dump.zip"), "the run's download");
    await Deno.remove(join(sb.root, "work"), { recursive: true });
    release();
    const o = await child.output();
    const stderr = new TextDecoder().decode(o.stderr);
    assert.notEqual(o.code, EXIT.INTERNAL, stderr);
    assert.notEqual(o.code, 0, stderr);
    assert.doesNotMatch(stderr, /internal| {4}at /, "no stack trace");
    assert.match(
      stderr,
      /FAILED: the run's work directory \S+ was removed while (fetch|unzip) used it: nothing was stored \(hint: something cleans work_dir/,
    );
    assert.doesNotMatch(stderr, /No such file|os error 2|free space/);
    const h = history(sb);
    assert.equal(h.length, 1);
    assert.equal(h[0].status, "failed");
    assert.equal(h[0].exitCode, o.code);
    assert.equal(ls(sb.dest).length, 0);
  });
});

Deno.test("SIGTERM while the report mail hangs after a stored archive: exit 130 at once, one history line with the archive, state advanced", async () => {
  // An SMTP server that accepts the connection and never says a word.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })().catch(() => {});
  try {
    await withSource({
      route: serveBytes(ZIP),
      config: {
        ...NIGHTLY,
        mail: {
          enabled: true,
          when: "always",
          to: ["ops@example.org"],
          transport: "smtp",
          host: "127.0.0.1",
          port,
          security: "none",
          timeout: "120s",
        },
      },
    }, async (sb) => {
      const child = spawnCli(["run", "-c", sb.configPath], at("2026-11-22"));
      await waitFor(() => conns.length, "the run reached the mail step");
      await sleep(200); // the SMTP greeting is never sent: the report hangs; the kill comes while it waits
      const t0 = performance.now();
      child.kill("SIGTERM");
      const o = await child.output();
      const stderr = new TextDecoder().decode(o.stderr);
      assert.equal(o.code, EXIT.INTERRUPTED, stderr);
      assert.ok(performance.now() - t0 < 10_000, "no 20 s grace wait: the steps were over");
      const h = history(sb);
      assert.equal(h.length, 1, "exactly one history line");
      assert.equal(h[0].archive.name, "20261122.tgz");
      assert.equal(h[0].exitCode, EXIT.INTERRUPTED);
      assert.match(h[0].mail.message, /interrupted by SIGTERM before the report went out/);
      const state = JSON.parse(Deno.readTextFileSync(join(sb.stateDir, "testjob.state.json")));
      assert.equal(state.archive, "20261122.tgz");
      assert.deepEqual(ls(sb.dest), withSidecars(["20261122.tgz"]));
    });
  } finally {
    listener.close();
    for (const c of conns) c.close();
    await accepting;
  }
});

Deno.test("SIGKILL during an sftp store: the next run ends the orphaned ssh master and removes the run's temp dirs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-kill-" });
  const s = await startSshd(join(dir, "sshd"));
  // A dump that compresses poorly, so that the upload takes long enough to be caught.
  const rnd = new Uint8Array(6 * 1024 * 1024);
  for (let i = 0; i < rnd.length; i += 65536) crypto.getRandomValues(rnd.subarray(i, i + 65536));
  const big = new TextEncoder().encode(`-- dump\n${Buffer.from(rnd).toString("base64")}\n${TRAILER} on x\n`);
  const zip = makeZip([{ name: "dump.sql", data: big }]);
  try {
    await withSource({
      config: {
        ...NIGHTLY,
        archive: { timezone: "UTC", compression_level: 1 },
        destination: s.destination(join(s.root, "db"), { create_dirs: true }),
      },
      route: serveBytes(zip),
    }, async (sb) => {
      const child = spawnCli(["run", "-c", sb.configPath], at("2026-11-22"));
      const tmp = Deno.env.get("TMPDIR") || "/tmp";
      const master = await waitFor(
        () => findProcess((_, cmd) => cmd.includes(`ControlPath=${tmp}/arch-ssh-${child.pid}-`) && cmd.includes("-M")),
        "the run's ssh master",
      );
      child.kill("SIGKILL");
      await child.output();
      await sleep(300); // a while after the kill: nothing ends the master but the next run
      assert.ok(!processGone(master), "the master outlives a SIGKILLed archivist");
      const dirsLeft = () => ls(tmp).filter((n) => n.startsWith(`arch-ssh-${child.pid}-`) || n.startsWith(`archivist-${child.pid}-`));
      assert.ok(dirsLeft().length, "its private dir is left behind");

      const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
      assert.equal(next.code, 0, next.stderr);
      assert.match(
        next.stderr,
        /died without releasing the lock: ended (its ssh -M \(connection master\) \(pid \d+\)|pid \d+ \(still using \/\S*arch-ssh-)/,
      );
      await waitFor(() => processGone(master), "the orphaned ssh master to be ended", 5000);
      assert.deepEqual(dirsLeft(), [], "its temp dirs are removed");
      assert.deepEqual(ls(join(s.root, "db")), withSidecars(["20261122.tgz"]), "the interrupted upload left nothing; the archive is whole");
    });
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a full state_dir is a state problem (exit 32) naming state_dir, not 'already running'", async () => {
  await withSource({ route: serveBytes(ZIP), config: NIGHTLY }, async (sb) => {
    await Deno.mkdir(sb.stateDir, { recursive: true });
    await sh("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", sb.stateDir]);
    try {
      // Fill it to the last byte.
      const f = await Deno.open(join(sb.stateDir, "filler"), { write: true, create: true });
      try {
        const block = new Uint8Array(4096);
        for (;;) await f.write(block);
      } catch {
        /* ENOSPC */
      } finally {
        f.close();
      }
      const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
      assert.equal(r.code, EXIT.STATE, r.stderr);
      assert.match(r.stderr, /lock: FAILED: cannot write the lock file .*: state_dir .* is full \(hint: free space in /);
      assert.doesNotMatch(r.stderr, /already running/);
      assert.deepEqual(ls(sb.dest), [], "nothing stored without a lock");
    } finally {
      await sh("umount", [sb.stateDir]);
    }
  });
});

Deno.test("timeouts past 24 days are refused at load time (a timer would overflow and fire at once); 24d, as documented, is taken", async () => {
  await withSource({ route: serveBytes(ZIP), config: NIGHTLY }, async (sb) => {
    await sb.writeConfig({ ...NIGHTLY, source: { timeout: "25d" } });
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(r.code, EXIT.CONFIG, r.stderr);
    assert.match(r.stderr, /source\.timeout.*25d is out of range for a timeout: give between 1ms and 24d/);
    await sb.writeConfig({ ...NIGHTLY, source: { timeout: "24d" } });
    assert.equal((await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") })).code, 0);
  });
});

Deno.test("ls listings keep leading and trailing spaces in names, so ' 20261122.tgz' is never taken for an archive", () => {
  assert.equal(parseLsLine("-rw-r--r--    1 0        0             12 Nov 20 12:00  20261122.tgz")?.name, " 20261122.tgz");
  assert.equal(parseLsLine("-rw-r--r--    1 0        0             12 Nov 20  2025 20261122.tgz ")?.name, "20261122.tgz ");
  assert.equal(parseLsLine("-rw-r--r--    1 0        0             12 Nov 20 12:00 20261122.tgz")?.name, "20261122.tgz");
});

Deno.test("archivist check: every archive present with its size, a sample read back whole; damage and loss are CRITICAL, recorded, and shown by verify", async () => {
  await withSource({ route: serveBytes(ZIP), config: NIGHTLY }, async (sb) => {
    await nights(sb, ["2026-11-20", "2026-11-21", "2026-11-22"]);
    const env = at("2026-11-22");
    const before = ls(sb.dest);
    const first = await runCli(["check", "-c", sb.configPath], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /^ARCHIVIST CHECK OK - 3 archive\(s\) present with their recorded size; 1 read back whole \(20261120\.tgz\)/,
    );
    assert.match(
      first.stdout,
      /✓ 20261120\.tgz +read back +read back: sha256 matches its sidecar and the catalogue, dump\.sql \(.*\) read to the end, dump sha256 as archived/,
    );
    const second = await runCli(["check", "-c", sb.configPath], { env });
    assert.match(second.stdout, /1 read back whole \(20261121\.tgz\)/, "the next sample is the one checked longest ago");
    const all = await runCli(["check", "--all", "--json", "-c", sb.configPath], { env });
    const j = JSON.parse(all.stdout);
    assert.equal(j.status, "OK");
    assert.deepEqual(j.archives.map((a: any) => a.depth), ["content", "content", "content"]);
    assert.deepEqual(ls(sb.dest), before, "check changes nothing on the destination");

    // Same size, one byte changed: only reading it back finds it. Then one archive disappears.
    const p = join(sb.dest, "20261121.tgz");
    const bytes = Deno.readFileSync(p);
    bytes[100] ^= 0x01;
    Deno.writeFileSync(p, bytes);
    await Deno.remove(join(sb.dest, "20261122.tgz"));
    const bad = await runCli(["check", "--all", "-c", sb.configPath], { env });
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^ARCHIVIST CHECK CRITICAL - /);
    assert.match(
      bad.stdout,
      /✗ 20261121\.tgz +read back +checksum mismatch for 20261121\.tgz: sha256 [0-9a-f]+, the sidecar says [0-9a-f]+ and the catalogue [0-9a-f]+: the archive is damaged/,
    );
    assert.match(bad.stdout, /✗ 20261122\.tgz +listed +missing from /);
    const h = history(sb).filter((x) => x.command === "check");
    assert.equal(h.length, 4, "one history line per check");
    assert.equal(h.at(-1).status, "failed");
    assert.equal(h.at(-1).exitCode, 2);
    const v = await runCli(["verify", "-c", sb.configPath], { env });
    assert.equal(v.code, 2);
    assert.match(v.stdout, /last check.*FAILED .*20261121\.tgz: sha256/);
  });
});

Deno.test("a real outage longer than max_age: the run warns and deletes nothing, prune refuses (exit 31), prune --force accepts the clock", async () => {
  await withSource({ route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "5d", min_keep: 2 } } }, async (sb) => {
    await nights(sb, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    const back = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-20") });
    assert.equal(back.code, EXIT.WARNING, back.stderr);
    assert.match(back.stderr, /17d after the storage of the last archive 20261103\.tgz .*or no archive was stored for that long/);
    assert.equal(ls(sb.dest).length, 8, "nothing deleted");
    const prune = await runCli(["prune", "-c", sb.configPath], { env: at("2026-11-20") });
    assert.equal(prune.code, EXIT.RETENTION, prune.stderr);
    assert.match(
      prune.stderr,
      /prune: FAILED: clock in doubt, deleted none of the 2 archive\(s\) due: .*accept it with `archivist prune --force`/,
    );
    const forced = await runCli(["prune", "--force", "-c", sb.configPath], { env: at("2026-11-20") });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /--force: the clock is accepted as right/);
    assert.deepEqual(ls(sb.dest), withSidecars(["20261103.tgz", "20261120.tgz"]), "min_keep 2: the two stored last");
    const cat = Deno.readTextFileSync(join(sb.stateDir, "testjob.catalogue.jsonl"));
    assert.match(cat, /"op":"trust"/);
    const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-21") });
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /clock in doubt/);
  });
});

Deno.test("SIGTERM after the archive is stored (sftp, during retention): exit 130 says the archive is stored and recorded; foreign names with spaces are never touched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-term-" });
  const s = await startSshd(join(dir, "sshd"));
  const remote = join(s.root, "db");
  try {
    await withSource({
      route: serveBytes(ZIP),
      config: {
        ...NIGHTLY,
        retention: { max_age: "20d", min_keep: 1, max_delete: 20 },
        destination: s.destination(remote, { create_dirs: true }),
      },
    }, async (sb) => {
      await nights(sb, days("2026-10-23", 8)); // 10-23 … 10-30: all due on 11-20 (gap 21 days: a trusted clock)
      // Foreign files whose names are ours but for a space: an ls-based listing must not trim them.
      for (const f of [" 20261101.tgz", "20261101.tgz "]) await Deno.writeTextFile(join(remote, f), "not ours\n");
      const child = spawnCli(["run", "-c", sb.configPath], at("2026-11-20"));
      const statePath = join(sb.stateDir, "testjob.state.json");
      const recorded = () => Deno.readTextFile(statePath).then((t) => t.includes("20261120.tgz"), () => false);
      await waitFor(recorded, "the state of the night's archive", 8000, 2).catch(() => {});
      child.kill("SIGTERM");
      const o = await child.output();
      const stderr = new TextDecoder().decode(o.stderr);
      assert.equal(o.code, EXIT.INTERRUPTED, stderr);
      assert.match(
        stderr,
        /FAILED: interrupted by SIGTERM during (state|retention) after 20261120\.tgz was stored on sftp:\/\/.* and recorded \(hint: the archive is safe/,
      );
      assert.doesNotMatch(stderr, /nothing was (stored|recorded)/);
      const h = history(sb).at(-1);
      assert.equal(h.archive.name, "20261120.tgz", "the history line names the stored archive");
      assert.equal(h.exitCode, EXIT.INTERRUPTED);
      assert.ok(ls(remote).includes("20261120.tgz") && ls(remote).includes("20261120.tgz.sha256"));
      // The next night finishes retention; the space-named files stay and cause no warning.
      const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-21") });
      assert.equal(next.code, 0, next.stderr);
      assert.doesNotMatch(next.stderr, /could not delete/);
      assert.deepEqual(ls(remote), [" 20261101.tgz", "20261101.tgz ", ...withSidecars(["20261120.tgz", "20261121.tgz"])].sort());
    });
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a child started just before the kill (not yet in the lock record) is still ended: anything using the dead run's dir goes", async () => {
  const state = await Deno.makeTempDir({ prefix: "archivist-lockrec-" });
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  const dir = await Deno.makeTempDir({ dir: tmp, prefix: "arch-ssh-999999-" });
  // A stand-in for an ssh master whose command line names the dir (as ControlPath=DIR/cm does).
  const orphan = new Deno.Command("sh", { args: ["-c", "sleep 60", `${dir}/cm`], stdin: "null", stdout: "null", stderr: "null" }).spawn();
  try {
    await Deno.writeTextFile(
      join(state, "j.lock"),
      JSON.stringify({ pid: 999999, procStart: "1", since: "2026-11-21T02:30:00Z", host: Deno.hostname(), children: [], dirs: [dir] }),
    );
    const lock = acquireLock(state, "j", new Date());
    assert.match(lock.tookOver ?? "", new RegExp(`ended pid ${orphan.pid} \\(still using ${dir}\\)`));
    const st = await orphan.status;
    assert.equal(st.signal, "SIGTERM", "the orphan was ended");
    assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound);
    lock.release();
    assert.equal(Deno.readTextFileSync(join(state, "j.lock")), "", "released: the record is emptied, the file stays");
  } finally {
    try {
      orphan.kill("SIGKILL");
    } catch { /* gone */ }
    await Deno.remove(state, { recursive: true });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("SIGKILL during an FTPS upload: no archive ever appears under its final name without its sidecar; the next run stores it whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-ftpkill-" });
  await Deno.chmod(dir, 0o755);
  const s = await startVsftpd(join(dir, "ftp"), cert);
  const rnd = new Uint8Array(6 * 1024 * 1024);
  for (let i = 0; i < rnd.length; i += 65536) crypto.getRandomValues(rnd.subarray(i, i + 65536));
  const zip = makeZip([{
    name: "dump.sql",
    data: new TextEncoder().encode(`-- dump\n${Buffer.from(rnd).toString("base64")}\n${TRAILER} on x\n`),
  }]);
  const pw = join(dir, "ftp.pw");
  await Deno.writeTextFile(pw, s.password + "\n");
  await Deno.chmod(pw, 0o600);
  const sub = `kill-${crypto.randomUUID().slice(0, 8)}`;
  const remote = join(s.home, sub);
  try {
    await withSource({
      config: {
        ...NIGHTLY,
        archive: { timezone: "UTC", compression_level: 1 },
        destination: {
          type: "ftps",
          host: "127.0.0.1",
          port: s.port,
          user: s.user,
          password_file: pw,
          ca_file: cert.caFile,
          path: sub,
          create_dirs: true,
        },
      },
      route: serveBytes(zip),
    }, async (sb) => {
      const child = spawnCli(["run", "-c", sb.configPath], at("2026-11-22"));
      const curlPid = await waitFor(
        () => findProcess((argv, cmd) => /(^|\/)curl$/.test(argv[0]) && argv.includes("-T") && cmd.includes("20261122.tgz.part")),
        "the upload's curl",
        12_000,
        2,
      ).catch(() => undefined);
      if (!curlPid) {
        const o = await child.output();
        assert.fail(`did not catch the upload's curl; the run: ${new TextDecoder().decode(o.stderr)}`);
      }
      child.kill("SIGKILL");
      await child.output();
      // Let the orphaned curl do whatever it would do on its own.
      await waitFor(() => processGone(curlPid), "the orphaned curl to end", 5000).catch(() => {});
      assert.ok(!ls(remote).includes("20261122.tgz"), `no final name without a living archivist: ${ls(remote).join(", ")}`);
      const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(ls(remote), withSidecars(["20261122.tgz"]), "leftovers removed, the archive whole");
      assert.match(await sh("sha256sum", ["-c", "20261122.tgz.sha256"], { cwd: remote }), /OK/);
    });
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a copy of the config (same name and state_dir, another destination) keeps its own records: its check never stands for the real job, its run never makes the real night skip", async () => {
  await withSource({ route: serveBytes(ZIP), config: {} }, async (sb) => {
    await nights(sb, ["2026-11-20"]);
    // The copy: the same job name, state_dir and history, another destination (here a wrong, empty path).
    const copy = join(sb.root, "copy.yaml");
    const other = join(sb.root, "elsewhere");
    await Deno.mkdir(other);
    const text = Deno.readTextFileSync(sb.configPath).replace(`path: ${sb.dest}`, `path: ${other}`);
    assert.notEqual(text, Deno.readTextFileSync(sb.configPath));
    await Deno.writeTextFile(copy, text, { mode: 0o600 });
    const c = await runCli(["check", "-c", copy], { env: at("2026-11-20") });
    assert.match(c.stdout, /no archive of the catalogue on \S+elsewhere yet/);
    const line = history(sb).at(-1);
    assert.equal(line.command, "check");
    assert.deepEqual(line.destinations, [other], "the copy's line names the place it describes");
    const v = await runCli(["verify", "-c", sb.configPath], { env: at("2026-11-20") });
    assert.match(v.stdout, /✓ last check +`archivist check` has not run yet/, "the copy's check is not the real job's");
    assert.match(v.stdout, /✓ last run +OK /);
    // The copy's run stores there and records the state; the real night, same dump, is not skipped as unchanged:
    // the last archive recorded is not on its destination.
    const r = await runCli(["run", "-c", copy], { env: at("2026-11-21") });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /compare: the last archive recorded \(20261120\.tgz\) is on .*dest, not on every destination of this config: archiving/,
    );
    const real = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stderr, /compare: the last archive recorded \(20261121\.tgz\) is on .*elsewhere, not on every destination/);
    assert.deepEqual(ls(sb.dest), withSidecars(["20261120.tgz", "20261122.tgz"]));
    // Back in step: the next real night with the same dump is unchanged, as before.
    const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(next.code, EXIT.WARNING, next.stderr);
    assert.match(next.stderr, /compare: the dump is identical to the one archived as 20261122\.tgz/);
  });
});

Deno.test("a torn last catalogue line (power lost while it was written) is set aside with a warning: the next records are intact, retention and check stay right", async () => {
  await withSource({ route: serveBytes(ZIP), config: { ...NIGHTLY, retention: { max_age: "2d", min_keep: 1 } } }, async (sb) => {
    await nights(sb, ["2026-11-20", "2026-11-21"]);
    const catalogue = join(sb.stateDir, "testjob.catalogue.jsonl");
    const whole = Deno.readTextFileSync(catalogue);
    // The record of the 21st cut in the middle, as a crash during its write leaves it.
    const lastLine = whole.trimEnd().split("\n").at(-1)!;
    Deno.writeTextFileSync(catalogue, whole.slice(0, whole.length - 1 - Math.floor(lastLine.length / 2)));
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    assert.match(
      r.stderr,
      /store: .*the catalogue's last line was cut short \(\d+ bytes: a crash or power loss while it was written\): set aside in \S+\.torn/,
    );
    assert.ok(Deno.readTextFileSync(`${catalogue}.torn`).includes('"op":"stored"'), "the torn bytes are kept aside");
    const lines = Deno.readTextFileSync(catalogue).trimEnd().split("\n");
    for (const l of lines) JSON.parse(l); // every line whole
    // Retention deleted the 20th (older than 2d) and recorded it; check then agrees with the destination.
    assert.ok(lines.some((l) => l.includes('"op":"deleted"') && l.includes("20261120.tgz")), "the deletion is recorded");
    const c = await runCli(["check", "-c", sb.configPath], { env: at("2026-11-23") });
    assert.equal(c.code, 0, c.stdout + c.stderr);
    // The night after: nothing left to mend, an ordinary night.
    const next = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-24") });
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /cut short/);
  });
});

Deno.test("every catalogued archive gone from the destination at once (a wrong crypt password, another share mounted): the night fails naming the likely causes, verify is CRITICAL", async () => {
  await withSource({ route: serveBytes(ZIP), config: NIGHTLY }, async (sb) => {
    await nights(sb, ["2026-11-20", "2026-11-21"]);
    // Another, empty directory now answers at that path (as a crypt remote with a wrong password lists nothing).
    await Deno.rename(sb.dest, `${sb.dest}.real`);
    await Deno.mkdir(sb.dest);
    const r = await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.equal(r.code, EXIT.STORE, r.stderr);
    assert.match(
      r.stderr,
      /store: FAILED: none of the 2 archive\(s\) the catalogue records on \S+ is there \(the last, 20261121\.tgz, stored .*\): this is probably not the place they were stored to \(hint: check the destination: a wrong rclone crypt password/,
    );
    assert.deepEqual(ls(sb.dest), [], "no second tree is started beside the first");
    const v = await runCli(["verify", "-c", sb.configPath], { env: at("2026-11-22") });
    assert.match(v.stdout, /✗ destination +none of the 2 archive\(s\)/);
    // The right place back: an ordinary night.
    await Deno.remove(sb.dest);
    await Deno.rename(`${sb.dest}.real`, sb.dest);
    assert.equal((await runCli(["run", "-c", sb.configPath], { env: at("2026-11-22") })).code, 0);
  });
});
