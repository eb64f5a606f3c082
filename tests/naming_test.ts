/** Archive names: formatting with the run's local date across time zones and DST, parsing back, counters. */
import assert from "node:assert/strict";
import { localParts } from "../src/os/clock.ts";
import { formatName, parseName, patternProblem } from "../src/formats/naming.ts";

Deno.test("the name uses the date in archive.timezone, not UTC", () => {
  const t = new Date("2026-11-21T23:30:00Z");
  assert.equal(formatName("{YYYY}{MM}{DD}.tgz", localParts(t, "UTC"), "j"), "20261121.tgz");
  assert.equal(formatName("{YYYY}{MM}{DD}.tgz", localParts(t, "Europe/Paris"), "j"), "20261122.tgz");
  assert.equal(formatName("{YYYY}{MM}{DD}.tgz", localParts(t, "America/New_York"), "j"), "20261121.tgz");
  assert.equal(
    formatName("{YYYY}{DD}{MM}.tgz", localParts(t, "Europe/Paris"), "j"),
    "20262211.tgz",
    "the specification's day-before-month order",
  );
  assert.equal(formatName("{job}-{YYYY}-{MM}-{DD}_{HH}{mm}.tar.gz", localParts(t, "Asia/Tokyo"), "shop"), "shop-2026-11-22_0830.tar.gz");
});

Deno.test("DST changes keep the calendar date right (Europe/Paris spring forward and fall back)", () => {
  // 2026-03-29 02:00 local does not exist; 00:30Z is 01:30 CET, 01:30Z is 03:30 CEST.
  assert.deepEqual([
    localParts(new Date("2026-03-29T00:30:00Z"), "Europe/Paris").hour,
    localParts(new Date("2026-03-29T01:30:00Z"), "Europe/Paris").hour,
  ], [1, 3]);
  assert.equal(formatName("{YYYY}{MM}{DD}.tgz", localParts(new Date("2026-03-28T23:30:00Z"), "Europe/Paris"), "j"), "20260329.tgz");
  assert.equal(
    formatName("{YYYY}{MM}{DD}.tgz", localParts(new Date("2026-10-24T22:30:00Z"), "Europe/Paris"), "j"),
    "20261025.tgz",
    "CEST: UTC+2",
  );
  assert.equal(
    formatName("{YYYY}{MM}{DD}.tgz", localParts(new Date("2026-10-25T22:30:00Z"), "Europe/Paris"), "j"),
    "20261025.tgz",
    "CET again: UTC+1",
  );
});

Deno.test("parseName reads back what formatName writes, with counters; rejects foreign and impossible names", () => {
  const pat = "{YYYY}{MM}{DD}.tgz";
  const p = parseName(pat, "20261122.tgz", "j")!;
  assert.deepEqual([p.year, p.month, p.day, p.seq], [2026, 11, 22, 1]);
  assert.equal(parseName(pat, "20261122-2.tgz", "j")!.seq, 2);
  assert.equal(formatName(pat, localParts(new Date("2026-11-22T12:00:00Z"), "UTC"), "j", 3), "20261122-3.tgz");
  for (
    const foreign of [
      "20261122.tgz.sha256",
      ".20261122.tgz.part",
      "20261122.tgz.part",
      "20261122.tar.gz",
      "notes.txt",
      "2026112.tgz",
      "20261322.tgz",
      "20260230.tgz",
      "20261122-1.tgz",
      "20261122-0.tgz",
      "x20261122.tgz",
    ]
  ) {
    assert.equal(parseName(pat, foreign, "j"), undefined, foreign);
  }
  assert.equal(parseName("{YYYY}{DD}{MM}.tgz", "20262211.tgz", "j")!.month, 11);
  assert.equal(parseName("{job}-{YYYY}{MM}{DD}.tgz", "other-20261122.tgz", "shop"), undefined, "another job's archives are foreign");
  assert.ok(parseName("{job}-{YYYY}{MM}{DD}.tgz", "shop-20261122.tgz", "shop"));
});

Deno.test("patternProblem explains unusable patterns", () => {
  assert.equal(patternProblem("{YYYY}{MM}{DD}.tgz"), undefined);
  assert.match(patternProblem("{YYYY}{MM}.tgz")!, /must contain \{DD\}/);
  assert.match(patternProblem("backups/{YYYY}{MM}{DD}.tgz")!, /not a path/);
  assert.match(patternProblem("{YYYY}{MM}{DD}.zip")!, /\.tgz or \.tar\.gz/);
  assert.match(patternProblem("{YYYY}{MM}{DD}{SS}.tgz")!, /unknown token \{SS\}/);
  assert.match(patternProblem(".{YYYY}{MM}{DD}.tgz")!, /must not start with '\.'/);
});
