/**
 * `deno task test:large`: a dump over 4 GiB end to end through the real modules: a deflate Zip64 entry written by
 * Python's zipfile, verified with CRC/size/sha256 checks, packed by copying its deflate stream (the gzip trailer holds
 * the size mod 2^32), proven by reading the .tgz back, and listed by GNU tar with the right size; then the stored
 * form of the same dump through the recompress path.
 * Kept out of `deno task test` because it needs about 9 GiB of free disk and a minute or two; run it before
 * changing src/zip/ or src/tar/.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findEntry, readDirectory, verifyEntry } from "../../src/formats/zip.ts";
import { packArchive, proveArchive } from "../../src/night/pack.ts";
import { sh } from "../../tools/fixtures.ts";

for (const method of ["ZIP_DEFLATED", "ZIP_STORED"] as const) {
  Deno.test(`a 4.4 GB dump (over 4 GiB) in a Zip64 entry (${method}) is verified, packed and proven`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "archivist-large-" });
    try {
      const z = join(dir, "big.zip");
      await sh("python3", [
        "-c",
        `import zipfile
chunk = (b"INSERT INTO t VALUES (1,'abcdefghij');\\n" * 27000)[:1<<20]
with zipfile.ZipFile(${JSON.stringify(z)}, "w", zipfile.${method}, compresslevel=1) as zf:
    with zf.open("dump.sql", "w", force_zip64=True) as f:
        for i in range(4200): f.write(chunk)
        f.write(b"-- Dump completed\\n")`,
      ]);
      const d = await readDirectory(z);
      const e = findEntry(d, "dump.sql");
      assert.ok(e.size > 2 ** 32, "the entry is over 4 GiB");
      const limits = { maxSize: 1e12, maxRatio: 100_000 };
      const r = await verifyEntry(z, e, limits);
      assert.equal(r.size, e.size);
      assert.match(new TextDecoder().decode(r.tail), /-- Dump completed\n$/);
      const tgz = join(dir, "20261122.tgz");
      const p = await packArchive(
        {
          zipPath: z,
          entry: e,
          dataStart: r.dataStart,
          memberName: "dump.sql",
          mtime: 1_795_000_000,
          level: 1,
          recompress: "auto",
          limits,
        },
        tgz,
      );
      assert.equal(p.path, method === "ZIP_DEFLATED" ? "reuse" : "recompress");
      await proveArchive(tgz, { name: "dump.sql", size: e.size, sha256: r.sha256! });
      await Deno.remove(z);
      assert.match(await sh("tar", ["tvzf", tgz]), new RegExp(` ${e.size} .* dump\\.sql`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
