/**
 * check: the dump is not empty (nor smaller than check.min_size), and its last KiB matches check.expect_trailer
 * when one is configured: the one check that catches a dump cut short on the database server.
 */
import { ArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import type { Done, Dump, Night } from "./types.ts";

export function checkDump(n: Night, dump: Dump): Promise<Done<void>> {
  const cfg = n.config.check;
  const size = dump.size;
  if (size === 0) {
    throw new ArchivistError(
      "check",
      `the dump ${dump.name} is empty (0 bytes)`,
      "the export on the database server failed: check its logs",
      { code: "empty" },
    );
  }
  if (size < cfg.min_size) {
    throw new ArchivistError(
      "check",
      `the dump ${dump.name} is ${formatSize(size)}, below check.min_size (${formatSize(cfg.min_size)})`,
      "the export is incomplete, or lower check.min_size",
      { code: "too_small" },
    );
  }
  const checks = [`${formatSize(size)} ≥ min_size`];
  if (cfg.expect_trailer) {
    const tail = new TextDecoder("utf-8", { fatal: false }).decode(dump.tail);
    if (!new RegExp(cfg.expect_trailer, "m").test(tail)) {
      const end = JSON.stringify(tail.trimEnd().slice(-80));
      throw new ArchivistError(
        "check",
        `the dump does not end with check.expect_trailer /${cfg.expect_trailer}/: it is probably truncated (it ends with ${end})`,
        "the dump on the server was cut short: check the export job; do not trust this dump",
        { code: "trailer" },
      );
    }
    checks.push("trailer found");
  }
  return Promise.resolve({ status: "ok", message: checks.join(", "), value: undefined });
}
