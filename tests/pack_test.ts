/**
 * pack from the zip (src/night/pack.ts): the deflate-reuse path (a multi-member gzip whose middle member is the zip
 * entry's own deflate bytes) and the recompress path, read back by every reader an operator might use: GNU tar,
 * bsdtar, 7-Zip, Python's tarfile, gzip -t, pigz -t and restore's own reader (node:zlib). Zips from Info-ZIP, Python
 * (with Zip64 records) and the test writer; a stored entry; determinism; a corrupt deflate stream and a deflate
 * stream with junk after its end, refused before anything is packed; the read-back proof catching a damaged archive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { findEntry, inflateEntry, readDirectory, verifyEntry, type ZipEntry, ZipError } from "../src/formats/zip.ts";
import { packAlong, packArchive, packPath, proveArchive } from "../src/night/pack.ts";
import { hashTgz } from "../src/ops/restore.ts";
import { ArchivistError } from "../src/errors.ts";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";

const LIMITS = { maxSize: 1e12, maxRatio: 1000 };
const dir = await Deno.makeTempDir({ prefix: "archivist-pack-" });
const DUMP = sqlDump(3_000_000, { seed: 7 });
const sha = async (b: Uint8Array) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))].map((x) => x.toString(16).padStart(2, "0")).join(
    "",
  );

async function pack(zip: string, out: string, recompress: "auto" | "always" = "auto", level = 6) {
  const d = await readDirectory(zip);
  const entry = findEntry(d, "dump.sql");
  const v = await verifyEntry(zip, entry, LIMITS);
  const r = await packArchive(
    { zipPath: zip, entry, dataStart: v.dataStart, memberName: "shop.sql", mtime: 1_795_000_000, level, recompress, limits: LIMITS },
    out,
  );
  return { entry, v, r };
}

/** Every reader: the member's name and bytes must be the dump. */
async function readEverywhere(tgz: string, want: Uint8Array) {
  assert.equal(await sh("gzip", ["-t", tgz]), "");
  assert.equal(await sh("pigz", ["-t", tgz]), "");
  for (
    const [label, cmd, args] of [
      ["GNU tar", "tar", ["-xzf", tgz]],
      ["bsdtar", "bsdtar", ["-xzf", tgz]],
      ["python tarfile", "python3", ["-c", `import tarfile; tarfile.open(${JSON.stringify(tgz)}, "r:gz").extractall(".", filter="data")`]],
    ] as const
  ) {
    const x = await Deno.makeTempDir({ dir, prefix: "x-" });
    await sh(cmd, [...args], { cwd: x });
    assert.deepEqual([...Deno.readDirSync(x)].map((e) => e.name), ["shop.sql"], label);
    assert.ok(
      (await Deno.readFile(join(x, "shop.sql"))).every((b, i) => b === want[i]) &&
        (await Deno.stat(join(x, "shop.sql"))).size === want.length,
      label,
    );
  }
  // 7-Zip: gzip layer to a tar, then the tar.
  const x7 = await Deno.makeTempDir({ dir, prefix: "x7-" });
  await sh("7z", ["x", "-y", `-o${x7}`, tgz]);
  const tarName = [...Deno.readDirSync(x7)][0].name;
  await sh("7z", ["x", "-y", `-o${join(x7, "out")}`, join(x7, tarName)]);
  assert.equal(await sha(await Deno.readFile(join(x7, "out", "shop.sql"))), await sha(want), "7-Zip");
  const h = await hashTgz(tgz);
  assert.deepEqual(
    { name: h.name, size: h.size, sha256: h.sha256 },
    { name: "shop.sql", size: want.length, sha256: await sha(want) },
    "restore's reader",
  );
}

Deno.test("a deflate entry is copied, not recompressed: three gzip members that every reader reads as the dump", async () => {
  const zip = join(dir, "test-writer.zip");
  await Deno.writeFile(zip, makeZip([{ name: "dump.sql", data: DUMP }]));
  const out = join(dir, "reuse.tgz");
  const { entry, v, r } = await pack(zip, out);
  assert.equal(r.path, "reuse");
  assert.match(r.why, /deflate/);
  assert.equal(v.sha256, await sha(DUMP));
  // The middle member holds exactly the zip's compressed bytes: the archive is the zip's size plus ~100 bytes.
  const bytes = await Deno.readFile(out);
  const zipBytes = await Deno.readFile(zip);
  const raw = zipBytes.subarray(v.dataStart, v.dataStart + entry.compressedSize);
  const at = bytes.findIndex((_, i) => i > 10 && bytes[i] === raw[0] && raw.subarray(0, 64).every((b, k) => bytes[i + k] === b));
  assert.ok(at > 0, "the zip's deflate bytes appear verbatim");
  assert.deepEqual(bytes.subarray(at, at + raw.length), raw);
  assert.ok(r.size - entry.compressedSize < 200, `overhead ${r.size - entry.compressedSize} bytes`);
  assert.equal(r.sha256, await sha(bytes));
  assert.equal(r.size, bytes.length);
  await readEverywhere(out, DUMP);
  // Deterministic: the same zip gives the same bytes.
  await pack(zip, join(dir, "reuse2.tgz"));
  assert.deepEqual(await Deno.readFile(join(dir, "reuse2.tgz")), bytes);
});

Deno.test("zips written by Info-ZIP and by Python (Zip64 records) go through the reuse path and read back", async () => {
  const src = join(dir, "src");
  await Deno.mkdir(src, { recursive: true });
  await Deno.writeFile(join(src, "dump.sql"), DUMP);
  const info = join(dir, "infozip.zip");
  await sh("zip", ["-q", "-9", "-j", info, join(src, "dump.sql")]);
  const py = join(dir, "python64.zip");
  await sh("python3", [
    "-c",
    `import zipfile
with zipfile.ZipFile(${JSON.stringify(py)}, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
    with zf.open("dump.sql", "w", force_zip64=True) as f:
        f.write(open(${JSON.stringify(join(src, "dump.sql"))}, "rb").read())`,
  ]);
  for (const zip of [info, py]) {
    const out = zip.replace(/\.zip$/, ".tgz");
    const { entry, r } = await pack(zip, out);
    assert.equal(r.path, "reuse", zip);
    if (zip === py) {
      // force_zip64: the local header carries a Zip64 extra field (id 0x0001), so the data starts after it.
      const b = await Deno.readFile(zip);
      const lv = new DataView(b.buffer, entry.localHeaderOffset);
      const extra = b.subarray(entry.localHeaderOffset + 30 + lv.getUint16(26, true));
      assert.ok(lv.getUint16(28, true) >= 20 && extra[0] === 1 && extra[1] === 0, "python wrote a Zip64 local header");
    }
    await readEverywhere(out, DUMP);
  }
});

Deno.test("a stored entry, and recompress: always, are compressed as one gzip member at the level", async () => {
  const zip = join(dir, "stored.zip");
  await Deno.writeFile(zip, makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]));
  const out = join(dir, "stored.tgz");
  const { r } = await pack(zip, out);
  assert.equal(r.path, "recompress");
  assert.match(r.why, /stored/);
  await readEverywhere(out, DUMP);
  const deflated = join(dir, "deflated.zip");
  await Deno.writeFile(deflated, makeZip([{ name: "dump.sql", data: DUMP }]));
  const a1 = await pack(deflated, join(dir, "always1.tgz"), "always", 1);
  const a9 = await pack(deflated, join(dir, "always9.tgz"), "always", 9);
  assert.equal(a1.r.path, "recompress");
  assert.match(a1.r.why, /always/);
  assert.ok(a9.r.size < a1.r.size, `level 9 (${a9.r.size}) smaller than level 1 (${a1.r.size})`);
  await readEverywhere(join(dir, "always9.tgz"), DUMP);
  // One member: a single gzip decompressor consumes the whole file with nothing left over.
  const members = async (f: string) =>
    (await sh("python3", [
      "-c",
      `import zlib,sys
b=open(${JSON.stringify(f)},"rb").read(); n=0
while b:
    d=zlib.decompressobj(31); d.decompress(b); b=d.unused_data; n+=1
print(n)`,
    ])).trim();
  assert.equal(await members(join(dir, "always9.tgz")), "1");
  assert.equal(await members(out), "1");
  const reuse = join(dir, "members-reuse.tgz");
  await pack(deflated, reuse);
  assert.equal(await members(reuse), "3");
  assert.deepEqual(packPath({ method: 8 }, "auto").path, "reuse");
  assert.deepEqual(packPath({ method: 0 }, "auto").path, "recompress");
  assert.deepEqual(packPath({ method: 8 }, "always").path, "recompress");
});

/** The zip with its entry's compressed bytes replaced by `body` (sizes kept consistent or not, as given). */
function withBody(data: Uint8Array, body: Uint8Array): Uint8Array {
  const zip = makeZip([{ name: "dump.sql", data }]);
  const v = new DataView(zip.buffer);
  const nameLen = v.getUint16(26, true);
  const oldLen = v.getUint32(18, true);
  const start = 30 + nameLen;
  const out = new Uint8Array(zip.length - oldLen + body.length);
  out.set(zip.subarray(0, start));
  out.set(body, start);
  out.set(zip.subarray(start + oldLen), start + body.length);
  const ov = new DataView(out.buffer);
  ov.setUint32(18, body.length, true);
  const cd = start + body.length;
  ov.setUint32(cd + 20, body.length, true);
  const eocd = out.length - 22;
  ov.setUint32(eocd + 16, cd, true);
  return out;
}

Deno.test("a corrupt deflate stream, or junk after its end, is refused by the verifying inflate: nothing can be copied", async () => {
  const zip = makeZip([{ name: "dump.sql", data: DUMP }]);
  const v = new DataView(zip.buffer);
  const start = 30 + v.getUint16(26, true);
  const len = v.getUint32(18, true);
  const bad = zip.slice();
  for (let i = 0; i < 16; i++) bad[start + Math.floor(len / 2) + i] ^= 0x5a;
  const p1 = join(dir, "corrupt.zip");
  await Deno.writeFile(p1, bad);
  const d1 = await readDirectory(p1);
  await assert.rejects(() => verifyEntry(p1, findEntry(d1, "dump.sql"), LIMITS), (e: ZipError) => {
    assert.ok(["corrupt_data", "crc_mismatch", "size_mismatch"].includes(e.code), e.code);
    return true;
  });
  // A complete deflate stream followed by junk inside the entry's compressed size: the CRC and size are right, but
  // copying those bytes into a gzip member would put junk in the archive; the inflate must refuse them.
  const body = zip.subarray(start, start + len);
  const junk = new Uint8Array(body.length + 7);
  junk.set(body);
  junk.set(new TextEncoder().encode("JUNK!!!"), body.length);
  const p2 = join(dir, "junk.zip");
  await Deno.writeFile(p2, withBody(DUMP, junk));
  const d2 = await readDirectory(p2);
  await assert.rejects(() => verifyEntry(p2, findEntry(d2, "dump.sql"), LIMITS), (e: ZipError) => {
    assert.equal(e.code, "corrupt_data", e.message);
    return true;
  });
  // A deflate stream cut before its last block, the sizes made to fit the cut: zlib's own end-of-stream check.
  const p3 = join(dir, "cut.zip");
  await Deno.writeFile(p3, withBody(DUMP, body.subarray(0, body.length - 100)));
  const d3 = await readDirectory(p3);
  await assert.rejects(() => verifyEntry(p3, findEntry(d3, "dump.sql"), LIMITS), (e: ZipError) => {
    assert.equal(e.code, "corrupt_data", e.message);
    assert.match(e.message, /is corrupt \(unexpected end of file\)/);
    return true;
  });
  // Bytes that are no deflate stream at all (block type 3 is reserved): zlib's words in the message.
  const p4 = join(dir, "invalid.zip");
  await Deno.writeFile(p4, withBody(DUMP, Uint8Array.from({ length: 8000 }, (_, i) => (i ? 0 : 0x07))));
  const d4 = await readDirectory(p4);
  await assert.rejects(() => verifyEntry(p4, findEntry(d4, "dump.sql"), LIMITS), (e: ZipError) => {
    assert.equal(e.code, "corrupt_data", e.message);
    assert.match(e.message, /is corrupt \(invalid block type\)/);
    return true;
  });
});

Deno.test("inflateEntry's chunks are the caller's to keep unless it borrows them (one reused buffer)", async () => {
  const p = join(dir, "keep.zip");
  await Deno.writeFile(p, makeZip([{ name: "dump.sql", data: DUMP }]));
  const entry = findEntry(await readDirectory(p), "dump.sql");
  const kept: Uint8Array[] = [];
  for await (const c of inflateEntry(p, entry, LIMITS)) kept.push(c);
  assert.ok(kept.length > 2, "several chunks");
  assert.ok(Buffer.concat(kept).equals(DUMP), "kept chunks are the dump");
  const borrowed: Uint8Array[] = [];
  const copied: Uint8Array[] = [];
  for await (const c of inflateEntry(p, entry, { ...LIMITS, borrowed: true })) (borrowed.push(c), copied.push(c.slice()));
  assert.ok(Buffer.concat(copied).equals(DUMP), "each borrowed chunk is right while it is the current one");
  assert.equal(new Set(borrowed.map((c) => c.buffer)).size, 1, "borrowed chunks share one buffer");
});

Deno.test("the read-back proof: a damaged or wrong archive is refused with the pack step's error, the good one passes", async () => {
  const zip = join(dir, "proof.zip");
  await Deno.writeFile(zip, makeZip([{ name: "dump.sql", data: DUMP }]));
  const out = join(dir, "proof.tgz");
  const { entry } = await pack(zip, out);
  const want = { name: "shop.sql", size: DUMP.length, sha256: await sha(DUMP) };
  await proveArchive(out, want);
  await assert.rejects(() => proveArchive(out, { ...want, sha256: "0".repeat(64) }), (e: ArchivistError) => {
    assert.equal(e.step, "pack");
    assert.match(e.message, /does not read back to the verified dump: sha256 /);
    return true;
  });
  const b = await Deno.readFile(out);
  b[Math.floor(entry.compressedSize / 2)] ^= 0xff;
  await Deno.writeFile(out, b);
  await assert.rejects(() => proveArchive(out, want), (e: ArchivistError) => {
    assert.equal(e.step, "pack");
    assert.match(e.message, /cannot be read back|does not read back/);
    assert.match(e.hint!, /nothing was stored/);
    return true;
  });
});

Deno.test("an entry whose declared CRC does not match: pack's re-inflate (recompress path) fails too, and leaves no file", async () => {
  const zip = makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]);
  const bad = zip.slice();
  const v = new DataView(bad.buffer);
  const start = 30 + v.getUint16(26, true);
  bad[start + 1000] ^= 1;
  const p = join(dir, "badcrc.zip");
  await Deno.writeFile(p, bad);
  const entry: ZipEntry = findEntry(await readDirectory(p), "dump.sql");
  const out = join(dir, "badcrc.tgz");
  await assert.rejects(
    () =>
      packArchive(
        { zipPath: p, entry, dataStart: start, memberName: "shop.sql", mtime: 0, level: 1, recompress: "auto", limits: LIMITS },
        out,
      ),
    /CRC-32 mismatch/,
  );
  await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);
});

Deno.test("recompression on several threads (pigz's way): one gzip member every reader reads, deterministic, the ratio of one stream", async () => {
  const deflated = join(dir, "threads.zip");
  await Deno.writeFile(deflated, makeZip([{ name: "dump.sql", data: DUMP }]));
  const d = await readDirectory(deflated);
  const entry = findEntry(d, "dump.sql");
  const v = await verifyEntry(deflated, entry, LIMITS);
  const packed = async (threads: number, out: string) =>
    await packArchive(
      {
        zipPath: deflated,
        entry,
        dataStart: v.dataStart,
        memberName: "shop.sql",
        mtime: 0,
        level: 6,
        recompress: "always",
        limits: LIMITS,
        threads,
      },
      out,
    );
  const one = await packed(1, join(dir, "t1.tgz"));
  const two = await packed(2, join(dir, "t2.tgz"));
  const three = await packed(3, join(dir, "t3.tgz"));
  assert.ok(DUMP.length > 2.5 * 2 ** 20, "several 1 MiB blocks");
  await readEverywhere(join(dir, "t2.tgz"), DUMP);
  await readEverywhere(join(dir, "t3.tgz"), DUMP);
  // The block split does not depend on the thread count: 2 and 3 threads give the same bytes, and so does a rerun.
  assert.deepEqual(await Deno.readFile(join(dir, "t2.tgz")), await Deno.readFile(join(dir, "t3.tgz")));
  await packed(2, join(dir, "t2b.tgz"));
  assert.deepEqual(await Deno.readFile(join(dir, "t2b.tgz")), await Deno.readFile(join(dir, "t2.tgz")));
  // Each block sees the previous 32 KiB as its dictionary: within 2% of one zlib stream.
  assert.ok(two.size < one.size * 1.02, `${two.size} vs ${one.size}`);
  assert.equal(three.sha256, two.sha256);
  const members = (await sh("python3", [
    "-c",
    `import zlib
d=zlib.decompressobj(31); d.decompress(open(${JSON.stringify(join(dir, "t2.tgz"))},"rb").read()); print(len(d.unused_data), d.eof)`,
  ])).trim();
  assert.equal(members, "0 True", "one member, nothing after it");
});

/** The entry's deflate bytes, from the zip, in pieces of `piece` bytes: what the early pass hands to packAlong's tap. */
async function deflatePieces(zip: string, piece: number) {
  const d = await readDirectory(zip);
  const entry = findEntry(d, "dump.sql");
  const v = await verifyEntry(zip, entry, LIMITS);
  const raw = (await Deno.readFile(zip)).subarray(v.dataStart, v.dataStart + entry.compressedSize);
  const pieces = Array.from({ length: Math.ceil(raw.length / piece) }, (_, i) => Buffer.from(raw.subarray(i * piece, (i + 1) * piece)));
  const fit = {
    memberName: "shop.sql",
    mtime: 1_795_000_000,
    level: 6,
    crc32: entry.crc32,
    size: entry.size,
    compressedSize: entry.compressedSize,
  };
  return { pieces, fit };
}

Deno.test("packAlong: pieces handed faster than they are written come out in order, the same .tgz as pack's own", async () => {
  const zip = join(dir, "along.zip");
  await Deno.writeFile(zip, makeZip([{ name: "dump.sql", data: sqlDump(12_000_000, { seed: 11 }) }]));
  const own = join(dir, "along-own.tgz");
  const { r } = await pack(zip, own);
  const { pieces, fit } = await deflatePieces(zip, 7_001); // hundreds of pieces: many wait behind the pass
  const along = await packAlong(join(dir, "along.tgz"), fit, { ahead: 1 << 20 });
  let passed = 0;
  await pipeline(Readable.from(pieces), along.tap, async function (src: AsyncIterable<Uint8Array>) {
    for await (const c of src) passed += c.length;
  });
  const p = await along.finish();
  assert.equal(passed, fit.compressedSize, "every piece went on to the pass");
  assert.deepEqual({ size: p.size, sha256: p.sha256 }, { size: r.size, sha256: r.sha256 });
  assert.equal(await sha(await Deno.readFile(p.path)), r.sha256, "the file is the one its sha256 says");
});

Deno.test("packAlong into a FIFO whose reader stops: the write's failure stops the tap or finish, nothing hangs", async () => {
  const zip = join(dir, "along-fifo.zip");
  await Deno.writeFile(zip, makeZip([{ name: "dump.sql", data: sqlDump(40_000_000, { seed: 12 }) }]));
  const { pieces, fit } = await deflatePieces(zip, 256 << 10);
  assert.ok(pieces.length > 20, "more than the pipe and the write-behind hold");
  const fifo = join(dir, "along.fifo");
  await sh("mkfifo", [fifo]);
  const reader = new Deno.Command("head", { args: ["-c", "1000", fifo], stdout: "null" }).spawn(); // reads 1000 bytes, exits
  const along = await packAlong(fifo, fit, { hashing: false, ahead: 2 << 20 });
  const failed = await pipeline(Readable.from(pieces), along.tap, async function (src: AsyncIterable<Uint8Array>) {
    for await (const _ of src) { /* the pass */ }
  }).then(() => along.finish()).then(() => undefined, (e: Error) => e);
  await reader.status;
  await along.discard();
  assert.ok(failed instanceof Error, "a write into the closed FIFO fails the along");
  assert.match(failed.message, /pipe/i);
});
