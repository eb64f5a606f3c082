/**
 * Retention: property-style tests of the pure policy with an injected clock, boundaries (DST, year end), and an
 * end-to-end prune on a real directory with foreign files, sidecars and a half-written upload present.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { localParts, pad } from "../src/os/clock.ts";
import { formatName, type ParsedName, parseName } from "../src/formats/naming.ts";
import { type ArchiveInfo, buildInventory, runDateOf } from "../src/retention/inventory.ts";
import { foldCatalogue, type StoredRecord } from "../src/records/catalogue.ts";
import { clockDoubt } from "../src/retention/clockcheck.ts";
import { decide, isoWeek, type Policy } from "../src/retention/policy.ts";
import { runCli } from "./helpers/cli.ts";
import { stringify } from "yaml";
import { EXIT } from "../src/errors.ts";

const PAT = "{YYYY}{MM}{DD}.tgz";
const DAY = 86_400_000;
const base: Policy = { min_keep: 3, keep_hourly: 0, keep_daily: 0, keep_weekly: 0, keep_monthly: 0, keep_yearly: 0 };

/** A complete catalogued archive stored on its date (order follows the date, as with a right clock). */
function archive(y: number, m: number, d: number, seq = 1): ArchiveInfo {
  const p = parseName(PAT, formatName(PAT, { year: y, month: m, day: d, hour: 0, minute: 0, second: 0 }, "j", seq), "j")!;
  return { ...p, order: p.stamp / 1000 + p.seq, catalogued: true, complete: true, size: 1, dated: "stored" };
}

/** A random set of distinct dated archives within `spanDays` before `now`. */
function randomSet(rnd: () => number, now: Date, n: number, spanDays: number): ArchiveInfo[] {
  const names = new Map<string, ArchiveInfo>();
  for (let i = 0; i < n; i++) {
    const d = new Date(now.getTime() - Math.floor(rnd() * spanDays) * DAY);
    const a = archive(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), rnd() < 0.1 ? 2 : 1);
    names.set(a.name, a);
  }
  return [...names.values()];
}

function seeded(seed: number) {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

Deno.test("property: the min_keep newest always survive, whatever max_age", () => {
  const rnd = seeded(1);
  for (let run = 0; run < 300; run++) {
    const now = new Date(Date.UTC(2026, 0, 1) + Math.floor(rnd() * 700) * DAY);
    const set = randomSet(rnd, now, 1 + Math.floor(rnd() * 40), 400);
    const p: Policy = { ...base, min_keep: 1 + Math.floor(rnd() * 6), max_age: Math.floor(rnd() * 60) * DAY };
    const ds = decide(set, p, localParts(now, "UTC"));
    const newest = [...set].sort((a, b) => b.stamp - a.stamp || b.seq - a.seq).slice(0, p.min_keep).map((a) => a.name);
    for (const n of newest) assert.ok(ds.find((d) => d.archive.name === n)!.keep, `${n} is among the ${p.min_keep} newest`);
    // Everything kept by max_age alone is younger than max_age; everything deleted is older.
    for (const d of ds.filter((d) => !d.keep)) {
      assert.ok(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - d.archive.stamp > p.max_age!);
    }
  }
});

Deno.test("property: GFS keeps exactly one archive per period, the newest of it, for the last N periods", () => {
  const rnd = seeded(7);
  const keys: Record<string, (a: ParsedName) => string> = {
    keep_hourly: (a) => `${a.year}-${a.month}-${a.day}T${a.hour}`,
    keep_daily: (a) => `${a.year}-${a.month}-${a.day}`,
    keep_weekly: (a) => isoWeek(a),
    keep_monthly: (a) => `${a.year}-${a.month}`,
    keep_yearly: (a) => `${a.year}`,
  };
  for (let run = 0; run < 200; run++) {
    const now = new Date(Date.UTC(2026, 10, 22));
    const set = randomSet(rnd, now, 5 + Math.floor(rnd() * 60), 900);
    for (const [rule, key] of Object.entries(keys)) {
      const n = 1 + Math.floor(rnd() * 8);
      const ds = decide(set, { ...base, min_keep: 1, [rule]: n }, localParts(now, "UTC"));
      const keptByRule = ds.filter((d) => d.reasons.includes(rule)).map((d) => d.archive);
      const periods = new Set(keptByRule.map(key));
      assert.equal(periods.size, keptByRule.length, `${rule}: one per period`);
      const allPeriods = [...new Set([...set].sort((a, b) => b.stamp - a.stamp || b.seq - a.seq).map(key))];
      assert.equal(keptByRule.length, Math.min(n, allPeriods.length), `${rule}: the last ${n} periods`);
      for (const a of keptByRule) {
        const newestOfPeriod = set.filter((b) => key(b) === key(a)).sort((x, y) => y.stamp - x.stamp || y.seq - x.seq)[0];
        assert.equal(a.name, newestOfPeriod.name, `${rule}: the newest of its period`);
      }
    }
  }
});

Deno.test("keep_hourly: an hourly job keeps the newest archive of each of the last N hours, and keep_daily the days before", () => {
  const pat = "{YYYY}{MM}{DD}-{HH}{mm}.tgz";
  const at = (iso: string): ArchiveInfo => {
    const d = new Date(iso);
    const p = parseName(pat, formatName(pat, localParts(d, "UTC"), "j"), "j")!;
    return { ...p, order: d.getTime() / 60_000, catalogued: true, complete: true, size: 1, dated: "stored" };
  };
  // Two days of a job run at :15 every hour, and a second run at 23:45 on the last day.
  const set = Array.from({ length: 48 }, (_, h) => at(new Date(Date.UTC(2026, 10, 21, h, 15)).toISOString()));
  set.push(at("2026-11-22T23:45:00Z"));
  const now = localParts(new Date("2026-11-23T00:05:00Z"), "UTC");
  const ds = decide(set, { ...base, min_keep: 1, keep_hourly: 6, keep_daily: 2 }, now);
  const hourly = ds.filter((d) => d.reasons.includes("keep_hourly")).map((d) => d.archive.name);
  assert.deepEqual(hourly, [
    "20261122-2345.tgz",
    "20261122-2215.tgz",
    "20261122-2115.tgz",
    "20261122-2015.tgz",
    "20261122-1915.tgz",
    "20261122-1815.tgz",
  ], "one per hour, the newest of 23:00 (23:45, not 23:15), the last six hours");
  assert.deepEqual(ds.filter((d) => d.reasons.includes("keep_daily")).map((d) => d.archive.name), [
    "20261122-2345.tgz",
    "20261121-2315.tgz",
  ]);
  assert.equal(ds.filter((d) => d.keep).length, 7);
});

Deno.test("keep_hourly without {HH} in archive.name is refused at load, naming both keys", async () => {
  const root = await Deno.makeTempDir({ prefix: "archivist-hourly-" });
  try {
    const cfg = join(root, "archive.yaml");
    const base = {
      state_dir: join(root, "state"),
      source: { entry: "dump.sql", url: "https://127.0.0.1:9/x.zip" },
      destination: { type: "local", path: join(root, "dest") },
    };
    await Deno.writeTextFile(cfg, stringify({ ...base, retention: { keep_hourly: 24 } }), { mode: 0o600 });
    const r = await runCli(["list", "-c", cfg]);
    assert.equal(r.code, EXIT.CONFIG, r.stderr);
    assert.match(
      r.stderr,
      /retention\.keep_hourly: counts the hours in the archives' names, and archive\.name \(\{YYYY\}\{MM\}\{DD\}\.tgz\) has no \{HH\}/,
    );
    await Deno.writeTextFile(cfg, stringify({ ...base, archive: { name: "{YYYY}{MM}{DD}-{HH}.tgz" }, retention: { keep_hourly: 24 } }), {
      mode: 0o600,
    });
    const ok = await runCli(["list", "-c", cfg]);
    assert.doesNotMatch(ok.stderr, /keep_hourly/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("without any rule nothing is deleted; the just-stored archive is always kept", () => {
  const old = [archive(2020, 1, 1), archive(2020, 1, 2), archive(2020, 1, 3), archive(2020, 1, 4)];
  const now = localParts(new Date("2026-11-22T02:00:00Z"), "UTC");
  assert.ok(decide(old, base, now).every((d) => d.keep));
  const ds = decide(old, { ...base, min_keep: 1, max_age: 30 * DAY }, now, new Set(["20200101.tgz"]));
  assert.deepEqual(ds.filter((d) => d.keep).map((d) => d.archive.name).sort(), ["20200101.tgz", "20200104.tgz"]);
});

Deno.test("max_age counts calendar days in archive.timezone: 30d keeps the archive dated 30 days ago, not 31", () => {
  const p = { ...base, min_keep: 1, max_age: 30 * DAY };
  const set = [archive(2026, 11, 22), archive(2026, 10, 23), archive(2026, 10, 22)];
  // 2026-11-22 00:30 in Paris is still 2026-11-21 in UTC: the time zone decides which day "today" is.
  const t = new Date("2026-11-21T23:30:00Z");
  const paris = decide(set, p, localParts(t, "Europe/Paris"));
  assert.deepEqual(paris.filter((d) => !d.keep).map((d) => d.archive.name), ["20261022.tgz"]);
  const utc = decide(set, p, localParts(t, "UTC"));
  assert.deepEqual(utc.filter((d) => !d.keep).map((d) => d.archive.name), []);
  assert.equal(paris.find((d) => d.archive.name === "20261023.tgz")!.expiresOn, "2026-11-23");
});

Deno.test("DST and year boundaries: a day is a calendar day, ISO weeks straddle the new year", () => {
  // Across the spring-forward night the 23-hour day still counts as one day.
  const p = { ...base, min_keep: 1, max_age: 1 * DAY };
  const ds = decide(
    [archive(2026, 3, 28), archive(2026, 3, 29), archive(2026, 3, 30)],
    p,
    localParts(new Date("2026-03-30T01:00:00Z"), "Europe/Paris"),
  );
  assert.deepEqual(ds.filter((d) => !d.keep).map((d) => d.archive.name), ["20260328.tgz"]);
  assert.equal(isoWeek({ year: 2026, month: 12, day: 31 }), "2026-W53");
  assert.equal(isoWeek({ year: 2027, month: 1, day: 3 }), "2026-W53");
  assert.equal(isoWeek({ year: 2027, month: 1, day: 4 }), "2027-W01");
  assert.equal(isoWeek({ year: 2024, month: 12, day: 30 }), "2025-W01");
  const weekly = decide(
    [archive(2026, 12, 29), archive(2027, 1, 2), archive(2027, 1, 5)],
    { ...base, min_keep: 1, keep_weekly: 2 },
    localParts(new Date("2027-01-06T00:00:00Z"), "UTC"),
  );
  assert.deepEqual(weekly.filter((d) => d.keep).map((d) => d.archive.name), ["20270105.tgz", "20270102.tgz"]);
  const yearly = decide(
    [archive(2025, 12, 31), archive(2026, 1, 1)],
    { ...base, min_keep: 1, keep_yearly: 2 },
    localParts(new Date("2026-06-01T00:00:00Z"), "UTC"),
  );
  assert.ok(yearly.every((d) => d.keep));
});

// ---- end to end on a real directory ----

/**
 * A destination as an earlier version (without a catalogue) left it: the archives, and the state file naming the
 * last one, which lets the first command adopt them into the catalogue.
 */
async function pruneSandbox(files: string[], last?: { name: string; storedAt: string }) {
  const root = await Deno.makeTempDir({ prefix: "archivist-prune-" });
  const dest = join(root, "dest");
  await Deno.mkdir(dest);
  for (const f of files) await Deno.writeTextFile(join(dest, f), `content of ${f}\n`);
  if (last) {
    await Deno.mkdir(join(root, "state"));
    await Deno.writeTextFile(
      join(root, "state", "j.state.json"),
      JSON.stringify({ sha256: "a".repeat(64), archive: last.name, size: 1, location: dest, storedAt: last.storedAt, runId: "old" }),
    );
  }
  const cfg = join(root, "archive.yaml");
  const write = async (retention: Record<string, unknown>) => {
    await Deno.writeTextFile(
      cfg,
      stringify({
        name: "j",
        state_dir: join(root, "state"),
        work_dir: join(root, "work"),
        source: { url: "https://127.0.0.1:9/x.zip", entry: "d.sql" },
        archive: { timezone: "UTC" },
        destination: { type: "local", path: dest },
        retention,
        log: { file: join(root, "log.txt") },
      }),
    );
    await Deno.chmod(cfg, 0o600);
  };
  const ls = () => [...Deno.readDirSync(dest)].map((e) => e.name).sort();
  return { root, dest, cfg, write, ls };
}

function daysBefore(iso: string, n: number): string {
  const d = new Date(new Date(iso).getTime() - n * DAY);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
}

Deno.test("prune on a real directory deletes only old archives and their sidecars; foreign files and temp uploads stay", async () => {
  const now = "2026-11-22T03:00:00Z";
  const archives = [0, 1, 2, 10, 29, 30, 31, 45, 60, 90].map((n) => `${daysBefore(now, n)}.tgz`);
  const foreign = ["notes.txt", "20261122.tgz.bak", "2026-11-01.tgz", "other-20200101.tgz", ".20261122.tgz.part", "20200101.tgz.sha256"];
  const sb = await pruneSandbox([...archives, ...archives.map((a) => `${a}.sha256`), ...foreign], {
    name: archives[0],
    storedAt: "2026-11-22T02:31:00Z",
  });
  await sb.write({ max_age: "30d", min_keep: 3 });
  const env = { ARCHIVIST_NOW: now };

  const dry = await runCli(["prune", "--dry-run", "-c", sb.cfg], { env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stderr, /keeping 6, would delete 4 /);
  assert.match(
    dry.stderr,
    /would adopt 10 archive\(s\) .*\(dry run: not written\)/,
    "the upgrade would adopt what the state file vouches for",
  );
  assert.throws(() => Deno.statSync(join(sb.root, "state", "j.catalogue.jsonl")), Deno.errors.NotFound, "a dry run writes no catalogue");
  assert.match(dry.stdout, new RegExp(`^delete ${daysBefore(now, 31)}\\.tgz \\S+: older than max_age`, "m"));
  assert.match(dry.stdout, new RegExp(`^keep   ${daysBefore(now, 10)}\\.tgz \\S+: max_age`, "m"), "the dry run prints the whole plan");
  assert.equal(sb.ls().length, archives.length * 2 + foreign.length, "dry run deletes nothing");

  const list = await runCli(["list", "-c", sb.cfg], { env });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${daysBefore(now, 0)}\\.tgz .* kept by min_keep`));
  assert.match(list.stdout, new RegExp(`${daysBefore(now, 10)}\\.tgz .* kept by max_age; expires on 2026-12-13`));
  assert.match(list.stdout, new RegExp(`${daysBefore(now, 90)}\\.tgz .* to delete: older than max_age`));

  const r = await runCli(["prune", "-c", sb.cfg], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /adopted 10 archive\(s\) already on .* into the new catalogue/);
  const left = sb.ls();
  for (const n of [31, 45, 60, 90]) {
    assert.ok(
      !left.includes(`${daysBefore(now, n)}.tgz`) && !left.includes(`${daysBefore(now, n)}.tgz.sha256`),
      `day -${n} deleted with its sidecar`,
    );
  }
  for (const n of [0, 1, 2, 10, 29, 30]) assert.ok(left.includes(`${daysBefore(now, n)}.tgz`), `day -${n} kept`);
  for (const f of foreign.filter((f) => f !== "20200101.tgz.sha256")) assert.ok(left.includes(f), `${f} untouched`);
  assert.ok(!left.includes("20200101.tgz.sha256"), "an orphan sidecar of an archive already gone is removed");
  const log = await Deno.readTextFile(join(sb.root, "log.txt"));
  assert.match(log, new RegExp(`deleted ${daysBefore(now, 90)}\\.tgz: older than max_age`));
  await Deno.remove(sb.root, { recursive: true });
});

Deno.test("max_delete: a run that would delete too many deletes none and fails; prune --force overrides", async () => {
  const now = "2026-11-22T03:00:00Z";
  const archives = Array.from({ length: 15 }, (_, i) => `${daysBefore(now, 100 + i)}.tgz`);
  const sb = await pruneSandbox([`${daysBefore(now, 0)}.tgz`, ...archives], { name: `${daysBefore(now, 0)}.tgz`, storedAt: now });
  await sb.write({ max_age: "30d", min_keep: 1, max_delete: 10 });
  const env = { ARCHIVIST_NOW: now };
  const r = await runCli(["prune", "-c", sb.cfg], { env });
  assert.equal(r.code, EXIT.RETENTION);
  assert.match(r.stderr, /15 archives would be deleted, more than retention\.max_delete \(10\): deleted none/);
  assert.match(r.stderr, /prune --force/);
  assert.equal(sb.ls().length, 16);
  const forced = await runCli(["prune", "--force", "-c", sb.cfg], { env });
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(sb.ls(), [`${daysBefore(now, 0)}.tgz`]);
  await Deno.remove(sb.root, { recursive: true });
});

Deno.test("a failed deletion is a warning naming the file; the other deletions go on; directories are never touched", async () => {
  const now = "2026-11-22T03:00:00Z";
  const keep = `${daysBefore(now, 0)}.tgz`,
    dirLike = `${daysBefore(now, 60)}.tgz`,
    stuck = `${daysBefore(now, 70)}.tgz`,
    old = `${daysBefore(now, 80)}.tgz`;
  const sb = await pruneSandbox([keep, stuck, old], { name: keep, storedAt: now });
  await Deno.mkdir(join(sb.dest, dirLike)); // a directory with an archive's name is not an archive
  await sb.write({ max_age: "30d", min_keep: 1 });
  // Make `stuck` undeletable: as root, the immutable attribute; otherwise a read-only directory blocks every
  // deletion, so the non-root case checks the warning path on both files.
  const root = Deno.uid() === 0;
  const undo: string[][] = [];
  if (root) {
    const p = new Deno.Command("chattr", { args: ["+i", join(sb.dest, stuck)], stderr: "null" }).outputSync();
    assert.ok(p.success, "chattr +i works on this filesystem (needed to make a file undeletable as root)");
    undo.push(["chattr", "-i", join(sb.dest, stuck)]);
  } else {
    await Deno.chmod(sb.dest, 0o555);
    undo.push(["chmod", "755", sb.dest]);
  }
  try {
    const r = await runCli(["prune", "-c", sb.cfg], { env: { ARCHIVIST_NOW: now } });
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    assert.match(r.stderr, new RegExp(`could not delete ${stuck}: .*(permission denied|not permitted)`, "i"));
    if (root) assert.deepEqual(sb.ls(), [keep, dirLike, stuck].sort(), "the other deletion went on");
    assert.ok(sb.ls().includes(dirLike));
  } finally {
    for (const [cmd, ...args] of undo) new Deno.Command(cmd, { args }).outputSync();
    await Deno.remove(sb.root, { recursive: true });
  }
});

// ---- pattern edits and clock jumps, through the catalogue ----

Deno.test("property: pattern edits and clock jumps never select an archive younger than max_age by the date it was really stored", () => {
  const patterns = ["{YYYY}{MM}{DD}.tgz", "{YYYY}{DD}{MM}.tgz", "db-{DD}{MM}{YYYY}.tgz", "{YYYY}-{MM}-{DD}.tar.gz"];
  const rnd = seeded(42);
  let doubted = 0, deleted = 0;
  for (let sim = 0; sim < 60; sim++) {
    const maxAgeDays = 3 + Math.floor(rnd() * 20);
    const policy: Policy = { ...base, min_keep: 1 + Math.floor(rnd() * 3), max_age: maxAgeDays * DAY };
    let text = "";
    const present = new Map<string, number>(); // name → real storage time
    let pattern = patterns[0];
    const start = Date.UTC(2026, 0, 1, 2, 30);
    for (let night = 0; night < 80; night++) {
      const real = start + night * DAY;
      // A clock a year off (either way) on some nights; the first nights are right (a reference must exist).
      const r = rnd();
      const jump = night < 3 ? 0 : r < 0.07 ? 365 * DAY : r < 0.14 ? -365 * DAY : 0;
      const clock = new Date(real + jump);
      if (rnd() < 0.1) pattern = patterns[Math.floor(rnd() * patterns.length)];
      const doubt = clockDoubt(clock, foldCatalogue("c", text), undefined, policy.max_age);
      let seq = 1, name = formatName(pattern, localParts(clock, "UTC"), "j");
      while (present.has(name)) name = formatName(pattern, localParts(clock, "UTC"), "j", ++seq);
      present.set(name, real);
      const rec: StoredRecord = {
        op: "stored",
        name,
        location: "L",
        pattern,
        runDate: runDateOf(clock, "UTC"),
        storedAt: clock.toISOString(),
        size: 1,
        sha256: "s",
        dumpName: "d",
        dumpSize: 1,
        dumpSha256: "d",
        runId: String(night),
        ...(doubt ? { clock: doubt.flag } : {}),
      };
      text += JSON.stringify(rec) + "\n";
      const cat = foldCatalogue("c", text);
      const listing = [...present.keys()].flatMap((n) => [{ name: n, size: 1 }, { name: `${n}.sha256`, size: 1 }]);
      const inv = buildInventory(listing, cat, "L", pattern, "j", clock, "UTC");
      const ds = decide(inv.archives, policy, localParts(clock, "UTC"), new Set([name]));
      // The min_keep archives stored last are always kept.
      const lastStored = [...present.keys()].slice(-policy.min_keep);
      for (const n of lastStored) assert.ok(ds.find((d) => d.archive.name === n)!.keep, `${n} is among the last stored`);
      if (clockDoubt(clock, cat, undefined, policy.max_age)) {
        doubted++;
        continue; // retention deletes nothing (planRetention refuses): nothing to check
      }
      for (const d of ds.filter((d) => !d.keep)) {
        const ageDays = Math.floor(real / DAY) - Math.floor(present.get(d.archive.name)! / DAY);
        assert.ok(ageDays > maxAgeDays, `night ${night}: ${d.archive.name} selected at a real age of ${ageDays}d (max_age ${maxAgeDays}d)`);
        present.delete(d.archive.name);
        text += JSON.stringify({ op: "deleted", name: d.archive.name, location: "L", at: clock.toISOString(), reason: "" }) + "\n";
        deleted++;
      }
    }
  }
  assert.ok(doubted > 20 && deleted > 500, `the simulation exercised both paths (${doubted} doubted nights, ${deleted} deletions)`);
});

Deno.test("the clock check: behind the last trusted archive, or further ahead than max_age, is in doubt", () => {
  const rec = (storedAt: string, clock?: "ahead" | "behind") =>
    JSON.stringify({ op: "stored", name: "x", location: "L", pattern: PAT, runDate: storedAt.slice(0, 16), storedAt, size: 1, clock }) +
    "\n";
  const cat = foldCatalogue("c", rec("2026-11-20T02:30:00Z") + rec("2027-11-21T02:30:00Z", "ahead"));
  assert.equal(cat.lastTrusted?.storedAt, "2026-11-20T02:30:00Z", "a flagged archive is never the reference");
  assert.equal(clockDoubt(new Date("2026-11-21T02:30:00Z"), cat, undefined, 30 * DAY), undefined);
  assert.equal(clockDoubt(new Date("2026-11-20T02:25:00Z"), cat, undefined, 30 * DAY), undefined, "10 minutes of slack");
  assert.equal(clockDoubt(new Date("2026-11-19T02:30:00Z"), cat, undefined, 30 * DAY)?.flag, "behind");
  assert.equal(clockDoubt(new Date("2026-12-21T02:30:00Z"), cat, undefined, 30 * DAY), undefined, "31 days: within max_age + 1 day");
  assert.equal(clockDoubt(new Date("2026-12-22T03:30:00Z"), cat, undefined, 30 * DAY)?.flag, "ahead");
  const trusted = foldCatalogue(
    "c",
    rec("2026-11-20T02:30:00Z") + rec("2027-11-21T02:30:00Z", "ahead") + JSON.stringify({ op: "trust", at: "x", reason: "" }),
  );
  assert.equal(trusted.lastTrusted?.storedAt, "2027-11-21T02:30:00Z", "prune --force trusts what was flagged");
});
