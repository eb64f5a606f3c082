/**
 * `type: ftps`: FTP over TLS with curl. Explicit TLS (AUTH TLS on port 21) is required by default, implicit TLS
 * (port 990) is an option; plain FTP is not offered. Passive mode. Credentials go in a netrc file (mode 0600)
 * in the run's private dir, never on the command line. Upload: STOR to `NAME.part` (put), then RNFR/RNTO in a
 * session of its own (rename). Listing with MLSD where the server has it, LIST -a where not.
 */
import { join } from "node:path";
import { absPath, bool, Field, FieldError, nonEmpty, obj, oneOf, secretFields } from "../config/fields.ts";
import { type ExecResult, writePrivateFile } from "../os/exec.ts";
import {
  checkName,
  curl,
  dirLevels,
  diskFull,
  missingDir,
  netrcLine,
  networkFields,
  parseLsListing,
  probeName,
  remoteDir,
  storeErr,
  type UploadProgress,
  uploadProgress,
  verifyField,
} from "./common.ts";
import type { RemoteEntry, Transport, TransportContext, TransportKind } from "./transport.ts";

/** 1.2 or 1.3, written as a string or (YAML reads an unquoted 1.2 as a number) as a number. */
const tlsVersion = new Field<"1.2" | "1.3">("1.2 | 1.3", (raw, path) => {
  const v = typeof raw === "number" ? raw.toFixed(1) : raw;
  if (v === "1.2" || v === "1.3") return v;
  throw new FieldError(path, `expected 1.2 or 1.3, got ${JSON.stringify(raw)}`);
});

export const ftpsSchema = obj({
  type: oneOf("ftps").doc("FTP over TLS (curl). Plain FTP is never used.", "ftps"),
  ...networkFields(21),
  user: nonEmpty("user name").doc("FTP user.", "backup"),
  ...secretFields("password", "FTP password", true),
  path: remoteDir().doc("Remote directory, relative to the login directory (start with / for an absolute path).", "backups/db"),
  tls: oneOf("explicit", "implicit").default("explicit").doc(
    "explicit: AUTH TLS on the control port (usually 21). implicit: TLS from the first byte (usually port 990).",
  ),
  ca_file: absPath().trust().optional().doc(
    "PEM file of the CA that signed the server's certificate (when not a public CA).",
    "/etc/archivist/ftp-ca.pem",
  ),
  tls_max: tlsVersion.default("1.2").doc(
    "Highest TLS version offered. 1.2 by default: vsftpd 3.0.x with TLS 1.3 intermittently fails uploads (426) when it requires TLS session reuse on the data connection.",
  ),
  mlsd: bool().default(true).doc("Try MLSD for listings (exact sizes); falls back to LIST when the server lacks it (vsftpd)."),
  verify: verifyField,
});
export type FtpsConfig = ReturnType<typeof ftpsSchema.parse>;

/**
 * curl exit codes → causes. `loggedIn`: a login of this run already worked, so a later timeout or TLS failure is the
 * network or the server's state, never a wrong `tls` setting (the hints follow what already succeeded).
 */
function classify(r: ExecResult, cfg: FtpsConfig, what: string, loggedIn = false) {
  const where = `${cfg.host}:${cfg.port}`;
  const msg = r.stderr.trim().split("\n").filter(Boolean).pop() ?? "";
  if (/protocol version|unsupported protocol|wrong version number|no protocols available/i.test(r.stderr) && cfg.tls_max === "1.2") {
    return storeErr(
      "tls",
      `TLS handshake with ${where} failed: the server speaks no TLS version up to 1.2 (${msg})`,
      'the server wants TLS 1.3: set destination.tls_max: "1.3"',
    );
  }
  if (loggedIn && [28, 35, 56].includes(r.code) && !/got (452|552|451)\b/.test(r.stderr)) {
    return storeErr(
      "transfer_cut",
      `${what}: the connection to ${where} broke during the transfer (${msg}), after the login had worked`,
      "a network or server problem, not the configuration: retried, then the next run tries again; a full disk on the server can look like this too",
    );
  }
  return byExitCode(r, cfg, what, where, msg);
}

/** curl's exit code for an FTPS command, in plain words. */
function byExitCode(r: ExecResult, cfg: FtpsConfig, what: string, where: string, msg: string) {
  switch (r.code) {
    case 6:
      return storeErr("dns", `cannot resolve host ${cfg.host}`, "check destination.host and DNS");
    case 7:
      return storeErr("refused", `connection refused by ${where}`, "is the FTP server running there, on that port?");
    case 28:
      return storeErr(
        "timeout",
        `${what}: timed out talking to ${where}`,
        cfg.tls === "explicit"
          ? "check the network; if the server speaks TLS from the first byte (implicit FTPS, usually port 990), set destination.tls: implicit"
          : "check the network, or raise destination.timeout",
      );
    case 35:
    case 58:
    case 59:
    case 64:
      return storeErr(
        "tls",
        `TLS handshake with ${where} failed (${msg})`,
        cfg.tls === "explicit"
          ? "the server must support AUTH TLS; for implicit FTPS set destination.tls: implicit"
          : "check destination.tls and the port",
      );
    case 60:
    case 77:
    case 83:
      return storeErr(
        "tls_untrusted",
        `TLS certificate of ${where} not trusted (${msg})`,
        cfg.ca_file
          ? `check that destination.ca_file (${cfg.ca_file}) holds the CA that signed the server's certificate`
          : "set destination.ca_file to the PEM of the CA that signed the server's certificate",
      );
    case 67:
      return storeErr("auth", `login refused by ${where} for user ${cfg.user}`, "check destination.user and the password");
    case 9:
      return storeErr(
        "missing_dir",
        `${what}: remote directory ${cfg.path} missing or not accessible on ${where}`,
        "check destination.path, or set destination.create_dirs: true",
      );
    case 78:
      return storeErr("missing_file", `${what}: no such file on ${where}`);
    case 25:
      if (/\b(552|452)\b|space|quota/i.test(r.stderr)) return diskFull(what, where, msg);
      return storeErr("permission", `${what}: upload refused by ${where} (${msg})`, "check the remote directory's permissions");
    case 21:
      if (/550/.test(r.stderr)) return storeErr("permission", `${what}: refused by ${where} (${msg})`, "check permissions on the server");
      return storeErr("transfer", `${what}: FTP command refused by ${where} (${msg})`);
    case 18:
    case 55:
    case 56:
      // The server ended the upload with a storage code: 452 (insufficient storage), 552 (quota), or 451 (a local
      // error on the server; on a STOR that is a failed write, almost always a full disk).
      if (/got (452|552)\b/.test(r.stderr)) return diskFull(what, where, `the server answered ${/got (\d+)/.exec(r.stderr)![1]}`);
      if (/got 451\b/.test(r.stderr) && /upload/.test(what)) {
        return diskFull(what, where, "the server aborted the write with 451, a local error on the server: most often a full disk or quota");
      }
      return storeErr("transfer_cut", `${what}: transfer cut (${msg})`, "the connection dropped; the next run retries");
    default:
      return storeErr("transfer", `${what} failed on ${where} (curl exit ${r.code}: ${msg})`);
  }
}

export class FtpsTransport implements Transport {
  readonly location: string;
  private readonly netrc: string;
  private mlsdWorks: boolean;

  constructor(private readonly cfg: FtpsConfig, private readonly ctx: TransportContext) {
    this.location = `${cfg.tls === "implicit" ? "ftps" : "ftp+tls"}://${cfg.user}@${cfg.host}:${cfg.port}/${
      cfg.path.replace(/^\//, "%2F")
    }`;
    this.netrc = join(ctx.privateDir, "ftps.netrc");
    this.mlsdWorks = cfg.mlsd;
  }

  /** URL of the directory (trailing slash) or of a file in it. An absolute path starts with %2F. */
  private url(name = ""): string {
    const scheme = this.cfg.tls === "implicit" ? "ftps" : "ftp";
    const p = this.cfg.path;
    const segs = p.split("/").filter(Boolean).map(encodeURIComponent);
    return `${scheme}://${this.cfg.host}:${this.cfg.port}/${p.startsWith("/") ? "%2F" : ""}${segs.join("/")}/${encodeURIComponent(name)}`;
  }

  /** A login of this transport worked: later failures are transfers that broke, not a wrong setting. */
  private loggedIn = false;

  /**
   * One curl command, retried twice (1 s, then 3 s later) when a transfer broke after the login had worked: a data
   * connection dropped (426, 425, 421), cut mid-way, or a TLS session that ended (vsftpd over TLS 1.3 does it now and
   * then). Uploads go to a temporary name, so a retry overwrites what the broken one left.
   */
  private async curl(args: string[], what: string, allowFail = false, progress?: UploadProgress): Promise<ExecResult> {
    const ftp = ["--disable-epsv", "--ftp-pasv", "--netrc-file", this.netrc, "--tls-max", this.cfg.tls_max];
    if (this.cfg.tls === "explicit") ftp.push("--ssl-reqd");
    let r!: ExecResult;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt) await new Promise((ok) => setTimeout(ok, attempt === 1 ? 1000 : 3000));
      r = await curl([...ftp, ...args], { timeoutMs: this.cfg.timeout, caFile: this.cfg.ca_file, progress });
      if (r.code === 0 || !this.loggedIn) break;
      const broke = classify(r, this.cfg, what, true);
      if (broke.code !== "transfer_cut" && !/\b(421|425|426)\b/.test(r.stderr)) break;
      if (attempt < 2) this.ctx.log.warn(this.ctx.step ?? "store", `${what}: ${broke.message}; retrying`);
    }
    if (r.code === 0) this.loggedIn = true;
    if (r.code !== 0 && !allowFail) throw classify(r, this.cfg, what, this.loggedIn);
    return r;
  }

  async open(): Promise<void> {
    writePrivateFile(this.netrc, netrcLine(this.cfg.host, this.cfg.user, this.cfg.password!));
    const r = await this.curl(["--list-only", this.url()], `directory ${this.cfg.path}`, true);
    if (r.code === 0) return;
    const e = classify(r, this.cfg, `directory ${this.cfg.path}`);
    if (e.code !== "missing_dir") throw e;
    if (!this.cfg.create_dirs) throw missingDir(this.cfg.path, `${this.cfg.host}:${this.cfg.port}`);
    // Create each level; "*" makes curl ignore the failure of a level that already exists.
    const quotes = dirLevels(this.cfg.path).flatMap((d) => ["-Q", `*MKD ${d}`]);
    const root = `${this.cfg.tls === "implicit" ? "ftps" : "ftp"}://${this.cfg.host}:${this.cfg.port}/`;
    await this.curl(["--list-only", ...quotes, root], `creating ${this.cfg.path}`);
    await this.curl(["--list-only", this.url()], `directory ${this.cfg.path}`);
    this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.cfg.path}`);
  }

  async put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void> {
    checkName(name);
    const progress = await uploadProgress(localPath, onBytes);
    const r = await this.curl(["-T", localPath, this.url(name)], `upload of ${name}`, true, progress);
    if (r.code !== 0) {
      let err = classify(r, this.cfg, `upload of ${name}`, this.loggedIn);
      if (err.code === "transfer_cut") err = (await this.cutCause(name, err)) ?? err;
      await this.curl(["--list-only", this.url(), "-Q", `-DELE ${name}`], "cleanup", true).catch(() => {});
      throw err;
    }
  }

  /**
   * An upload cut mid-transfer: some servers (proftpd) close the data connection on a failed write before curl
   * reads their 451/552, so curl says only "Send failure: Broken pipe". While the partial file still holds its space,
   * a 4 KiB test write tells a full disk (it fails with a storage code) from a network drop (it succeeds).
   */
  private async cutCause(name: string, cut: { message: string }): Promise<ReturnType<typeof diskFull> | undefined> {
    const probe = probeName();
    const local = join(this.ctx.privateDir, probe);
    try {
      await Deno.writeFile(local, new Uint8Array(4096));
      const p = await this.curl(["-T", local, this.url(probe)], `upload of ${probe} (a test write)`, true);
      await this.curl(["--list-only", this.url(), "-Q", `-DELE ${probe}`], "cleanup", true).catch(() => {});
      if (p.code === 0) return undefined;
      const e = classify(p, this.cfg, `upload of ${probe} (a test write)`, this.loggedIn);
      if (e.code !== "disk_full") return undefined;
      return diskFull(
        `upload of ${name}`,
        `${this.cfg.host}:${this.cfg.port}`,
        `${cut.message.replace(/^upload of \S+: /, "")}; a 4 KiB test write then failed: ${
          /\(([^()]*)\)$/.exec(e.message)?.[1] ?? e.message
        }`,
      );
    } catch {
      return undefined;
    } finally {
      await Deno.remove(local).catch(() => {});
    }
  }

  async rename(from: string, to: string): Promise<void> {
    checkName(from);
    checkName(to);
    // Its own session, issued by a living archivist: no curl is ever left behind to finish a rename.
    // Post-transfer quotes ("-" prefix) run after curl has changed into the directory (pre-transfer ones run before).
    await this.curl(["--list-only", this.url(), "-Q", `-RNFR ${from}`, "-Q", `-RNTO ${to}`], `rename of ${from} to ${to}`);
  }

  async list(): Promise<RemoteEntry[]> {
    if (this.mlsdWorks) {
      const r = await this.curl(["-X", "MLSD", this.url()], `listing ${this.cfg.path}`, true);
      if (r.code === 0) return parseMlsd(r.stdout);
      this.mlsdWorks = false; // the server lacks MLSD: LIST from now on
      this.ctx.log.debug(this.ctx.step ?? "store", `MLSD not supported by ${this.cfg.host} (curl exit ${r.code}): using LIST`);
    }
    const r = await this.curl(["-X", "LIST -a", this.url()], `listing ${this.cfg.path}`);
    return parseLsListing(r.stdout);
  }

  async remove(name: string): Promise<void> {
    checkName(name);
    await this.curl(["--list-only", this.url(), "-Q", `-DELE ${name}`], `deleting ${name}`);
  }

  async download(name: string, localPath: string): Promise<void> {
    await this.curl(["-o", localPath, this.url(name)], `download of ${name}`);
  }

  async close(): Promise<void> {
    await Deno.remove(this.netrc).catch(() => {});
  }
}

/** Parse MLSD facts lines: "type=file;size=123;modify=20261122020000; name". */
export function parseMlsd(text: string): RemoteEntry[] {
  const out: RemoteEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const sp = line.indexOf(" ");
    if (sp < 0) continue;
    const facts = Object.fromEntries(
      line.slice(0, sp).split(";").filter(Boolean).map((f) => {
        const [k, ...v] = f.split("=");
        return [k.toLowerCase(), v.join("=")];
      }),
    );
    const name = line.slice(sp + 1);
    if (!facts.type || facts.type === "cdir" || facts.type === "pdir") continue;
    const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})/.exec(facts.modify ?? "");
    out.push({
      name,
      size: Number(facts.size ?? 0),
      isDir: facts.type === "dir",
      mtime: m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined,
    });
  }
  return out;
}

export const ftps: TransportKind<FtpsConfig> = {
  schema: ftpsSchema,
  packages: ["curl"],
  create: (cfg, ctx) => new FtpsTransport(cfg, ctx),
};
