/**
 * Every destination against its real server on 127.0.0.1: the conformance suite, the errors a user must be able to
 * tell apart, a full `archivist run` with retention, and a check that no password ever shows in `ps`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { stringify } from "yaml";
import { makeCert, makeZip, sh, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { conformance, expectCode, makeTransport, type Target } from "./transports/conformance.ts";
import { startSshd } from "./servers/sshd.ts";
import { startVsftpd } from "./servers/vsftpd.ts";
import { startWebdav } from "./servers/webdav.ts";
import { startSmbd } from "./servers/smbd.ts";
import { startNginxDav } from "./servers/nginx.ts";
import { startApacheDav } from "./servers/apache.ts";
import { startProftpd, startPureFtpd } from "./servers/ftpd.ts";
import { type RsyncdServer, startRsyncd } from "./servers/rsyncd.ts";
import { freePort, TEST_USER } from "./servers/common.ts";
import { type CliResult, runCli, type Sandbox, sandbox, spawnCli, waitFor } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";
import { parseMlsd } from "../src/transports/ftps.ts";
import { uploadAtomic } from "../src/transports/transport.ts";

const top = await Deno.makeTempDir({ prefix: "archivist-tr-" });
await Deno.chmod(top, 0o755); // the FTP/SMB test user must traverse it
const cert: TestCert = await makeCert(join(top, "tls"));
const priv = join(top, "priv");
await Deno.mkdir(priv, { mode: 0o700 });

async function chownTest(path: string) {
  await sh("chown", ["-R", `${TEST_USER}:`, path]);
}

/** A dump that compresses poorly, so that a transfer lasts long enough to be seen in `ps`. */
function bigDump(bytes: number): Uint8Array {
  const rnd = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 65536) crypto.getRandomValues(rnd.subarray(i, Math.min(bytes, i + 65536)));
  const body = Buffer.from(rnd).toString("base64");
  return new TextEncoder().encode(`-- MySQL dump\nINSERT INTO blobs VALUES ('${body}');\n-- Dump completed on 2026-11-22\n`);
}

/**
 * A full `archivist run` to `destination`, with retention on, an old archive and a foreign file planted, and
 * /proc scanned during the run: no process's command line may contain `password`.
 */
async function fullRun(
  t: Deno.TestContext,
  destination: Record<string, unknown>,
  serverDir: string,
  password: string | undefined,
  tool: string,
  own?: (p: string) => Promise<void>,
) {
  await t.step("full archivist run with retention; the password never appears in ps, log or history", async () => {
    const dump = bigDump(24 * 1024 * 1024);
    const zip = makeZip([{ name: "dump.sql", data: dump }]);
    // Two different dumps: the earlier night gets a small one of its own.
    let serving = makeZip([{ name: "dump.sql", data: bigDump(200_000) }]);
    const src = startHttpsSource(cert, { "/dump.zip": () => new Response(serving.slice()) });
    const root = await Deno.makeTempDir({ prefix: "archivist-full-" });
    try {
      await Deno.mkdir(serverDir, { recursive: true });
      // A look-alike archive put there by hand (not in the catalogue: never deleted), a foreign file, and an upload
      // cut mid-way by an earlier run.
      for (const f of ["20260101.tgz", "20260101.tgz.sha256", "keep-me.txt", "20261121.tgz.part"]) {
        await Deno.writeTextFile(join(serverDir, f), "old\n");
      }
      await own?.(serverDir);
      const cfg = join(root, "archive.yaml");
      const dest = { ...destination };
      if (password !== undefined && "password" in dest) {
        await Deno.writeTextFile(join(root, "pw"), password + "\n");
        delete dest.password;
        dest.password_file = join(root, "pw");
      }
      await Deno.writeTextFile(
        cfg,
        stringify({
          name: "nightly",
          state_dir: join(root, "state"),
          work_dir: join(root, "work"),
          source: { url: src.url("/dump.zip"), entry: "dump.sql", ca_file: cert.caFile },
          check: { expect_trailer: "-- Dump completed", on_unchanged: "archive" },
          archive: { timezone: "UTC", compression_level: 1 },
          destination: dest,
          retention: { max_age: "30d", min_keep: 1 },
          log: { file: join(root, "archivist.log") },
        }),
      );
      await Deno.chmod(cfg, 0o600);
      // A real run 31 days earlier: its archive is in the catalogue and older than max_age on the night below.
      const early = await runCli(["run", "-c", cfg], { env: { ARCHIVIST_NOW: "2026-10-22T02:30:00Z" } });
      assert.equal(early.code, 0, early.stderr);
      await Deno.writeTextFile(join(serverDir, "20261121.tgz.part"), "old\n"); // a cut upload (that run removed the first)
      await own?.(serverDir);
      serving = zip;
      const child = spawnCli(["run", "-c", cfg], { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" });
      // Scan every process's command line while the run goes on.
      let sawTool = 0;
      const leaks: string[] = [];
      let running = true;
      const status = child.status.then((s) => ((running = false), s));
      while (running) {
        for (const e of Deno.readDirSync("/proc")) {
          if (!/^\d+$/.test(e.name)) continue;
          let cmd = "";
          try {
            cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
          } catch {
            continue;
          }
          if (cmd.startsWith(tool) || cmd.includes(`/${tool} `)) sawTool++;
          if (password && cmd.includes(password) && !cmd.includes("rclone serve")) leaks.push(cmd);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      const out = await child.output();
      await status;
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.ok(sawTool > 0, `saw ${tool} running at least once while scanning /proc`);
      assert.deepEqual(leaks, [], "no command line contains the password");
      const files = [...Deno.readDirSync(serverDir)].map((e) => e.name).sort();
      assert.deepEqual(
        files,
        ["20260101.tgz", "20260101.tgz.sha256", "20261122.tgz", "20261122.tgz.sha256", "keep-me.txt"],
        "the expired archive deleted with its sidecar, the cut upload removed, the look-alike and the foreign file kept",
      );
      assert.match(await sh("sha256sum", ["-c", "20261122.tgz.sha256"], { cwd: serverDir }), /OK/);
      const log = await Deno.readTextFile(join(root, "archivist.log"));
      assert.match(log, /deleted 20261022\.tgz: older than max_age/);
      assert.match(log, /1 archive\(s\) on the destination are not in the catalogue: listed, never deleted/);
      assert.match(log, /removed 20261121\.tgz\.part \(4 B\), left by an interrupted upload/);
      if (destination.verify === "checksum") {
        // rclone's local backend hashes the stored file itself (rclone hashsum); the others are downloaded back.
        const how = tool === "rclone" && String(destination.remote).startsWith("disk:")
          ? ", hashed by the destination"
          : " by reading it back";
        assert.match(log, new RegExp(`stored 20261122\\.tgz \\(.*, sha256 verified${how}\\)`));
      } else assert.match(log, /stored 20261122\.tgz \(.*, size verified\)/);
      if (password) {
        assert.ok(!log.includes(password) && !stderr.includes(password));
        assert.ok(!(await Deno.readTextFile(join(root, "state", "history.jsonl"))).includes(password));
      }
      // The other commands against the same server: list, prune --dry-run, restore latest, verify.
      const later = { ARCHIVIST_NOW: "2026-11-22T09:00:00Z" };
      const list = await runCli(["list", "-c", cfg], { env: later });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^newest \(stored last\) first:\n20261122\.tgz .*kept by/);
      assert.match(list.stdout, /20260101\.tgz .*not in the catalogue/);
      const dry = await runCli(["prune", "--dry-run", "-c", cfg], { env: later });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /^keep {3}20261122\.tgz /m);
      const to = join(root, "restored");
      const rest = await runCli(["restore", "latest", "--to", to, "-c", cfg], { env: later });
      assert.equal(rest.code, 0, rest.stderr);
      assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), dump, "restore latest gives the dump back");
      const v = await runCli(["verify", "-c", cfg], { env: later });
      assert.match(v.stdout, /✓ destination +.*connected, directory exists, write \+ rename \+ delete of a probe file work/);
      assert.ok(![...Deno.readDirSync(serverDir)].some((e) => /probe|\.part/.test(e.name)), "verify left nothing behind");
    } finally {
      await src.close();
      await Deno.remove(root, { recursive: true });
    }
  });
}

/** The destination config of a test FTP server (vsftpd, pure-ftpd, proftpd); `over` adds or replaces keys. */
function ftpsConfig(s: { port: number; user: string; password: string }, fixed: Record<string, unknown> = {}) {
  return (over: Record<string, unknown> = {}) => ({
    type: "ftps",
    host: "127.0.0.1",
    port: s.port,
    user: s.user,
    password: s.password,
    ca_file: cert.caFile,
    timeout: "10s",
    ...fixed,
    ...over,
  });
}

Deno.test("local directory: conformance", async (t) => {
  const root = join(top, "local");
  await conformance(t, {
    config: (sub, over) => ({ type: "local", path: join(root, sub), ...over }),
    serverPath: (sub) => join(root, sub),
  });
});

Deno.test("sftp against OpenSSH sshd", async (t) => {
  const s = await startSshd(join(top, "sshd"));
  const base = (over: Record<string, unknown> = {}) => s.destination(over.path as string, { timeout: "10s", ...over });
  try {
    const target: Target = {
      config: (sub, over) => base({ path: join(s.root, sub), ...over }),
      serverPath: (sub) => join(s.root, sub),
      progress: false, // sftp -b shows no progress meter
    };
    await conformance(t, target);

    await t.step("one SSH login serves every command (ControlMaster), counted in sshd's log", async () => {
      const before = await s.logins();
      const tr = makeTransport(base({ path: s.root }), priv);
      await tr.open();
      const local = join(top, "mux.bin");
      await Deno.writeTextFile(local, "x".repeat(1000));
      await uploadAtomic(tr, local, "20261101.tgz");
      await tr.list();
      await tr.download("20261101.tgz", join(top, "mux.back"));
      await tr.remove("20261101.tgz");
      const control = (tr as unknown as { ssh: { control: string } }).ssh.control;
      assert.ok(Deno.statSync(control).isSocket, "a control socket serves the commands after open()");
      await tr.close();
      assert.throws(() => Deno.statSync(control), "the socket is gone after close()");
      await waitFor(async () => (await s.logins()) > before, "sshd's log line of the login"); // written asynchronously
      assert.equal((await s.logins()) - before, 1, "open, put, rename, list, get and rm over one login");
      // A whole night and a verify: one login each.
      const root = await Deno.makeTempDir({ prefix: "archivist-mux-" });
      const src = startHttpsSource(cert, { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: bigDump(100_000) }])) });
      try {
        const cfg = join(root, "archive.yaml");
        await Deno.writeTextFile(
          cfg,
          stringify({
            name: "mux",
            state_dir: join(root, "state"),
            work_dir: join(root, "work"),
            source: { url: src.url("/dump.zip"), entry: "dump.sql", ca_file: cert.caFile },
            archive: { timezone: "UTC" },
            destination: base({ path: join(s.root, "mux"), create_dirs: true }),
            retention: { max_age: "30d", min_keep: 1 },
            log: { file: join(root, "archivist.log") },
          }),
        );
        await Deno.chmod(cfg, 0o600);
        let n = await s.logins();
        const r = await runCli(["run", "-c", cfg], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } });
        assert.equal(r.code, 0, r.stderr);
        await new Promise((ok) => setTimeout(ok, 200));
        assert.equal((await s.logins()) - n, 1, "a whole run logs in once");
        n = await s.logins();
        await runCli(["verify", "-c", cfg], { env: { ARCHIVIST_NOW: "2026-11-22T03:00:00Z" } });
        await new Promise((ok) => setTimeout(ok, 200));
        assert.equal((await s.logins()) - n, 1, "verify logs in once");
      } finally {
        await src.close();
        await Deno.remove(root, { recursive: true });
      }
    });
    await t.step("wrong key: authentication refused", async () => {
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(top, "other_key")]);
      await expectCode(
        makeTransport(base({ path: s.root, key_file: join(top, "other_key") }), priv).open(),
        "auth",
        /authentication refused by 127\.0\.0\.1:\d+ for user/,
      );
    });
    await t.step("host key mismatch is refused and explained", async () => {
      const bad = join(top, "known_bad");
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(top, "fake_host")]);
      await Deno.writeTextFile(
        bad,
        `[127.0.0.1]:${s.port} ${(await Deno.readTextFile(join(top, "fake_host.pub"))).split(" ").slice(0, 2).join(" ")}\n`,
      );
      await expectCode(
        makeTransport(base({ path: s.root, known_hosts_file: bad }), priv).open(),
        "host_key_mismatch",
        /does not match .*possible man-in-the-middle/,
      );
    });
    await t.step("unknown host key: strict refuses; accept-new records it and logs the fingerprint", async () => {
      const empty = join(top, "known_empty");
      await Deno.writeTextFile(empty, "");
      await expectCode(
        makeTransport(base({ path: s.root, known_hosts_file: empty }), priv).open(),
        "host_key_unknown",
        /is not in .*known_empty[\s\S]*accept-new/,
      );
      const lines: string[] = [];
      const tr = makeTransport(base({ path: s.root, known_hosts_file: empty, host_key: "accept-new" }), priv, lines);
      await tr.open();
      await tr.close();
      assert.match(lines.join("\n"), /first contact with \[127\.0\.0\.1\]:\d+: recorded its host key .*SHA256:/);
      assert.match(await Deno.readTextFile(empty), /ssh-ed25519/);
    });
    await fullRun(t, base({ path: join(s.root, "nightly"), verify: "checksum" }), join(s.root, "nightly"), undefined, "sftp");
    await t.step("server down: connection refused", async () => {
      await s.stop();
      await expectCode(makeTransport(base({ path: s.root }), priv).open(), "refused", /connection refused by 127\.0\.0\.1:\d+/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("ftps against vsftpd (explicit TLS, session reuse required, no MLSD)", async (t) => {
  const s = await startVsftpd(join(top, "ftp"), cert);
  const base = ftpsConfig(s);
  try {
    await conformance(t, { config: (sub, over) => base({ path: sub, ...over }), serverPath: (sub) => join(s.home, sub), own: chownTest });
    await t.step("wrong password: login refused", async () => {
      await expectCode(
        makeTransport(base({ path: "x", password: "wrong" }), priv).open(),
        "auth",
        /login refused by 127\.0\.0\.1:\d+ for user archtest/,
      );
    });
    await t.step("untrusted certificate: refused, hint names ca_file", async () => {
      await expectCode(
        makeTransport(base({ path: "x", ca_file: undefined }), priv).open(),
        "tls_untrusted",
        /not trusted[\s\S]*destination\.ca_file/,
      );
    });
    const sub = `nightly-${crypto.randomUUID().slice(0, 6)}`;
    await fullRun(t, base({ path: sub }), join(s.home, sub), s.password, "curl", chownTest);
    await t.step("an upload cut without a reply is diagnosed by a 4 KiB test write: full disk, or a network drop", async () => {
      // proftpd may close the data connection on a failed write before curl reads its 451 ("Send failure: Broken
      // pipe"); that race cannot be forced, so the diagnosis is run directly against a really full disk.
      const full = `cut-${crypto.randomUUID().slice(0, 6)}`;
      const dir = join(s.home, full);
      await Deno.mkdir(dir, { recursive: true });
      await sh("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", dir]);
      try {
        await chownTest(dir);
        await new Deno.Command("dd", { args: ["if=/dev/zero", `of=${join(dir, "filler")}`, "bs=4k"], stderr: "null" }).output();
        const tr = makeTransport(base({ path: full }), priv);
        await tr.open();
        try {
          const cut = { message: "upload of 20261124.tgz.part: transfer cut (curl: (55) Send failure: Broken pipe)" };
          // deno-lint-ignore no-explicit-any
          const e = await (tr as any).cutCause("20261124.tgz.part", cut);
          assert.equal(e?.code, "disk_full", String(e?.message));
          assert.match(
            e.message,
            /^upload of 20261124\.tgz\.part: no space left on the destination .*transfer cut .*a 4 KiB test write then failed/,
          );
          await Deno.remove(join(dir, "filler"));
          // deno-lint-ignore no-explicit-any
          assert.equal(await (tr as any).cutCause("20261124.tgz.part", cut), undefined, "room again: a network drop");
          assert.deepEqual([...Deno.readDirSync(dir)].map((x) => x.name), [], "the test writes are removed");
        } finally {
          await tr.close();
        }
      } finally {
        await sh("umount", [dir]);
      }
    });
    await t.step("server down: connection refused", async () => {
      await s.stop();
      await expectCode(makeTransport(base({ path: "x" }), priv).open(), "refused", /connection refused by 127\.0\.0\.1:\d+/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("ftps with implicit TLS (vsftpd implicit_ssl)", async (t) => {
  const s = await startVsftpd(join(top, "ftp-implicit"), cert, { implicit: true });
  const base = ftpsConfig(s, { tls: "implicit" });
  try {
    await conformance(t, { config: (sub, over) => base({ path: sub, ...over }), serverPath: (sub) => join(s.home, sub), own: chownTest });
    await t.step("explicit TLS against an implicit server times out with a hint naming destination.tls", async () => {
      await expectCode(
        makeTransport(base({ path: "x", tls: "explicit", timeout: "3s" }), priv).open(),
        "timeout",
        /set destination\.tls: implicit/,
      );
    });
  } finally {
    await s.stop();
  }
});

Deno.test("MLSD listings are parsed with exact sizes, directories flagged, . and .. skipped", () => {
  const text = "type=cdir;modify=20261122020000;perm=el; .\r\ntype=pdir;modify=20261122020000; ..\r\n" +
    "type=file;size=123456;modify=20261122023001;perm=adfrw; 20261122.tgz\r\ntype=dir;modify=20261101000000; old stuff\r\n";
  assert.deepEqual(parseMlsd(text), [
    { name: "20261122.tgz", size: 123456, isDir: false, mtime: new Date(Date.UTC(2026, 10, 22, 2, 30, 1)) },
    { name: "old stuff", size: 0, isDir: true, mtime: new Date(Date.UTC(2026, 10, 1)) },
  ]);
});

Deno.test("webdav against rclone serve webdav over HTTPS", async (t) => {
  const s = await startWebdav(join(top, "dav"), cert);
  const base = (over: Record<string, unknown> = {}) => ({
    type: "webdav",
    url: s.url("/"),
    user: s.user,
    password: s.password,
    ca_file: cert.caFile,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, {
      config: (sub, over) => base({ url: s.url(sub + "/"), ...over }),
      serverPath: (sub) => join(s.root, sub),
      // rclone answers a write that failed (disk full) with a bare 405: a 4 KiB test write tells it from a refused PUT.
    });
    await t.step("wrong password: authentication refused (401)", async () => {
      await expectCode(makeTransport(base({ password: "wrong" }), priv).open(), "auth", /authentication refused .*HTTP 401/);
    });
    await t.step("untrusted certificate: refused, hint names ca_file", async () => {
      await expectCode(makeTransport(base({ ca_file: undefined }), priv).open(), "tls_untrusted", /not trusted[\s\S]*destination\.ca_file/);
    });
    await t.step("plain http is refused unless allow_http is written", async () => {
      await expectCode(makeTransport(base({ url: `http://127.0.0.1:${s.port}/` }), priv).open(), "insecure", /plain HTTP[\s\S]*allow_http/);
    });
    await fullRun(t, base({ url: s.url("nightly/"), verify: "checksum" }), join(s.root, "nightly"), s.password, "curl");
    await t.step("server down: connection refused", async () => {
      await s.stop();
      await expectCode(makeTransport(base(), priv).open(), "refused", /connection refused by 127\.0\.0\.1:\d+/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smb against Samba smbd", async (t) => {
  const s = await startSmbd(join(top, "smb"));
  const base = (over: Record<string, unknown> = {}) => ({
    type: "smb",
    host: "127.0.0.1",
    port: s.port,
    share: s.share,
    user: s.user,
    password: s.password,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, {
      config: (sub, over) => base({ path: sub, ...over }),
      serverPath: (sub) => join(s.root, sub),
      own: chownTest,
      progress: false, // smbclient shows none
    });
    await t.step("wrong password: login refused", async () => {
      await expectCode(makeTransport(base({ password: "wrong" }), priv).open(), "auth", /login refused by 127\.0\.0\.1:\d+/);
    });
    await t.step("a password with a leading or trailing space is refused before any login, with the reason", async () => {
      await expectCode(
        makeTransport(base({ password: " " + s.password }), priv).open(),
        "password",
        /starts or ends with a space: smbclient's authentication file strips it/,
      );
      await expectCode(makeTransport(base({ password: s.password + " " }), priv).open(), "password", /change the password on the server/);
    });
    await t.step("a directory the user cannot write: access denied", async () => {
      await Deno.mkdir(join(s.root, "readonly"), { mode: 0o755 }); // owned by root
      const tr = makeTransport(base({ path: "readonly" }), priv);
      await tr.open();
      await Deno.writeTextFile(join(top, "small"), "x");
      await expectCode(
        uploadAtomic(tr, join(top, "small"), "20261122.tgz"),
        "permission",
        /upload of 20261122\.tgz\.part: access denied on/,
      );
      await tr.close();
    });
    await t.step("missing share is named", async () => {
      await expectCode(makeTransport(base({ share: "nosuchshare" }), priv).open(), "missing_share", /share nosuchshare does not exist/);
    });
    await fullRun(t, base({ path: "nightly" }), join(s.root, "nightly"), s.password, "smbclient", chownTest);
    await t.step("server down: connection refused", async () => {
      await s.stop();
      await expectCode(makeTransport(base(), priv).open(), "refused", /connection refused by 127\.0\.0\.1:\d+/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("a store failure on a remote destination is exit 30 and leaves the state unchanged", async () => {
  const src = startHttpsSource(cert, {
    "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: new TextEncoder().encode("x\n-- Dump completed\n") }])),
  });
  const root = await Deno.makeTempDir();
  try {
    const cfg = join(root, "a.yaml");
    await Deno.writeTextFile(
      cfg,
      stringify({
        state_dir: join(root, "state"),
        work_dir: join(root, "work"),
        source: { url: src.url("/dump.zip"), entry: "dump.sql", ca_file: cert.caFile },
        destination: { type: "webdav", url: "https://127.0.0.1:9/none/", timeout: "2s" },
        log: { file: join(root, "log") },
      }),
    );
    await Deno.chmod(cfg, 0o600);
    const r = await runCli(["run", "-c", cfg]);
    assert.equal(r.code, EXIT.STORE, r.stderr);
    assert.match(r.stderr, /store: FAILED: connection refused by 127\.0\.0\.1:9/);
    assert.ok(![...Deno.readDirSync(join(root, "state"))].some((e) => e.name.endsWith(".state.json")));
    // The client tool is missing: the message names the Debian package.
    const noTools = await runCli(["run", "-c", cfg], { env: { PATH: "/nonexistent" } });
    assert.equal(noTools.code, EXIT.STORE);
    assert.match(noTools.stderr, /store: FAILED: curl is not installed \(Debian package: curl; install it with: apt-get install curl\)/);
  } finally {
    await src.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("smb against a hardened Samba (SMB3 only, encryption and signing required, dot-files vetoed)", async (t) => {
  const s = await startSmbd(join(top, "smb-hard"), { hardened: true });
  const base = (over: Record<string, unknown> = {}) => ({
    type: "smb",
    host: "127.0.0.1",
    port: s.port,
    share: s.share,
    user: s.user,
    password: s.password,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, {
      config: (sub, over) => base({ path: sub, ...over }),
      serverPath: (sub) => join(s.root, sub),
      own: chownTest,
      progress: false, // smbclient shows none
    });
    await fullRun(t, base({ path: "nightly", create_dirs: true }), join(s.root, "nightly"), s.password, "smbclient", chownTest);
  } finally {
    await s.stop();
  }
});

Deno.test("sftp into a chroot (Match User, ChrootDirectory %h, ForceCommand internal-sftp: the usual hardened account)", async (t) => {
  const s = await startSshd(join(top, "sshd-chroot"), { chroot: true });
  const acct = s.chrootAccount!;
  const own = async (p: string) => void await sh("chown", ["-R", `${acct.user}:`, p]);
  const base = (over: Record<string, unknown> = {}) => s.destination(over.path as string, { user: acct.user, timeout: "10s", ...over });
  try {
    await conformance(t, {
      config: (sub, over) => base({ path: `${acct.writable}/${sub}`, ...over }),
      serverPath: (sub) => join(acct.chroot, "files", sub),
      own,
      progress: false,
    });
    await t.step("type: rsync to this sftp-only account: the account may allow sftp only, with the hint to use type: sftp", async () => {
      const cfg = { ...base({ path: `${acct.writable}` }), type: "rsync" };
      await expectCode(
        makeTransport(cfg, priv).open(),
        "shell_not_clean",
        /is not rsync \(protocol version mismatch\): the account may allow sftp only \(ForceCommand internal-sftp\)[\s\S]*use type: sftp/,
      );
    });
    await t.step("a path given as it is on the server's disk is 'not found', and the hint says the user may be confined", async () => {
      await expectCode(
        makeTransport(base({ path: join(acct.chroot, "files") }), priv).open(),
        "missing_dir",
        /remote directory .* does not exist on .*if the server confines the user \(ChrootDirectory, a hosting account\), give the path as the user sees it/,
      );
    });
    await fullRun(
      t,
      base({ path: `${acct.writable}/nightly`, create_dirs: true }),
      join(acct.chroot, "files", "nightly"),
      undefined,
      "sftp",
      own,
    );
  } finally {
    await s.stop();
  }
});

Deno.test("webdav against nginx with dav-ext (HTTPS, basic auth): the server that does not list dot-files", async (t) => {
  const s = await startNginxDav(join(top, "nginx-dav"), cert);
  const base = (over: Record<string, unknown> = {}) => ({
    type: "webdav",
    user: s.user,
    password: s.password,
    ca_file: cert.caFile,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, {
      config: (sub, over) => base({ url: s.url(sub + "/"), ...over }),
      serverPath: (sub) => join(s.root, sub),
      // nginx answers a write that failed (disk full) with a bare 500: a 4 KiB test write tells it from a broken server.
    });
    await t.step("wrong password: authentication refused (401)", async () => {
      await expectCode(
        makeTransport(base({ url: s.url(""), password: "wrong" }), priv).open(),
        "auth",
        /authentication refused .*HTTP 401/,
      );
    });
    await fullRun(t, base({ url: s.url("nightly/"), create_dirs: true }), join(s.root, "nightly"), s.password, "curl");
    await t.step("verify passes and leaves nothing behind (its probe is not a dot-file)", async () => {
      const root = await Deno.makeTempDir({ prefix: "archivist-davverify-" });
      try {
        const cfg = join(root, "archive.yaml");
        await Deno.writeTextFile(join(root, "pw"), s.password + "\n");
        await Deno.writeTextFile(
          cfg,
          stringify({
            name: "v",
            state_dir: join(root, "state"),
            work_dir: join(root, "work"),
            source: { url: "https://127.0.0.1:9/x.zip", entry: "d.sql" },
            destination: { ...base({ url: s.url("nightly/") }), password: undefined, password_file: join(root, "pw") },
            log: { file: join(root, "log") },
          }),
        );
        await Deno.chmod(cfg, 0o600);
        const r = await runCli(["verify", "-c", cfg]);
        assert.match(
          r.stdout,
          /✓ destination +https:\/\/127\.0\.0\.1:\d+\/backup\/nightly\/: connected, directory exists, write \+ rename \+ delete of a probe file work/,
        );
        assert.deepEqual([...Deno.readDirSync(join(s.root, "nightly"))].filter((e) => /probe|\.part$/.test(e.name)), []);
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("webdav against Apache 2.4 mod_dav_fs (HTTPS, basic auth)", async (t) => {
  const s = await startApacheDav(join(top, "apache-dav"), cert);
  const own = async (p: string) => void await sh("chown", ["-R", "www-data:", p]);
  const base = (over: Record<string, unknown> = {}) => ({
    type: "webdav",
    user: s.user,
    password: s.password,
    ca_file: cert.caFile,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, {
      config: (sub, over) => base({ url: s.url(sub + "/"), ...over }),
      serverPath: (sub) => join(s.root, sub),
      own,
    });
    await t.step("wrong password: authentication refused (401)", async () => {
      await expectCode(
        makeTransport(base({ url: s.url(""), password: "wrong" }), priv).open(),
        "auth",
        /authentication refused .*HTTP 401/,
      );
    });
    await fullRun(t, base({ url: s.url("nightly/"), create_dirs: true }), join(s.root, "nightly"), s.password, "curl", own);
  } finally {
    await s.stop();
  }
});

for (
  const [name, start] of [
    ["pure-ftpd (TLS required, everyone chrooted, dot-files refused with -x)", (d: string) => startPureFtpd(d, cert, { noDotFiles: true })],
    ["proftpd with mod_tls (TLSRequired on, TLS session reuse required)", (d: string) => startProftpd(d, cert)],
  ] as const
) {
  Deno.test(`ftps against ${name}`, async (t) => {
    const s = await start(join(top, name.split(" ")[0]));
    const base = ftpsConfig(s);
    try {
      await conformance(t, { config: (sub, over) => base({ path: sub, ...over }), serverPath: (sub) => join(s.home, sub), own: chownTest });
      await t.step("wrong password: login refused", async () => {
        await expectCode(makeTransport(base({ path: "x", password: "wrong" }), priv).open(), "auth", /login refused by 127\.0\.0\.1:\d+/);
      });
      const sub = `full-${crypto.randomUUID().slice(0, 6)}`;
      await Deno.mkdir(join(s.home, sub));
      await chownTest(join(s.home, sub));
      await fullRun(t, base({ path: sub }), join(s.home, sub), s.password, "curl", chownTest);
    } finally {
      await s.stop();
    }
  });
}

/** An rclone.conf (mode 600) in a directory of its own holding `sections` (name → key/values). */
async function rcloneConf(dir: string, sections: Record<string, Record<string, string | number>>): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const file = join(dir, "rclone.conf");
  const text = Object.entries(sections).map(([n, kv]) => `[${n}]\n${Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`).join(
    "\n",
  );
  await Deno.writeTextFile(file, text, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  return file;
}

Deno.test("rclone with a local remote: conformance, a full run, and the config file's own errors", async (t) => {
  const root = join(top, "rclone-local");
  const conf = await rcloneConf(join(top, "rclone-local-conf"), { disk: { type: "local" } });
  const base = (over: Record<string, unknown> = {}) => ({ type: "rclone", config_file: conf, timeout: "10s", ...over });
  await conformance(t, {
    config: (sub, over) => base({ remote: `disk:${join(root, sub)}`, ...over }),
    serverPath: (sub) => join(root, sub),
  });
  await fullRun(t, base({ remote: `disk:${join(root, "nightly")}`, verify: "checksum" }), join(root, "nightly"), undefined, "rclone");
  await t.step("a remote the config file does not define is named, with the listremotes hint", async () => {
    await expectCode(
      makeTransport(base({ remote: "nas:/x" }), priv).open(),
      "config",
      /remote nas: is not defined in .*rclone\.conf[\s\S]*listremotes/,
    );
  });
  await t.step("a config file readable by others is refused before rclone runs", async () => {
    await Deno.chmod(conf, 0o644);
    try {
      await expectCode(
        makeTransport(base({ remote: `disk:${root}` }), priv).open(),
        "config",
        /readable by group or others \(mode 0644\)[\s\S]*chmod 600/,
      );
    } finally {
      await Deno.chmod(conf, 0o600);
    }
  });
  await t.step("an rclone older than 1.52 is refused at open, before it is asked to do anything else", async () => {
    // Debian 12 ships 1.60 and no older one is at hand: a stand-in answers `rclone version` as 1.50 would (whose
    // `delete` ignored --files-from-raw and emptied the directory) and records every other call it gets.
    const bin = join(top, "old-rclone");
    await Deno.mkdir(bin, { recursive: true });
    const calls = join(bin, "calls");
    await Deno.writeTextFile(
      join(bin, "rclone"),
      `#!/bin/sh\nif [ "$1" = version ]; then echo "rclone v1.50.2"; echo "- os/arch: linux/amd64"; exit 0; fi\n` +
        `echo "$*" >> ${calls}\nexit 99\n`,
      { mode: 0o755 },
    );
    const path = Deno.env.get("PATH")!;
    Deno.env.set("PATH", `${bin}:${path}`);
    try {
      await expectCode(
        makeTransport(base({ remote: `disk:${root}` }), priv).open(),
        "missing_tool",
        /rclone 1\.50 is too old: archivist needs rclone 1\.52 or later[\s\S]*newer rclone/,
      );
      assert.equal(await Deno.readTextFile(calls).catch(() => ""), "", "nothing but `rclone version` was run");
    } finally {
      Deno.env.set("PATH", path);
    }
  });
  await t.step("an on-the-fly remote (its settings on the command line) is refused by the config check", () => {
    assert.throws(
      () => makeTransport(base({ remote: ":sftp,host=x,pass=secret:/backup" }), priv),
      /on-the-fly remotes .*define the remote in config_file/,
    );
  });
  await t.step("removeMany deletes only the names given: a foreign file and a sub-directory's file of the same name stay", async () => {
    const dir = join(root, "only");
    await Deno.mkdir(join(dir, "sub"), { recursive: true });
    for (const n of ["20250101.tgz", "20250102.tgz", "keep.txt", "sub/20250101.tgz"]) await Deno.writeTextFile(join(dir, n), "x");
    const tr = makeTransport(base({ remote: `disk:${dir}` }), priv);
    await tr.open();
    const out = await tr.removeMany!(["20250101.tgz", "20250102.tgz"]);
    assert.deepEqual(out, [{ name: "20250101.tgz" }, { name: "20250102.tgz" }]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["keep.txt", "sub"]);
    assert.ok(Deno.statSync(join(dir, "sub/20250101.tgz")).isFile);
    await tr.close();
  });
});

Deno.test("rclone with an sftp remote against OpenSSH sshd", async (t) => {
  const s = await startSshd(join(top, "rclone-sshd"));
  try {
    const conf = await rcloneConf(join(top, "rclone-sftp-conf"), {
      vault: {
        type: "sftp",
        host: "127.0.0.1",
        port: s.port,
        user: s.user,
        key_file: s.keyFile,
        known_hosts_file: s.knownHosts,
        shell_type: "none",
      },
    });
    const base = (over: Record<string, unknown> = {}) => ({ type: "rclone", config_file: conf, timeout: "10s", ...over });
    await conformance(t, {
      config: (sub, over) => base({ remote: `vault:${join(s.root, sub)}`, ...over }),
      serverPath: (sub) => join(s.root, sub),
      diskFull: { code: "transfer", re: /upload of 20261124\.tgz\.part failed .*rclone exit/ },
    });
    await t.step("server down: connection refused, named", async () => {
      await s.stop();
      await expectCode(makeTransport(base({ remote: `vault:${s.root}` }), priv).open(), "refused", /connection refused/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("rclone with a webdav remote against nginx dav-ext (HTTPS, basic auth, an obscured password)", async (t) => {
  const s = await startNginxDav(join(top, "rclone-nginx-dav"), cert);
  try {
    const obscured = (await sh("rclone", ["obscure", s.password])).trim();
    const conf = await rcloneConf(join(top, "rclone-dav-conf"), {
      dav: { type: "webdav", url: s.url(""), vendor: "other", user: s.user, pass: obscured },
    });
    const base = (over: Record<string, unknown> = {}) => ({
      type: "rclone",
      config_file: conf,
      ca_file: cert.caFile,
      timeout: "10s",
      ...over,
    });
    await conformance(t, {
      config: (sub, over) => base({ remote: `dav:${sub}`, ...over }),
      serverPath: (sub) => join(s.root, sub),
      diskFull: { code: "transfer", re: /failed to store it \(HTTP 500.*see the server's error log: a full disk/ },
    });
    await fullRun(t, base({ remote: "dav:nightly" }), join(s.root, "nightly"), s.password, "rclone");
    await t.step("the CA not trusted: the certificate is named as the cause", async () => {
      await expectCode(makeTransport(base({ remote: "dav:x", ca_file: undefined }), priv).open(), "tls", /TLS certificate is refused/);
    });
  } finally {
    await s.stop();
  }
});

/** The rsync-only cases: deletion limited to the exact names (wildcards in names, a sub-directory, a foreign file). */
async function rsyncDeletes(
  t: Deno.TestContext,
  config: (sub: string) => Record<string, unknown>,
  serverPath: (sub: string) => string,
  own?: (p: string) => Promise<void>,
) {
  await t.step("deletion takes exactly the names given: a name with wildcards never matches its look-alikes", async () => {
    const dir = serverPath("only");
    await Deno.mkdir(join(dir, "sub"), { recursive: true });
    const files = ["a[1].tgz", "a1.tgz", "b*.tgz", "bx.tgz", "c?.tgz", "cc.tgz", "keep me.txt", "sub/a1.tgz", "d e.tgz"];
    for (const n of files) await Deno.writeTextFile(join(dir, n), "x");
    await own?.(dir);
    const tr = makeTransport(config("only"), priv);
    await tr.open();
    try {
      const out = await tr.removeMany!(["a[1].tgz", "b*.tgz", "c?.tgz", "d e.tgz", "zz.tgz"]);
      assert.deepEqual(out.filter((o) => o.error).map((o) => o.name), ["zz.tgz"]);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a1.tgz", "bx.tgz", "cc.tgz", "keep me.txt", "sub"]);
      assert.ok(Deno.statSync(join(dir, "sub/a1.tgz")).isFile);
    } finally {
      await tr.close();
    }
  });
}

Deno.test("rsync over SSH against OpenSSH sshd", async (t) => {
  const s = await startSshd(join(top, "rsync-sshd"));
  const base = (path: string, over: Record<string, unknown> = {}) => ({
    ...s.destination(path, { timeout: "10s", ...over }),
    type: "rsync",
  });
  try {
    await conformance(t, { config: (sub, over) => base(join(s.root, sub), over), serverPath: (sub) => join(s.root, sub) });
    await rsyncDeletes(t, (sub) => base(join(s.root, sub)), (sub) => join(s.root, sub));
    await t.step("one SSH login serves every command (the same ControlMaster as sftp), counted in sshd's log", async () => {
      const before = await s.logins();
      const tr = makeTransport(base(s.root), priv);
      await tr.open();
      const local = join(top, "rsync-mux.bin");
      await Deno.writeTextFile(local, "x".repeat(100_000));
      await uploadAtomic(tr, local, "20261101.tgz");
      await tr.list();
      await tr.remove("20261101.tgz");
      await tr.close();
      assert.equal(await s.logins() - before, 1);
    });
    await t.step("the rename sends only block checksums: the .part is the basis (rsync --fuzzy)", async () => {
      const tr = makeTransport(base(s.root), priv);
      await tr.open();
      const local = join(top, "rsync-fuzzy.bin");
      const rnd = new Uint8Array(4 << 20);
      for (let i = 0; i < rnd.length; i += 65536) crypto.getRandomValues(rnd.subarray(i, i + 65536));
      await Deno.writeFile(local, rnd);
      await tr.put(local, "20261102.tgz.part");
      await tr.rename("20261102.tgz.part", "20261102.tgz");
      assert.deepEqual(await Deno.readFile(join(s.root, "20261102.tgz")), rnd);
      assert.ok(!(await Deno.stat(join(s.root, "20261102.tgz.part")).catch(() => undefined)), "the .part is gone");
      await expectCode(tr.rename("20261102.tgz", "20261102.tgz"), "rename", /already exists/);
      await tr.remove("20261102.tgz");
      await tr.close();
    });
    await fullRun(t, base(join(s.root, "nightly")), join(s.root, "nightly"), undefined, "rsync");
    await t.step("a key restricted to rrsync (it runs nothing but rsync, confined to one directory): conformance", async (t) => {
      const confined = join(s.root, "confined");
      await Deno.mkdir(confined, { recursive: true });
      const key = join(top, "rsync-rrsync-key");
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const pub = (await Deno.readTextFile(`${key}.pub`)).trim();
      await Deno.writeTextFile(join(top, "rsync-sshd", "authorized_keys"), `command="/usr/bin/rrsync ${confined}",restrict ${pub}\n`, {
        append: true,
      });
      await conformance(t, { config: (sub, over) => base(sub, { key_file: key, ...over }), serverPath: (sub) => join(confined, sub) });
    });
    await t.step("a key restricted to rrsync -ro: the upload is refused as read-only, with the authorized_keys fix", async () => {
      const ro = join(s.root, "readonly");
      await Deno.mkdir(join(ro, "sub"), { recursive: true });
      const key = join(top, "rsync-ro-key");
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const pub = (await Deno.readTextFile(`${key}.pub`)).trim();
      await Deno.writeTextFile(join(top, "rsync-sshd", "authorized_keys"), `command="/usr/bin/rrsync -ro ${ro}",restrict ${pub}\n`, {
        append: true,
      });
      const tr = makeTransport(base("sub", { key_file: key }), priv);
      const local = join(top, "rsync-ro.bin");
      await Deno.writeFile(local, new Uint8Array(1000));
      try {
        await tr.open();
        await expectCode(
          tr.put(local, "20261122.tgz.part"),
          "read_only",
          /takes rsync read-only \(rrsync -ro[\s\S]*remove -ro from the rrsync command/,
        );
      } finally {
        await tr.close();
      }
    });
    await t.step("a server without rsync: 'rsync is not installed on HOST', with the apt-get hint", async () => {
      // A key whose forced command runs the client's command with a PATH that holds no rsync: what a server
      // without the rsync package answers ("sh: 1: rsync: not found").
      const key = join(top, "rsync-norsync-key");
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const pub = (await Deno.readTextFile(`${key}.pub`)).trim();
      await Deno.writeTextFile(
        join(top, "rsync-sshd", "authorized_keys"),
        `command="PATH=/nonexistent exec /bin/sh -c \\"$SSH_ORIGINAL_COMMAND\\"",restrict ${pub}\n`,
        { append: true },
      );
      const tr = makeTransport(base(s.root, { key_file: key }), priv);
      try {
        const err = await expectCode(
          (async () => {
            await tr.open();
            await tr.list();
          })(),
          "missing_tool",
          /rsync is not installed on .*127\.0\.0\.1[\s\S]*apt-get install rsync/,
        );
        assert.match(err.message, /rsync: not found/);
      } finally {
        await tr.close();
      }
    });
    await t.step("wrong key: authentication refused, named", async () => {
      const other = join(top, "rsync-other-key");
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
      await expectCode(makeTransport(base(s.root, { key_file: other }), priv).open(), "auth", /authentication refused/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("rsyncd against rsync --daemon (a module with auth users and a secrets file)", async (t) => {
  const s = await startRsyncd(join(top, "rsyncd"));
  const base = (over: Record<string, unknown> = {}) => ({
    type: "rsyncd",
    host: "127.0.0.1",
    port: s.port,
    module: s.module,
    user: s.user,
    password: s.password,
    timeout: "10s",
    ...over,
  });
  try {
    await conformance(t, { config: (sub, over) => base({ path: sub, ...over }), serverPath: (sub) => join(s.root, sub), own: s.own });
    await rsyncDeletes(t, (sub) => base({ path: sub }), (sub) => join(s.root, sub), s.own);
    await fullRun(t, base({ path: "nightly", verify: "checksum" }), join(s.root, "nightly"), s.password, "rsync", s.own);
    await t.step("wrong password: authentication refused, module named", async () => {
      await expectCode(
        makeTransport(base({ password: "wrong" }), priv).open(),
        "auth",
        /authentication refused by the rsync daemon .* on module backup/,
      );
    });
    await t.step("unknown module: named, with the listing hint", async () => {
      await expectCode(makeTransport(base({ module: "nope" }), priv).open(), "missing_module", /has no module nope/);
    });
    await t.step("server down: connection refused", async () => {
      await s.stop();
      await expectCode(makeTransport(base(), priv).open(), "refused", /connection refused by 127\.0\.0\.1:\d+/);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("rsync daemons set up otherwise: refuse options = delete is named before anything is uploaded (store exit 30, prune 31); max connections = 1 works every night", async (t) => {
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: bigDump(300_000) }])) });
  /** A night's sandbox storing to a daemon whose module has `module` lines; the archives go to its top. */
  const withDaemon = async (
    name: string,
    module: string[],
    fn: (s: RsyncdServer, sb: Sandbox, night: (day: string) => Promise<CliResult>) => Promise<void>,
  ) => {
    const s = await startRsyncd(join(top, name), module);
    const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
    const destination = {
      type: "rsyncd",
      host: "127.0.0.1",
      port: s.port,
      module: s.module,
      user: s.user,
      password: s.password,
      path: undefined,
    };
    await sb.writeConfig({ destination, check: { on_unchanged: "archive" }, retention: { max_age: "1d", min_keep: 1 } });
    const night = (day: string) => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
    try {
      await fn(s, sb, night);
    } finally {
      await sb.cleanup();
      await s.stop();
    }
  };
  try {
    await t.step("refuse options = delete", () =>
      withDaemon("rsyncd-nodelete", ["refuse options = delete"], async (s, sb, night) => {
        for (const day of ["22", "23"]) {
          const r = await night(day);
          assert.equal(r.code, EXIT.STORE, r.stderr);
          assert.match(
            r.stderr,
            /store: FAILED: rsync:\/\/\S+ refuses --delete \(rsync: The server is configured to refuse --delete\): archivist could neither replace its temporary uploads nor apply retention there \(hint: remove delete from `refuse options`/,
          );
        }
        assert.deepEqual([...Deno.readDirSync(s.root)], [], "no leftovers pile up: nothing was uploaded");
        const p = await runCli(["prune", "-c", sb.configPath]);
        assert.equal(p.code, EXIT.RETENTION, p.stderr);
        assert.match(p.stderr, /refuses --delete/);
        const v = await runCli(["verify", "-c", sb.configPath]);
        assert.match(v.stdout, /✗ destination +rsync:\/\/\S+ refuses --delete/);
      }));
    await t.step(
      "max connections = 1: the commands of a night wait for the slot, every night stores",
      () =>
        withDaemon("rsyncd-oneconn", ["max connections = 1"], async (s, _sb, night) => {
          for (const day of ["20", "21", "22"]) {
            const r = await night(day);
            assert.equal(r.code, 0, r.stderr);
            assert.doesNotMatch(r.stderr, /max connections/);
          }
          const names = [...Deno.readDirSync(s.root)].map((e) => e.name);
          assert.ok(names.includes("20261122.tgz") && names.includes("20261122.tgz.sha256"), names.join(", "));
          assert.ok(!names.some((n) => n.endsWith(".part")), "no temporary upload left");
        }),
    );
  } finally {
    await src.close();
  }
});

Deno.test("ftps: a transfer refused for a moment after the login worked (vsftpd max_clients=1, a slot held) is retried and stored; the retry is logged", async () => {
  const s = await startVsftpd(join(top, "ftp-busy"), cert, { extra: ["max_clients=1"] });
  const base = ftpsConfig(s);
  try {
    const sub = `busy-${crypto.randomUUID().slice(0, 6)}`;
    await Deno.mkdir(join(s.home, sub), { recursive: true });
    await chownTest(join(s.home, sub));
    const logged: string[] = [];
    const tr = makeTransport(base({ path: sub }), priv, logged);
    await tr.open();
    const local = join(priv, "busy.bin");
    await Deno.writeFile(local, new Uint8Array(200_000).fill(7));
    // Another client takes the only slot for half a second: the upload is refused (421), then retried.
    const other = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    const held = new Promise<void>((ok) => setTimeout(() => (other.close(), ok()), 500));
    try {
      await tr.put(local, "20261122.tgz.part");
    } finally {
      await held;
      await tr.close();
    }
    assert.equal(Deno.statSync(join(s.home, sub, "20261122.tgz.part")).size, 200_000);
    assert.ok(logged.some((l) => /upload of 20261122\.tgz\.part: .*; retrying/.test(l)), logged.join("\n"));
  } finally {
    await s.stop();
  }
});

Deno.test("ftps: a server that speaks only TLS 1.3 (openssl s_server -tls1_3) with the default tls_max 1.2 gets the tls_max hint", async () => {
  const port = freePort();
  const server = new Deno.Command("openssl", {
    args: ["s_server", "-accept", `127.0.0.1:${port}`, "-tls1_3", "-cert", cert.certFile, "-key", cert.keyFile, "-quiet"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const cfg = ftpsConfig({ port, user: "u", password: "p" })({ path: "x", tls: "implicit" });
    await expectCode(
      makeTransport(cfg, priv).open(),
      "tls",
      /TLS handshake with 127\.0\.0\.1:\d+ failed: the server speaks no TLS version up to 1\.2/,
    ).then((e) => assert.match(e.hint, /set destination\.tls_max: "1\.3"/));
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
});

Deno.test("smb with a recycle bin (vfs objects = recycle): verify says deletions free no space there, and leaves no probe in the bin", async () => {
  const s = await startSmbd(join(top, "smb-recycle"), {
    share: ["vfs objects = recycle", "recycle:repository = .recycle", "recycle:keeptree = yes"],
  });
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: bigDump(50_000) }])) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  try {
    await Deno.mkdir(join(s.root, "db"), { recursive: true });
    await chownTest(join(s.root, "db"));
    const destination = { type: "smb", host: "127.0.0.1", port: s.port, share: s.share, user: s.user, password: s.password, path: "db" };
    await sb.writeConfig({ destination: { ...destination, create_dirs: undefined } });
    const v = await runCli(["verify", "-c", sb.configPath]);
    assert.match(
      v.stdout,
      /! destination +smb:\/\/\S+: the server keeps deleted files \(the probe went to \.recycle\/db\/archivist-probe\S*, a recycle bin\): retention's deletions free no space there\n +hint: exclude archivist's directory from the share's recycle bin/,
    );
    const bin = join(s.root, ".recycle");
    const inBin = (() => {
      try {
        return [...Deno.readDirSync(join(bin, "db"))].map((e) => e.name);
      } catch {
        return [];
      }
    })();
    assert.deepEqual(inBin, [], "the probe is removed from the bin too");
  } finally {
    await sb.cleanup();
    await src.close();
    await s.stop();
  }
});

Deno.test("rclone crypt with a wrong password lists nothing: the night fails naming the likely cause instead of writing a second tree beside the first", async () => {
  const store = join(top, "crypt-store");
  await Deno.mkdir(store, { recursive: true });
  const confDir = join(top, "crypt-conf");
  const crypt = async (password: string) =>
    await rcloneConf(confDir, {
      base: { type: "local" },
      vault: { type: "crypt", remote: `base:${store}`, password: (await sh("rclone", ["obscure", password])).trim() },
    });
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: bigDump(80_000) }])) });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  try {
    const conf = await crypt("the right one");
    await sb.writeConfig({
      destination: { type: "rclone", remote: "vault:db", config_file: conf, path: undefined, create_dirs: true },
      check: { on_unchanged: "archive" },
    });
    const night = (day: string) => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: `2026-11-${day}T02:30:00Z` } });
    for (const day of ["20", "21"]) {
      const r = await night(day);
      assert.equal(r.code, 0, r.stderr);
    }
    const before = [...Deno.readDirSync(join(store, [...Deno.readDirSync(store)][0].name))].length;
    await crypt("a wrong one");
    const r = await night("22");
    assert.equal(r.code, EXIT.STORE, r.stderr);
    assert.match(
      r.stderr,
      /store: FAILED: none of the 2 archive\(s\) the catalogue records on rclone:vault:db is there .*hint: check the destination: a wrong rclone crypt password/,
    );
    const dirs = [...Deno.readDirSync(store)];
    assert.equal(dirs.length, 1, "no second encrypted tree");
    assert.equal([...Deno.readDirSync(join(store, dirs[0].name))].length, before, "nothing written beside the archives");
  } finally {
    await sb.cleanup();
    await src.close();
  }
});
