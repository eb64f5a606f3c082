/**
 * The files a run trusts — the config itself, secret files, keys, CA files, rclone's config, the programs it runs —
 * are refused when anyone but their owner could change them, or when they belong to another user than the run user
 * or root: whoever can write the config can send the dump anywhere (sshd's StrictModes and cron judge their files
 * the same way). Checked once at load, so every command, verify included, refuses the same files.
 */
import { ConfigError } from "../errors.ts";
import type { Field } from "./fields.ts";

/** Who owns a file, by name where the machine knows it. */
function ownerName(uid: number): string {
  try {
    const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.split(":")[2] === String(uid));
    if (line) return line.split(":")[0];
  } catch { /* no /etc/passwd: the uid alone */ }
  return `uid ${uid}`;
}

const octal = (mode: number) => mode.toString(8).padStart(4, "0");

/**
 * The problem with trusting `file` (described as `what`, e.g. "config file" or "destination.key_file"), or undefined
 * when it is safe or does not exist (a missing file is reported where it is used). `runUid` is the run user's uid.
 */
export function unsafeFile(file: string, what: string, runUid = Deno.uid() ?? 0): ConfigError | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(file);
  } catch {
    return undefined;
  }
  const mode = (st.mode ?? 0) & 0o7777, uid = st.uid ?? 0;
  const owner = ownerName(uid);
  if (mode & 0o022) {
    const who = mode & 0o020 && mode & 0o002 ? "group and others" : mode & 0o020 ? "its group" : "others";
    return new ConfigError(
      `${what} ${file} is writable by ${who} (mode ${
        octal(mode)
      }, owner ${owner}): anyone who can write it could change what archivist does as this user`,
      `run: chmod go-w ${file}${what === "config file" ? `  (the config: chmod 600 ${file})` : ""}`,
      "unsafe_permissions",
    );
  }
  if (uid !== runUid && uid !== 0) {
    const me = ownerName(runUid);
    return new ConfigError(
      `${what} ${file} belongs to ${owner}, but archivist runs as ${me}: only the run user or root may own the files it trusts`,
      `run: chown ${me}: ${file}  (or run archivist as ${owner}: sudo -u ${owner} archivist ...)`,
      "unsafe_owner",
    );
  }
  return undefined;
}

/** Refuse the first unsafe trusted file of a validated config (the fields marked `.trust()`), naming its key. */
export function checkTrustedFiles(f: Field<unknown>, data: unknown, at: string, file: string): void {
  if (!data || typeof data !== "object") return;
  const d = data as Record<string, unknown>;
  const shape = f.variants ? f.variants[String(d.type)]?.children : f.children;
  const item = (f as { item?: Field<unknown> }).item;
  if (item && Array.isArray(data)) {
    data.forEach((x, i) => checkTrustedFiles(item, x, `${at}[${i}]`, file));
    return;
  }
  for (const [k, child] of Object.entries(shape ?? {})) {
    const keyPath = at ? `${at}.${k}` : k;
    // A file path, or a command's program (the first word of an argv list, when it is a path).
    const v = d[k];
    const trustedPath = typeof v === "string" ? v : Array.isArray(v) && typeof v[0] === "string" && v[0].startsWith("/") ? v[0] : undefined;
    if (child.trusted && trustedPath) {
      const problem = unsafeFile(trustedPath, keyPath);
      if (problem) throw new ConfigError(`${file}: ${problem.message}`, problem.hint, problem.code);
    } else checkTrustedFiles(child, d[k], keyPath, file);
  }
}
