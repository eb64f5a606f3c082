/**
 * store: put the archive and its sidecar on the destination through the Transport (temp name, rename, size check).
 *
 * Before uploading it removes upload temp files left by an interrupted run (they are never taken for archives).
 * An archive of the same name already there is never overwritten: identical content (same sha256 sidecar) means
 * it is already stored; different content gets the next free `-N` name (`20261122-2.tgz`).
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { ArchivistError, asArchivistError } from "../errors.ts";
import { formatSize } from "../config/units.ts";
import { formatName, isTempName, parseName, sidecarName } from "../naming.ts";
import { sidecarText } from "./pack.ts";
import type { RunContext, RunData, Step, StepOutcome } from "../context.ts";
import type { RemoteEntry, Transport } from "../transports/transport.ts";

/** The sha256 recorded in the remote sidecar of `name`, or undefined. */
async function remoteSha(t: Transport, name: string, workDir: string): Promise<string | undefined> {
  const local = join(workDir, "remote.sha256");
  try {
    await t.download(sidecarName(name), local);
    return /^([0-9a-f]{64})\s/.exec(await Deno.readTextFile(local))?.[1];
  } catch {
    return undefined;
  } finally {
    await Deno.remove(local).catch(() => {});
  }
}

/** Download `name` back and compare its sha256 (destination.verify: checksum). */
async function verifyChecksum(t: Transport, name: string, want: string, workDir: string): Promise<void> {
  const local = join(workDir, "readback.tgz");
  try {
    await t.download(name, local);
    const f = await Deno.open(local);
    const h = createHash("sha256");
    for await (const chunk of f.readable) h.update(chunk);
    const got = h.digest("hex");
    if (got !== want) {
      throw new ArchivistError(
        "store",
        `read-back of ${name} from ${t.location} has sha256 ${got}, expected ${want}: the stored copy is damaged`,
        "check the destination's storage; the state was not advanced",
        { code: "checksum_mismatch" },
      );
    }
  } finally {
    await Deno.remove(local).catch(() => {});
  }
}

/** Remove upload leftovers of our own archives (".NAME.part" where NAME is an archive or its sidecar). */
async function cleanTemps(ctx: RunContext, t: Transport, entries: RemoteEntry[]): Promise<void> {
  for (const e of entries) {
    if (!isTempName(e.name)) continue;
    const inner = e.name.slice(1, -".part".length).replace(/\.sha256$/, "");
    if (!parseName(ctx.config.archive.name, inner, ctx.config.name)) continue;
    try {
      await t.remove(e.name);
      ctx.log.warn("store", `removed ${e.name} (${formatSize(e.size)}), left by an interrupted upload`);
    } catch (err) {
      ctx.log.warn("store", `cannot remove leftover ${e.name}: ${asArchivistError("store", err).message}`);
    }
  }
}

export const storeStep: Step = {
  name: "store",
  async run(ctx: RunContext, data: RunData): Promise<StepOutcome> {
    const t = await ctx.destination("store");
    try {
      const entries = await t.list();
      await cleanTemps(ctx, t, entries);
      const names = new Set(entries.map((e) => e.name));
      let name = data.archiveName!;
      for (let seq = 2; names.has(name); seq++) {
        const sha = await remoteSha(t, name, ctx.workDir);
        if (sha === data.archiveSha256) {
          data.archiveName = name;
          data.stored = true;
          data.storedLocation = t.location;
          return { status: "ok", message: `${name} is already on ${t.location} with the same sha256: nothing to upload` };
        }
        const next = formatName(ctx.config.archive.name, ctx.runDate, ctx.config.name, seq);
        ctx.log.warn("store", `${name} already exists on ${t.location} with different content: keeping it, storing this one as ${next}`);
        name = next;
      }
      if (name !== data.archiveName) {
        data.archiveName = name;
        await Deno.writeTextFile(data.sidecarPath!, sidecarText(data.archiveSha256!, name));
      }
      ctx.log.info("store", `uploading ${name} (${formatSize(data.archiveSize!)}) to ${t.location}`);
      const size = await t.upload(data.archivePath!, name);
      if (size !== data.archiveSize) {
        throw new ArchivistError(
          "store",
          `size after upload differs for ${name}: ${size} on ${t.location}, ${data.archiveSize} expected`,
          "check the destination",
          { code: "size_mismatch" },
        );
      }
      let verified = "size verified";
      if ((ctx.config.destination as { verify?: string }).verify === "checksum") {
        try {
          await verifyChecksum(t, name, data.archiveSha256!, ctx.workDir);
        } catch (e) {
          // This run created `name` a moment ago (it did not exist): a damaged copy must not pass for an archive.
          await t.remove(name).then(
            () => ctx.log.warn("store", `removed the damaged copy of ${name} from ${t.location}`),
            (re) => ctx.log.warn("store", `could not remove the damaged copy of ${name}: ${asArchivistError("store", re).message}`),
          );
          throw e;
        }
        verified = "sha256 verified by reading it back";
      }
      await t.upload(data.sidecarPath!, sidecarName(name));
      data.stored = true;
      data.storedLocation = t.location;
      return { status: "ok", message: `stored ${name} (${formatSize(size)}, ${verified}) and ${sidecarName(name)} on ${t.location}` };
    } catch (e) {
      throw asArchivistError("store", e);
    }
  },
};
