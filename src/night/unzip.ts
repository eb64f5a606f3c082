/**
 * unzip: find `source.entry` in the zip's central directory and read it whole, checking CRC-32 and size while
 * streaming; the sha256, the content fingerprint and the last KiB are measured in the same pass for compare and
 * check. Nothing is written: pack reads the entry from the zip again (copying its deflate bytes, or re-inflating).
 * The entry's name is never used as a path on disk.
 */
import { ArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { type EntryBytes, findEntry, readDirectory, verifyEntry, type ZipEntry, ZipError } from "../formats/zip.ts";
import { Fingerprinter, FingerprintWorker } from "../formats/fingerprint.ts";
import { canCollect, GC_EVERY } from "../os/memory.ts";
import type { Done, Download, Dump, Measured, Night } from "./types.ts";

/**
 * The dump's name inside the .tgz: archive.member_name; else the entry's base name, unless it is "-" or empty (a zip
 * written from a pipe: `mysqldump | zip - -`), then source.entry when it is a plain name, else "dump.sql".
 */
export function memberName(entryName: string, configured: string, override?: string): string {
  if (override) return override;
  const base = entryName.split("/").pop()!.replace(/^\.+/, "");
  if (base && base !== "-") return base;
  const plain = configured.split("/").pop()!;
  return plain && plain !== "-" && !/[*?[\]]/.test(plain) && !plain.startsWith(".") ? plain : "dump.sql";
}

/** unzip: read the zip's entry through, verified, measured; the runner's `Dump`. */
export async function openDump(n: Night, zip: Download): Promise<Done<Dump>> {
  try {
    const dir = await readDirectory(zip.path);
    const entry = findEntry(dir, n.config.source.entry);
    n.log.info(
      "unzip",
      `entry ${entry.name}: ${formatSize(entry.size)} (${formatSize(entry.compressedSize)} compressed, ${
        entry.method === 8 ? "deflate" : "stored"
      }${entry.zip64 || dir.zip64 ? ", zip64" : ""})`,
    );
    const { extracted: ex, fingerprint: f, worker, packed } = await earlyPass(n, zip, entry) ?? await measure(n, zip.path, entry);
    const ignored = Object.entries(f.ignored).map(([re, k]) => `${k} × /${re}/`).join(", ");
    n.log.info("unzip", `content fingerprint ${f.sha256.slice(0, 16)}… (${f.flavour} dump${ignored ? `; left out: ${ignored}` : ""})`);
    const name = memberName(entry.name, n.config.source.entry, n.config.archive.member_name);
    if (name !== entry.name.split("/").pop()) n.log.info("unzip", renamedNote(entry.name, name, n.config.archive.member_name));
    const sha256 = ex.sha256 ?? f.bytesSha256;
    if (!sha256) throw new Error("unzip: no sha256 of the dump was computed"); // a bug, never a silent gap
    const dump: Dump = {
      zip,
      name,
      entry,
      dataStart: ex.dataStart,
      size: ex.size,
      sha256,
      fingerprint: f.sha256,
      flavour: f.flavour,
      ignored: f.ignored,
      mtime: entry.mtime,
      tail: ex.tail,
      readBackWorker: worker,
      packed,
    };
    return { status: "ok", message: `${name}: ${formatSize(ex.size)}, CRC-32 ok, sha256 ${sha256}`, value: dump };
  } catch (e) {
    void zip.early?.result.then((m) => "why" in m || m.worker?.close()); // a pass the night no longer needs
    if (e instanceof ZipError) throw new ArchivistError("unzip", e.message, e.hint, { code: e.code, cause: e });
    throw e;
  }
}

/**
 * Inflate the entry once, checking CRC-32 and size, with the fingerprint (and the byte sha256) taken on the way: on a
 * second core for a dump of some size (a worker costs ~50 ms to start), in this thread otherwise. With archive.verify
 * the worker is kept for pack's read-back (a second worker would add its isolate's memory).
 */
export async function measure(n: Night, zipPath: string, entry: ZipEntry, from?: EntryBytes): Promise<Measured> {
  const patterns = n.config.check.ignore_lines.map((s) => new RegExp(s));
  const fp = entry.size > 16 * 2 ** 20 ? new FingerprintWorker(patterns, { bytes: true }) : new Fingerprinter(patterns);
  const where = fp instanceof FingerprintWorker
    ? "sha256 and content fingerprint on a second core (a worker)"
    : "content fingerprint in this thread";
  const memory = canCollect()
    ? `garbage collected every ${formatSize(GC_EVERY)} (flat memory)`
    : "the runtime was started without --v8-flags=--expose-gc: memory is left to V8's own pace (a higher peak)";
  n.log.debug("unzip", `${where}; ${memory}`);
  let seen = 0;
  n.progress.start("verify", entry.size);
  const ex = await verifyEntry(zipPath, entry, {
    maxSize: n.config.check.max_unpacked_size,
    maxRatio: n.config.check.max_ratio,
    signal: n.signal,
    sha256Elsewhere: fp instanceof FingerprintWorker,
    onChunk: (c) => {
      n.progress.update(seen += c.length);
      return fp.update(c);
    },
  }, from).catch((e) => {
    if (fp instanceof FingerprintWorker) fp.close();
    throw e;
  }).finally(() => n.progress.end());
  const keep = n.config.archive.verify;
  const f = fp instanceof FingerprintWorker ? await fp.digest({ keep }) : fp.digest();
  return { entry, extracted: ex, fingerprint: f, worker: keep && fp instanceof FingerprintWorker ? fp : undefined };
}

/** The pass made while the zip downloaded (./early.ts), when the central directory's entry is the one it read. */
async function earlyPass(n: Night, zip: Download, entry: ZipEntry): Promise<Measured | undefined> {
  if (!zip.early) return undefined;
  const stop = zip.early.show(n.progress);
  const m = await zip.early.result.finally(stop);
  if ("why" in m) {
    n.log.debug("unzip", `read after the download (${m.why})`);
    return undefined;
  }
  const differs = differences(m.entry, entry);
  if (differs) {
    m.worker?.close();
    if (m.packed) await Deno.remove(m.packed.path).catch(() => {});
    n.log.debug("unzip", `read after the download (${differs})`);
    return undefined;
  }
  n.log.debug("unzip", "read while downloading: the central directory names the entry the first local header described");
  return m;
}

/** Why the entry read early is not the central directory's `entry` (undefined: it is). */
function differences(early: ZipEntry, entry: ZipEntry): string | undefined {
  const keys = ["name", "localHeaderOffset", "method", "flags", "crc32", "compressedSize", "size"] as const;
  const diff = keys.filter((k) => early[k] !== entry[k]);
  return diff.length ? `the central directory's entry differs from the first local header in ${diff.join(", ")}` : undefined;
}

/** Why the dump's name in the archive is not the entry's. */
function renamedNote(entryName: string, name: string, configured?: string): string {
  return `the entry ${JSON.stringify(entryName)} is stored in the archive as ${name}${
    configured ? " (archive.member_name)" : entryName === "-" || entryName === "" ? " (a zip written from a pipe names its entry '-')" : ""
  }`;
}
