/**
 * The progress line: its text, its rate limit and erasure (a fake clock), and in a real run: shown with --progress
 * (stderr is a pipe here, as under cron: nothing without it), never in the log file, refused with --no-progress.
 */
import assert from "node:assert/strict";
import { progressLine, terminalProgress } from "../src/report/progress.ts";
import { makeCert, makeZip, sqlDump } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { runCli, sandbox } from "./helpers/cli.ts";
import { EXIT } from "../src/errors.ts";

Deno.test("progressLine: bytes of total, percent, rate and ETA; without a total, bytes and rate", () => {
  assert.equal(progressLine("fetch", 50 * 2 ** 20, 200 * 2 ** 20, 2000), "fetch       50.0 MiB / 200.0 MiB  25%  25.0 MiB/s  ETA 0:06");
  assert.equal(progressLine("fetch", 3 * 2 ** 20, undefined, 1000), "fetch       3.00 MiB  3.00 MiB/s");
  assert.equal(progressLine("pack", 10, 10, 0), "pack        10 B / 10 B  100%");
});

Deno.test("terminalProgress redraws at most every 200 ms, erases on end and before a log line", () => {
  let t = 0;
  const out: string[] = [];
  const p = terminalProgress((s) => out.push(s), () => t);
  p.update(5); // before start: nothing
  p.start("verify", 1000);
  p.update(100);
  t = 100;
  p.update(200); // too soon
  t = 250;
  p.update(300);
  p.clear(); // a log line comes
  p.update(310); // drawn again at once after a clear
  p.end();
  p.end(); // nothing shown: nothing to erase
  assert.equal(out.length, 5, JSON.stringify(out));
  assert.ok(out[0].startsWith("\r\x1b[K"), JSON.stringify(out[0]));
  assert.match(out[0], /verify +100 B \/ 1000 B {2}10%/);
  assert.match(out[1], /300 B \/ 1000 B/);
  assert.equal(out[2], "\r\x1b[K");
  assert.match(out[3], /310 B/);
  assert.equal(out[4], "\r\x1b[K");
});

Deno.test("a run: --progress draws on stderr for fetch, verify, pack, read back, upload (a local copy); never in the log; off without a terminal", async () => {
  const cert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-progress-" }));
  // README first: the zip is read after the download (no early pass), so every step draws its own line.
  const readmeFirst = makeZip([{ name: "README", data: new TextEncoder().encode("hi\n") }, { name: "dump.sql", data: sqlDump(400_000) }]);
  const src = startHttpsSource(cert, {
    "/dump.zip": serveBytes(readmeFirst),
    "/early.zip": serveBytes(makeZip([{ name: "dump.sql", data: sqlDump(410_000) }])),
  });
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, {
    check: { on_unchanged: "archive" },
    archive: { verify: true },
  });
  try {
    const r = await runCli(["run", "--progress", "-c", sb.configPath]);
    assert.equal(r.code, 0, r.stderr);
    for (const label of ["fetch", "verify", "pack", "read back", "upload"]) {
      assert.ok(r.stderr.includes(`\r\x1b[K${label.padEnd(10)}  `), label);
    }
    // Read while downloading: the download's line, then the pass's (when it is still running), read back, upload.
    await sb.writeConfig({ source: { url: src.url("/early.zip") }, check: { on_unchanged: "archive" }, archive: { verify: true } });
    const e = await runCli(["run", "--progress", "-v", "-c", sb.configPath]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stderr, /unzip: read while downloading/);
    for (const label of ["fetch", "read back", "upload"]) assert.ok(e.stderr.includes(`\r\x1b[K${label.padEnd(10)}  `), label);
    const logText = await Deno.readTextFile(sb.logFile);
    assert.ok(!logText.includes("\x1b[K") && !logText.includes("\r"), "nothing of it in the log");
    const plain = await runCli(["run", "-c", sb.configPath]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.ok(!plain.stderr.includes("\x1b[K"), "stderr is not a terminal: no progress");
    const both = await runCli(["run", "--progress", "--no-progress", "-c", sb.configPath]);
    assert.equal(both.code, EXIT.USAGE);
    assert.match(both.stderr, /--progress and --no-progress together/);
  } finally {
    await src.close();
    await sb.cleanup();
  }
});
