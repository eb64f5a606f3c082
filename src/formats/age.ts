/**
 * Encryption at rest with age (the `age` program, Debian package `age`): an archive becomes `NAME.tgz.age`, encrypted
 * to public keys only, so the nightly run holds no key that opens it; `age -d -i KEY NAME.tgz.age | tar -xzO` gives
 * the dump back. The program streams (stdin to stdout, flat memory) at several hundred MB/s; the npm library was
 * five times slower and holds the whole archive in memory (docs/TECHNICAL.md, "Libraries").
 */
import { createHash } from "node:crypto";
import { ArchivistError } from "../errors.ts";
import { whileRunning } from "../os/cleanup.ts";
import { childEnv } from "../os/exec.ts";

/** The suffix of an encrypted archive (and of its sidecar's archive name). */
export const AGE_SUFFIX = ".age";

export const isEncrypted = (name: string) => name.endsWith(AGE_SUFFIX);

/** The recipients of archive.encrypt: on when any is given. */
export interface AgeRecipients {
  age_recipients: string[];
  age_recipients_file?: string;
}

export const encrypting = (e: AgeRecipients | undefined): e is AgeRecipients =>
  !!e && (e.age_recipients.length > 0 || !!e.age_recipients_file);

/** Start `age args` with archivist's child environment; a missing program is named with its package. */
function spawnAge(args: string[], stdin: "piped" | "null"): Deno.ChildProcess {
  try {
    return new Deno.Command("age", { args, clearEnv: true, env: childEnv(), stdin, stdout: "piped", stderr: "piped" }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ArchivistError("pack", "age is not installed (archive.encrypt needs it)", "apt-get install age", { code: "age_missing" });
    }
    throw e;
  }
}

/** Encrypt `plain` to `out` for the recipients, hashing what is written: the stored bytes' size and sha256. */
export async function encryptFile(
  plain: string,
  out: string,
  to: AgeRecipients,
  signal?: AbortSignal,
): Promise<{ size: number; sha256: string }> {
  const args = [
    "--encrypt",
    ...to.age_recipients.flatMap((r) => ["-r", r]),
    ...(to.age_recipients_file ? ["-R", to.age_recipients_file] : []),
  ];
  const child = spawnAge(args, "piped");
  const unregister = whileRunning(() => child.kill("SIGKILL"));
  const stop = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", stop);
  const hash = createHash("sha256");
  let size = 0;
  try {
    const src = await Deno.open(plain);
    const feed = src.readable.pipeTo(child.stdin).catch(() => {});
    const dest = await Deno.open(out, { write: true, create: true, truncate: true, mode: 0o600 });
    const tap = new TransformStream<Uint8Array, Uint8Array>({
      transform(c, ctl) {
        hash.update(c);
        size += c.length;
        ctl.enqueue(c);
      },
    });
    const [status, err] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
      child.stdout.pipeThrough(tap).pipeTo(dest.writable),
      feed,
    ]);
    signal?.throwIfAborted();
    if (!status.success) {
      throw new ArchivistError(
        "pack",
        `age could not encrypt the archive: ${ageSaid(err, status.code)}`,
        "check archive.encrypt's recipients (age1… public keys, or ssh-ed25519/ssh-rsa lines)",
        {
          code: "age",
        },
      );
    }
    return { size, sha256: hash.digest("hex") };
  } finally {
    signal?.removeEventListener("abort", stop);
    unregister();
  }
}

/** age's own words: its "age: error: ..." line, without the trailer asking for bug reports. */
function ageSaid(stderr: string, code: number): string {
  const lines = stderr.trim().split("\n").filter((l) => l && !/report unexpected or unhelpful errors/.test(l));
  return (lines.find((l) => /error:/.test(l)) ?? lines[0] ?? `exit ${code}`).replace(/^age: (error: )?/, "");
}

/** Decrypt `enc` (the archive `name`) into `out` with the private key in `identity` (restore, check). */
export async function decryptFile(enc: string, out: string, identity: string, name = enc.split("/").pop()!): Promise<void> {
  const child = spawnAge(["--decrypt", "-i", identity, "-o", out, enc], "null");
  const unregister = whileRunning(() => child.kill("SIGKILL"));
  try {
    const o = await child.output();
    if (!o.success) {
      const said = ageSaid(new TextDecoder().decode(o.stderr), o.code);
      throw new ArchivistError(
        "restore",
        `age could not decrypt ${name} with ${identity}: ${said}`,
        "is it the private key of one of archive.encrypt's recipients?",
        {
          code: "age",
        },
      );
    }
  } finally {
    unregister();
  }
}
