/**
 * What users install is what is tested: install.sh stages archivist into a --destdir (the self-extracting file, the
 * form built offline), and the real cases run through that file, under cron's minimal environment, with the
 * exact command line of the generated cron file (its paths moved into the --destdir). A feature that needs a
 * permission the runtime is not given, a variable cron does not set, or a file the bundle lacks fails here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { makeCert, makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { ROOT } from "./helpers/cli.ts";
import { startSshd } from "./servers/sshd.ts";
import { EXIT } from "../src/errors.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-instcert-" }));
const DUMP = sqlDump(200_000);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);

interface Out {
  code: number;
  out: string;
  err: string;
}

/** Run a shell command line the way cron does: `env -i`, PATH=/usr/bin:/bin, HOME and LOGNAME only. */
async function asCron(line: string): Promise<Out> {
  const r = await new Deno.Command("env", {
    args: ["-i", "PATH=/usr/bin:/bin", "HOME=/root", "LOGNAME=root", "SHELL=/bin/sh", "sh", "-c", line],
    cwd: "/",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: r.code, out: td.decode(r.stdout), err: td.decode(r.stderr) };
}

const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

Deno.test("the installed archivist, run by cron's minimal environment: run (require_mount on a real mount), verify, list, check, restore, lock, sftp", async (t) => {
  const dd = await Deno.makeTempDir({ prefix: "archivist-installed-" });
  const mnt = join(dd, "mnt", "backup");
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(ZIP) });
  let mounted = false;
  try {
    const inst = await new Deno.Command("bash", {
      args: [join(ROOT, "install.sh"), "--destdir", dd, "--no-compile", "--no-verify"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(inst.code, 0, new TextDecoder().decode(inst.stderr) + new TextDecoder().decode(inst.stdout));
    const bin = join(dd, "usr/local/bin/archivist");
    const conf = join(dd, "etc/archivist/archive.yaml");
    const cronFile = join(dd, "etc/cron.d/archivist");
    await Deno.mkdir(mnt, { recursive: true });
    await sh("mount", ["-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt]);
    mounted = true;
    const config = (destination: Record<string, unknown>) =>
      stringify({
        name: "shop",
        state_dir: join(dd, "var/lib/archivist"),
        work_dir: join(dd, "var/tmp/archivist"),
        source: { url: src.url("/dump.zip"), entry: "dump.sql", ca_file: cert.caFile, retries: 1, retry_delay: "100ms" },
        check: { expect_trailer: "-- Dump completed", on_unchanged: "archive" }, // every night reaches the store step
        archive: { timezone: "UTC" },
        destination,
        retention: { max_age: "30d", min_keep: 3 },
        log: { file: join(dd, "var/log/archivist/archivist.log") },
        verify: { schedule_file: cronFile },
      });
    await Deno.writeTextFile(conf, config({ type: "local", path: join(mnt, "db"), create_dirs: true, require_mount: true }));
    await Deno.chmod(conf, 0o600);

    // The command line of the cron file, its absolute paths moved into the --destdir.
    const cronLine = (await Deno.readTextFile(cronFile)).split("\n").find((l) => /^\S+ \S+ \S+ \S+ \S+ root /.test(l))!;
    const command = cronLine.split(" ").slice(6).join(" ")
      .replace("/usr/local/bin/archivist", bin)
      .replace("/etc/archivist/archive.yaml", conf)
      .replace("/var/log/archivist/cron.log", join(dd, "var/log/archivist/cron.log"));
    assert.match(command, /archivist run --quiet -c .*archive\.yaml >>.*cron\.log 2>&1$/);

    await t.step("the cron line runs a night: archive on the mounted share, history line, nothing on stderr", async () => {
      const r = await asCron(command);
      const cronLog = await Deno.readTextFile(join(dd, "var/log/archivist/cron.log")).catch(() => "");
      assert.equal(r.code, 0, cronLog + r.err);
      assert.equal(cronLog, "", "--quiet: a good night writes nothing to cron.log");
      const files = [...Deno.readDirSync(join(mnt, "db"))].map((e) => e.name).sort();
      assert.equal(files.length, 2, files.join(", "));
      assert.match(files[0], /^\d{8}\.tgz$/);
      assert.match(await sh("sha256sum", ["-c", files[1]], { cwd: join(mnt, "db") }), /: OK/);
      const hist = (await Deno.readTextFile(join(dd, "var/lib/archivist/history.jsonl"))).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(hist.length, 1);
      assert.equal(hist[0].status, "ok");
      // The pass made while downloading ran under the launcher's permissions (it falls back silently otherwise).
      const log = await Deno.readTextFile(join(dd, "var/log/archivist/archivist.log"));
      assert.match(log, /pack: reusing the zip's deflate stream \(.*\), written while the zip downloaded/);
    });

    await t.step("an unmounted share: the cron line fails with exit 30 and the cause in cron.log", async () => {
      await sh("umount", [mnt]);
      mounted = false;
      const r = await asCron(command);
      assert.equal(r.code, EXIT.STORE);
      const cronLog = await Deno.readTextFile(join(dd, "var/log/archivist/cron.log"));
      assert.match(cronLog, /store: FAILED: .* is not on a mounted filesystem/);
      assert.doesNotMatch(cronLog, /allow-all|NotCapable|PermissionDenied/);
      await sh("mount", ["-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt]);
      mounted = true;
      await Deno.writeTextFile(join(dd, "var/log/archivist/cron.log"), "");
      const again = await asCron(command);
      assert.equal(again.code, 0, await Deno.readTextFile(join(dd, "var/log/archivist/cron.log")));
    });

    await t.step("verify, list, check and restore through the installed file", async () => {
      const v = await asCron(`${q(bin)} verify -c ${q(conf)}`);
      assert.ok(v.code === 0 || v.code === 1, v.out + v.err);
      assert.match(v.out, /✓ destination +.*write \+ rename \+ delete of a probe file work/);
      assert.match(v.out, /✓ source/);
      assert.doesNotMatch(v.out + v.err, /allow-all|NotCapable/);
      const l = await asCron(`${q(bin)} list -c ${q(conf)}`);
      assert.equal(l.code, 0, l.err);
      assert.match(l.out, /^newest \(stored last\) first:\n\d{8}\.tgz /);
      const c = await asCron(`${q(bin)} check -c ${q(conf)}`);
      assert.equal(c.code, 0, c.out + c.err);
      assert.match(c.out, /^ARCHIVIST CHECK OK - 1 archive\(s\) present/);
      const to = join(dd, "restore");
      const r = await asCron(`${q(bin)} restore latest --to ${q(to)} -c ${q(conf)}`);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), join(to, "dump.sql"));
      assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
      // The installed file starts the runtime with the V8 flag of src/permissions.ts: memory stays flat.
      const g = await asCron(`${q(bin)} run -v -c ${q(conf)}`);
      assert.ok(g.code === 0 || g.code === 1, g.err);
      assert.match(g.err, /unzip: .*; garbage collected every 4\.00 MiB \(flat memory\)/);
    });

    await t.step("encryption (age through a FIFO) and a before hook (setsid) through the installed file under cron", async () => {
      const key = join(dd, "age-key.txt");
      await sh("age-keygen", ["-o", key]);
      const pub = /public key: (age1\S+)/.exec(await Deno.readTextFile(key))![1];
      const hook = join(dd, "before.sh");
      await Deno.writeTextFile(hook, `#!/bin/sh\necho "$ARCHIVIST_JOB $PATH" > ${join(dd, "hook.out")}\n`, { mode: 0o755 });
      await Deno.chmod(hook, 0o755);
      const plain = await Deno.readTextFile(conf);
      const parsed = parse(plain) as Record<string, Record<string, unknown>>;
      await Deno.writeTextFile(
        conf,
        stringify({ ...parsed, archive: { ...parsed.archive, encrypt: { age_recipients: [pub] } }, hooks: { before: [hook] } }),
      );
      await Deno.writeTextFile(join(dd, "var/log/archivist/cron.log"), "");
      const r = await asCron(command);
      assert.equal(r.code, 0, await Deno.readTextFile(join(dd, "var/log/archivist/cron.log")));
      assert.equal((await Deno.readTextFile(join(dd, "hook.out"))).trim(), "shop /usr/bin:/bin", "the hook ran, with cron's PATH");
      const sealed = [...Deno.readDirSync(join(mnt, "db"))].map((e) => e.name).filter((n) => n.endsWith(".tgz.age"));
      assert.equal(sealed.length, 1);
      const out = await new Deno.Command("sh", {
        args: ["-c", `age -d -i ${q(key)} ${q(join(mnt, "db", sealed[0]))} | tar -xzO`],
        stdout: "piped",
      })
        .output();
      assert.deepEqual(out.stdout, DUMP);
      const to = join(dd, "restore-age");
      const back = await asCron(`${q(bin)} restore latest --to ${q(to)} --identity ${q(key)} -c ${q(conf)}`);
      assert.equal(back.code, 0, back.err);
      assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
      await Deno.writeTextFile(conf, plain);
    });

    await t.step(
      "a config others can write is refused through the installed file: exit 10 in cron.log, verify CRITICAL, nothing stored",
      async () => {
        const cronLogPath = join(dd, "var/log/archivist/cron.log");
        const before = [...Deno.readDirSync(join(mnt, "db"))].map((e) => e.name).sort();
        await Deno.chmod(conf, 0o666);
        try {
          await Deno.writeTextFile(cronLogPath, "");
          const r = await asCron(command);
          assert.equal(r.code, EXIT.CONFIG);
          assert.match(
            await Deno.readTextFile(cronLogPath),
            /config: FAILED: config file \S+archive\.yaml is writable by group and others \(mode 0666, owner root\).*\(hint: run: chmod go-w /,
          );
          const v = await asCron(`${q(bin)} verify -c ${q(conf)}`);
          assert.equal(v.code, 2, v.out);
          assert.match(v.out, /^ARCHIVIST CRITICAL - config: config file \S+ is writable by group and others/);
          assert.deepEqual([...Deno.readDirSync(join(mnt, "db"))].map((e) => e.name).sort(), before, "nothing stored, nothing deleted");
        } finally {
          await Deno.chmod(conf, 0o600);
        }
      },
    );

    await t.step("two runs started together through the installed file: one runs, the other exits 11", async () => {
      const [a, b] = await Promise.all([asCron(`${q(bin)} run -c ${q(conf)}`), asCron(`${q(bin)} run -c ${q(conf)}`)]);
      const codes = [a.code, b.code].sort((x, y) => x - y);
      // One archives; the other is refused, unless the first had already finished (then it archives too: -2).
      assert.ok(codes[0] === 0 && (codes[1] === EXIT.LOCK || codes[1] === 0), `${codes}: ${a.err}\n${b.err}`);
      if (codes[1] === EXIT.LOCK) assert.match(a.err + b.err, /already running \(pid \d+/);
    });

    await t.step("an sftp destination through the installed file (ssh, ps and the lock record under its permissions)", async () => {
      const s = await startSshd(join(dd, "sshd"));
      try {
        await Deno.writeTextFile(
          conf,
          config(s.destination(join(s.root, "db"), { create_dirs: true })),
        );
        const r2 = await asCron(`${q(bin)} run -c ${q(conf)}`);
        assert.equal(r2.code, 0, r2.err);
        assert.match(r2.err, /store: stored \d{8}\.tgz .* on sftp:\/\//);
        const c = await asCron(`${q(bin)} check -c ${q(conf)}`);
        assert.equal(c.code, 0, c.out + c.err);
        assert.equal(Deno.readTextFileSync(join(dd, "var/lib/archivist/shop.lock")), "", "lock released");
      } finally {
        await s.stop();
      }
    });
    await t.step("two jobs, each to the mounted share and to rsync over SSH, through the exact cron line", async () => {
      const s = await startSshd(join(dd, "sshd-jobs"));
      try {
        const both = stringify({
          state_dir: join(dd, "var/lib/archivist"),
          work_dir: join(dd, "var/tmp/archivist"),
          source: { url: src.url("/dump.zip"), entry: "dump.sql", ca_file: cert.caFile, retries: 1, retry_delay: "100ms" },
          check: { expect_trailer: "-- Dump completed", on_unchanged: "archive" },
          archive: { timezone: "UTC", name: "{job}-{YYYY}{MM}{DD}.tgz" },
          destinations: [
            { type: "local", path: join(mnt, "jobs"), create_dirs: true, require_mount: true },
            { ...s.destination(join(s.root, "jobs"), { create_dirs: true }), type: "rsync" },
          ],
          retention: { max_age: "30d", min_keep: 3 },
          log: { file: join(dd, "var/log/archivist/archivist.log") },
          verify: { schedule_file: cronFile },
          jobs: { blog: {}, wiki: {} },
        });
        await Deno.writeTextFile(conf, both);
        const before = Deno.readTextFileSync(join(dd, "var/lib/archivist/history.jsonl")).trim().split("\n").length;
        const r = await asCron(command);
        assert.equal(r.code, 0, r.err + Deno.readTextFileSync(join(dd, "var/log/archivist/cron.log")));
        for (const dir of [join(mnt, "jobs"), join(s.root, "jobs")]) {
          const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".tgz")).sort();
          assert.deepEqual(names.map((n) => n.replace(/\d{8}/, "D")), ["blog-D.tgz", "wiki-D.tgz"], dir);
        }
        const lines = Deno.readTextFileSync(join(dd, "var/lib/archivist/history.jsonl")).trim().split("\n").slice(before)
          .map((l) => JSON.parse(l));
        assert.deepEqual(lines.map((l) => [l.job, l.status]), [["blog", "ok"], ["wiki", "ok"]]);
        const l = await asCron(`${q(bin)} list -c ${q(conf)} --job wiki --destination 2`);
        assert.equal(l.code, 0, l.err);
        assert.match(l.out, /wiki-\d{8}\.tgz/);
      } finally {
        await s.stop();
      }
    });
  } finally {
    if (mounted) await sh("umount", [mnt]).catch(() => {});
    await src.close();
    await Deno.remove(dd, { recursive: true }).catch(() => {});
  }
});
