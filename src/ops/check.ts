/**
 * `archivist check [--sample N | --all] [--json]`: prove that the destination still holds what the catalogue says.
 *
 *  1. every archive of the catalogue for this destination: present, with the recorded size, with its sidecar;
 *  2. a sample (default 1; the archives whose content was checked longest ago, never-checked first, oldest stored
 *     first) is downloaded: the sha256 must match its sidecar and the catalogue, and the tar is read through to its
 *     end, the dump's sha256 compared with the one recorded when it was archived.
 *
 * Each result goes to the catalogue (`checked` records, which order the next sample) and one line to the history;
 * the exit code is Nagios's, like verify. Nothing on the destination is changed. This is the restore drill that
 * restic users run as `check --read-data-subset`.
 */
import { join } from "node:path";
import type { Clock } from "../os/clock.ts";
import type { Config } from "../config/load.ts";
import type { Env } from "../os/env.ts";
import { asArchivistError, errMsg } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import type { Logger } from "../report/log.ts";
import { appendCatalogue, type CatalogueEntry, entriesAt, readCatalogue } from "../records/catalogue.ts";
import { sidecarName } from "../formats/naming.ts";
import { hashTgz, judgeSidecar, sha256File } from "./restore.ts";
import { withTransport } from "../transports/registry.ts";
import type { Transport } from "../transports/transport.ts";
import { decryptFile, isEncrypted } from "../formats/age.ts";

export type CheckStatus = "ok" | "warn" | "crit";

export interface ArchiveCheck {
  name: string;
  storedAt: string;
  status: CheckStatus;
  /** "size" (listing only) or "content" (downloaded and read through). */
  depth: "size" | "content";
  message: string;
}

export interface CheckReport {
  location: string;
  status: CheckStatus;
  /** Nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
  code: number;
  summary: string;
  archives: ArchiveCheck[];
}

/** Which archives to read back: `sample` of them, or all. */
export interface CheckOptions {
  sample: number;
  all: boolean;
  /** The age private key for encrypted archives (without one their content is not read back). */
  identity?: string;
}

/** The entries to read back, the content checked longest ago first (never first, then oldest stored). */
export function pickSample(entries: CatalogueEntry[], n: number): CatalogueEntry[] {
  return [...entries].sort((a, b) => (a.lastContentCheck?.at ?? "").localeCompare(b.lastContentCheck?.at ?? "") || a.seq - b.seq).slice(
    0,
    n,
  );
}

async function readBack(
  t: Transport,
  e: CatalogueEntry,
  dir: string,
  identity?: string,
): Promise<{ status: CheckStatus; message: string }> {
  const tgz = join(dir, "check.tgz"), side = join(dir, "check.sha256"), plain = join(dir, "check.plain.tgz");
  try {
    await t.download(e.name, tgz);
    await t.download(sidecarName(e.name), side);
    const got = await sha256File(tgz);
    const verdict = judgeSidecar(e.name, got, await Deno.readTextFile(side), e.sha256);
    if (!verdict.ok) return { status: "crit", message: verdict.message };
    if (verdict.sidecarDamaged) return { status: "warn", message: verdict.sidecarDamaged };
    if (e.sha256 && got !== e.sha256) {
      return {
        status: "crit",
        message: `sha256 ${got.slice(0, 16)}… differs from the ${e.sha256.slice(0, 16)}… recorded when it was stored`,
      };
    }
    if (isEncrypted(e.name) && !identity) {
      const on = e.sha256 ? " and the catalogue" : "";
      return {
        status: "ok",
        message:
          `sha256 matches its sidecar${on}; content not read back: it is encrypted and no identity was given (check --identity FILE, or archive.encrypt.identity_file)`,
      };
    }
    if (isEncrypted(e.name)) await decryptFile(tgz, plain, identity!, e.name);
    const dump = await hashTgz(isEncrypted(e.name) ? plain : tgz);
    if (e.dumpSha256 && dump.sha256 !== e.dumpSha256) {
      return {
        status: "crit",
        message: `the dump inside has sha256 ${dump.sha256.slice(0, 16)}…, not the ${e.dumpSha256.slice(0, 16)}… archived`,
      };
    }
    return {
      status: "ok",
      message: `read back: sha256 matches its sidecar${e.sha256 ? " and the catalogue" : ""}, ${dump.name} (${
        formatSize(dump.size)
      }) read to the end${e.dumpSha256 ? ", dump sha256 as archived" : ""}`,
    };
  } catch (err) {
    return { status: "crit", message: `cannot read it back: ${asArchivistError("restore", err).message}` };
  } finally {
    await Deno.remove(tgz).catch(() => {});
    await Deno.remove(plain).catch(() => {});
    await Deno.remove(side).catch(() => {});
  }
}

/** Run the check; never throws for what it finds (a destination it cannot reach is UNKNOWN). */
export async function runCheck(cfg: Config, clock: Clock, env: Env, log: Logger, opts: CheckOptions): Promise<CheckReport> {
  return await withTransport(cfg.destination, { log, env, step: "check" }, async (t, priv) => {
    const list = new Map((await t.list()).map((e) => [e.name, e]));
    const entries = entriesAt(readCatalogue(cfg.state_dir, cfg.name), t.location);
    const results: ArchiveCheck[] = [];
    const sampled = new Set((opts.all ? entries : pickSample(entries, opts.sample)).map((e) => e.name));
    for (const e of entries) {
      const there = list.get(e.name);
      let r: { status: CheckStatus; message: string };
      let depth: "size" | "content" = "size";
      if (!there) {
        // Deleted by a run while we were listing? Then the catalogue says so now.
        const still = entriesAt(readCatalogue(cfg.state_dir, cfg.name), t.location).some((x) => x.name === e.name);
        if (!still) continue;
        r = { status: "crit", message: `missing from ${t.location} (stored ${e.storedAt})` };
      } else if (there.size !== e.size) {
        r = { status: "crit", message: `${there.size} bytes on the destination, ${e.size} recorded when it was stored` };
      } else if (!list.has(sidecarName(e.name))) {
        r = { status: "warn", message: `its ${sidecarName(e.name)} sidecar is missing` };
      } else if (sampled.has(e.name)) {
        depth = "content";
        log.info("check", `reading back ${e.name} (${formatSize(e.size)})`);
        r = await readBack(t, e, priv, opts.identity);
      } else r = { status: "ok", message: `present, ${formatSize(there.size)} as recorded, sidecar present` };
      results.push({ name: e.name, storedAt: e.storedAt, status: r.status, depth, message: r.message });
      (r.status === "ok" ? log.info : log.warn).call(log, "check", `${e.name}: ${r.message}`);
      try {
        const mended = appendCatalogue(cfg.state_dir, cfg.name, {
          op: "checked",
          name: e.name,
          location: t.location,
          at: clock.now().toISOString(),
          ok: r.status === "ok",
          depth,
          message: r.message,
        });
        if (mended) log.warn("check", mended);
      } catch (err) {
        log.warn("check", errMsg(err));
      }
    }
    const worst: CheckStatus = results.some((r) => r.status === "crit") ? "crit" : results.some((r) => r.status === "warn") ? "warn" : "ok";
    const read = results.filter((r) => r.depth === "content");
    const bad = results.filter((r) => r.status !== "ok");
    const summary = !entries.length
      ? `no archive of the catalogue on ${t.location} yet`
      : bad.length
      ? bad.map((r) => `${r.name}: ${r.message}`).join("; ")
      : `${results.length} archive(s) present with their recorded size; ${read.length} read back whole (${
        read.map((r) => r.name).join(", ")
      })`;
    return {
      location: t.location,
      status: worst,
      code: worst === "crit" ? 2 : worst === "warn" ? 1 : 0,
      summary,
      archives: results,
    };
  });
}
