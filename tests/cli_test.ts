/**
 * The command line: each command accepts only its own options (exit 2 with its usage otherwise), `COMMAND --help`
 * prints its own usage, options, example and exit codes, and `run --dry-run` changes nothing anywhere.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { makeCert, makeZip, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { startHttpsSource } from "../tools/https_source.ts";
import { runCli, sandbox } from "./helpers/cli.ts";
import { COMMANDS } from "../src/cli/registry.ts";
import { EXIT } from "../src/errors.ts";
import { ensureUser, TEST_USER } from "./servers/common.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-clicert-" }));

/** Every file under `dir` with the sha256 of its content (directories by name): a byte-level snapshot. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    let list: Deno.DirEntry[] = [];
    try {
      list = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of list) {
      const p = join(d, e.name);
      if (e.isDirectory) {
        out[p] = "dir";
        walk(p);
      } else out[p] = createHash("sha256").update(Deno.readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

Deno.test("each command refuses options that are not its own, with its usage and exit 2 (3 for verify and check)", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["run", "--force"], /run does not take --force[\s\S]*Usage: archivist run /],
    [["run", "--dry-run", "--to", "/x"], /run does not take --to/],
    [["history", "--dry-run", "--to", "/nowhere", "--force"], /history does not take --dry-run[\s\S]*Try 'archivist history --help'/],
    [["list", "--force"], /list does not take --force/],
    [["verify", "--all"], /verify does not take --all/],
    [["check", "--to", "/x"], /check does not take --to/],
    [["restore", "a", "b"], /unexpected argument "b"/],
    [["check", "--sample", "0"], /--sample takes a number \(1 or more\)/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ];
  for (const [args, re] of cases) {
    await t.step(args.join(" "), async () => {
      const r = await runCli(args);
      assert.equal(r.code, ["verify", "check"].includes(args[0]) ? 3 : EXIT.USAGE, r.stderr);
      assert.match(r.stderr, re);
    });
  }
});

Deno.test("a bad command line of verify or check is UNKNOWN (3) for Nagios, never CRITICAL; other commands exit 2", async () => {
  for (const args of [["verify", "--bogus"], ["--verify", "--bogus"], ["check", "--sample", "x"], ["verify", "extra"]]) {
    const r = await runCli(args);
    assert.equal(r.code, 3, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /Usage: archivist (verify|check) /);
  }
  assert.equal((await runCli(["prune", "--bogus"])).code, EXIT.USAGE);
});

Deno.test("each command's --help shows its own exit codes, in its own words", async () => {
  const help = async (c: string) => (await runCli([c, "--help"])).stdout.split("Exit codes:\n")[1];
  assert.match(await help("run"), /^ {2}0 {2}success: archive stored/m);
  assert.match(await help("prune"), /^ {2}0 {2}success: retention applied/m);
  assert.match(await help("prune"), /^ {2}1 {2}warning: a deletion failed/m);
  assert.match(await help("restore"), /^ {2}0 {2}success: the dump is extracted/m);
  assert.match(await help("mail-test"), /^ {2}0 {2}success: the test mail was handed/m);
  assert.match(await help("verify"), /^ {2}3 {2}UNKNOWN \(also a bad command line\)/m);
  for (const c of COMMANDS.filter((c) => c.name !== "run")) {
    assert.doesNotMatch(await help(c.name), /archive stored|dump unchanged/, `${c.name} --help borrows run's words`);
  }
});

Deno.test("scripts read stdout: run --json, prune --dry-run's plan (text and --json), history --runs leaves out check lines", async () => {
  let seed = 1;
  const src = startHttpsSource(cert, {
    "/dump.zip": () => new Response(makeZip([{ name: "dump.sql", data: sqlDump(40_000, { seed }) }]).slice()),
  });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { retention: { max_age: "1d", min_keep: 1 } });
  try {
    for (const d of ["20", "21"]) {
      seed = Number(d);
      const r = await runCli(["run", "--json", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${d}T02:30:00Z` } });
      assert.equal(r.code, 0, r.stderr);
      const [res] = JSON.parse(r.stdout);
      assert.equal(res.status, "ok");
      assert.equal(res.archive.name, `202611${d}.tgz`);
    }
    const check = await runCli(["check", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T03:00:00Z" } });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const last = await runCli(["history", "--runs", "--last", "1", "--json", "-c", sb.configPath]);
    const [line] = JSON.parse(last.stdout);
    assert.equal(line.command, "run", "the last run line, not the check after it");
    assert.equal(line.archive.name, "20261121.tgz");
    const all = JSON.parse((await runCli(["history", "--last", "1", "--json", "-c", sb.configPath])).stdout);
    assert.equal(all[0].command, "check");

    const plan = await runCli(["prune", "-n", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /^delete 20261120\.tgz 2026-11-20: older than max_age/m);
    assert.match(plan.stdout, /^keep {3}20261121\.tgz 2026-11-21: min_keep/m);
    assert.doesNotMatch(plan.stderr, /20261120\.tgz 2026-11-20/, "the plan is on stdout, once");
    assert.match(Deno.readTextFileSync(sb.logFile), /prune: delete 20261120\.tgz/, "and in the log file");
    const json = await runCli(["prune", "--dry-run", "--json", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    const p = JSON.parse(json.stdout);
    assert.equal(p.dryRun, true);
    const keep = Object.fromEntries(p.archives.map((a: { name: string; keep: boolean }) => [a.name, a.keep]));
    assert.deepEqual(keep, { "20261120.tgz": false, "20261121.tgz": true });
    assert.deepEqual(p.deleted, []);
    const real = JSON.parse(
      (await runCli(["prune", "--json", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } })).stdout,
    );
    assert.deepEqual(real.deleted, ["20261120.tgz"]);
    assert.throws(() => Deno.statSync(join(sb.dest, "20261120.tgz")), Deno.errors.NotFound);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

Deno.test("COMMAND --help prints that command's usage, its options only, an example and its exit codes", async () => {
  for (const c of COMMANDS) {
    const r = await runCli([c.name, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^archivist ${c.name}: `));
    assert.match(r.stdout, new RegExp(`Usage: archivist ${c.name} `));
    for (const o of c.options) assert.ok(r.stdout.includes(`--${o.name}`), `${c.name} --help lists --${o.name}`);
    for (const other of ["dry-run", "force", "sample", "to", "last"]) {
      if (!c.options.some((o) => o.name === other)) {
        assert.ok(!r.stdout.includes(`--${other}`), `${c.name} --help does not offer --${other}`);
      }
    }
    assert.match(r.stdout, /Example:\n {2}archivist /);
    assert.match(r.stdout, /Exit codes:\n/);
  }
  const run = await runCli(["run", "--help"]);
  assert.match(run.stdout, / 30 {2}store: /);
  const verify = await runCli(["verify", "--help"]);
  assert.match(verify.stdout, /2 {2}CRITICAL/);
  const all = await runCli(["--help"]);
  for (const c of COMMANDS) assert.match(all.stdout, new RegExp(`^ {2}${c.name} +`, "m"));
});

Deno.test("run --dry-run fetches, checks and packs, says what store and retention would do, and changes nothing", async () => {
  let body = makeZip([{ name: "dump.sql", data: sqlDump(80_000) }]);
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(body.slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { retention: { max_age: "2d", min_keep: 1 } });
  try {
    for (const d of ["2026-11-19", "2026-11-20", "2026-11-21"]) {
      body = makeZip([{ name: "dump.sql", data: sqlDump(80_000, { seed: Number(d.slice(-2)) }) }]);
      const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `${d}T02:30:00Z` } });
      assert.equal(r.code, 0, r.stderr);
    }
    body = makeZip([{ name: "dump.sql", data: sqlDump(80_000, { seed: 99 }) }]);
    const before = { ...snapshot(sb.dest), ...snapshot(sb.stateDir) };
    const dry = await runCli(["run", "--dry-run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /pack: 20261123\.tgz: /, "it packs for real");
    assert.match(dry.stderr, /store: dry run: would upload 20261123\.tgz \(.*\) and 20261123\.tgz\.sha256 to /);
    assert.match(dry.stderr, /retention: delete 20261120\.tgz 2026-11-20: older than max_age/);
    assert.match(dry.stderr, /retention: dry run: would delete \d+ of 3 archive\(s\)/);
    assert.match(dry.stderr, /run: DRY RUN OK: would store 20261123\.tgz .*nothing was written/);
    assert.deepEqual({ ...snapshot(sb.dest), ...snapshot(sb.stateDir) }, before, "destination and state_dir byte-identical");
    assert.deepEqual(snapshot(join(sb.root, "work")), {}, "no work dir left");
    // The real night afterwards does what the dry run said.
    const real = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stderr, /deleted 20261120\.tgz/);
    // The same dump again: a dry run still previews the whole night, store and retention included (-n is --dry-run).
    const same = await runCli(["run", "-n", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-24T02:30:00Z" } });
    assert.equal(same.code, EXIT.WARNING, same.stderr);
    assert.match(same.stderr, /compare: the dump is identical to the one archived as 20261123\.tgz/);
    assert.match(
      same.stderr,
      /store: .*dry run: the dump is unchanged: nothing would be stored on .*dest \(reachable; \d archive\(s\) of this job there, the last 20261123\.tgz\)/,
    );
    assert.match(
      same.stderr,
      /retention: .*dry run: would delete \d+ of \d+ archive\(s\) \(a real night applies retention only after storing an archive: not tonight\)/,
    );
    // ... and so a destination that has gone is noticed by the dry run of an unchanged night.
    await Deno.rename(sb.dest, `${sb.dest}.moved`);
    await sb.writeConfig({ retention: { max_age: "2d", min_keep: 1 }, destination: { create_dirs: false } });
    const gone = await runCli(["run", "-n", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-24T02:30:00Z" } });
    assert.equal(gone.code, EXIT.STORE, gone.stderr);
    assert.match(gone.stderr, /store: FAILED: /);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

Deno.test("run, prune and check by hand as root on a state_dir of another user: refused with the command to use, nothing written", async () => {
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(makeZip([{ name: "dump.sql", data: sqlDump(50_000) }]).slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  try {
    const first = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    assert.equal(first.code, 0, first.stderr);
    await ensureUser(crypto.randomUUID());
    await new Deno.Command("chown", { args: ["-R", `${TEST_USER}:`, sb.stateDir] }).output();
    const before = snapshot(sb.stateDir);
    for (const cmd of [["run"], ["prune"], ["check"]]) {
      const r = await runCli([...cmd, "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
      assert.equal(r.code, EXIT.STATE, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`state_dir .* belongs to ${TEST_USER}, but this is root: .*nothing was done`));
      assert.match(r.stderr, new RegExp(`hint: run it as ${TEST_USER}: sudo -u ${TEST_USER} archivist ${cmd[0]} -c `));
    }
    assert.deepEqual(snapshot(sb.stateDir), before, "state_dir untouched");
    for (const f of Object.keys(before)) assert.equal(Deno.statSync(f).uid !== 0 || f === sb.stateDir, true, `${f} still ${TEST_USER}'s`);
    // Reading and dry runs are fine as anyone.
    assert.equal((await runCli(["list", "-c", sb.configPath])).code, 0);
    const dry = await runCli(["run", "--dry-run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.ok(dry.code === 0 || dry.code === EXIT.WARNING, dry.stderr);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

Deno.test("verify changes nothing but its own probe: it never creates the destination, and it removes probes left by killed verifies", async () => {
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(makeZip([{ name: "dump.sql", data: sqlDump(10_000) }]).slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  try {
    const r = await runCli(["verify", "-c", sb.configPath]);
    assert.match(
      r.stdout,
      /! destination +destination directory .* does not exist: the first run creates it \(create_dirs: true\); verify does not/,
    );
    assert.throws(() => Deno.statSync(sb.dest), Deno.errors.NotFound, "verify created nothing");
    await Deno.mkdir(sb.dest);
    await Deno.writeTextFile(join(sb.dest, "archivist-probe-0a1b2c3d.part"), "left by a killed verify");
    await Deno.writeTextFile(join(sb.dest, ".archivist-probe-deadbeef"), "left by an older version");
    await Deno.writeTextFile(join(sb.dest, "archivist-probe-notes.txt"), "not ours");
    const v = await runCli(["verify", "-c", sb.configPath]);
    assert.match(v.stdout, /✓ destination +.*write \+ rename \+ delete of a probe file work/);
    assert.deepEqual([...Deno.readDirSync(sb.dest)].map((e) => e.name), ["archivist-probe-notes.txt"]);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});
