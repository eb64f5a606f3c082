/**
 * One file to copy and run (`deno task dist`, tools/dist.ts + tools/sfx.ts). The self-extracting file is built the way
 * it is built offline, copied alone into a fresh directory and run by another user under `env -i PATH=/usr/bin:/bin`
 * (no deno on PATH, no Deno cache): version, help, a night against the HTTPS source into a mounted local destination,
 * verify, restore; a damaged cache, two first starts at once, a SIGTERM, and the cache directories it must refuse.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { makeCert, makeZip, sh, sqlDump } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { ROOT } from "./helpers/cli.ts";
import { ensureUser, TEST_USER } from "./servers/common.ts";
import { EXIT } from "../src/errors.ts";
import { DENO_VERSION } from "../src/os/runtime.ts";
import { cacheKey } from "../tools/sfx.ts";

const td = new TextDecoder();

interface Out {
  code: number;
  out: string;
  err: string;
}

async function dist(args: string[]): Promise<Out> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", join(ROOT, "tools/dist.ts"), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: td.decode(r.stdout), err: td.decode(r.stderr) };
}

/** The argv that runs ARGS as `user` (root: as is) under a minimal environment: PATH=/usr/bin:/bin and HOME only. */
function minimal(home: string, user: string, extraEnv: string[] = []): string[] {
  const env = ["env", "-i", "PATH=/usr/bin:/bin", `HOME=${home}`, ...extraEnv];
  return user === "root" ? env : [...env, "setpriv", `--reuid=${user}`, `--regid=${user}`, "--clear-groups"];
}

async function as(home: string, user: string, argv: string[], extraEnv: string[] = []): Promise<Out> {
  const [cmd, ...args] = [...minimal(home, user, extraEnv), ...argv];
  const r = await new Deno.Command(cmd, { args, cwd: home, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, out: td.decode(r.stdout), err: td.decode(r.stderr) };
}

const sha256 = async (path: string) => (await sh("sha256sum", [path])).split(" ")[0];

Deno.test("the Deno version is declared once: .ci/run and install.sh install the one src/os/runtime.ts names", async () => {
  assert.match(await Deno.readTextFile(join(ROOT, ".ci/run")), new RegExp(`^DENO_VERSION=${DENO_VERSION.replaceAll(".", "\\.")}$`, "m"));
  const install = await Deno.readTextFile(join(ROOT, "install.sh"));
  const named = [...install.matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  assert.ok(named.length > 0);
  for (const v of named) assert.equal(v, DENO_VERSION, "install.sh names another Deno version");
});

Deno.test("deno task dist offline: one deterministic self-extracting file, from the running deno or from npm, with SHA256SUMS", async (t) => {
  const out = await Deno.makeTempDir({ prefix: "archivist-dist-" });
  try {
    await t.step("--runtime npm (the package @deno/linux-x64-glibc) and the running deno give the same bytes", async () => {
      const a = await dist(["--no-compile", "--runtime", "npm", "--out", join(out, "npm")]);
      assert.equal(a.code, 0, a.err);
      assert.match(
        a.out,
        new RegExp(`self-extracting \\(--no-compile\\); runtime: Deno ${DENO_VERSION} from npm package @deno/linux-x64-glibc`),
      );
      const b = await dist(["--no-compile", "--runtime", "current", "--out", join(out, "cur")]);
      assert.equal(b.code, 0, b.err);
      assert.match(b.out, /runtime: Deno .* from the running deno/);
      assert.deepEqual(await Deno.readFile(join(out, "npm/archivist")), await Deno.readFile(join(out, "cur/archivist")));
    });
    await t.step("the file: a sh header, the versioned copy and SHA256SUMS that sha256sum -c accepts; a rebuild keeps it", async () => {
      const dir = join(out, "cur");
      const head = td.decode((await Deno.readFile(join(dir, "archivist"))).subarray(0, 200));
      assert.match(head, /^#!\/bin\/sh\n# archivist \d+\.\d+\.\d+: self-extracting executable/);
      assert.ok((await Deno.stat(join(dir, "archivist"))).mode! & 0o111, "executable");
      const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(names, [
        "SHA256SUMS",
        "archivist",
        `archivist-${JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).version}-linux-x86_64`,
      ]);
      assert.match(await sh("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir }), /archivist: OK\n.*linux-x86_64: OK/);
      const size = (await Deno.stat(join(dir, "archivist"))).size;
      assert.ok(size > 20e6 && size < 60e6, `size ${size}`);
      const again = await dist(["--no-compile", "--out", dir]);
      assert.equal(again.code, 0, again.err);
      assert.match(again.out, /unchanged, kept/);
    });
    await t.step("without --no-compile the build says why deno compile was not used (here: it cannot fetch denort)", async () => {
      const r = await dist(["--out", join(out, "cur")]);
      assert.equal(r.code, 0, r.err);
      // Where the network allows, deno compile succeeds and says so; both are a statement of the form produced.
      assert.match(r.out, /(compiled by deno compile|self-extracting \(deno compile cannot fetch its runtime: .+\))/);
    });
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});

Deno.test("the self-extracting file alone, as another user under env -i: version, help, run on a mount, verify, restore, damaged cache, races, SIGTERM", async (t) => {
  await ensureUser(crypto.randomUUID()); // the test runs alone too, not only after a file that made the user
  const build = await Deno.makeTempDir({ prefix: "archivist-sfxbuild-" });
  const home = await Deno.makeTempDir({ prefix: "archivist-sfx-" });
  const mnt = join(home, "mnt");
  let mounted: string[] = [];
  const src0 = await dist(["--no-compile", "--out", build]);
  assert.equal(src0.code, 0, src0.err);
  const bin = join(home, "archivist");
  await Deno.copyFile(join(build, "archivist"), bin);
  await Deno.chmod(bin, 0o755);
  const cert = await makeCert(join(home, "tls"));
  // Over 16 MiB: the content fingerprint runs on a Blob-URL worker, which must work from the bundle too.
  const DUMP = sqlDump(17 * 2 ** 20);
  let stall: (() => void) | undefined;
  const src = startHttpsSource(cert, {
    "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: DUMP }])),
    // Sends a few bytes, then nothing until the test lets go: a fetch that hangs.
    "/slow.zip": () =>
      new Response(
        new ReadableStream({
          async start(c) {
            c.enqueue(new TextEncoder().encode("PK"));
            await new Promise<void>((res) => (stall = res));
            c.close();
          },
        }),
        { headers: { "content-length": "1000000" } },
      ),
  });
  const key = async () => {
    const header = td.decode((await Deno.readFile(bin)).subarray(0, 4000));
    return header.match(/^sfx_key=(\S+)$/m)![1];
  };
  const cache = join(home, ".cache/archivist");
  try {
    await Deno.mkdir(mnt);
    await sh("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt]);
    mounted.push(mnt);
    await sh("chown", ["-R", `${TEST_USER}:${TEST_USER}`, home]);
    const conf = join(home, "archive.yaml");
    const config = (url: string) =>
      stringify({
        name: "shop",
        state_dir: join(home, "state"),
        work_dir: join(home, "work"),
        source: { url, entry: "dump.sql", ca_file: cert.caFile, retries: 0, timeout: "30s" },
        check: { expect_trailer: "-- Dump completed" },
        archive: { timezone: "UTC" },
        destination: { type: "local", path: join(mnt, "db"), create_dirs: true, require_mount: true },
        retention: { max_age: "30d", min_keep: 3 },
        log: { file: join(home, "archivist.log") },
      });
    const writeConf = async (url: string) => {
      await Deno.writeTextFile(conf, config(url), { mode: 0o600 });
      await sh("chown", [`${TEST_USER}:${TEST_USER}`, conf]);
    };
    await writeConf(src.url("/dump.zip"));

    await t.step("--version: the first start unpacks into ~/.cache/archivist (mode 700) and says which form runs", async () => {
      const r = await as(home, TEST_USER, [bin, "--version"]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.out,
        new RegExp(`^archivist \\S+ \\(self-extracting, runtime in ${cache}/${await key()}, Deno ${DENO_VERSION}\\)$`, "m"),
      );
      assert.equal(((await Deno.stat(cache)).mode! & 0o777).toString(8), "700");
      assert.equal((await Deno.stat(join(cache, await key(), "deno"))).uid, Number((await sh("id", ["-u", TEST_USER])).trim()));
    });
    await t.step("--help", async () => {
      const r = await as(home, TEST_USER, [bin, "--help"]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^Usage: archivist /m);
    });
    await t.step("a night: the HTTPS source into a mounted local destination (require_mount), then verify and restore latest", async () => {
      const r = await as(home, TEST_USER, [bin, "run", "-v", "-c", conf]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.err,
        /unzip: sha256 and content fingerprint on a second core \(a worker\); garbage collected every 4\.00 MiB \(flat memory\)/,
      );
      assert.match(r.err, /store: stored \d{8}\.tgz/);
      const files = [...Deno.readDirSync(join(mnt, "db"))].map((e) => e.name).sort();
      assert.equal(files.length, 2, files.join(", "));
      assert.match(await sh("sha256sum", ["-c", files[1]], { cwd: join(mnt, "db") }), /: OK/);
      const v = await as(home, TEST_USER, [bin, "verify", "-c", conf]);
      assert.match(v.out, /✓ source/);
      assert.match(v.out, /✓ destination +.*write \+ rename \+ delete of a probe file work/);
      assert.doesNotMatch(v.out + v.err, /NotCapable|PermissionDenied|allow-/);
      const to = join(home, "restored");
      const rr = await as(home, TEST_USER, [bin, "restore", "latest", "--to", to, "-c", conf]);
      assert.equal(rr.code, 0, rr.err);
      assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
    });
    await t.step("a damaged runtime or bundle in the cache is unpacked again before it runs", async () => {
      const dir = join(cache, await key());
      for (const f of ["archivist.js", "deno"]) {
        const good = await sha256(join(dir, f));
        const fh = await Deno.open(join(dir, f), { write: true });
        await fh.seek(1000, Deno.SeekMode.Start);
        await fh.write(new Uint8Array([0x58, 0x58, 0x58]));
        fh.close();
        assert.notEqual(await sha256(join(dir, f)), good);
        const r = await as(home, TEST_USER, [bin, "--version"]);
        assert.equal(r.code, 0, r.err);
        assert.equal(await sha256(join(cache, await key(), f)), good, `${f} unpacked again`);
      }
      assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), [await key()], "no temp or damaged dirs left");
    });
    await t.step("later starts compare a stamp instead of hashing 140 MB; a write that keeps size and mtime is still caught", async () => {
      // sha256sum on PATH records each call: the full check runs only when the stamp differs.
      const fake = join(home, "fakebin");
      const calls = join(home, "sha256sum.calls");
      await Deno.mkdir(fake, { recursive: true });
      await Deno.writeTextFile(join(fake, "sha256sum"), `#!/bin/sh\necho x >> ${calls}\nexec /usr/bin/sha256sum "$@"\n`, { mode: 0o755 });
      await sh("chown", ["-R", `${TEST_USER}:${TEST_USER}`, fake]);
      const start = () => as(home, TEST_USER, [bin, "--version"], [`PATH=${fake}:/usr/bin:/bin`]);
      const count = async () => (await Deno.readTextFile(calls).catch(() => "")).split("\n").filter(Boolean).length;
      const dir = join(cache, await key());
      assert.match(await Deno.readTextFile(join(dir, "stamp")), new RegExp(`${await key()}\n$`));
      for (let i = 0; i < 2; i++) assert.equal((await start()).code, 0);
      assert.equal(await count(), 0, "no full check while the stamp matches");
      // Same size, mtime put back: only the ctime tells, and it is enough.
      const f = join(dir, "archivist.js");
      const { mtime } = await Deno.stat(f);
      const good = await sha256(f);
      const fh = await Deno.open(f, { write: true });
      await fh.seek(2000, Deno.SeekMode.Start);
      await fh.write(new Uint8Array([0x59, 0x59]));
      fh.close();
      await Deno.utime(f, mtime!, mtime!);
      assert.equal((await start()).code, 0);
      assert.ok(await count() > 0, "the changed stamp led to a full check");
      assert.equal(await sha256(f), good, "and the bundle was unpacked again");
      const after = await count();
      assert.equal((await start()).code, 0);
      assert.equal(await count(), after, "the new stamp is used by the next start");
    });
    await t.step("two first starts at once both run; one cache entry, no temp dirs left", async () => {
      await Deno.remove(cache, { recursive: true });
      const [a, b] = await Promise.all([as(home, TEST_USER, [bin, "--version"]), as(home, TEST_USER, [bin, "list", "-c", conf])]);
      assert.equal(a.code, 0, a.err);
      assert.equal(b.code, 0, b.err);
      assert.match(b.out, /\d{8}\.tgz/);
      assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), [await key()]);
    });
    await t.step("SIGTERM to the file's process reaches archivist: exit 130, history line, work dir clean", async () => {
      await writeConf(src.url("/slow.zip"));
      const [cmd, ...args] = [...minimal(home, TEST_USER), bin, "run", "-c", conf];
      const p = new Deno.Command(cmd, { args, cwd: home, stdout: "piped", stderr: "piped" }).spawn();
      const log = join(home, "archivist.log");
      const deadline = Date.now() + 20_000;
      while (!(await Deno.readTextFile(log).catch(() => "")).includes("slow.zip") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      // env, setpriv and the sh header all exec: the pid spawned is archivist's (the Deno runtime's) own.
      assert.match(await sh("ps", ["-o", "args=", "-p", String(p.pid)]), /\/deno run .*archivist\.js run -c/);
      p.kill("SIGTERM");
      const r = await p.output();
      stall?.();
      assert.equal(r.code, EXIT.INTERRUPTED, td.decode(r.stderr));
      const hist = (await Deno.readTextFile(join(home, "state/history.jsonl"))).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(hist.at(-1).status, "failed");
      assert.deepEqual([...Deno.readDirSync(join(home, "work"))].filter((e) => e.name.startsWith("shop-run-")), []);
    });
    await t.step("root, with no ARCHIVIST_CACHE: /var/cache/archivist", async () => {
      const r = await as(home, "root", [bin, "--version"]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`runtime in /var/cache/archivist/${await key()},`));
    });
    await t.step("cache directories it refuses (exit 12, the cause and a hint): writable by others, another user's, noexec", async () => {
      const open = join(home, "open");
      await Deno.mkdir(open, { mode: 0o777 });
      await Deno.chmod(open, 0o777);
      let r = await as(home, TEST_USER, [bin, "--version"], [`ARCHIVIST_CACHE=${open}`]);
      assert.equal(r.code, EXIT.UNPACK);
      assert.match(r.err, /cache directory .*open is writable by other users: refusing to run a runtime from it\n {2}hint: chmod 700/);
      const roots = join(home, "roots");
      await Deno.mkdir(roots, { mode: 0o700 });
      r = await as(home, TEST_USER, [bin, "--version"], [`ARCHIVIST_CACHE=${roots}`]);
      assert.equal(r.code, EXIT.UNPACK);
      assert.match(r.err, /belongs to another user/);
      const noexec = join(home, "noexec");
      await Deno.mkdir(noexec);
      await sh("mount", ["-t", "tmpfs", "-o", "size=300m,noexec,mode=0700", "tmpfs", noexec]);
      mounted.push(noexec);
      r = await as(home, "root", [bin, "--version"], [`ARCHIVIST_CACHE=${join(noexec, "c")}`]);
      assert.equal(r.code, EXIT.UNPACK, r.out + r.err);
      assert.match(r.err, /cannot run \(a filesystem mounted noexec.*\n {2}hint: set ARCHIVIST_CACHE/);
      assert.deepEqual([...Deno.readDirSync(join(noexec, "c"))], [], "the failed unpack is removed");
    });
    await t.step("a truncated file: exit 12, 'damaged', nothing left in the cache", async () => {
      const cut = join(home, "cut");
      const bytes = await Deno.readFile(bin);
      await Deno.writeFile(cut, bytes.subarray(0, bytes.length - 1_000_000), { mode: 0o755 });
      const c2 = join(home, "c2");
      const r = await as(home, "root", [cut, "--version"], [`ARCHIVIST_CACHE=${c2}`]);
      assert.equal(r.code, EXIT.UNPACK);
      assert.match(r.err, /cannot unpack the runtime from .*cut .*: the file is damaged or the disk is full\n {2}hint: .*SHA256SUMS/);
      assert.deepEqual([...Deno.readDirSync(c2)], []);
    });
    assert.equal(
      cacheKey({
        version: "1.2.3",
        denoVersion: "x",
        denoSha256: "a".repeat(64),
        bundleSha256: "b".repeat(64),
        permissions: [],
        exitCode: 12,
      }),
      "1.2.3-aaaaaaaabbbbbbbb",
    );
  } finally {
    stall?.();
    for (const m of mounted.reverse()) await sh("umount", [m]).catch(() => {});
    mounted = [];
    await src.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(build, { recursive: true }).catch(() => {});
  }
});
