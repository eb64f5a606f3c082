/**
 * The CPU- and I/O-heavy part of a run, in-process, as archivist does it: read the zip's central directory,
 * inflate + CRC-32 + sha256 in one pass, then tar + gzip + sha256 of the archive. Prints JSON with timings and the
 * process's peak RSS (VmHWM). Used by bench/pipeline.ts.
 */
import { join } from "node:path";
import { extractEntry, findEntry, readDirectory } from "../src/zip/reader.ts";
import { packFile } from "../src/steps/pack.ts";

const [zip, work, level] = Deno.args;
const t0 = performance.now();
const dir = await readDirectory(zip);
const entry = findEntry(dir, "dump.sql");
const ex = await extractEntry(zip, entry, join(work, "dump"), { maxSize: 1e12, maxRatio: 1000 });
const t1 = performance.now();
const packed = await packFile(join(work, "dump"), "dump.sql", join(work, "out.tgz"), Number(level), Date.now() / 1000);
const t2 = performance.now();
const hwm = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1];
console.log(JSON.stringify({ unzipMs: t1 - t0, packMs: t2 - t1, peakKiB: Number(hwm), dumpSha: ex.sha256, tgzSize: packed.size }));
