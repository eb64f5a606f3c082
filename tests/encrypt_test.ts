/**
 * archive.encrypt with the real age tools: the archive is NAME.tgz.age, its sidecar covers the stored bytes
 * (`sha256sum -c` on the destination), `age -d -i KEY | tar -xzO` gives the dump; restore and check with the key, check
 * without it (presence, size, sidecar), a wrong key; turning encryption on and off keeps every archive ours for
 * retention and never links across the two forms.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeZip, sh, sqlDump } from "../tools/fixtures.ts";
import { ageKeyPair as keyPair, historyRuns, runCli } from "./helpers/cli.ts";
import { withSource } from "./helpers/source.ts";
import { EXIT } from "../src/errors.ts";

const dumpOf = (seed: number) => sqlDump(80_000, { seed });
const zipOf = (d: Uint8Array) => makeZip([{ name: "dump.sql", data: d }]);
const at = (day: string) => ({ env: { ARCHIVIST_NOW: `${day}T02:30:00Z` } });

const ls = (dir: string) => {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
};

Deno.test("an encrypted night: NAME.tgz.age, sha256sum -c on the destination, age -d | tar -xzO gives the dump; restore and check need the key", async () => {
  const d1 = dumpOf(1);
  await withSource({ zip: zipOf(d1) }, async (sb) => {
    const { key, pub } = await keyPair(sb);
    await sb.writeConfig({ archive: { encrypt: { age_recipients: [pub] } } });
    const r = await runCli(["run", "-c", sb.configPath], at("2026-11-22"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pack: 20261122\.tgz\.age: .*encrypted with age to 1 recipient/);
    assert.deepEqual(ls(sb.dest), ["20261122.tgz.age", "20261122.tgz.age.sha256"]);
    assert.match(await sh("sha256sum", ["-c", "20261122.tgz.age.sha256"], { cwd: sb.dest }), /20261122\.tgz\.age: OK/);
    const plain = await new Deno.Command("sh", {
      args: ["-c", `age -d -i ${key} ${join(sb.dest, "20261122.tgz.age")} | tar -xzO`],
      stdout: "piped",
    }).output();
    assert.deepEqual(plain.stdout, d1, "the real age and tar give the dump back, byte for byte");
    assert.equal(ls(join(sb.root, "work")).length, 0, "no plain .tgz left in the work dir");
    const v = await runCli(["verify", "-c", sb.configPath], at("2026-11-22"));
    assert.match(v.stdout, /✓ encryption +archives are encrypted with age v?1\.\S+ to 1 key\(s\)/);

    const noKey = await runCli(["restore", "latest", "-c", sb.configPath, "--to", join(sb.root, "r0")], at("2026-11-22"));
    assert.equal(noKey.code, EXIT.RESTORE, noKey.stderr);
    assert.match(noKey.stderr, /20261122\.tgz\.age is encrypted \(age\): restoring it needs the private key.*--identity FILE/s);
    const rest = await runCli(["restore", "latest", "-c", sb.configPath, "--to", join(sb.root, "r1"), "--identity", key], at("2026-11-22"));
    assert.equal(rest.code, 0, rest.stderr);
    assert.deepEqual(Deno.readFileSync(rest.stdout.trim()), d1);

    const blind = await runCli(["check", "--all", "-c", sb.configPath], at("2026-11-22"));
    assert.equal(blind.code, 0, blind.stdout + blind.stderr);
    assert.match(blind.stdout, /content not read back: it is encrypted and no identity was given/);
    const seen = await runCli(["check", "--all", "-c", sb.configPath, "--identity", key], at("2026-11-22"));
    assert.equal(seen.code, 0, seen.stdout + seen.stderr);
    assert.match(seen.stdout, /read to the end, dump sha256 as archived/);
    const other = await keyPair(sb, "other.txt");
    const wrong = await runCli(["check", "--all", "-c", sb.configPath, "--identity", other.key], at("2026-11-22"));
    assert.equal(wrong.code, 2, wrong.stdout);
    assert.match(wrong.stdout, /age could not decrypt 20261122\.tgz\.age with \S+other\.txt: no identity matched any of the recipients/);
  });
});

Deno.test("encryption turned on, then off: every archive stays ours (list, retention), unchanged nights are still skipped, link never crosses forms", async () => {
  const d1 = dumpOf(2), d2 = dumpOf(3);
  await withSource({ zip: zipOf(d1) }, async (sb, _src, serve) => {
    const { pub } = await keyPair(sb);
    await Deno.writeTextFile(join(sb.root, "recipients.txt"), `# ops\n${pub}\n`, { mode: 0o644 });
    const enc = { encrypt: { age_recipients_file: join(sb.root, "recipients.txt") } };
    // archive.verify: the plain .tgz is proven first, then encrypted (the other path: without verify, age reads a FIFO).
    await sb.writeConfig({ archive: { ...enc, verify: true }, check: { on_unchanged: "link" }, retention: { max_age: "2d", min_keep: 1 } });
    assert.equal((await runCli(["run", "-c", sb.configPath], at("2026-11-20"))).code, 0);
    // The same data, encrypted again tonight: the content fingerprint says unchanged; link makes no second copy.
    const same = await runCli(["run", "-c", sb.configPath], at("2026-11-21"));
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stderr, /20261121\.tgz\.age is a hard link to 20261120\.tgz\.age/);
    // Encryption off, the data unchanged: tonight's plain archive is stored whole, not linked to an encrypted one.
    await sb.writeConfig({ check: { on_unchanged: "link" }, retention: { max_age: "2d", min_keep: 1 } });
    const off = await runCli(["run", "-c", sb.configPath], at("2026-11-22"));
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stderr, /20261121\.tgz\.age is encrypted and tonight's archive is not: storing it instead of a link/);
    assert.match(off.stderr, /stored 20261122\.tgz /);
    serve(zipOf(d2));
    const changed = await runCli(["run", "-c", sb.configPath], at("2026-11-24"));
    assert.equal(changed.code, 0, changed.stderr);
    const list = await runCli(["list", "-c", sb.configPath], at("2026-11-24"));
    for (const n of ["20261122.tgz", "20261124.tgz"]) assert.match(list.stdout, new RegExp(n.replace(".", "\\.")));
    const h = historyRuns(sb.historyFile).at(-1);
    assert.deepEqual(
      h.retention.deleted.sort(),
      ["20261120.tgz.age", "20261121.tgz.age"],
      "the encrypted ones expire like any archive of ours",
    );
    assert.deepEqual(ls(sb.dest), ["20261122.tgz", "20261122.tgz.sha256", "20261124.tgz", "20261124.tgz.sha256"]);
  });
});

Deno.test("a recipient that is not an age or ssh public key is refused at load; one age refuses fails pack (exit 24), nothing stored", async () => {
  await withSource({ zip: zipOf(dumpOf(4)) }, async (sb) => {
    await sb.writeConfig({ archive: { encrypt: { age_recipients: ["AGE-SECRET-KEY-1XYZ"] } } });
    const r = await runCli(["run", "-c", sb.configPath], at("2026-11-22"));
    assert.equal(r.code, EXIT.CONFIG, r.stderr);
    assert.match(r.stderr, /archive\.encrypt\.age_recipients\[0\]: expected an age public key \(age1…\)/);
    // The right shape, a wrong checksum: age itself refuses it, while the packer writes into its FIFO.
    const { pub } = await keyPair(sb);
    const bad = pub.slice(0, -1) + (pub.endsWith("q") ? "p" : "q");
    for (const verify of [false, true]) {
      await sb.writeConfig({ archive: { verify, encrypt: { age_recipients: [bad] } } });
      const p = await runCli(["run", "-c", sb.configPath], at("2026-11-22"));
      assert.equal(p.code, EXIT.PACK, p.stderr);
      assert.match(p.stderr, /pack: FAILED: age could not encrypt the archive: .*(checksum|invalid|malformed)/i);
      assert.deepEqual(ls(sb.dest).filter((n) => n.includes("2026")), [], "nothing stored");
      assert.deepEqual(ls(join(sb.root, "work")), [], "no work file left");
    }
  });
});
