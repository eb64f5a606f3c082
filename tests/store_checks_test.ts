/**
 * Each of the store step's checks, proved to fire: a destination that lies in exactly one way (tests/helpers/
 * memory_transport.ts) must be caught, nothing recorded in the catalogue, no archive left under its final name.
 * (The real-server suites cannot tell a size check that is missing: real servers do not truncate on demand.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { parseConfigText } from "../src/config/load.ts";
import { fixedClock, localParts } from "../src/os/clock.ts";
import { mapEnv } from "../src/os/env.ts";
import { Logger } from "../src/report/log.ts";
import { NO_PROGRESS } from "../src/report/progress.ts";
import { store as storeStage } from "../src/night/store.ts";
import { realWrites } from "../src/night/writes.ts";
import type { Archive, Night } from "../src/night/types.ts";
import { ArchivistError } from "../src/errors.ts";
import { type Lie, LyingTransport, MemoryTransport } from "./helpers/memory_transport.ts";
import type { Transport } from "../src/transports/transport.ts";

const NOW = new Date("2026-11-22T02:30:00Z");

/** The store step of one night over `t`, with a packed archive of `bytes` in a fresh work dir. */
async function store(t: Transport, verify: "size" | "checksum" = "size") {
  const root = await Deno.makeTempDir({ prefix: "archivist-storecheck-" });
  const config = parseConfigText(
    stringify({
      name: "j",
      state_dir: join(root, "state"),
      source: { url: "https://db.example.org/d.zip", entry: "dump.sql" },
      archive: { timezone: "UTC" },
      destination: { type: "local", path: join(root, "unused"), verify },
    }),
    join(root, "archive.yaml"),
    mapEnv({}),
  );
  const bytes = crypto.getRandomValues(new Uint8Array(50_000));
  const archivePath = join(root, "20261122.tgz");
  await Deno.writeFile(archivePath, bytes);
  const sha = createHash("sha256").update(bytes).digest("hex");
  const archive: Archive = {
    name: "20261122.tgz",
    path: archivePath,
    size: bytes.length,
    sha256: sha,
    sidecarPath: join(root, "20261122.tgz.sha256"),
    dump: { name: "dump.sql", size: 1, sha256: sha },
  };
  const lines: string[] = [];
  const night: Night = {
    config,
    clock: fixedClock(NOW),
    env: mapEnv({}),
    log: new Logger({ runId: "t", stderrLevel: "off", sink: (l) => lines.push(l) }),
    runId: "t",
    startedAt: NOW,
    runDate: localParts(NOW, "UTC"),
    workDir: root,
    dryRun: false,
    writes: realWrites,
    signal: new AbortController().signal,
    progress: NO_PROGRESS,
    last: { raw: () => undefined, here: () => ({}) },
  };
  const target = { ...config.targets[0], location: t.location, open: () => Promise.resolve(t) };
  const catalogue = () => Deno.readTextFile(join(root, "state", "j.catalogue.jsonl")).catch(() => "");
  try {
    const out = await storeStage(night, target, archive).then((o) => ({ ok: o }), (e: unknown) => ({ err: e }));
    return { ...out, catalogue: await catalogue() };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("an honest destination: stored, both names there, recorded in the catalogue", async () => {
  const t = new MemoryTransport();
  const r = await store(t, "checksum");
  assert.ok("ok" in r, String((r as { err?: unknown }).err));
  assert.deepEqual([...t.files.keys()].sort(), ["20261122.tgz", "20261122.tgz.sha256"]);
  assert.match(r.catalogue, /"op":"stored","name":"20261122\.tgz"/);
});

const CASES: [Lie, "size" | "checksum", RegExp][] = [
  ["truncates the upload", "size", /size after upload differs for 20261122\.tgz\.part: 49999 bytes on memory:\/\/liar, 50000 expected/],
  [
    "flips a byte",
    "checksum",
    /20261122\.tgz on memory:\/\/liar \(read back\) has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}: the stored copy is damaged/,
  ],
  ["hides the final name", "size", /20261122\.tgz(\.sha256)? is not listed on memory:\/\/liar after upload/],
  ["renames nothing", "size", /20261122\.tgz(\.sha256)? is not listed on memory:\/\/liar after upload/],
];

for (const [lie, verify, re] of CASES) {
  Deno.test(`a destination that ${lie}: the store step catches it, records nothing and leaves no archive under its final name`, async () => {
    const t = new LyingTransport(lie);
    const r = await store(t, verify);
    assert.ok("err" in r, `${lie}: not caught`);
    assert.ok(r.err instanceof ArchivistError);
    assert.equal(r.err.step, "store");
    assert.match(r.err.message, re);
    assert.equal(r.catalogue, "", "nothing recorded: retention and the state never count on it");
    assert.ok(!("ok" in r), "no Stored result: the state is never advanced on it");
    if (lie !== "hides the final name") assert.ok(!t.files.has("20261122.tgz"), [...t.files.keys()].join(", "));
  });
}
