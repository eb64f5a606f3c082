/**
 * The local destination as Cedar Backup and Syncropy use one: archives staged with a given owner, group and
 * mode; and check.on_unchanged: link, an unchanged dump kept as a hard link to the archive it equals (one copy on
 * disk, an archive and a sidecar per day), through whole runs of the CLI, with retention, check and restore.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";

import { runCli, type Sandbox } from "./helpers/cli.ts";
import { ensureUser, randomPassword, TEST_USER } from "./servers/common.ts";
import { EXIT } from "../src/errors.ts";
import { withSource } from "./helpers/source.ts";

const BODY = sqlDump(300_000, { seed: 5, trailer: false });

/** The same data, dumped at `when`: only mysqldump's trailer line differs. */
function dumpAt(when: string, body = BODY): Uint8Array {
  const tail = new TextEncoder().encode(`-- Dump completed on ${when}\n`);
  const out = new Uint8Array(body.length + tail.length);
  out.set(body);
  out.set(tail, body.length);
  return out;
}

const FIRST_ZIP = makeZip([{ name: "dump.sql", data: dumpAt("2026-11-01  2:00:01") }]);

const night = (sb: Sandbox, iso: string) => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: iso } });

Deno.test("without mode: archive and sidecar are 0600, for their owner only, whatever the umask", async () => {
  await withSource({ zip: FIRST_ZIP }, async (sb) => {
    const r = await night(sb, "2026-11-22T02:30:00Z");
    assert.equal(r.code, 0, r.stderr);
    for (const n of ["20261122.tgz", "20261122.tgz.sha256"]) assert.equal(Deno.statSync(join(sb.dest, n)).mode! & 0o7777, 0o600, n);
  });
});

Deno.test("owner, group and mode are given to each archive and sidecar before it appears", async () => {
  await ensureUser(randomPassword());
  const uid = Number((await sh("id", ["-u", TEST_USER])).trim());
  const gid = Number((await sh("id", ["-g", TEST_USER])).trim());
  await withSource({ zip: FIRST_ZIP }, async (sb) => {
    await sb.writeConfig({ destination: { owner: TEST_USER, group: gid, mode: 640 } });
    const r = await night(sb, "2026-11-22T02:30:00Z");
    assert.equal(r.code, 0, r.stderr);
    for (const n of ["20261122.tgz", "20261122.tgz.sha256"]) {
      const st = Deno.statSync(join(sb.dest, n));
      assert.equal(st.uid, uid, n);
      assert.equal(st.gid, gid, n);
      assert.equal(st.mode! & 0o7777, 0o640, n);
    }
    // "0640" as a string means the same; a mode that lets others write is refused, naming the key.
    await sb.writeConfig({ destination: { mode: "0666" } });
    const bad = await night(sb, "2026-11-23T02:30:00Z");
    assert.equal(bad.code, EXIT.CONFIG, bad.stderr);
    assert.match(bad.stderr, /destination\.mode: 0666 lets anyone on the machine replace an archive/);
    await sb.writeConfig({ check: { on_unchanged: "archive" }, destination: { owner: "no-such-user-x" } });
    const nouser = await night(sb, "2026-11-23T02:30:00Z");
    assert.equal(nouser.code, EXIT.STORE, nouser.stderr);
    assert.match(nouser.stderr, /destination\.owner: no user "no-such-user-x" on this machine/);
  });
});

Deno.test("as another user than root: an owner other than itself is refused with the reason; a refused hard link becomes a copy", async () => {
  await ensureUser(randomPassword());
  const dir = await Deno.makeTempDir({ prefix: "archivist-owner-" });
  await Deno.chmod(dir, 0o777);
  let script = join(dir, "t.ts");
  const src = new URL("../src/", import.meta.url).pathname;
  await Deno.writeTextFile(
    script,
    `import { LocalTransport } from "${src}transports/local.ts";
import { Logger } from "${src}report/log.ts";
import { mapEnv } from "${src}os/env.ts";
const [owner, group] = Deno.args;
const cfg = { type: "local", path: "${dir}/d", create_dirs: true, require_mount: false, verify: "size", owner: owner || undefined, group: group || undefined };
const t = new LocalTransport(cfg, { log: new Logger({ runId: "x", stderrLevel: "off", sink: () => {} }), env: mapEnv({}), privateDir: "${dir}" });
try {
  await t.open();
  await Deno.writeTextFile("${dir}/a", "x");
  await t.put("${dir}/a", "20261122.tgz");
  console.log("stored");
} catch (e) { console.log(e.code + ": " + e.message + " | " + e.hint); }
`,
  );
  await Deno.chmod(script, 0o644);
  const asTest = async (...args: string[]) => {
    const r = await new Deno.Command("setpriv", {
      args: [`--reuid=${TEST_USER}`, `--regid=${TEST_USER}`, "--clear-groups", Deno.execPath(), "run", "-A", "--no-lock", script, ...args],
      env: { DENO_DIR: join(dir, "deno"), HOME: dir, NO_COLOR: "1" },
      cwd: dir,
    }).output();
    return new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  };
  try {
    assert.match(
      await asTest("root"),
      /^permission: destination\.owner is root \(uid 0\) but archivist runs as uid \d+, not root: .*\| run archivist as root/m,
    );
    assert.match(
      await asTest("", "root"),
      /^permission: cannot give 20261122\.tgz\.?\S* to :root .*\| .*destination\.group must be one of the run user's groups/m,
    );
    assert.match(await asTest(TEST_USER, TEST_USER), /^stored$/m, "its own user and group need no root");
    // Where a hard link is refused (here: the kernel's protected_hardlinks, for a file of root's that this user may
    // not write; elsewhere a filesystem without hard links), link() falls back to a whole copy.
    await Deno.writeTextFile(
      join(dir, "link.ts"),
      `import { LocalTransport } from "${src}transports/local.ts";
import { Logger } from "${src}report/log.ts";
import { mapEnv } from "${src}os/env.ts";
const t = new LocalTransport({ type: "local", path: "${dir}/d", create_dirs: true, require_mount: false, verify: "size" }, { log: new Logger({ runId: "x", stderrLevel: "off", sink: () => {} }), env: mapEnv({}), privateDir: "${dir}" });
await t.open();
console.log(await t.link("20261120.tgz", "20261121.tgz"));
`,
    );
    await Deno.writeTextFile(join(dir, "d", "20261120.tgz"), "the archive\n");
    await Deno.chmod(join(dir, "d", "20261120.tgz"), 0o644);
    await Deno.chmod(join(dir, "d"), 0o777);
    script = join(dir, "link.ts");
    assert.match(await asTest(), /^copied$/m);
    assert.equal(await Deno.readTextFile(join(dir, "d", "20261121.tgz")), "the archive\n");
    assert.equal(Deno.statSync(join(dir, "d", "20261121.tgz")).nlink, 1);
    assert.deepEqual(
      [...Deno.readDirSync(join(dir, "d"))].map((e) => e.name).sort(),
      ["20261120.tgz", "20261121.tgz", "20261122.tgz"],
      "no temp file left",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check.on_unchanged: link: an unchanged dump becomes a hard link with its own sidecar; retention, check and restore treat it as an archive", async () => {
  await withSource({ zip: FIRST_ZIP }, async (sb, _src, serve) => {
    await sb.writeConfig({ check: { on_unchanged: "link" }, retention: { max_age: "6d12h", min_keep: 1 } });
    assert.equal((await night(sb, "2026-11-20T02:30:00Z")).code, 0);
    // The next nights: the same data, dumped at another time (only the trailer line differs).
    serve(makeZip([{ name: "dump.sql", data: dumpAt("2026-11-21  2:00:07") }]));
    const r = await night(sb, "2026-11-21T02:30:00Z");
    assert.equal(r.code, 0, r.stderr);
    const a = Deno.statSync(join(sb.dest, "20261120.tgz")), b = Deno.statSync(join(sb.dest, "20261121.tgz"));
    assert.equal(b.ino, a.ino, "the same inode");
    assert.equal(b.nlink, 2);
    const log = await Deno.readTextFile(sb.logFile);
    assert.match(
      log,
      /20261121\.tgz is a hard link to 20261120\.tgz \(the same data, one copy on disk\), with its own 20261121\.tgz\.sha256/,
    );
    // Each name has a sidecar naming itself, which sha256sum accepts.
    assert.match(await Deno.readTextFile(join(sb.dest, "20261121.tgz.sha256")), /^[0-9a-f]{64} {2}20261121\.tgz\n$/);
    await sh("sha256sum", ["-c", "20261120.tgz.sha256", "20261121.tgz.sha256"], { cwd: sb.dest });
    const cat = (await Deno.readTextFile(join(sb.stateDir, "testjob.catalogue.jsonl"))).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(cat.find((e) => e.name === "20261121.tgz").linkOf, "20261120.tgz");
    const check = await runCli(["check", "--all", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-21T03:00:00Z" } });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    // Retention deletes the first name only: the link keeps the data.
    serve(makeZip([{ name: "dump.sql", data: dumpAt("2026-11-27  2:00:03") }]));
    assert.equal((await night(sb, "2026-11-27T02:30:00Z")).code, 0);
    assert.ok(!(await Deno.stat(join(sb.dest, "20261120.tgz")).catch(() => undefined)), "the expired name is deleted");
    assert.equal(Deno.statSync(join(sb.dest, "20261121.tgz")).ino, a.ino, "its link keeps the data");
    assert.equal(Deno.statSync(join(sb.dest, "20261127.tgz")).ino, a.ino);
    const out = join(sb.root, "restored");
    await Deno.mkdir(out);
    const rs = await runCli(["restore", "20261127.tgz", "--to", out, "-c", sb.configPath]);
    assert.equal(rs.code, 0, rs.stderr);
    assert.deepEqual(
      await Deno.readFile(join(out, "dump.sql")),
      dumpAt("2026-11-01  2:00:01"),
      "the first night's bytes: the data it equals",
    );
  });
});

Deno.test("on_unchanged: link when the archive it equals is gone: tonight's archive is stored instead; and link needs a local destination", async () => {
  await withSource({ zip: FIRST_ZIP }, async (sb) => {
    await sb.writeConfig({ check: { on_unchanged: "link" } });
    assert.equal((await night(sb, "2026-11-20T02:30:00Z")).code, 0);
    await Deno.remove(join(sb.dest, "20261120.tgz"));
    const r = await night(sb, "2026-11-21T02:30:00Z");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      await Deno.readTextFile(sb.logFile),
      /20261120\.tgz, the archive tonight's dump equals, is no longer on .*: storing tonight's archive instead of a link/,
    );
    assert.equal(Deno.statSync(join(sb.dest, "20261121.tgz")).nlink, 1);
    await sh("sha256sum", ["-c", "20261121.tgz.sha256"], { cwd: sb.dest });
    await sb.writeConfig({
      check: { on_unchanged: "link" },
      destination: { type: "sftp", path: "/x", create_dirs: undefined, host: "h", user: "u", key_file: "/k", known_hosts_file: "/kh" },
    });
    const bad = await night(sb, "2026-11-22T02:30:00Z");
    assert.equal(bad.code, EXIT.CONFIG, bad.stderr);
    assert.match(
      bad.stderr,
      /check\.on_unchanged: link makes a hard link on the destination's disk: it needs destination\.type: local, not sftp/,
    );
  });
});

Deno.test("on_unchanged: link never links to damaged bytes: a byte flipped in the archive it equals (same size), tonight's archive is stored whole and the night says so", async () => {
  await withSource({ zip: FIRST_ZIP }, async (sb, _src, serve) => {
    await sb.writeConfig({ check: { on_unchanged: "link" } });
    assert.equal((await night(sb, "2026-11-20T02:30:00Z")).code, 0);
    const first = join(sb.dest, "20261120.tgz");
    const bytes = await Deno.readFile(first);
    bytes[bytes.length >> 1] ^= 0x01;
    await Deno.writeFile(first, bytes);
    serve(makeZip([{ name: "dump.sql", data: dumpAt("2026-11-21  2:00:07") }]));
    const r = await night(sb, "2026-11-21T02:30:00Z");
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    assert.match(
      r.stderr,
      /20261120\.tgz, the archive tonight's dump equals, has sha256 [0-9a-f]{64} on \S+ where the catalogue recorded [0-9a-f]{64}: its bytes are damaged; tonight's archive is stored whole/,
    );
    const b = Deno.statSync(join(sb.dest, "20261121.tgz"));
    assert.equal(b.nlink, 1, "not a link to the damaged file");
    await sh("sha256sum", ["-c", "20261121.tgz.sha256"], { cwd: sb.dest });
    const out = join(sb.root, "restored");
    await Deno.mkdir(out);
    assert.equal((await runCli(["restore", "20261121.tgz", "--to", out, "-c", sb.configPath])).code, 0);
    assert.deepEqual(await Deno.readFile(join(out, "dump.sql")), dumpAt("2026-11-21  2:00:07"), "tonight's good dump is restorable");
  });
});

Deno.test("a mount that accepts chown and chmod and ignores them (rclone mount, FUSE): a warning naming the mount, or exit 30 with strict_ownership", async () => {
  const root = await Deno.makeTempDir({ prefix: "archivist-fuse-" });
  const backing = join(root, "backing"), mnt = join(root, "mnt");
  await Deno.mkdir(backing);
  await Deno.mkdir(mnt);
  const mount = new Deno.Command("rclone", {
    args: ["mount", "--config", "/dev/null", backing, mnt, "--allow-non-empty"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    for (
      let i = 0;
      i < 200 &&
      !/fuse\.rclone/.test(await Deno.readTextFile("/proc/mounts").then((t) => t.split("\n").find((l) => l.includes(mnt)) ?? ""));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await withSource({ zip: FIRST_ZIP }, async (sb) => {
      await sb.writeConfig({ destination: { path: join(mnt, "db"), owner: "nobody", mode: "0640" } });
      const r = await night(sb, "2026-11-22T02:30:00Z");
      assert.equal(r.code, EXIT.WARNING, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `store: .*the filesystem mounted at ${mnt} did not keep the owner nobody \\(uid 65534; it is uid 0\\), mode 0640 \\(it is 0644\\) given to 20261122\\.tgz\\S*: it ignores chown/chmod .*hint: set uid, gid and file_mode in the mount's options`,
        ),
      );
      assert.ok(Deno.statSync(join(backing, "db", "20261122.tgz")).isFile, "the archive is stored all the same");
      await sb.writeConfig({
        check: { on_unchanged: "archive" },
        destination: { path: join(mnt, "db"), owner: "nobody", strict_ownership: true },
      });
      const strict = await night(sb, "2026-11-23T02:30:00Z");
      assert.equal(strict.code, EXIT.STORE, strict.stderr);
      assert.match(strict.stderr, /store: FAILED: the filesystem mounted at .* did not keep the owner nobody/);
      // rclone dies (OOM, kill -9): the mount point stays, stale. The night names it and the remount, with
      // require_mount (it was "not mounted, on the root filesystem") and without.
      mount.kill("SIGKILL");
      await mount.status;
      for (const require_mount of [true, false]) {
        await sb.writeConfig({ check: { on_unchanged: "archive" }, destination: { path: join(mnt, "db"), require_mount } });
        const stale = await night(sb, "2026-11-24T02:30:00Z");
        assert.equal(stale.code, EXIT.STORE, stale.stderr);
        assert.match(
          stale.stderr,
          new RegExp(
            `store: FAILED: .*${mnt} is a stale mount \\(transport endpoint is not connected\\).*hint: unmount it \\(umount -l ${mnt}`,
          ),
        );
      }
    });
  } finally {
    await new Deno.Command("fusermount3", { args: ["-u", mnt] }).output();
    try {
      mount.kill("SIGTERM");
    } catch { /* it ended with the unmount */ }
    await mount.status;
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
