/**
 * Verify while downloading (src/night/early.ts, src/os/follow.ts): the first entry is inflated and measured as the
 * zip arrives, and used only when the central directory agrees; every other case reads the finished zip as before,
 * with the same result. Real HTTPS source, both clients; no time is asserted, only the order of the log lines.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";
import { type Route, serveBytes } from "../tools/https_source.ts";
import { ageKeyPair, runCli, type Sandbox, spawnCli, waitFor, workFiles } from "./helpers/cli.ts";
import { withSource } from "./helpers/source.ts";
import { followRange, type Growth } from "../src/os/follow.ts";
import { EXIT } from "../src/errors.ts";
import { findEntry, readDirectory, verifyEntry } from "../src/formats/zip.ts";
import { packArchive } from "../src/night/pack.ts";

const DUMP = sqlDump(3 * 2 ** 20);
const ZIP = makeZip([{ name: "dump.sql", data: DUMP }]);
const NOW = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };
const BIG = sqlDump(24 * 2 ** 20);
const BIG_ZIP = makeZip([{ name: "dump.sql", data: BIG }]);
const EARLY = /unzip: read while downloading: the central directory names the entry the first local header described/;

/** A route that sends the first half of `zip` (over Deno's 1 MiB write batch) and waits for `release`. */
function halfWay(zip: Uint8Array): { route: Route; release: () => void } {
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const route: Route = () =>
    new Response(
      new ReadableStream({
        async start(c) {
          c.enqueue(zip.slice(0, zip.length >> 1));
          await held;
          c.enqueue(zip.slice(zip.length >> 1));
          c.close();
        },
      }),
      { headers: { "content-length": String(zip.length) } },
    );
  return { route, release: () => release() };
}

/** The run's work file `name`, once it holds more than 1000 bytes (written while the download waits). */
function grown(sb: Sandbox, name: string): string | undefined {
  return workFiles(sb).find((f) => {
    try {
      return f.endsWith(`/${name}`) && Deno.statSync(f).size > 1000;
    } catch {
      return false; // gone between the listing and the stat
    }
  });
}

for (const client of ["deno", "curl"] as const) {
  Deno.test(`${client}: the first entry is read and packed while it downloads; the archive is the one the finished zip gives`, async () => {
    // The server sends half the zip and waits: the .tgz being written in the work dir proves the early pass.
    const { route, release } = halfWay(BIG_ZIP);
    await withSource({ route, config: { source: { client, timeout: "1m" } } }, async (sb) => {
      const child = spawnCli(["run", "-v", "-c", sb.configPath], NOW);
      const out = child.output();
      const early = await waitFor(() => grown(sb, "early.tgz"), "a .tgz written while the download waits half-way", 20_000)
        .finally(release);
      const r = await out;
      const err = new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 0, err);
      assert.ok(early.endsWith("early.tgz"));
      assert.match(err, EARLY);
      assert.match(err, /pack: reusing the zip's deflate stream \(the entry is deflate: .*\), written while the zip downloaded/);
      const to = await Deno.makeTempDir();
      await sh("tar", ["-xzf", join(sb.dest, "20261122.tgz"), "-C", to]);
      assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), BIG);
      assert.match(await sh("sha256sum", ["-c", "20261122.tgz.sha256"], { cwd: sb.dest }), /: OK/);
      // pack's own path over the finished zip gives the same bytes.
      const zipFile = join(to, "dump.zip");
      await Deno.writeFile(zipFile, BIG_ZIP);
      const entry = findEntry(await readDirectory(zipFile), "dump.sql");
      const { dataStart } = await verifyEntry(zipFile, entry, { maxSize: 2 ** 40, maxRatio: 1000 });
      const limits = { maxSize: 2 ** 40, maxRatio: 1000 };
      const input = {
        zipPath: zipFile,
        entry,
        dataStart,
        memberName: "dump.sql",
        mtime: entry.mtime,
        level: 6,
        recompress: "auto",
        limits,
      } as const;
      await packArchive(input, join(to, "normal.tgz"));
      assert.deepEqual(await Deno.readFile(join(to, "normal.tgz")), await Deno.readFile(join(sb.dest, "20261122.tgz")));
    });
  });
}

Deno.test("archive.encrypt without archive.verify: the .tgz goes through age while it downloads; no plain .tgz in the work dir", async () => {
  // As above: the server waits half-way; meanwhile the work dir holds the growing .tgz.age and never a plain .tgz.
  const { route, release } = halfWay(BIG_ZIP);
  await withSource({ route, config: { source: { timeout: "1m" } } }, async (sb) => {
    const { key, pub } = await ageKeyPair(sb);
    await sb.writeConfig({ archive: { encrypt: { age_recipients: [pub] } } });
    const child = spawnCli(["run", "-v", "-c", sb.configPath], NOW);
    const out = child.output();
    const sealed = await waitFor(() => grown(sb, "early.tgz.age"), "a .tgz.age written while the download waits half-way", 20_000).finally(
      () => {
        // What the work dir holds mid-download: the zip, the age output and its FIFO, never a plain .tgz.
        assert.deepEqual(workFiles(sb).filter((f) => f.endsWith(".tgz")), []);
        release();
      },
    );
    const r = await out;
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, err);
    assert.ok(sealed);
    assert.match(err, EARLY);
    assert.match(err, /pack: 20261122\.tgz\.age: .*encrypted with age to 1 recipient while the zip downloaded/);
    assert.match(await sh("sha256sum", ["-c", "20261122.tgz.age.sha256"], { cwd: sb.dest }), /: OK/);
    const plain = await new Deno.Command("sh", {
      args: ["-c", `age -d -i ${key} ${join(sb.dest, "20261122.tgz.age")} | tar -xzO`],
      stdout: "piped",
    }).output();
    assert.deepEqual(plain.stdout, BIG, "age -d | tar -xzO gives the dump back");
  });
});

Deno.test("SIGTERM while the encrypted .tgz is written alongside the download: exit 130, no age left running, nothing stored, no work file", async () => {
  const { route, release } = halfWay(BIG_ZIP);
  await withSource({ route, config: { source: { timeout: "1m" } } }, async (sb) => {
    const { pub } = await ageKeyPair(sb);
    await sb.writeConfig({ archive: { encrypt: { age_recipients: [pub] } } });
    const child = spawnCli(["run", "-c", sb.configPath], NOW);
    const out = child.output();
    const work = join(sb.root, "work");
    const inWork = () => workFiles(sb).map((f) => f.split("/").pop());
    await waitFor(() => inWork().includes("early.tgz.age.fifo") || undefined, "age reading the early pass's FIFO", 20_000);
    const ageOfThisRun = new RegExp(`age --encrypt .*${work.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`);
    assert.match(await sh("ps", ["-eo", "args"]), ageOfThisRun, "age runs on the FIFO before the signal");
    child.kill("SIGTERM");
    const r = await out;
    release();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, EXIT.INTERRUPTED, err);
    assert.match(err, /interrupted by SIGTERM during fetch/);
    assert.doesNotMatch(await sh("ps", ["-eo", "args"]), ageOfThisRun, "no age left running");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(sb.dest)).catch(() => []), [], "nothing stored");
    assert.deepEqual(inWork(), [], "no work file left");
  });
});

Deno.test("when the early pass cannot be trusted the finished zip is read: data descriptor, another first entry, a lying local header", async (t) => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "dump.sql"), DUMP);
  // Into a file, zip seeks back and writes the sizes (Zip64) in the local header; through a pipe it cannot.
  await sh("sh", ["-c", `cd ${dir} && zip -q - - < dump.sql | cat > pipe.zip && echo hello > README && zip -q two.zip README dump.sql`]);
  await sh("sh", ["-c", `cd ${dir} && zip -q - - < dump.sql > seek.zip`]);
  await withSource({ route: serveBytes(await Deno.readFile(join(dir, "seek.zip"))), config: { source: { entry: "-" } } }, async (sb) => {
    const r = await runCli(["run", "-v", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /unzip: entry -: .*zip64\)/);
    assert.match(r.stderr, EARLY, "a Zip64 local header is read early");
  });
  const lying = ZIP.slice();
  new DataView(lying.buffer).setUint32(14, 0xdeadbeef, true); // the local header's CRC; the central directory's is right
  const cases: [string, Uint8Array, string, RegExp][] = [
    ["a zip written from a pipe", await Deno.readFile(join(dir, "pipe.zip")), "-", /the first entry has a data descriptor/],
    ["README first", await Deno.readFile(join(dir, "two.zip")), "dump.sql", /the first entry "README" is not source\.entry/],
    ["a wrong CRC in the local header", lying, "dump.sql", /the early pass stopped: CRC-32 mismatch/],
  ];
  for (const [what, zip, entry, why] of cases) {
    await t.step(what, async () => {
      await withSource({ route: serveBytes(zip), config: { source: { entry } } }, async (sb) => {
        const r = await runCli(["run", "-v", "-c", sb.configPath], { env: NOW });
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, EARLY);
        assert.match(r.stderr, new RegExp(`unzip: read after the download \\(.*${why.source}`));
        const to = await Deno.makeTempDir();
        await sh("tar", ["-xzf", join(sb.dest, "20261122.tgz"), "-C", to]);
        assert.deepEqual(await Deno.readFile(join(to, "dump.sql")), DUMP);
      });
    });
  }
});

Deno.test("a damaged zip fails as it did (exit 21, the central directory's message); a retried download is read after it", async () => {
  const bad = ZIP.slice();
  bad[200] ^= 0xff; // inside the deflate data
  await withSource({ route: serveBytes(bad) }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.UNZIP, r.stderr);
    assert.match(r.stderr, /unzip: FAILED: (CRC-32 mismatch for dump\.sql|the compressed data of dump\.sql is corrupt)/);
  });
  let calls = 0;
  const cutOnce: Route = () =>
    ++calls === 1
      ? new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(ZIP.slice(0, 5000));
            c.close();
          },
        }),
        { headers: { "content-length": String(ZIP.length) } },
      )
      : new Response(ZIP.slice());
  await withSource({ route: cutOnce, config: { source: { retries: 2, retry_delay: "50ms" } } }, async (sb) => {
    const r = await runCli(["run", "-v", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /attempt 1\/3 failed: (truncated download|connection lost)/);
    assert.doesNotMatch(r.stderr, EARLY);
    assert.equal(calls, 2);
  });
});

Deno.test("followRange reads a file as another writer appends to it; a writer that gives up or stops short is an error", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "growing");
  const data = crypto.getRandomValues(new Uint8Array(60_000));
  const growth: Growth = { done: false };
  const reading = buffer(followRange(path, 1000, 50_000, growth));
  const f = await Deno.open(path, { write: true, create: true });
  for (let i = 0; i < data.length; i += 7000) {
    await f.write(data.subarray(i, i + 7000));
    await new Promise((r) => setTimeout(r, 10));
  }
  f.close();
  growth.done = true;
  assert.deepEqual(new Uint8Array(await reading), data.subarray(1000, 51_000));

  const short: Growth = { done: false };
  const cut = buffer(followRange(path, 0, 70_000, short));
  short.done = true;
  await assert.rejects(cut, /ends at 60000 bytes, before 70000/);

  const gone: Growth = { done: false };
  const given = buffer(followRange(join(dir, "never"), 0, 10, gone));
  gone.abandoned = new Error("attempt 1 failed");
  await assert.rejects(given, /attempt 1 failed/);
});
