/**
 * Zip reading against zips made by real tools: Info-ZIP `zip` (deflate, stored, data descriptors from a pipe and
 * from -fd), Python's zipfile (Zip64 with force_zip64, bzip2), and hand-corrupted copies.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { extractEntry, findEntry, readDirectory, ZipError } from "../src/formats/zip.ts";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "archivist-zip-" });
const DUMP = sqlDump(400_000);
const dumpFile = join(dir, "dump.sql");
await Deno.writeFile(dumpFile, DUMP);
const sha = createHash("sha256").update(DUMP).digest("hex");
const LIMITS = { maxSize: 1e9, maxRatio: 1000 };

async function extractOk(zip: string, entryName = "dump.sql") {
  const d = await readDirectory(zip);
  const e = findEntry(d, entryName);
  const out = join(dir, `out-${crypto.randomUUID()}`);
  const r = await extractEntry(zip, e, out, LIMITS);
  assert.equal(r.size, DUMP.length);
  assert.equal(r.sha256, sha);
  assert.deepEqual(await Deno.readFile(out), DUMP);
  assert.match(new TextDecoder().decode(r.tail), /-- Dump completed/);
  assert.equal(r.tail.length, 1024);
  return { d, e };
}

async function rejects(zip: string, code: string, re: RegExp, entry = "dump.sql", limits = LIMITS) {
  const out = join(dir, `bad-${crypto.randomUUID()}`);
  await assert.rejects(async () => {
    const d = await readDirectory(zip);
    await extractEntry(zip, findEntry(d, entry), out, limits);
  }, (e: unknown) => {
    assert.ok(e instanceof ZipError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
  await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound, "no half-written output is left");
}

function py(code: string) {
  return sh("python3", ["-c", code]);
}

Deno.test("Info-ZIP zip: deflate, stored (-0), data descriptors (-fd and from a pipe)", async (t) => {
  await t.step("deflate", async () => {
    const z = join(dir, "izip.zip");
    await sh("zip", ["-q", "-j", z, dumpFile]);
    const { e } = await extractOk(z);
    assert.equal(e.method, 8);
  });
  await t.step("stored", async () => {
    const z = join(dir, "stored.zip");
    await sh("zip", ["-q", "-0", "-j", z, dumpFile]);
    const { e } = await extractOk(z);
    assert.equal(e.method, 0);
  });
  await t.step("forced data descriptors (-fd)", async () => {
    const z = join(dir, "fd.zip");
    await sh("zip", ["-q", "-fd", "-j", z, dumpFile]);
    const { e } = await extractOk(z);
    assert.ok(e.flags & 0x8, "bit 3 set: sizes and CRC in a data descriptor");
  });
  await t.step("streamed from a pipe (data descriptor, name '-')", async () => {
    const z = join(dir, "pipe.zip");
    await sh("sh", ["-c", `cat ${dumpFile} | zip -q - - | cat > ${z}`]);
    const { e } = await extractOk(z, "-");
    assert.ok(e.flags & 0x8);
  });
});

Deno.test("Python zipfile: Zip64 entry (force_zip64) and a Zip64 archive of many entries", async () => {
  const z = join(dir, "z64.zip");
  await py(`import zipfile
with zipfile.ZipFile(${JSON.stringify(z)}, "w", zipfile.ZIP_DEFLATED) as zf:
    with open(${JSON.stringify(dumpFile)}, "rb") as src, zf.open("export/dump.sql", "w", force_zip64=True) as dst:
        dst.write(src.read())`);
  const { e } = await extractOk(z, "export/dump.sql");
  // The local header carries the Zip64 extra field (id 0x0001) that force_zip64 writes.
  const bytes = await Deno.readFile(z);
  const v = new DataView(bytes.buffer, e.localHeaderOffset);
  assert.equal(v.getUint16(4, true), 45, "version needed 4.5 (Zip64)");
  assert.equal(v.getUint16(30 + v.getUint16(26, true), true), 0x0001);
  // More than 65535 entries forces the Zip64 end-of-central-directory record.
  const many = join(dir, "many.zip");
  await py(`import zipfile
with zipfile.ZipFile(${JSON.stringify(many)}, "w", zipfile.ZIP_STORED) as zf:
    for i in range(65540): zf.writestr(f"f{i}", b"")
    zf.write(${JSON.stringify(dumpFile)}, "dump.sql", compress_type=zipfile.ZIP_DEFLATED)`);
  const { d } = await extractOk(many);
  assert.ok(d.zip64);
  assert.equal(d.entries.length, 65541);
});

Deno.test("entry lookup: exact name, a glob matching one, ambiguous and missing globs", async () => {
  const z = join(dir, "multi.zip");
  await Deno.writeFile(
    z,
    makeZip([{ name: "README.txt", data: new TextEncoder().encode("hi") }, { name: "backup/shop-2026-11-22.sql", data: DUMP }, {
      name: "backup/",
      data: new Uint8Array(0),
      method: 0,
    }]),
  );
  const d = await readDirectory(z);
  assert.equal(findEntry(d, "backup/shop-2026-11-22.sql").name, "backup/shop-2026-11-22.sql");
  assert.equal(findEntry(d, "*.sql").name, "backup/shop-2026-11-22.sql", "a glob without / matches base names");
  assert.equal(findEntry(d, "backup/shop-*.sql").name, "backup/shop-2026-11-22.sql");
  assert.throws(() => findEntry(d, "*"), /matches 2 entries: README\.txt \(2 bytes\), backup\/shop-2026-11-22\.sql \(\d+ bytes\)/);
  assert.throws(
    () => findEntry(d, "dump.sql"),
    /entry "dump\.sql" not found in the zip \(it holds: README\.txt, backup\/shop-2026-11-22\.sql\)/,
  );
});

Deno.test("hand-corrupted zips are refused with a specific reason and leave no output", async (t) => {
  const good = makeZip([{ name: "dump.sql", data: DUMP }]);
  const write = async (name: string, bytes: Uint8Array) => {
    const p = join(dir, name);
    await Deno.writeFile(p, bytes);
    return p;
  };
  await t.step("flipped byte in the data: CRC or deflate error", async () => {
    const b = good.slice();
    b[2000] ^= 0x55;
    const p = await write("flip.zip", b);
    await assert.rejects(
      () => readDirectory(p).then((d) => extractEntry(p, findEntry(d, "dump.sql"), join(dir, "x"), LIMITS)),
      (e: ZipError) => ["crc_mismatch", "corrupt_data", "size_mismatch"].includes(e.code),
    );
  });
  await t.step("stored entry with a changed byte: CRC mismatch", async () => {
    const b = makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]);
    b[500] ^= 0x01;
    await rejects(
      await write("storedflip.zip", b),
      "crc_mismatch",
      /CRC-32 mismatch for dump\.sql \(computed [0-9a-f]{8}, zip says [0-9a-f]{8}\)/,
    );
  });
  await t.step("declared size smaller than the data", async () => {
    const b = makeZip([{ name: "dump.sql", data: DUMP, method: 0 }]);
    const cd = b.length - 22 - 54;
    new DataView(b.buffer).setUint32(cd + 24, DUMP.length - 10, true);
    await rejects(await write("size.zip", b), "size_mismatch", /inflates to more than its declared/);
  });
  await t.step("truncated file", async () => {
    await rejects(await write("trunc.zip", good.slice(0, good.length >> 1)), "no_central_directory", /end of central directory not found/);
  });
  await t.step("not a zip at all", async () => {
    await rejects(
      await write("html.zip", new TextEncoder().encode("<html>" + " ".repeat(100) + "</html>")),
      "no_central_directory",
      /not a zip/,
    );
  });
  await t.step("central directory pointing past the file", async () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(b.length - 22 + 16, b.length * 2, true);
    await rejects(await write("cdoff.zip", b), "corrupt", /central directory out of bounds/);
  });
  await t.step("unsupported method (bzip2, made by Python)", async () => {
    const p = join(dir, "bz.zip");
    await py(`import zipfile
zipfile.ZipFile(${JSON.stringify(p)}, "w", zipfile.ZIP_BZIP2).write(${JSON.stringify(dumpFile)}, "dump.sql")`);
    await rejects(p, "unsupported_method", /compression method 12 \(bzip2\)/);
  });
  await t.step("encrypted entry (zip -P)", async () => {
    const p = join(dir, "enc.zip");
    await sh("zip", ["-q", "-j", "-P", "test-only", p, dumpFile]);
    await rejects(p, "encrypted", /is encrypted: not supported/);
  });
  await t.step("zip bomb by declared ratio and by a lying header", async () => {
    const zeros = new Uint8Array(20_000_000);
    await rejects(
      await write("bomb.zip", makeZip([{ name: "dump.sql", data: zeros }])),
      "zip_bomb",
      /compression ratio of \d+:1, above check\.max_ratio \(1000\)/,
    );
    // The header claims a modest size; the stream inflates past the ratio ceiling: stopped while streaming.
    const b = makeZip([{ name: "dump.sql", data: zeros }]);
    const cd = b.length - 22 - 54;
    new DataView(b.buffer).setUint32(cd + 24, 30_000, true);
    await rejects(await write("liar.zip", b), "size_mismatch", /inflates to more than its declared 30000 bytes/);
    await rejects(
      await write("big.zip", makeZip([{ name: "dump.sql", data: DUMP }])),
      "too_large",
      /above check\.max_unpacked_size/,
      "dump.sql",
      { maxSize: 1000, maxRatio: 1000 },
    );
  });
});
