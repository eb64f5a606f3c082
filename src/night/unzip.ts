/**
 * unzip: find `source.entry` in the zip's central directory and read it whole, checking CRC-32 and size while
 * streaming; the sha256, the content fingerprint and the last KiB are measured in the same pass for compare and
 * check. Nothing is written: pack reads the entry from the zip again (copying its deflate bytes, or re-inflating).
 * The entry's name is never used as a path on disk.
 */
import { ArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { findEntry, readDirectory, verifyEntry, ZipError } from "../formats/zip.ts";
import { Fingerprinter, FingerprintWorker } from "../formats/fingerprint.ts";
import { canCollect, GC_EVERY } from "../os/memory.ts";
import type { RunContext, RunData, Step, StepOutcome } from "./types.ts";

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

export const unzipStep: Step = {
  name: "unzip",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const zipPath = data.zipPath!;
    try {
      const dir = await readDirectory(zipPath);
      const entry = findEntry(dir, ctx.config.source.entry);
      ctx.log.info(
        "unzip",
        `entry ${entry.name}: ${formatSize(entry.size)} (${formatSize(entry.compressedSize)} compressed, ${
          entry.method === 8 ? "deflate" : "stored"
        }${entry.zip64 || dir.zip64 ? ", zip64" : ""})`,
      );
      // On a second core for a dump of some size (a worker costs ~50 ms to start), in this thread otherwise. The
      // worker also takes the byte sha256: this thread's inflate is then the only large work left here.
      const patterns = ctx.config.check.ignore_lines.map((s) => new RegExp(s));
      const fp = entry.size > 16 * 2 ** 20 ? new FingerprintWorker(patterns, { bytes: true }) : new Fingerprinter(patterns);
      const where = fp instanceof FingerprintWorker
        ? "sha256 and content fingerprint on a second core (a worker)"
        : "content fingerprint in this thread";
      const memory = canCollect()
        ? `garbage collected every ${formatSize(GC_EVERY)} (flat memory)`
        : "the runtime was started without --v8-flags=--expose-gc: memory is left to V8's own pace (a higher peak)";
      ctx.log.debug("unzip", `${where}; ${memory}`);
      let seen = 0;
      ctx.progress.start("verify", entry.size);
      const ex = await verifyEntry(zipPath, entry, {
        maxSize: ctx.config.check.max_unpacked_size,
        maxRatio: ctx.config.check.max_ratio,
        signal: ctx.signal,
        sha256Elsewhere: fp instanceof FingerprintWorker,
        onChunk: (c) => {
          ctx.progress.update(seen += c.length);
          return fp.update(c);
        },
      }).catch((e) => {
        if (fp instanceof FingerprintWorker) fp.close();
        throw e;
      }).finally(() => ctx.progress.end());
      // With archive.verify the worker stays for pack's read-back (a second worker would add its isolate's memory).
      const keep = ctx.config.archive.verify;
      const f = fp instanceof FingerprintWorker ? await fp.digest({ keep }) : fp.digest();
      if (keep && fp instanceof FingerprintWorker) data.readBackWorker = fp;
      data.dumpFingerprint = f.sha256;
      data.dumpFlavour = f.flavour;
      data.dumpIgnored = f.ignored;
      const ignored = Object.entries(f.ignored).map(([re, n]) => `${n} × /${re}/`).join(", ");
      ctx.log.info("unzip", `content fingerprint ${f.sha256.slice(0, 16)}… (${f.flavour} dump${ignored ? `; left out: ${ignored}` : ""})`);
      data.dumpName = memberName(entry.name, ctx.config.source.entry, ctx.config.archive.member_name);
      if (data.dumpName !== entry.name.split("/").pop()) {
        ctx.log.info(
          "unzip",
          `the entry ${JSON.stringify(entry.name)} is stored in the archive as ${data.dumpName}${
            ctx.config.archive.member_name
              ? " (archive.member_name)"
              : entry.name === "-" || entry.name === ""
              ? " (a zip written from a pipe names its entry '-')"
              : ""
          }`,
        );
      }
      data.entry = entry;
      data.entryDataStart = ex.dataStart;
      data.dumpMtime = entry.mtime;
      data.dumpSize = ex.size;
      const sha256 = ex.sha256 ?? f.bytesSha256;
      if (!sha256) throw new Error("unzip: no sha256 of the dump was computed"); // a bug, never a silent gap
      data.dumpSha256 = sha256;
      data.dumpTail = ex.tail;
      return { status: "ok", message: `${data.dumpName}: ${formatSize(ex.size)}, CRC-32 ok, sha256 ${sha256}` };
    } catch (e) {
      if (e instanceof ZipError) throw new ArchivistError("unzip", e.message, e.hint, { code: e.code, cause: e });
      throw e;
    }
  },
};
