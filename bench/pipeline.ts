/**
 * `deno task bench [--size 1GiB] [--recompress] [--verify|--no-verify] [--encrypt] [--client deno|curl] [--threads N] [--runs N] [--only archivist,floor] [--start] [--source] [--json]`: a whole `archivist run` against the shell
 * pipelines a sysadmin would write, in the same invocation, alternating, on the same dump served over HTTPS by nginx
 * on 127.0.0.1. Prints medians and the ratios archivist/x for wall time, CPU time and peak RSS, and archivist's MB/s
 * per step (from its history line). Not a test: nothing asserts a time.
 *
 *   archivist   `archivist run` into a local destination, through the self-extracting file of `deno task dist
 *               --no-compile` (the form install.sh installs here, built once per invocation); with --source,
 *               `deno run` of main.ts with the permissions of src/permissions.ts
 *   gzip        curl -o; unzip -p | tee >(sha256sum) > dump; tar | gzip -6 > out.tgz; sha256sum; cp
 *   pigz        the same with pigz -6 (all cores)
 *   floor       curl -o && unzip -p | sha256sum: what any tool that verifies the dump pays
 * With --encrypt, archivist encrypts to an age key (archive.encrypt) and gzip/pigz pipe their .tgz through age -r;
 *   plain       the same `archivist run` without archive.encrypt, alternating: archivist ÷ plain is encryption's cost.
 * With --start, also the start of the self-extracting file against `deno run main.ts`, both running `--version`,
 * alternating, 15 times each.
 * Every contender runs once before the timed runs, not counted (the file unpacked, the code and page caches warm,
 * as on the nights after the first), and every run is followed by `sync` and 2 s idle (untimed), so that none pays
 * for the previous one's writeback or starts on cores still busy from it.
 *
 * The dump (mysqldump-like, seeded) and its zip (Info-ZIP, zip -6) are cached in .tmp/bench/ by size.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { makeCert, sh, sqlDump } from "../tools/fixtures.ts";
import { startNginx } from "../tests/servers/nginx.ts";
import { DENO_PERMISSIONS } from "../src/permissions.ts";
import { parseSize } from "../src/config/units.ts";

/** The usage line: this file's header, the error below and docs/TECHNICAL.md say it (tests/docs_claims_test.ts). */
const USAGE =
  "deno task bench [--size 1GiB] [--recompress] [--verify|--no-verify] [--encrypt] [--client deno|curl] [--threads N] [--runs N] [--only archivist,floor] [--start] [--source] [--json]";
const OPTIONS = [
  "--size",
  "--runs",
  "--recompress",
  "--json",
  "--only",
  "--verify",
  "--no-verify",
  "--encrypt",
  "--client",
  "--threads",
  "--start",
  "--source",
];
const args = Deno.args;
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
for (const a of args) {
  if (
    a.startsWith("--") &&
    !OPTIONS.includes(a)
  ) {
    console.error(
      `deno task bench: unknown option ${a}\nUsage: ${USAGE}`,
    );
    Deno.exit(2);
  }
}
const size = parseSize(opt("--size") ?? "256MiB");
if (!size) {
  console.error(`deno task bench: --size ${opt("--size")}: a size like 256MiB or 1GiB`);
  Deno.exit(2);
}
const runs = Number(opt("--runs") ?? 3);
const recompress = args.includes("--recompress");
/** archive.verify for the archivist runs: the config's default unless --verify or --no-verify. */
const verify = args.includes("--verify") ? true : args.includes("--no-verify") ? false : undefined;
const json = args.includes("--json");
/** archive.encrypt for the archivist runs, and age -r in the gzip/pigz pipelines. */
const encrypt = args.includes("--encrypt");
/** source.client for the archivist runs: the config's default unless --client. */
const client = opt("--client");
/** archive.threads for the archivist runs (compression threads on the recompress path): the default unless --threads. */
const threads = opt("--threads");
const say = (s: string) => json || console.log(s);

const root = new URL("..", import.meta.url).pathname;
const cacheDir = join(root, ".tmp/bench");
await Deno.mkdir(cacheDir, { recursive: true });
const mib = Math.round(size / 2 ** 20);
const zipPath = join(cacheDir, `dump-${mib}MiB.zip`);
if (!(await Deno.stat(zipPath).catch(() => undefined))) {
  say(`generating a ${mib} MiB mysqldump-like dump and zipping it (Info-ZIP zip -6; cached in ${cacheDir})...`);
  const dumpPath = join(cacheDir, "dump.sql");
  const f = await Deno.open(dumpPath, { write: true, create: true, truncate: true });
  const chunkSize = 16 * 2 ** 20;
  for (let done = 0, seed = 1; done < size; seed++) {
    const c = sqlDump(Math.min(chunkSize, size - done), { seed, trailer: false });
    await f.write(c);
    done += c.length;
  }
  await f.write(new TextEncoder().encode("-- Dump completed on 2026-11-29  2:00:01\n"));
  f.close();
  await sh("zip", ["-q", "-6", "-j", `${zipPath}.part`, dumpPath]);
  await Deno.rename(`${zipPath}.part`, zipPath);
  await Deno.remove(dumpPath);
}
const zipSize = (await Deno.stat(zipPath)).size;
const dumpSize = Number((await sh("unzip", ["-Z", "-t", zipPath])).match(/(\d+) bytes uncompressed/)![1]);

const dir = await Deno.makeTempDir({ prefix: "archivist-bench-" });
/** The self-extracting file the archivist runs go through (unless --source), and its cache directory. */
const sfx = args.includes("--source") ? undefined : await buildSfx(join(dir, "dist"));
const cert = await makeCert(join(dir, "tls"));
const www = join(dir, "www");
await Deno.mkdir(www);
await Deno.link(zipPath, join(www, "dump.zip")).catch(() => Deno.copyFile(zipPath, join(www, "dump.zip")));
const nginx = await startNginx(join(dir, "nginx"), www, cert);
const url = nginx.url("/dump.zip");

interface Sample {
  wall: number;
  cpu: number;
  rssKiB: number;
  steps?: Record<string, number>;
}

async function timed(cmd: string[], cwd: string, env?: Record<string, string>): Promise<Sample> {
  const r = await new Deno.Command("/usr/bin/time", { args: ["-f", "%e %U %S %M", ...cmd], cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  const err = new TextDecoder().decode(r.stderr).trim().split("\n");
  if (!r.success) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${err.slice(-15).join("\n")}`);
  const [e, u, s, m] = err.pop()!.split(" ").map(Number);
  return { wall: e, cpu: u + s, rssKiB: m };
}

const agePub = encrypt
  ? await (async () => {
    const key = join(dir, "age-key.txt");
    await sh("age-keygen", ["-o", key]);
    return /public key: (age1\S+)/.exec(await Deno.readTextFile(key))![1];
  })()
  : "";
const seal = encrypt ? ` | age -r ${agePub}` : "";
const shellPrefix = `set -e -o pipefail; curl -sS --fail --cacert ${cert.caFile} -o dump.zip ${url}`;
const PIPELINES: Record<string, string> = {
  gzip: `${shellPrefix}; unzip -p dump.zip dump.sql | tee >(sha256sum > dump.sha) > dump.sql; rm dump.zip; ` +
    `tar -cf - dump.sql | gzip -6${seal} > out.tgz; rm dump.sql; sha256sum out.tgz > out.tgz.sha256; cp out.tgz out.tgz.sha256 ../dest/`,
  pigz: `${shellPrefix}; unzip -p dump.zip dump.sql | tee >(sha256sum > dump.sha) > dump.sql; rm dump.zip; ` +
    `tar -cf - dump.sql | pigz -6${seal} > out.tgz; rm dump.sql; sha256sum out.tgz > out.tgz.sha256; cp out.tgz out.tgz.sha256 ../dest/`,
  floor: `${shellPrefix}; unzip -p dump.zip dump.sql | sha256sum > dump.sha`,
};

async function archivist(i: number, sealed = encrypt): Promise<Sample> {
  const w = join(dir, `a${i}`);
  await Deno.mkdir(join(w, "dest"), { recursive: true });
  const conf = join(w, "archive.yaml");
  await Deno.writeTextFile(
    conf,
    stringify({
      name: "bench",
      state_dir: join(w, "state"),
      work_dir: join(w, "work"),
      source: { url, entry: "dump.sql", ca_file: cert.caFile, timeout: "30m", ...(client ? { client } : {}) },
      check: { expect_trailer: "-- Dump completed", on_unchanged: "archive" },
      archive: {
        timezone: "UTC",
        compression_level: 6,
        ...(recompress ? { recompress: "always" } : {}),
        ...(verify !== undefined ? { verify } : {}),
        ...(threads ? { threads: Number(threads) } : {}),
        ...(sealed ? { encrypt: { age_recipients: [agePub] } } : {}),
      },
      destination: { type: "local", path: join(w, "dest"), create_dirs: true },
      retention: { min_keep: 3 },
      log: { file: join(w, "archivist.log") },
    }),
    { mode: 0o600 },
  );
  const program = sfx ? [sfx.file] : [Deno.execPath(), "run", ...DENO_PERMISSIONS, "--quiet", join(root, "main.ts")];
  const s = await timed([...program, "run", "--quiet", "-c", conf], w, sfx?.env);
  const hist = JSON.parse((await Deno.readTextFile(join(w, "state/history.jsonl"))).trim().split("\n").pop()!);
  if (hist.status !== "ok") throw new Error(`archivist run: ${hist.status}`);
  s.steps = Object.fromEntries((hist.steps as { step: string; durationMs: number }[]).map((x) => [x.step, x.durationMs]));
  await Deno.remove(w, { recursive: true });
  return s;
}

async function pipeline(name: string, i: number): Promise<Sample> {
  const w = join(dir, `${name}${i}`);
  await Deno.mkdir(join(w, "work"), { recursive: true });
  await Deno.mkdir(join(w, "dest"));
  const s = await timed(["bash", "-c", PIPELINES[name]], join(w, "work"));
  await Deno.remove(w, { recursive: true });
  return s;
}

const only = opt("--only")?.split(",");
const names = ["archivist", ...(encrypt ? ["plain"] : []), ...Object.keys(PIPELINES)].filter((n) => !only || only.includes(n));
if (!names.includes("archivist")) {
  console.error("deno task bench: --only must include archivist (the ratios are archivist's)");
  Deno.exit(2);
}
const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
say(
  `dump ${mib} MiB (${dumpSize} bytes), zip ${(zipSize / 2 ** 20).toFixed(0)} MiB; archive.recompress: ${
    recompress ? "always" : "auto"
  }; archive.verify: ${verify ?? "default"}; ${runs} runs each, alternating`,
);
/** The median. */
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Idle time after each run's `sync`, before the next run. */
const SETTLE_MS = 2000;

/**
 * One run of contender `n`, then, not timed, `sync` and 2 s idle: a pipeline's dirty pages are written back before
 * the next contender starts, not during it, and the next run starts on an idle machine (right after pigz had both
 * cores busy for seconds, the next run's same work took 15-20 % more CPU time here).
 */
const runOne = async (n: string, i: number) => {
  const s = await (n === "archivist" ? archivist(i) : n === "plain" ? archivist(i, false) : pipeline(n, i));
  await sh("sync", []);
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  return s;
};
/** The start's timings (--start), taken after the runs, with the same self-extracting file. */
let start: Awaited<ReturnType<typeof startTimes>> | undefined;
try {
  for (const n of names) await runOne(n, -1);
  say(
    `  warm-up round done (${names.join(", ")}: once each, not counted)${
      sfx ? `; archivist runs ${sfx.file}` : "; archivist runs deno run main.ts (--source)"
    }`,
  );
  for (let i = 0; i < runs; i++) {
    for (const n of names) {
      const s = await runOne(n, i);
      samples[n].push(s);
      say(
        `  run ${i + 1} ${n.padEnd(9)} ${s.wall.toFixed(2)} s wall, ${s.cpu.toFixed(2)} s CPU, ${
          (s.rssKiB / 1024).toFixed(0)
        } MiB peak RSS${
          s.steps ? ` (${Object.entries(s.steps).filter(([, ms]) => ms >= 100).map(([k, ms]) => `${k} ${ms} ms`).join(", ")})` : ""
        }`,
      );
    }
  }
  if (args.includes("--start")) start = await startTimes();
} finally {
  await nginx.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** `deno task dist --no-compile` into `out`: the self-extracting file, run with its own cache directory. */
async function buildSfx(out: string): Promise<{ file: string; env: Record<string, string> }> {
  await sh(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-run",
    "--allow-env",
    join(root, "tools/dist.ts"),
    "--no-compile",
    "--out",
    out,
  ]);
  return { file: join(out, "archivist"), env: { ARCHIVIST_CACHE: join(out, "cache") } };
}

/**
 * `--version` of the self-extracting file the runs used (built here with --source; cache warm: the stamp path) and of
 * `deno run main.ts`: median seconds. The first start is timed in a cache of its own (it unpacks and checks
 * everything).
 */
async function startTimes(): Promise<{ sfx: number; source: number; firstSfx: number }> {
  const out = await Deno.makeTempDir({ prefix: "archivist-bench-dist-" });
  try {
    const { file } = sfx ?? await buildSfx(out);
    const env = { ARCHIVIST_CACHE: join(out, "cache") };
    const once = async (argv: string[]) => {
      const t = performance.now();
      const r = await new Deno.Command(argv[0], { args: argv.slice(1), env, stdout: "null", stderr: "null" }).output();
      if (!r.success) throw new Error(`${argv.join(" ")} failed (${r.code})`);
      return (performance.now() - t) / 1000;
    };
    const installed = [file, "--version"];
    const source = [Deno.execPath(), "run", ...DENO_PERMISSIONS, "--quiet", join(root, "main.ts"), "--version"];
    const firstSfx = await once(installed); // unpacks and checks everything
    const a: number[] = [], b: number[] = [];
    for (let i = 0; i < 15; i++) (a.push(await once(installed)), b.push(await once(source)));
    return { sfx: med(a), source: med(b), firstSfx };
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}

const m = Object.fromEntries(names.map((n) => [n, {
  wall: med(samples[n].map((s) => s.wall)),
  cpu: med(samples[n].map((s) => s.cpu)),
  rssMiB: med(samples[n].map((s) => s.rssKiB)) / 1024,
}]));
const stepNames = Object.keys(samples.archivist[0].steps ?? {});
const stepMs = Object.fromEntries(stepNames.map((st) => [st, med(samples.archivist.map((s) => s.steps![st] ?? 0))]));
const mbps = (bytes: number, ms: number) => (ms > 0 ? bytes / 2 ** 20 / (ms / 1000) : Infinity);
const stageRates = {
  fetch: mbps(zipSize, stepMs.fetch ?? 0),
  unzip: mbps(dumpSize, stepMs.unzip ?? 0),
  pack: mbps(dumpSize, stepMs.pack ?? 0),
  store: mbps(zipSize, stepMs.store ?? 0),
};
const ratios = Object.fromEntries(
  names.filter((n) => n !== "archivist").map((p) => [p, {
    wall: m.archivist.wall / m[p].wall,
    cpu: m.archivist.cpu / m[p].cpu,
    rss: m.archivist.rssMiB / m[p].rssMiB,
  }]),
);

if (json) {
  console.log(
    JSON.stringify(
      { dumpBytes: dumpSize, zipBytes: zipSize, recompress, runs, medians: m, ratios, stepMs, stageRatesMiBps: stageRates, start },
      null,
      2,
    ),
  );
} else {
  console.log(`\nmedians of ${runs}:`);
  for (const n of names) {
    console.log(
      `  ${n.padEnd(9)} ${m[n].wall.toFixed(2).padStart(7)} s wall ${m[n].cpu.toFixed(2).padStart(7)} s CPU ${
        m[n].rssMiB.toFixed(0).padStart(5)
      } MiB peak RSS`,
    );
  }
  console.log(`\narchivist / x:      wall     CPU     peak RSS`);
  for (const [p, r] of Object.entries(ratios)) {
    console.log(`  ${p.padEnd(16)} ${r.wall.toFixed(2).padStart(6)}× ${r.cpu.toFixed(2).padStart(6)}× ${r.rss.toFixed(2).padStart(8)}×`);
  }
  if (ratios.plain) console.log(`  encryption's cost (archivist ÷ plain): ${((ratios.plain.wall - 1) * 100).toFixed(0)} % wall`);
  if (start) {
    console.log(
      `\nstart (--version, median of 15): self-extracting file ${start.sfx.toFixed(3)} s, deno run main.ts ${start.source.toFixed(3)} s: ${
        (start.sfx / start.source).toFixed(2)
      }× (first start, unpacking: ${start.firstSfx.toFixed(2)} s)`,
    );
  }
  console.log(`\narchivist per step (median ms, MiB/s of the zip for fetch/store, of the dump for unzip/pack):`);
  for (const st of stepNames) {
    const rate = (stageRates as Record<string, number>)[st];
    console.log(
      `  ${st.padEnd(10)} ${String(Math.round(stepMs[st])).padStart(7)} ms${
        rate !== undefined && isFinite(rate) ? `  ${rate.toFixed(0)} MiB/s` : ""
      }`,
    );
  }
}
