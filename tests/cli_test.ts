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
import { COMMANDS } from "../src/commands.ts";
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

Deno.test("each command refuses options that are not its own, with its usage and exit 2", async (t) => {
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
      assert.equal(r.code, EXIT.USAGE, r.stderr);
      assert.match(r.stderr, re);
    });
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
