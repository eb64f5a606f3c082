/**
 * `deno task test:large`: a dump over 4 GiB end to end through the real modules: a Zip64 entry written by Python's
 * zipfile, extracted with CRC/size/sha256 checks, packed into a .tgz that GNU tar lists with the right size.
 * Kept out of `deno task test` because it needs about 9 GiB of free disk and a minute or two; run it before
 * changing src/zip/ or src/tar/.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { extractEntry, findEntry, readDirectory } from "../../src/zip/reader.ts";
import { packFile } from "../../src/steps/pack.ts";
import { sh } from "../../tools/fixtures.ts";

Deno.test("a 4.4 GB dump (over 4 GiB) in a Zip64 entry is extracted, verified and packed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-large-" });
  try {
    const z = join(dir, "big.zip");
    await sh("python3", [
      "-c",
      `import zipfile
chunk = (b"INSERT INTO t VALUES (1,'abcdefghij');\\n" * 27000)[:1<<20]
with zipfile.ZipFile(${JSON.stringify(z)}, "w", zipfile.ZIP_STORED) as zf:
    with zf.open("dump.sql", "w", force_zip64=True) as f:
        for i in range(4200): f.write(chunk)
        f.write(b"-- Dump completed\\n")`,
    ]);
    const d = await readDirectory(z);
    const e = findEntry(d, "dump.sql");
    assert.ok(e.size > 2 ** 32, "the entry is over 4 GiB");
    assert.ok(e.zip64 && d.zip64);
    const out = join(dir, "dump");
    const r = await extractEntry(z, e, out, { maxSize: 1e12, maxRatio: 1000 });
    assert.equal(r.size, e.size);
    assert.match(new TextDecoder().decode(r.tail), /-- Dump completed\n$/);
    await Deno.remove(z);
    const tgz = join(dir, "20261122.tgz");
    await packFile(out, "dump.sql", tgz, 1, 1_795_000_000);
    await Deno.remove(out);
    assert.match(await sh("tar", ["tvzf", tgz]), new RegExp(` ${e.size} .* dump\\.sql`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
