/**
 * Encryption at rest with age (the `age` program, Debian package `age`): an archive becomes `NAME.tgz.age`, encrypted
 * to public keys only, so the nightly run holds no key that opens it; `age -d -i KEY NAME.tgz.age | tar -xzO` gives
 * the dump back. The program streams (stdin to stdout, flat memory) at several hundred MB/s; the npm library was
 * five times slower and holds the whole archive in memory (docs/TECHNICAL.md, "Libraries").
 */
import { ArchivistError } from "../errors.ts";
import { whileRunning } from "../os/cleanup.ts";
import { childEnv } from "../os/exec.ts";
import { hashFile } from "../os/fs.ts";

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
function spawnAge(args: string[], stdin: "piped" | "null", stdout: "piped" | "null" = "piped"): Deno.ChildProcess {
  try {
    return new Deno.Command("age", { args, clearEnv: true, env: childEnv(), stdin, stdout, stderr: "piped" }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ArchivistError("pack", "age is not installed (archive.encrypt needs it)", "apt-get install age", { code: "age_missing" });
    }
    throw e;
  }
}

/** Encrypt `plain` to `out` for the recipients: the stored bytes' size and sha256. */
export async function encryptFile(plain: string, out: string, to: AgeRecipients, signal?: AbortSignal): Promise<Sealed> {
  return (await encrypting_(plain, out, to, () => Promise.resolve(undefined), signal)).sealed;
}

/**
 * Encrypt what `write` writes, as it writes it: `write` gets the path of a FIFO that age reads, so the plain archive
 * never lands on the disk. Returns what `write` returned and the stored bytes' size and sha256 (age writes `out`
 * itself and it is hashed after, from the page cache: cheaper for this thread than copying age's output through it,
 * docs/TECHNICAL.md, "Performance").
 */
export async function encryptWhileWriting<T>(
  out: string,
  to: AgeRecipients,
  write: (plainPath: string) => Promise<T>,
  signal?: AbortSignal,
): Promise<{ result: T; sealed: Sealed }> {
  const fifo = `${out}.fifo`;
  const mk = await new Deno.Command("mkfifo", { args: ["-m", "600", fifo], stderr: "piped" }).output();
  if (!mk.success) throw new Error(`mkfifo ${fifo}: ${new TextDecoder().decode(mk.stderr).trim()}`);
  try {
    return await encrypting_(fifo, out, to, write, signal);
  } finally {
    await Deno.remove(fifo).catch(() => {});
  }
}

export interface Sealed {
  size: number;
  sha256: string;
}

/** age reading `input` (a file, or a FIFO `write` fills) into `out`, then hashed; fails with age's own words. */
async function encrypting_<T>(
  input: string,
  out: string,
  to: AgeRecipients,
  write: (input: string) => Promise<T>,
  signal?: AbortSignal,
): Promise<{ result: T; sealed: Sealed }> {
  const args = [
    "--encrypt",
    ...to.age_recipients.flatMap((r) => ["-r", r]),
    ...(to.age_recipients_file ? ["-R", to.age_recipients_file] : []),
    "-o",
    out,
    input,
  ];
  // age writes `out` itself (no copy through this thread); created here first so that it is 0600 like every work file.
  (await Deno.open(out, { write: true, create: true, truncate: true, mode: 0o600 })).close();
  const child = spawnAge(args, "null", "null");
  const stop = () => child.kill("SIGKILL");
  const unregister = whileRunning(stop);
  signal?.addEventListener("abort", stop);
  try {
    const said = new Response(child.stderr).text();
    // age may end before the writer is done (bad recipients): a reader of our own lets a writer blocked on the FIFO go.
    const ended = child.status.then(async (st) => {
      // O_RDWR never blocks on a FIFO (a read-only open would wait for a writer that may be gone).
      if (!st.success) await Deno.open(input, { read: true, write: true }).then((f) => f.close(), () => {});
      return st;
    });
    const result = await write(input).catch(async (e) => {
      const st = await ended;
      if (!st.success) throw ageFailed(await said, st.code);
      throw e;
    });
    const [status, err] = await Promise.all([ended, said]);
    signal?.throwIfAborted();
    if (!status.success) throw ageFailed(err, status.code);
    return { result, sealed: await hashFile(out) };
  } finally {
    signal?.removeEventListener("abort", stop);
    unregister();
  }
}

function ageFailed(stderr: string, code: number): ArchivistError {
  return new ArchivistError(
    "pack",
    `age could not encrypt the archive: ${ageSaid(stderr, code)}`,
    "check archive.encrypt's recipients (age1… public keys, or ssh-ed25519/ssh-rsa lines)",
    { code: "age" },
  );
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
