/**
 * Several destinations (the 3-2-1 rule): a NAS mounted on this machine and an off-site SFTP server, each with
 * its own retention; a night one of them is down, with store.require: all (the state does not advance, the next
 * night stores everywhere) and any (a warning, the next night sends the missing copy even though the dump is
 * unchanged). Real mounts (tmpfs as the NAS) and a real sshd, through the CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCert, makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { startHttpsSource } from "../tools/https_source.ts";
import { historyRuns, runCli, type Sandbox, sandbox } from "./helpers/cli.ts";
import { startSshd } from "./servers/sshd.ts";
import { EXIT } from "../src/errors.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-dests-" }));

async function withSetup(
  fn: (
    sb: Sandbox,
    nas: string,
    offsite: string,
    serve: (seed: number) => void,
    sshd: Awaited<ReturnType<typeof startSshd>>,
  ) => Promise<void>,
) {
  let zip = makeZip([{ name: "dump.sql", data: sqlDump(80_000, { seed: 1 }) }]);
  const src = startHttpsSource(cert, { "/dump.zip": () => new Response(zip.slice()) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  const sshd = await startSshd(join(sb.root, "sshd"));
  const nas = join(sb.root, "nas"), offsite = join(sshd.root, "offsite");
  await Deno.mkdir(nas);
  try {
    await fn(sb, nas, offsite, (seed) => (zip = makeZip([{ name: "dump.sql", data: sqlDump(80_000, { seed }) }])), sshd);
  } finally {
    await sh("umount", [nas]).catch(() => {});
    await sshd.stop();
    await src.close();
    await sb.cleanup();
  }
}

const mount = (dir: string) => sh("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir]);
const state = (sb: Sandbox) => JSON.parse(Deno.readTextFileSync(join(sb.stateDir, "testjob.state.json")));
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".tgz")).sort();

Deno.test("two destinations, each with its own retention: a NAS keeps 2 days, the off-site copy keeps a month", async () => {
  await withSetup(async (sb, nas, offsite, serve, sshd) => {
    await mount(nas);
    await sb.writeConfig({
      destination: undefined,
      destinations: [
        { type: "local", path: nas, require_mount: true, retention: { max_age: "2d", min_keep: 1 } },
        { ...sshd.destination(offsite, { create_dirs: true }) },
      ],
      retention: { max_age: "30d", min_keep: 1 },
    });
    for (const [i, day] of ["20", "21", "22", "23"].entries()) {
      serve(i + 10);
      const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(names(nas), ["20261121.tgz", "20261122.tgz", "20261123.tgz"], "the NAS keeps 2 days (plus the day on its boundary)");
    assert.deepEqual(names(offsite), ["20261120.tgz", "20261121.tgz", "20261122.tgz", "20261123.tgz"]);
    const log = await Deno.readTextFile(sb.logFile);
    assert.match(log, new RegExp(`store: ${nas}: stored 20261123\\.tgz`));
    assert.match(log, /store: sftp:\/\/\S+offsite: stored 20261123\.tgz/);
    assert.match(log, new RegExp(`retention: ${nas}: deleted 1 \\(20261120\\.tgz\\)`));
    const hist = historyRuns(sb.historyFile).at(-1);
    assert.equal(hist.steps.filter((s: { step: string }) => s.step === "store").length, 2, "one store record per destination");
    // The commands on one destination take --destination N; verify checks both.
    const list2 = await runCli(["list", "-c", sb.configPath, "--destination", "2"]);
    assert.equal(list2.code, 0, list2.stderr);
    assert.match(list2.stdout, /20261120\.tgz/);
    const list1 = await runCli(["list", "-c", sb.configPath]);
    assert.ok(!list1.stdout.includes("20261120.tgz"), list1.stdout);
    const bad = await runCli(["list", "-c", sb.configPath, "--destination", "3"]);
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /--destination 3: job testjob has 2 destination\(s\)/);
    const v = await runCli(["verify", "-c", sb.configPath, "--json"], { env: { ARCHIVIST_NOW: "2026-11-23T03:00:00Z" } });
    const checks = JSON.parse(v.stdout).checks as { name: string; status: string }[];
    assert.deepEqual(checks.filter((c) => c.name.startsWith("destination")).map((c) => [c.name, c.status]), [
      ["destination 1", "ok"],
      ["destination 2", "ok"],
    ]);
  });
});

Deno.test("the NAS unmounted with store.require: all: exit 30, the off-site copy is made, the state does not advance; the next night stores on both", async () => {
  await withSetup(async (sb, nas, offsite, _serve, sshd) => {
    await sb.writeConfig({
      destination: undefined,
      destinations: [{ type: "local", path: nas, require_mount: true }, sshd.destination(offsite, { create_dirs: true })],
    });
    const r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    assert.equal(r.code, EXIT.STORE, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`store: FAILED: ${nas}: ${nas} is not on a mounted filesystem.*\\(stored on sftp://\\S+; store\\.require: all\\)`),
    );
    assert.deepEqual(names(offsite), ["20261122.tgz"], "the destination that works still gets its copy");
    assert.ok(!(await Deno.stat(join(sb.stateDir, "testjob.state.json")).catch(() => undefined)), "no state: the night is not done");
    await mount(nas);
    const r2 = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(names(nas), ["20261123.tgz"]);
    assert.deepEqual(names(offsite), ["20261122.tgz", "20261123.tgz"]);
    assert.equal(state(sb).archive, "20261123.tgz");
  });
});

Deno.test("the off-site copy fails with store.require: any: a warning naming it; the next night sends it the copy although the dump is unchanged", async () => {
  await withSetup(async (sb, nas, offsite, _serve, sshd) => {
    await mount(nas);
    await sb.writeConfig({
      destination: undefined,
      destinations: [{ type: "local", path: nas, require_mount: true }, sshd.destination(offsite, { create_dirs: true })],
      store: { require: "any" },
    });
    // The off-site directory cannot take the archive tonight (a read-only filesystem there).
    await Deno.mkdir(offsite, { recursive: true });
    await sh("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", offsite]);
    let r;
    try {
      r = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
    } finally {
      await sh("umount", [offsite]);
    }
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    assert.match(r.stderr, /store: sftp:\/\/\S+offsite: FAILED: /);
    const hist = historyRuns(sb.historyFile).at(-1);
    assert.equal(hist.status, "warning");
    assert.ok(hist.warnings.some((w: string) => /^store: sftp:\/\/\S+offsite: /.test(w)), JSON.stringify(hist.warnings));
    assert.deepEqual(names(nas), ["20261122.tgz"]);
    assert.deepEqual(names(offsite), []);
    assert.equal(state(sb).missingOn.length, 1);
    // The same dump the next night: only the destination that missed it gets it.
    const r2 = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-23T02:30:00Z" } });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(
      await Deno.readTextFile(sb.logFile),
      /compare: the dump is identical .* but it is not on sftp:\/\/\S+offsite yet \(that store failed\): sending 20261122\.tgz there only/,
    );
    // The catch-up copy is the archive it completes: the same name and bytes, read from the NAS.
    assert.match(
      r2.stderr,
      /store: sftp:\/\/\S+offsite: the catch-up copy is 20261122\.tgz itself, read from \S+nas \(sha256 as catalogued\)/,
    );
    assert.deepEqual(names(nas), ["20261122.tgz"], "the NAS already has this data");
    assert.deepEqual(names(offsite), ["20261122.tgz"], "one archive, one name on both");
    assert.deepEqual(Deno.readFileSync(join(offsite, "20261122.tgz")), Deno.readFileSync(join(nas, "20261122.tgz")));
    assert.equal(state(sb).missingOn, undefined);
    assert.equal(state(sb).locations.length, 2, "the state knows it is on both");
    const to = join(sb.root, "restored-offsite");
    const rs = await runCli(["restore", "20261122.tgz", "--destination", "2", "--to", to, "-c", sb.configPath]);
    assert.equal(rs.code, 0, rs.stderr);
    const cat = Deno.readTextFileSync(join(sb.stateDir, "testjob.catalogue.jsonl")).trim().split("\n").map((l) => JSON.parse(l));
    const copies = cat.filter((e) => e.op === "stored" && e.name === "20261122.tgz");
    assert.equal(copies.length, 2);
    assert.equal(copies[1].runDate, copies[0].runDate, "aged by retention as the archive it completes");
    // And the night after, unchanged again: nothing to send anywhere (skip).
    const r3 = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-24T02:30:00Z" } });
    assert.equal(r3.code, EXIT.WARNING);
    assert.match(r3.stderr, /not archived again \(check\.on_unchanged: skip\)/);
    // A destination that missed it and was then removed from the config: nothing is stored, the state is kept.
    await sb.writeConfig({
      destination: undefined,
      destinations: [{ type: "local", path: nas, require_mount: true }],
      store: { require: "any" },
    });
    const st = JSON.parse(Deno.readTextFileSync(join(sb.stateDir, "testjob.state.json")));
    Deno.writeTextFileSync(join(sb.stateDir, "testjob.state.json"), JSON.stringify({ ...st, missingOn: ["sftp://gone"] }));
    const r4 = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-25T02:30:00Z" } });
    assert.equal(r4.code, EXIT.WARNING, r4.stderr);
    assert.match(r4.stderr, /no destination of this config misses the last archive \(sftp:\/\/gone is no longer one\): nothing stored/);
    assert.deepEqual(names(nas), ["20261122.tgz"]);
    assert.equal(state(sb).archive, "20261122.tgz", "the state is not rewritten for an archive nobody stored");
  });
});

Deno.test("destinations: config errors name the item and the key", async () => {
  const sb = await sandbox({ url: "https://127.0.0.1:9/x.zip", caFile: cert.caFile });
  try {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ destinations: [{ type: "local", path: "/x" }] }, /destinations: give destination: or destinations:, not both/],
      [{ destination: undefined, destinations: [] }, /destinations: is empty/],
      [
        { destination: undefined, destinations: [{ type: "local", path: "/x", retention: { max_agee: "2d" } }] },
        /destinations\[0\]\.retention\.max_agee: unknown key/,
      ],
      [
        { destination: undefined, destinations: [{ type: "local", path: "/x" }, { type: "ftps", host: "h", user: "u", path: "d" }] },
        /destinations\[1\]\.password: is required/,
      ],
      [{ destination: undefined }, /destination: is required \(or destinations: a list of them\)/],
    ];
    for (const [over, re] of cases) {
      await sb.writeConfig(over);
      const r = await runCli(["list", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.CONFIG, r.stderr);
      assert.match(r.stderr, re);
    }
  } finally {
    await sb.cleanup();
  }
});
