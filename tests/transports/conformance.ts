/**
 * The conformance suite every Transport passes (restic's backend test idea): the same open / upload / list /
 * download / remove / error cases against each real server. A protocol is correct when this suite passes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sh } from "../../tools/fixtures.ts";
import { ArchivistError } from "../../src/errors.ts";
import { Logger } from "../../src/report/log.ts";
import { mapEnv } from "../../src/os/env.ts";
import { TRANSPORTS } from "../../src/transports/registry.ts";
import { removeEach, type Transport, uploadAtomic } from "../../src/transports/transport.ts";

export interface Target {
  /** Raw destination config (as in YAML) for a remote directory `sub` that does not exist yet. */
  config(sub: string, over?: Record<string, unknown>): Record<string, unknown>;
  /** The local path on the server's disk of remote directory `sub` (to plant and inspect files). */
  serverPath(sub: string): string;
  /** Make a planted file readable/writable by the server's user (SMB/FTP run as another user). */
  own?(path: string): Promise<void>;
  /** What a full disk gives, when the server cannot say so (rclone answers a failed write with a bare 405). */
  diskFull?: { code: string; re: RegExp };
  /** false: the transport's tool cannot tell how far an upload is (sftp in batch mode, smbclient). */
  progress?: false;
}

export function makeTransport(raw: Record<string, unknown>, privateDir: string, lines: string[] = []): Transport {
  const kind = TRANSPORTS[raw.type as keyof typeof TRANSPORTS];
  const cfg = kind.schema.parse(raw, "destination");
  const log = new Logger({ runId: "test", stderrLevel: "off", sink: (l) => lines.push(l) });
  return (kind as any).create(cfg, { log, env: mapEnv({}), privateDir, step: "store" });
}

export async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<ArchivistError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ArchivistError, `expected an ArchivistError with code ${code}, got ${err}`);
  assert.equal(err.code, code, err.message);
  assert.equal(err.step, "store");
  assert.equal(err.exitCode, 30);
  if (re) assert.match(err.message + " " + err.hint, re);
  return err;
}

function names(list: { name: string }[]): string[] {
  return list.map((e) => e.name).sort();
}

/** Run the suite as steps of `t`. */
export async function conformance(t: Deno.TestContext, target: Target): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "archivist-conf-" });
  const priv = join(work, "private");
  await Deno.mkdir(priv, { mode: 0o700 });
  const payload = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
  await Deno.writeFile(join(work, "a.tgz"), payload);
  const sub = `conf-${crypto.randomUUID().slice(0, 8)}/db`;

  await t.step("open: a missing directory is an error naming it unless create_dirs", async () => {
    const tr = makeTransport(target.config(sub, { create_dirs: false }), priv);
    await expectCode(tr.open(), "missing_dir", /create_dirs/);
    await tr.close();
  });

  const tr = makeTransport(target.config(sub, { create_dirs: true }), priv);
  await t.step("open with create_dirs creates every level", async () => {
    await tr.open();
    assert.ok(Deno.statSync(target.serverPath(sub)).isDirectory);
    assert.deepEqual(await tr.list(), []);
  });

  await t.step("upload goes through a temp name, leaves only the final name, and returns the size", async () => {
    const size = await uploadAtomic(tr, join(work, "a.tgz"), "20261122.tgz");
    assert.equal(size, payload.length);
    assert.deepEqual(names(await tr.list()), ["20261122.tgz"]);
    assert.deepEqual(await Deno.readFile(join(target.serverPath(sub), "20261122.tgz")), payload);
    assert.ok(!(tr.location.includes("Pw-")), "no password in the location");
  });

  await t.step("list reports sizes, flags directories, and shows upload leftovers", async () => {
    const dir = target.serverPath(sub);
    await Deno.writeTextFile(join(dir, "20261121.tgz.part"), "half");
    await Deno.mkdir(join(dir, "subdir"));
    await target.own?.(join(dir, "20261121.tgz.part"));
    await target.own?.(join(dir, "subdir"));
    const l = await tr.list();
    assert.deepEqual(names(l), ["20261121.tgz.part", "20261122.tgz", "subdir"]);
    assert.equal(l.find((e) => e.name === "20261122.tgz")!.size, payload.length);
    assert.equal(l.find((e) => e.name === "20261121.tgz.part")!.size, 4);
    assert.equal(l.find((e) => e.name === "subdir")!.isDir, true);
    await tr.remove("20261121.tgz.part");
    await Deno.remove(join(dir, "subdir"));
  });

  await t.step("download returns the same bytes", async () => {
    const back = join(work, "back.tgz");
    await tr.download("20261122.tgz", back);
    assert.deepEqual(await Deno.readFile(back), payload);
  });

  await t.step("an upload told to report progress: the bytes sent, rising to the size (where the tool tells), the same file", async () => {
    const seen: number[] = [];
    await tr.put(join(work, "a.tgz"), "20261123.tgz.part", (n) => seen.push(n));
    assert.deepEqual(await Deno.readFile(join(target.serverPath(sub), "20261123.tgz.part")), payload);
    if (target.progress === false) assert.deepEqual(seen, [], "this transport was declared unable to report progress");
    else {
      assert.ok(seen.length > 0, "progress was reported");
      assert.equal(seen.at(-1), payload.length, `the last report is the whole file (${seen.join(", ")})`);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress never goes back (${seen.join(", ")})`);
    }
    await tr.remove("20261123.tgz.part");
  });

  await t.step("remove deletes one file; removing a missing file is an error", async () => {
    await uploadAtomic(tr, join(work, "a.tgz"), "20261123.tgz");
    await tr.remove("20261122.tgz");
    assert.deepEqual(names(await tr.list()), ["20261123.tgz"]);
    await assert.rejects(tr.remove("20990101.tgz"), ArchivistError);
  });

  await t.step("several files deleted in one call: a missing and an undeletable one are reported by name, the rest go", async () => {
    // More than one sftp batch (200) where the transport deletes in batches; a dozen through remove() otherwise.
    const many = tr.removeMany ? 230 : 12;
    const dir = target.serverPath(sub);
    const planted = Array.from({ length: many }, (_, k) => `2025${String(k).padStart(4, "0")}.tgz`);
    for (const n of planted) {
      await Deno.writeTextFile(join(dir, n), "x\n");
      await target.own?.(join(dir, n));
    }
    const stuck = planted[many - 2];
    await sh("chattr", ["+i", join(dir, stuck)]);
    try {
      const out = await removeEach(tr, [...planted, "20990101.tgz"]);
      const failed = out.filter((o) => o.error).map((o) => o.name).sort();
      assert.deepEqual(failed, [stuck, "20990101.tgz"].sort(), JSON.stringify(out.filter((o) => o.error)));
      assert.match(out.find((o) => o.name === stuck)!.error!, new RegExp(stuck.replace(".", "\\.")));
      const left = names(await tr.list()).filter((n) => n.startsWith("2025"));
      assert.deepEqual(left, [stuck]);
    } finally {
      await sh("chattr", ["-i", join(dir, stuck)]);
      await tr.remove(stuck).catch(() => {});
    }
  });

  await t.step("a file name with a slash is refused", async () => {
    await expectCode(tr.remove("../etc/passwd"), "bad_name");
  });
  await tr.close();

  await t.step("a full destination disk (a 64 KiB tmpfs mounted there) says so, and leaves no temp file", async () => {
    const full = `full-${crypto.randomUUID().slice(0, 6)}`;
    const dir = target.serverPath(full);
    await Deno.mkdir(dir, { recursive: true });
    await sh("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", dir]);
    try {
      await target.own?.(dir);
      const big = join(work, "big.tgz");
      const rnd = new Uint8Array(400 * 1024);
      for (let i = 0; i < rnd.length; i += 65536) crypto.getRandomValues(rnd.subarray(i, i + 65536));
      await Deno.writeFile(big, rnd);
      const ft = makeTransport(target.config(full), priv);
      await ft.open();
      try {
        const want = target.diskFull ?? { code: "disk_full", re: /no space left on the destination/ };
        const e = await expectCode(uploadAtomic(ft, big, "20261124.tgz"), want.code, want.re);
        assert.ok(e.hint.length > 0, "with a hint");
        const left = (await ft.list()).map((x) => x.name);
        assert.deepEqual(left.filter((n) => n.includes("20261124")), [], "no temp file left");
      } finally {
        await ft.close();
      }
    } finally {
      await sh("umount", [dir]).catch(() => {});
    }
  });

  await t.step("no credentials file is left in the private dir after close", () => {
    assert.deepEqual([...Deno.readDirSync(priv)].filter((e) => !e.name.startsWith("ssh-cm")).map((e) => e.name), []);
  });
  await Deno.remove(work, { recursive: true });
}
