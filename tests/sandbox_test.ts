/**
 * What cron runs, the systemd unit must run: the sandbox install.sh writes is derived from the config (`archivist
 * unit`), and `verify` holds an installed unit (with its drop-ins) against what the config needs. Without systemd
 * running here, the unit's restrictions are applied for real with setpriv (the capability bounding set) and a
 * read-only bind mount (ProtectSystem=strict), to show that the derived lines are exactly what a night needs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCert, makeZip, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { MAIN, ROOT, runCli, sandbox } from "./helpers/cli.ts";
import { DENO_PERMISSIONS } from "../src/permissions.ts";
import { EXIT } from "../src/errors.ts";
import { parseUnit, sandboxProblems } from "../src/config/sandbox.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-sandboxcert-" }));
const ZIP = makeZip([{ name: "dump.sql", data: sqlDump(40_000) }]);
const NOW = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };

/** `archivist ARGS` behind a wrapper (setpriv, unshare), as the unit's sandbox would start it. */
async function wrapped(wrapper: string[], args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command(wrapper[0], {
    args: [...wrapper.slice(1), Deno.execPath(), "run", ...DENO_PERMISSIONS, "--quiet", MAIN, ...args],
    env: { NO_COLOR: "1", ...NOW },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
}

Deno.test("the unit's sandbox, applied for real: an empty bounding set breaks destination.owner, a read-only path the store; the derived lines run the night", async (t) => {
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(ZIP) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { check: { on_unchanged: "archive" } });
  try {
    await sb.writeConfig({ check: { on_unchanged: "archive" }, destination: { owner: "nobody" } });
    await Deno.mkdir(sb.dest, { recursive: true });
    const unit = await runCli(["unit", "-c", sb.configPath]);
    assert.equal(unit.code, 0, unit.stderr);
    assert.match(unit.stdout, /^CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_READ_SEARCH$/m);
    assert.match(unit.stdout, new RegExp(`^ReadWritePaths=.* -${sb.dest}( |$)`, "m"));

    await t.step("CapabilityBoundingSet= (empty), as the old unit had: the owner cannot be given, exit 30", async () => {
      const r = await wrapped(["setpriv", "--bounding-set", "-all"], ["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.STORE, r.err);
      assert.match(r.err, /store: FAILED: cannot give 20261122\.tgz\S* to nobody/);
    });
    await t.step(
      "the derived bounding set (CAP_CHOWN CAP_FOWNER CAP_DAC_READ_SEARCH): the night runs, the archive is nobody's",
      async () => {
        const r = await wrapped(["setpriv", "--bounding-set", "-all,+chown,+fowner,+dac_read_search"], ["run", "-c", sb.configPath]);
        assert.equal(r.code, 0, r.err);
        assert.equal(Deno.statSync(join(sb.dest, "20261122.tgz")).uid, 65534);
      },
    );
    await t.step("ProtectSystem=strict without the destination in ReadWritePaths (a read-only bind mount): exit 30", async () => {
      await sb.writeConfig({ check: { on_unchanged: "archive" } });
      for (const e of Deno.readDirSync(sb.dest)) Deno.removeSync(join(sb.dest, e.name));
      const d = sb.dest;
      const r = await wrapped(
        ["unshare", "-m", "sh", "-c", `mount --bind ${d} ${d} && mount -o remount,bind,ro ${d} && exec "$@"`, "sh"],
        ["run", "-c", sb.configPath],
      );
      assert.equal(r.code, EXIT.STORE, r.err);
      assert.match(r.err, /store: FAILED: cannot write 20261122\.tgz\.part: \S+ is on a read-only filesystem/);
    });
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

Deno.test("verify holds the installed unit and its drop-ins against the config: CRITICAL naming each blocked path and capability, OK once allowed", async () => {
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(ZIP) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  const unitFile = join(sb.root, "archivist.service");
  try {
    await Deno.writeTextFile(
      unitFile,
      "[Service]\nUser=root\nExecStart=/usr/local/bin/archivist run --quiet\nProtectSystem=strict\nReadWritePaths=/var/lib/archivist /var/log/archivist\nPrivateTmp=yes\nCapabilityBoundingSet=\n",
    );
    await sb.writeConfig({ destination: { owner: "nobody" }, verify: { unit_file: unitFile } });
    let r = await runCli(["verify", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.stdout, new RegExp(`✗ sandbox +${unitFile.replaceAll(".", "\\.")} would block the night: `));
    assert.match(r.stdout, new RegExp(`${sb.dest} \\(destination\\.path\\) is read-only under ProtectSystem=strict`));
    assert.match(r.stdout, new RegExp(`${sb.stateDir} \\(state_dir\\) is read-only under ProtectSystem=strict`));
    assert.match(r.stdout, /CAP_CHOWN \(destination\.owner\/group\) is not in CapabilityBoundingSet=/);
    assert.match(r.stdout, /hint: re-run install\.sh .* systemctl edit archivist\.service and set: ReadWritePaths=/);
    // `systemctl edit` writes a drop-in: verify reads it as systemd does.
    await Deno.mkdir(`${unitFile}.d`);
    const lines = (await runCli(["unit", "-c", sb.configPath])).stdout.split("\n").filter((l) => !l.startsWith("#"));
    await Deno.writeTextFile(join(`${unitFile}.d`, "override.conf"), `[Service]\n${lines.join("\n")}\n`);
    r = await runCli(["verify", "-c", sb.configPath], { env: NOW });
    assert.match(r.stdout, /✓ sandbox +.* allows every path and capability this config needs/);
    // Without the unit (cron), no sandbox line at all.
    await Deno.remove(unitFile);
    r = await runCli(["verify", "-c", sb.configPath], { env: NOW });
    assert.doesNotMatch(r.stdout, /sandbox/);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});

Deno.test("the unit's rules: PrivateTmp hides a destination under /tmp, ProtectHome a home, a User= other than root needs no capability", () => {
  const needs = {
    writes: [{ what: "/tmp/backups", why: "destination.path" }, { what: "/home/b/arch", why: "destinations[1].path" }, {
      what: "/var/tmp/archivist",
      why: "work_dir",
    }],
    capabilities: [{ what: "CAP_CHOWN", why: "destination.owner/group" }],
  };
  const strict = parseUnit("ProtectSystem=strict\nProtectHome=read-only\nPrivateTmp=yes\nReadWritePaths=-/tmp/backups /var/tmp\n");
  assert.deepEqual(sandboxProblems(needs, strict), [
    "/tmp/backups (destination.path) is under PrivateTmp=yes: what the service writes there vanishes when it ends",
    "/home/b/arch (destinations[1].path) is read-only under ProtectSystem=strict: it is not in ReadWritePaths=",
  ]);
  assert.deepEqual(sandboxProblems(needs, parseUnit("User=backup\nCapabilityBoundingSet=\n")), [], "no capability counts for backup");
  assert.deepEqual(sandboxProblems(needs, parseUnit("CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_CHOWN\n")), []);
  assert.equal(
    sandboxProblems(needs, parseUnit("ReadWritePaths=/home\nReadWritePaths=\nProtectSystem=strict\n")).length,
    3,
    "an empty line resets the list",
  );
});
