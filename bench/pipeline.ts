/**
 * `deno task bench`: archivist's unzip → check → hash → pack against the equivalent shell pipeline, in the same
 * run, on the same generated dump; prints times, peak memory and the ratios. Not a test: nothing asserts a time.
 *
 *   deno task bench [SIZE_MB]     (default 256)
 *
 * Shell pipeline: unzip -p | tee >(sha256sum) > dump ; tar -czf (gzip -6) ; sha256sum archive.
 */
import { join } from "node:path";
import { sh, sqlDump } from "../tools/fixtures.ts";

const sizeMb = Number(Deno.args[0] ?? 256);
const dir = await Deno.makeTempDir({ prefix: "archivist-bench-" });
const root = new URL("..", import.meta.url).pathname;

console.log(`generating a ${sizeMb} MiB mysqldump-like dump and zipping it (Info-ZIP zip -6)...`);
const chunk = sqlDump(16 * 1024 * 1024, { seed: 3 });
const dumpPath = join(dir, "dump.sql");
const f = await Deno.open(dumpPath, { write: true, create: true });
for (let i = 0; i < sizeMb / 16; i++) await f.write(chunk);
f.close();
const zip = join(dir, "dump.zip");
await sh("zip", ["-q", "-6", "-j", zip, dumpPath]);
await Deno.remove(dumpPath);

async function timed(cmd: string[], cwd?: string): Promise<{ ms: number; peakKiB: number; out: string }> {
  const t = performance.now();
  const r = await new Deno.Command("/usr/bin/time", { args: ["-f", "%M", ...cmd], cwd, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - t;
  const err = new TextDecoder().decode(r.stderr).trim().split("\n");
  if (!r.success) throw new Error(`${cmd.join(" ")} failed: ${err.join("\n")}`);
  return { ms, peakKiB: Number(err.pop()), out: new TextDecoder().decode(r.stdout) };
}

const runs = 3;
const arch: number[] = [], shell: number[] = [];
let archPeak = 0, shellPeak = 0;
for (let i = 0; i < runs; i++) {
  const w1 = join(dir, `a${i}`), w2 = join(dir, `s${i}`);
  await Deno.mkdir(w1);
  await Deno.mkdir(w2);
  const a = await timed([Deno.execPath(), "run", "--allow-all", "--quiet", join(root, "bench/stages.ts"), zip, w1, "6"], root);
  arch.push(a.ms);
  archPeak = Math.max(archPeak, a.peakKiB);
  const s = await timed([
    "bash",
    "-c",
    `set -e; unzip -p ${zip} dump.sql | tee >(sha256sum > dump.sha) > dump.sql; tar -cf - dump.sql | gzip -6 > out.tgz; sha256sum out.tgz > out.sha`,
  ], w2);
  shell.push(s.ms);
  shellPeak = Math.max(shellPeak, s.peakKiB);
  const archSha = JSON.parse(a.out).dumpSha;
  const shellSha = (await Deno.readTextFile(join(w2, "dump.sha"))).split(" ")[0];
  if (archSha !== shellSha) throw new Error(`sha256 differs: ${archSha} vs ${shellSha}`);
  await Deno.remove(w1, { recursive: true });
  await Deno.remove(w2, { recursive: true });
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const a = med(arch), s = med(shell);
console.log(`\nunzip + CRC + sha256 + tar + gzip -6 + sha256 of a ${sizeMb} MiB dump (median of ${runs} runs):`);
console.log(
  `  archivist (deno, in-process):  ${(a / 1000).toFixed(2)} s  ${(sizeMb / (a / 1000)).toFixed(0)} MiB/s  peak RSS ${
    (archPeak / 1024).toFixed(0)
  } MiB`,
);
console.log(
  `  shell (unzip|tee|sha256sum; tar|gzip; sha256sum): ${(s / 1000).toFixed(2)} s  ${(sizeMb / (s / 1000)).toFixed(0)} MiB/s  peak RSS ${
    (shellPeak / 1024).toFixed(0)
  } MiB (largest process)`,
);
console.log(`  ratio time archivist/shell: ${(a / s).toFixed(2)}x   ratio peak memory: ${(archPeak / shellPeak).toFixed(1)}x`);
await Deno.remove(dir, { recursive: true });
