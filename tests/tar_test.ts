/** The .tgz writer: read back by GNU tar and Python's tarfile, including the pax size header past 8 GiB. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { packFile } from "../src/night/pack.ts";
import { tarEnd, tarHeader } from "../src/formats/tar.ts";
import { sh, sqlDump } from "../tools/fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "archivist-tar-" });

Deno.test("packFile writes a .tgz that GNU tar extracts byte for byte, and reports its sha256", async () => {
  const dump = sqlDump(250_000);
  await Deno.writeFile(join(dir, "in.sql"), dump);
  const out = join(dir, "20261122.tgz");
  const r = await packFile(join(dir, "in.sql"), "shop.sql", out, 6, 1_795_000_000);
  assert.equal(r.size, (await Deno.stat(out)).size);
  assert.equal(r.sha256, (await sh("sha256sum", [out])).split(" ")[0]);
  assert.match(await sh("tar", ["tvzf", out]), new RegExp(`${dump.length} .* shop\\.sql`));
  const x = join(dir, "x");
  await Deno.mkdir(x);
  await sh("tar", ["xzf", out, "-C", x]);
  assert.deepEqual(await Deno.readFile(join(x, "shop.sql")), dump);
  assert.equal(await sh("gzip", ["-t", out]), "");
});

Deno.test("an entry of 8 GiB or more gets a pax size record that tar readers honour", async () => {
  const size = 9 * 1024 ** 3 + 123;
  const head = tarHeader("huge.sql", size, 1_795_000_000);
  assert.equal(head.length, 512 * 3, "pax header, its data block, then the ustar header");
  const p = join(dir, "head.tar");
  await Deno.writeFile(p, head);
  // Python reads the member header without needing the data (stream mode, first member only).
  const got = await sh("python3", [
    "-c",
    `import tarfile
t = tarfile.open(${JSON.stringify(p)}, "r|")
m = t.next()
print(m.name, m.size)`,
  ]);
  assert.equal(got.trim(), `huge.sql ${size}`);
});

Deno.test("a name longer than 100 bytes travels in a pax path record", async () => {
  const long = "a".repeat(150) + ".sql";
  const data = new TextEncoder().encode("x\n");
  const head = tarHeader(long, data.length, 0);
  const pad = new Uint8Array((512 - (data.length % 512)) % 512);
  const body = new Uint8Array([...head, ...data, ...pad, ...tarEnd(head.length + 512)]);
  const p = join(dir, "long.tar");
  await Deno.writeFile(p, body);
  assert.equal((await sh("tar", ["tf", p])).trim(), long);
  assert.equal(body.length % 10240, 0, "padded to a whole 10 KiB record");
});
