/** The content fingerprint: which lines are left out, and that chunking never changes the result. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Fingerprinter } from "../src/formats/fingerprint.ts";

const enc = new TextEncoder();

function fp(text: string | Uint8Array, chunk = 1 << 20, extra: RegExp[] = []) {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  const f = new Fingerprinter(extra);
  for (let i = 0; i < bytes.length; i += chunk) f.update(bytes.subarray(i, i + chunk));
  return f.digest();
}

const MYSQL = (when: string, data = "(1,'a'),(2,'b')") =>
  `-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost    Database: shop\n` +
  `-- ------------------------------------------------------\n-- Server version\t10.11.6-MariaDB-0+deb12u1\n\n` +
  `INSERT INTO \`t\` VALUES ${data};\n-- not volatile: a comment\n\n-- Dump completed on ${when}\n`;

const PG = (key: string, data = "1\ta\n2\tb\n") =>
  `--\n-- PostgreSQL database dump\n--\n\n\\restrict ${key}\n\n-- Dumped from database version 15.14\n` +
  `-- Dumped by pg_dump version 15.14\n\nCOPY public.t (id, v) FROM stdin;\n${data}\\.\n\n\\unrestrict ${key}\n`;

Deno.test("mysqldump: two dumps of the same data differ only in the volatile lines; a changed row changes the fingerprint", () => {
  const a = fp(MYSQL("2026-11-23  3:12:45")), b = fp(MYSQL("2026-11-24  3:12:47"));
  assert.equal(a.flavour, "mysqldump");
  assert.equal(a.sha256, b.sha256);
  assert.deepEqual(a.ignored, { "^-- Dump completed on ": 1, "^-- Server version\\t": 1, "^-- Host: ": 1 });
  assert.notEqual(fp(MYSQL("2026-11-24  3:12:47", "(1,'a'),(2,'c')")).sha256, a.sha256);
});

Deno.test("pg_dump: the random \\restrict keys and version lines are left out", () => {
  const a = fp(PG("AbC123")), b = fp(PG("zzZ999"));
  assert.equal(a.flavour, "pg_dump");
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.ignored["^\\\\restrict "], 1);
  assert.equal(a.ignored["^\\\\unrestrict "], 1);
  assert.notEqual(fp(PG("zzZ999", "1\ta\n2\tX\n")).sha256, a.sha256);
});

Deno.test("property: any chunking gives the same fingerprint (lines split across chunks, CRLF, a last line without newline)", () => {
  const texts = [
    MYSQL("2026-11-23  3:12:45"),
    PG("k1"),
    MYSQL("x").replaceAll("\n", "\r\n"),
    PG("k2").slice(0, -1),
    "plain\nfile\n-- Dump completed on x",
  ];
  for (const t of texts) {
    const whole = fp(t).sha256;
    for (const size of [1, 2, 3, 7, 16, 61, 257]) assert.equal(fp(t, size).sha256, whole, `chunk ${size}`);
  }
  // Only a mysqldump is a mysqldump: in a plain file that line is data.
  assert.deepEqual(fp("plain\n-- Dump completed on x\n").ignored, {});
});

Deno.test("long lines stream through (no buffering), a long dash line is data, and check.ignore_lines applies to every line", () => {
  const long = "-" + "x".repeat(200_000) + "\n";
  const withLong = (when: string, l = long) => MYSQL(when).replace("-- not volatile", `${l}-- not volatile`);
  const a = fp(withLong("d1"), 4096), b = fp(withLong("d2"), 100_000);
  assert.equal(a.sha256, b.sha256);
  assert.notEqual(fp(withLong("d1")).sha256, fp(withLong("d1", long.replace("xx", "xy"))).sha256);
  // After the trailer, a long line makes the "trailer" data: the dump goes on, so its date line is not the end.
  assert.notEqual(fp(MYSQL("d1") + long).sha256, fp(MYSQL("d2") + long).sha256);
  const gen = (t: string) => `-- MySQL dump 10.13\nSET @x=1;\n/* generated ${t} */\nINSERT 1;\n`;
  assert.notEqual(fp(gen("a")).sha256, fp(gen("b")).sha256);
  const extra = [/^\/\* generated /];
  assert.equal(fp(gen("a"), 5, extra).sha256, fp(gen("b"), 3, extra).sha256);
  assert.deepEqual(fp(gen("a"), 5, extra).ignored, { "^\\/\\* generated ": 1 });
});

Deno.test("a volatile-looking line is left out only where the dump tool writes it: not in a COPY row, a multi-line string or a routine body", () => {
  // pg_dump: a COPY row whose text starts like the header's version line, and one like the trailer's \unrestrict.
  const pgRow = (v: string) => PG("k", `1\ta\n-- Dumped from database version ${v}\n\\unrestrict ${v}\n2\tb\n`);
  assert.notEqual(fp(pgRow("15")).sha256, fp(pgRow("16")).sha256, "a changed COPY row is a change");
  assert.equal(fp(pgRow("15")).ignored["^-- Dumped from database version "], 1, "only the header's line is left out");
  // pg_dump --inserts: a multi-line string value.
  const pgInsert = (v: string) =>
    PG("k", "").replace(
      "COPY public.t (id, v) FROM stdin;\n\\.\n",
      `INSERT INTO public.t VALUES (1, 'line one\n-- Dumped by pg_dump version ${v}');\n`,
    );
  assert.notEqual(fp(pgInsert("1")).sha256, fp(pgInsert("2")).sha256);
  // mysqldump: a routine body with a line like the header's and the trailer's.
  const routine = (v: string) =>
    MYSQL("2026-11-23  3:12:45").replace(
      "-- not volatile",
      `DELIMITER ;;\nCREATE PROCEDURE p() BEGIN\n-- Server version\t${v}\n-- Dump completed on ${v}\nSELECT 1;\nEND ;;\nDELIMITER ;\n-- not volatile`,
    );
  assert.notEqual(fp(routine("a")).sha256, fp(routine("b")).sha256, "a changed routine body is a change");
  // The real header and trailer still go, however they are chunked.
  const r = routine("a");
  for (const size of [1, 5, 64, 4096]) assert.equal(fp(r, size).sha256, fp(routine("a").replace("3:12:45", "4:00:00"), size).sha256);
  assert.deepEqual(fp(r).ignored, { "^-- Dump completed on ": 1, "^-- Server version\\t": 1, "^-- Host: ": 1 });
});

Deno.test("MariaDB 10.11.8+ dumps start with a sandbox-mode line before the header: still a mysqldump", () => {
  const t = "/*M!999999\\- enable the sandbox mode */ \n" + MYSQL("2026-11-23  3:12:45");
  assert.equal(fp(t).flavour, "mysqldump");
  assert.equal(fp(t).sha256, fp("/*M!999999\\- enable the sandbox mode */ \n" + MYSQL("2026-11-24  4:00:00")).sha256);
});

Deno.test("the worker computes the same fingerprint as this thread (volatile lines, extra patterns, 40 MiB in 64 KiB chunks)", async () => {
  const { FingerprintWorker } = await import("../src/formats/fingerprint.ts");
  const body = enc.encode("INSERT INTO `t` VALUES (1,'2026-11-29','x\\\\y');\n-- keep me\n".repeat(700_000));
  const parts = [enc.encode(MYSQL("2026-11-24  3:12:47")), body, enc.encode("-- Generated at 12:00\n")];
  const text = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  parts.reduce((o, p) => (text.set(p, o), o + p.length), 0);
  for (const extra of [[], [/^-- Generated at /]]) {
    const w = new FingerprintWorker(extra);
    let waited = 0;
    // node Buffers, as node:zlib hands them out (their slice() is a view: the worker must get a real copy).
    const buf = Buffer.from(text);
    for (let i = 0; i < text.length; i += 65536) {
      const p = w.update(buf.subarray(i, i + 65536));
      if (p) (waited++, await p);
    }
    const got = await w.digest();
    assert.deepEqual(got, fp(text, 65536, extra));
    assert.equal(buf.byteLength, text.length, "the caller's buffer is still attached");
    assert.ok(waited > 0, "the worker pushed back at least once (8 MiB in flight)");
  }
});

Deno.test("the line finder (WebAssembly SIMD) gives the plain scan's fingerprint for any text and chunking; its module is the compiled .wat", async () => {
  assert.ok(new Fingerprinter().usesFinder, "the finder loads here");
  assert.ok(!new Fingerprinter([/x/]).usesFinder, "ignore_lines patterns test every line: the plain scan");
  assert.ok(!new Fingerprinter([], { simd: false }).usesFinder);
  // Random texts of the lines that matter: volatile ones, dashes and backslashes at and off line starts, long
  // lines (held past 64 KiB), CRLF, empty lines, a last line without newline; chunkings across the finder's window.
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const lines = [
    "-- Dump completed on 2026-11-2" + "x",
    "-- Server version\t10.11",
    "-- Host: h",
    "-- kept comment",
    "\\restrict abc",
    "\\unrestrict abc",
    "INSERT INTO t VALUES (1,'-x','\\\\n');",
    "a-b\\c",
    "",
    "-",
    "\\",
    "\r",
    "-" + "y".repeat(70_000),
    "z".repeat(1 << 17),
  ];
  for (let round = 0; round < 40; round++) {
    const head = round % 2 ? "--\n-- PostgreSQL database dump\n--\n" : "-- MySQL dump 10.13\n";
    let t = head;
    const n = 5 + rnd(200);
    const pool = round % 4 < 2 ? lines.slice(0, -2) : lines; // short texts, chunked down to single bytes
    for (let i = 0; i < n; i++) t += pool[rnd(pool.length)] + (rnd(9) ? "\n" : "\r\n");
    if (rnd(2)) t = t.slice(0, -1);
    const bytes = enc.encode(t);
    const sizes = bytes.length < 50_000 ? [1, 3, 17, 1000, 65536] : [1000, 4093, 65536, 1 << 20, 3 << 20];
    const chunk = sizes[rnd(sizes.length)];
    const plain = new Fingerprinter([], { simd: false }), fast = new Fingerprinter();
    for (let i = 0; i < bytes.length; i += chunk) {
      plain.update(bytes.subarray(i, i + chunk));
      fast.update(bytes.subarray(i, i + chunk));
    }
    assert.deepEqual(fast.digest(), plain.digest(), `round ${round}, chunk ${chunk}`);
  }
  // Over 1 MiB in one piece: the finder's memory is a 1 MiB window, searched a window at a time.
  const big = enc.encode(MYSQL("2026-11-24  3:12:47", "(1,'x')".repeat(400_000)) + "-- Dump completed on x\n");
  const a = new Fingerprinter(), b = new Fingerprinter([], { simd: false });
  a.update(big);
  b.update(big);
  assert.deepEqual(a.digest(), b.digest());
  // The module in src/formats/line_scan.ts is what src/formats/line_scan.wat compiles to.
  const { compileLineScan } = await import("../tools/wasm.ts");
  const { LINE_SCAN_WASM } = await import("../src/formats/line_scan.ts");
  assert.equal(btoa(String.fromCharCode(...await compileLineScan())), LINE_SCAN_WASM, "run deno task wasm");
});
