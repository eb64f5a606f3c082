/**
 * The pack paths in whole runs through the CLI: what the log says, the archive restore and GNU tar read back, what
 * work_dir holds while the run goes (never the raw dump), recompress: always, verify: false, and the bad nights of
 * packing: work_dir filling up while the .tgz is written (a real tmpfs), nothing stored, the state unchanged.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeZip, sh, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { runCli, sandbox } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";
import { testCert, withSource } from "./helpers/source.ts";

const cert: TestCert = await testCert();
const DUMP = sqlDump(2_000_000, { seed: 11 });
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);

/** The sha256 by WebCrypto: another implementation than the node:crypto the worker uses. */
const sha256Hex = async (b: Uint8Array) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))].map((x) => x.toString(16).padStart(2, "0")).join(
    "",
  );

const ls = (d: string) => {
  try {
    return [...Deno.readDirSync(d)].map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
};

Deno.test("a run reuses the zip's deflate stream, proves the archive (verify: true), and it restores; work_dir never holds the dump", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    // Watch work_dir while the run goes: the largest file ever seen there must stay below the dump's size.
    const work = join(sb.root, "work");
    await Deno.mkdir(work, { recursive: true });
    let largest = 0, watching = true;
    const watch = (async () => {
      while (watching) {
        for (const e of await Array.fromAsync(Deno.readDir(work)).catch(() => [])) {
          if (!e.isDirectory) continue;
          for (const f of await Array.fromAsync(Deno.readDir(join(work, e.name))).catch(() => [])) {
            const st = await Deno.stat(join(work, e.name, f.name)).catch(() => undefined);
            if (st) largest = Math.max(largest, st.size);
          }
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await sb.writeConfig({ archive: { verify: true } });
    const r = await runCli(["run", "-c", sb.configPath]);
    watching = false;
    await watch;
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(
      r.stderr,
      /pack: reusing the zip's deflate stream \(the entry is deflate: its compressed bytes are copied, not recompressed\)/,
    );
    assert.match(r.stderr, /pack: read back: the archive restores to the dump \(sha256 [0-9a-f]{16}…\)/);
    assert.ok(largest > 0 && largest < DUMP.length / 2, `largest file in work_dir ${largest} bytes, dump ${DUMP.length}`);
    const tgz = ls(sb.dest).find((n) => n.endsWith(".tgz"))!;
    assert.ok((await Deno.stat(join(sb.dest, tgz))).size - ZIP.length < 200, "the archive is the zip's size");
    const x = await Deno.makeTempDir({ dir: sb.root });
    await sh("tar", ["-xzf", join(sb.dest, tgz), "-C", x]);
    assert.deepEqual(await Deno.readFile(join(x, "dump.sql")), DUMP);
    const to = join(sb.root, "restored");
    const rr = await runCli(["restore", "latest", "--to", to, "-c", sb.configPath]);
    assert.equal(rr.code, 0, rr.stderr);
    assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
    const c = await runCli(["check", "--all", "-c", sb.configPath]);
    assert.equal(c.code, 0, c.stdout + c.stderr);
  });
});

Deno.test("recompress: always compresses at the level; verify: false skips the read-back (and says nothing of it)", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    await sb.writeConfig({ archive: { recompress: "always", compression_level: 9, verify: false }, check: { on_unchanged: "archive" } });
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(r.stderr, /pack: compressing at level 9 on \d+ threads? \(archive\.recompress: always\)/);
    assert.doesNotMatch(r.stderr, /read back/);
    const tgz = ls(sb.dest).find((n) => n.endsWith(".tgz"))!;
    assert.match(await sh("sha256sum", ["-c", `${tgz}.sha256`], { cwd: sb.dest }), /: OK/);
    const x = await Deno.makeTempDir({ dir: sb.root });
    await sh("tar", ["-xzf", join(sb.dest, tgz), "-C", x]);
    assert.deepEqual(await Deno.readFile(join(x, "dump.sql")), DUMP);
  });
});

Deno.test("a stored entry is compressed (the log says why), and the same zip twice gives byte-identical archives", async () => {
  const stored = makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]);
  await withSource({ routes: { "/dump.zip": serveBytes(stored) } }, async (sb) => {
    await sb.writeConfig({ check: { on_unchanged: "archive" }, archive: { name: "{YYYY}{MM}{DD}-{HH}{mm}.tgz" } });
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(r.stderr, /pack: compressing at level 6 on \d+ threads? \(the entry is stored uncompressed in the zip\)/);
    const first = ls(sb.dest).filter((n) => n.endsWith(".tgz"));
    const r2 = await runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: new Date(Date.now() + 120_000).toISOString() } });
    assert.equal(r2.code, EXIT.OK, r2.stderr);
    const both = ls(sb.dest).filter((n) => n.endsWith(".tgz"));
    assert.equal(both.length, 2, both.join(", "));
    assert.deepEqual(await Deno.readFile(join(sb.dest, both[0])), await Deno.readFile(join(sb.dest, both[1])), `${first} = ${both}`);
  });
});

Deno.test("work_dir fills up while the .tgz is written (a real tmpfs): exit 24 'no space left', nothing stored, state unchanged", async () => {
  // A dump that compresses poorly, so that the zip is large; the tmpfs holds the zip but not the zip and the .tgz.
  const noisy = new Uint8Array(1_500_000);
  for (let o = 0; o < 1_400_000; o += 65536) crypto.getRandomValues(noisy.subarray(o, Math.min(o + 65536, 1_400_000)));
  noisy.set(new TextEncoder().encode("\n-- Dump completed on 2026-11-29\n"), noisy.length - 40);
  const zip = makeZip([{ name: "dump.sql", data: noisy }]);
  await withSource({ routes: { "/dump.zip": serveBytes(zip) } }, async (sb) => {
    const work = join(sb.root, "work");
    await Deno.mkdir(work, { recursive: true });
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${Math.round(zip.length * 1.5 / 4096) * 4096}`, "tmpfs", work],
    })
      .output();
    assert.ok(m.success, "mount a tmpfs (root)");
    try {
      await sb.writeConfig({ check: { max_ratio: 1000 } });
      const r = await runCli(["run", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.PACK, r.stderr);
      assert.match(r.stderr, /pack: FAILED: .*no space left/i);
      assert.deepEqual(ls(sb.dest).filter((n) => n.endsWith(".tgz")), []);
      assert.ok(!ls(sb.stateDir).includes("testjob.state.json"), "state not advanced");
      assert.deepEqual(ls(work), [], "the run's temp dir removed");
    } finally {
      await new Deno.Command("umount", { args: [work] }).output();
    }
  });
});

Deno.test("a dump over 16 MiB: the sha256 and the content fingerprint run on a worker and gives the same as in-thread (unchanged next night)", async () => {
  const big = sqlDump(20 * 2 ** 20, { seed: 21 });
  const zip = makeZip([{ name: "dump.sql", data: big }]);
  await withSource({ routes: { "/dump.zip": serveBytes(zip) } }, async (sb) => {
    const r = await runCli(["run", "-v", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.match(r.stderr, /unzip: sha256 and content fingerprint on a second core \(a worker\); garbage collected every 4\.00 MiB/);
    const state = JSON.parse(await Deno.readTextFile(join(sb.stateDir, "testjob.state.json")));
    const { Fingerprinter } = await import("../src/formats/fingerprint.ts");
    const f = new Fingerprinter();
    for (let i = 0; i < big.length; i += 1 << 20) f.update(big.subarray(i, i + (1 << 20)));
    assert.equal(state.fingerprint, f.digest().sha256, "the worker's fingerprint is the in-thread one");
    // The dump's sha256 comes from the worker too: it must be the sha256 of the dump's bytes.
    const real = await sha256Hex(big);
    assert.equal(state.sha256, real);
    const c = await runCli(["check", "--all", "-c", sb.configPath]);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    const again = await runCli(["run", "-c", sb.configPath]);
    assert.equal(again.code, EXIT.WARNING, again.stderr);
    assert.match(again.stderr, /compare: .*(identical|same data)/);
  });
});

Deno.test("archive.verify is off by default: no read-back, the archive still restores", async () => {
  await withSource({ routes: { "/dump.zip": serveBytes(ZIP) } }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.doesNotMatch(r.stderr, /read back/);
    const to = join(sb.root, "restored");
    const rr = await runCli(["restore", "latest", "--to", to, "-c", sb.configPath]);
    assert.equal(rr.code, 0, rr.stderr);
    assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
  });
});

Deno.test("archive.verify with a dump over 16 MiB: the read-back's sha256 on the fingerprint's kept worker; runs stopped before pack end normally", async () => {
  const big = sqlDump(20 * 2 ** 20, { seed: 23 });
  const src = startHttpsSource(cert, { "/dump.zip": serveBytes(makeZip([{ name: "dump.sql", data: big }])) });
  try {
    const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, { archive: { verify: true } });
    try {
      const r = await runCli(["run", "-v", "-c", sb.configPath]);
      assert.equal(r.code, EXIT.OK, r.stderr);
      assert.match(r.stderr, /pack: read back: the archive restores to the dump/);
      const state = JSON.parse(await Deno.readTextFile(join(sb.stateDir, "testjob.state.json")));
      const real = await sha256Hex(big);
      assert.equal(state.sha256, real, "the dump's sha256 (worker, first stream)");
      // The same night again: unchanged, skipped before pack (the kept worker is closed by the run).
      const again = await runCli(["run", "-c", sb.configPath]);
      assert.equal(again.code, EXIT.WARNING, again.stderr);
      assert.match(again.stderr, /compare: .*(identical|same data)/);
    } finally {
      await sb.cleanup();
    }
    // A failing check (min_size above the dump): the run stops before pack, and exits.
    const sb2 = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, {
      archive: { verify: true },
      check: { min_size: "1GiB" },
    });
    try {
      const r = await runCli(["run", "-c", sb2.configPath]);
      assert.notEqual(r.code, EXIT.OK);
      assert.match(r.stderr, /check: FAILED/);
    } finally {
      await sb2.cleanup();
    }
  } finally {
    await src.close();
  }
});
