/** Pieces shared by the network transports: common config keys and error construction. */
import { ArchivistError } from "../errors.ts";
import { exec, type ExecProgress, type ExecResult, MissingToolError } from "../os/exec.ts";
import { bool, duration, int, nonEmpty, oneOf, str } from "../config/fields.ts";

/** Keys every network destination has. */
export function networkFields(defaultPort: number) {
  return {
    host: nonEmpty("host name").doc("Server host name or IP address.", "backup.example.org"),
    port: int(1, 65535).default(defaultPort).doc(`TCP port (default ${defaultPort}).`, defaultPort),
    create_dirs: bool().default(false).doc("Create the remote directory when it is missing. Off: a missing directory is an error."),
    timeout: duration().timer().default(30_000).doc("Connect timeout; transfers fail when stalled this long.", "30s"),
  };
}

/** A remote directory path: no quotes, newlines or backslashes (they would break the tools' command syntax). */
export function remoteDir() {
  return str(
    (s) => (/["\n\r\\]/.test(s) ? "must not contain quotes, backslashes or newlines" : s.trim() === "" ? "must not be empty" : undefined),
    "remote path",
  );
}

export const verifyField = oneOf("size", "checksum").default("size").doc(
  "After upload: compare the remote size (size), or also download the archive back and compare its sha256 (checksum).",
);

/** The one wording of a full destination, whatever the protocol said (quoted in `detail`). */
export function diskFull(what: string, where: string, detail: string): ReturnType<typeof storeErr> {
  return storeErr(
    "disk_full",
    `${what}: no space left on the destination ${where} (${detail})`,
    "free space on the destination (or raise its quota), or shorten retention; nothing was stored, the next run tries again",
  );
}

/**
 * The name of a short-lived test file on a destination (verify's probe, ftps's test write after a cut upload): not a
 * dot-file (some servers hide or refuse those), never a name an archive pattern can match. PROBE_NAME also matches
 * the hidden form of earlier versions and a `.part` left by a killed upload, so any of them can be cleaned up.
 */
export function probeName(): string {
  return `archivist-probe-${crypto.randomUUID().slice(0, 8)}`;
}
export const PROBE_NAME = /^\.?archivist-probe-[0-9a-f]{8}(\.part)?$/;

/**
 * Is `entry` the body temp file a WebDAV server (nginx) leaves beside `name` when a PUT fails (`NAME.0000000004`)?
 * Whoever speaks WebDAV (the webdav transport, rclone's webdav backend) removes them after a failed upload.
 */
export function isBodyTempOf(entry: string, name: string): boolean {
  return entry.startsWith(`${name}.`) && /^\d{10}$/.test(entry.slice(name.length + 1));
}

/** A store-step error with a code. */
export function storeErr(code: string, message: string, hint = ""): ArchivistError {
  return new ArchivistError("store", message, hint, { code });
}

/**
 * What a transfer tool's stderr said, or, when it said nothing, what its exit status tells: 141 is SIGPIPE (the
 * connection it wrote to was gone), 137 SIGKILL (killed, maybe by the kernel's out-of-memory killer), 128+N another
 * signal. Never an empty cause after a colon.
 */
export function toolSaid(first: string, tool: string, code: number): string {
  if (first) return first;
  if (code === 141) return `${tool} was cut off writing to the connection (SIGPIPE): the connection to the server was lost`;
  if (code === 137) return `${tool} was killed (SIGKILL: by hand, or by the kernel when memory ran out)`;
  if (code > 128) return `${tool} was ended by signal ${code - 128}`;
  return `${tool} printed no error`;
}

/** Turn a missing client tool into a clear store error. */
export function toolMissing(e: unknown): never {
  if (e instanceof MissingToolError) throw storeErr("missing_tool", e.message, "install the client tool on this machine");
  throw e;
}

/** Refuse a file name that is not a plain name in the destination directory. */
export function checkName(name: string): string {
  if (/[/\\\n\r"]/.test(name) || name === "" || name === "." || name === "..") {
    throw storeErr("bad_name", `refusing the file name ${JSON.stringify(name)}`);
  }
  return name;
}

/** Join a remote directory and a file name with '/'. */
export function rjoin(dir: string, name: string): string {
  checkName(name);
  return dir === "" || dir === "." ? name : `${dir.replace(/\/+$/, "")}/${name}`;
}

/** Parse an `ls -l` style line (sftp, FTP LIST): permissions, size, name. */
export function parseLsLine(line: string): { name: string; size: number; isDir: boolean; mtime?: Date } | undefined {
  // Exactly one space separates the date from the name: leading and trailing spaces belong to the name
  // (" 20261122.tgz" is a foreign file, not our archive).
  const m = /^([\-dlbcps][rwxsStT\-]{9}[+@.]?)\s+(?:\d+|\?)\s+\S+\s+\S+\s+(\d+)\s+(\w{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4})) (.+)$/.exec(
    line.replace(/\r$/, ""),
  );
  if (!m) return undefined;
  let name = m[4];
  if (m[1][0] === "l") name = name.replace(/ -> .*$/, "");
  name = name.split("/").pop()!;
  const t = Date.parse(`${m[3]}${/:\d{2}$/.test(m[3]) ? ` ${new Date().getUTCFullYear()}` : ""} UTC`);
  return { name, size: Number(m[2]), isDir: m[1][0] === "d", mtime: Number.isNaN(t) ? undefined : new Date(t) };
}

/** A netrc line; values with spaces or quotes are quoted (curl ≥ 7.84 reads quoted netrc tokens). */
export function netrcLine(host: string, user: string, password: string): string {
  const tok = (s: string) => (/[\s"\\]/.test(s) ? `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : s);
  return `machine ${tok(host)} login ${tok(user)} password ${tok(password)}\n`;
}

/** Parse an `ls -l` listing (sftp `ls -lan`, FTP `LIST -a`) without the . and .. entries. */
export function parseLsListing(text: string): { name: string; size: number; isDir: boolean; mtime?: Date }[] {
  return text.split("\n").map(parseLsLine).filter((e) => e !== undefined && e.name !== "." && e.name !== "..") as {
    name: string;
    size: number;
    isDir: boolean;
    mtime?: Date;
  }[];
}

/** The error for a missing remote directory when create_dirs is off. */
export function missingDir(path: string, where: string) {
  return storeErr("missing_dir", `remote directory ${path} does not exist on ${where}`, "create it, or set destination.create_dirs: true");
}

/**
 * Every level of a directory path, outermost first, for creating it one level at a time.
 * @example dirLevels("/srv/backup/db") // ["/srv", "/srv/backup", "/srv/backup/db"]
 */
export function dirLevels(path: string): string[] {
  const abs = path.startsWith("/");
  const parts = path.split("/").filter(Boolean);
  return parts.map((_, i) => (abs ? "/" : "") + parts.slice(0, i + 1).join("/"));
}

/** An upload whose progress is wanted: the file's size and who hears the bytes sent. */
export interface UploadProgress {
  size: number;
  onBytes: (done: number) => void;
}

/** The progress wanted for uploading `localPath`: its size and `onBytes`, or none when no one listens. */
export async function uploadProgress(localPath: string, onBytes?: (done: number) => void): Promise<UploadProgress | undefined> {
  return onBytes && { size: (await Deno.stat(localPath)).size, onBytes };
}

/** A tool that tells how far it is as a percentage (the first group of `re`, read in a segment of `stream`). */
export function percentProgress(p: UploadProgress, stream: ExecProgress["stream"], re: RegExp): ExecProgress {
  return {
    stream,
    parse: (seg) => {
      const m = re.exec(seg);
      return m ? Math.min(p.size, Math.round((p.size * Number(m[1])) / 100)) : undefined;
    },
    onBytes: p.onBytes,
  };
}

/** curl's progress bar: "######    45.2%". */
const CURL_BAR = /^[#\s]*(\d{1,3}(?:\.\d)?)%\s*$/;

/**
 * Run curl with the options every curl transport shares: quiet with errors shown, a connect timeout, a stall
 * timeout (under 1 byte/s for `timeoutMs`, at least 30 s), the CA file, and the protocol's own `args`.
 * A missing curl becomes a store error naming the Debian package.
 */
export async function curl(
  args: string[],
  opts: { timeoutMs: number; caFile?: string; progress?: UploadProgress },
): Promise<ExecResult> {
  const s = Math.max(1, Math.round(opts.timeoutMs / 1000));
  const p = opts.progress;
  const base = [
    // With progress wanted, curl's bar on stderr ("####   45.2%"), read and left out of what errors are judged on.
    p ? "--progress-bar" : "--silent",
    "--show-error",
    "--connect-timeout",
    String(s),
    "--speed-limit",
    "1",
    "--speed-time",
    String(Math.max(s, 30)),
    ...(opts.caFile ? ["--cacert", opts.caFile] : []),
  ];
  try {
    return await exec("curl", [...base, ...args], p ? { progress: percentProgress(p, "stderr", CURL_BAR) } : {}, "curl");
  } catch (e) {
    toolMissing(e);
  }
}
