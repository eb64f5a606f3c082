/**
 * `type: smb`: SMB/CIFS with Samba's `smbclient`, without mounting anything. Credentials go in an auth file
 * (mode 0600) in the run's private dir (`-A`), never on the command line.
 * smbclient exits 0 after a multi-command `-c` even when a command failed, so every critical command runs alone,
 * its output is checked for NT_STATUS_ codes, and the result is verified by listing.
 */
import { join } from "node:path";
import { nonEmpty, obj, oneOf, secretFields } from "../config/fields.ts";
import { exec, type ExecResult, writePrivateFile } from "../os/exec.ts";
import { checkName, dirLevels, diskFull, missingDir, networkFields, remoteDir, storeErr, toolMissing, verifyField } from "./common.ts";
import type { RemoteEntry, Transport, TransportContext, TransportKind } from "./transport.ts";

export const smbSchema = obj({
  type: oneOf("smb").doc("SMB/CIFS share through smbclient (no mount needed).", "smb"),
  ...networkFields(445),
  share: nonEmpty("share name").doc("Share name on the server.", "backup"),
  path: remoteDir().default("/").doc("Directory inside the share.", "db"),
  user: nonEmpty("user name").doc("SMB user.", "backup"),
  ...secretFields("password", "SMB password", true),
  domain: nonEmpty().default("WORKGROUP").doc("Domain or workgroup.", "WORKGROUP"),
  verify: verifyField,
});
export type SmbConfig = ReturnType<typeof smbSchema.parse>;

function q(s: string): string {
  return `"${s}"`;
}

export class SmbTransport implements Transport {
  readonly location: string;
  private readonly authFile: string;
  private readonly dir: string;

  constructor(private readonly cfg: SmbConfig, private readonly ctx: TransportContext) {
    this.dir = cfg.path.replace(/^\/+|\/+$/g, "");
    this.location = `smb://${cfg.user}@${cfg.host}:${cfg.port}/${cfg.share}/${this.dir}`;
    this.authFile = join(ctx.privateDir, "smb.auth");
  }

  /** Run one smbclient command (in the target directory unless `inRoot`). */
  private async smb(command: string, what: string, opts: { inRoot?: boolean; allowFail?: boolean } = {}): Promise<ExecResult> {
    const args = [
      `//${this.cfg.host}/${this.cfg.share}`,
      "-p",
      String(this.cfg.port),
      "-A",
      this.authFile,
      "-t",
      String(Math.max(1, Math.round(this.cfg.timeout / 1000))),
      "-c",
      command,
    ];
    if (!opts.inRoot && this.dir) args.splice(1, 0, "-D", this.dir);
    let r: ExecResult;
    try {
      r = await exec("smbclient", args, {}, "smbclient");
    } catch (e) {
      toolMissing(e);
    }
    const status = /NT_STATUS_[A-Z_]+/.exec(r.stdout + r.stderr)?.[0];
    if ((r.code !== 0 || status) && !opts.allowFail) throw this.classify(r, status, what);
    return r;
  }

  private classify(r: ExecResult, status: string | undefined, what: string) {
    const where = `${this.cfg.host}:${this.cfg.port}`;
    const text = (r.stderr + r.stdout).trim().split("\n").filter(Boolean).pop() ?? "";
    switch (status) {
      case "NT_STATUS_LOGON_FAILURE":
      case "NT_STATUS_ACCOUNT_DISABLED":
      case "NT_STATUS_WRONG_PASSWORD":
        return storeErr(
          "auth",
          `login refused by ${where} for ${this.cfg.domain}\\${this.cfg.user}`,
          "check destination.user, domain and the password",
        );
      case "NT_STATUS_BAD_NETWORK_NAME":
        return storeErr(
          "missing_share",
          `share ${this.cfg.share} does not exist on ${where}`,
          "check destination.share (smbclient -L to list shares)",
        );
      case "NT_STATUS_OBJECT_NAME_NOT_FOUND":
      case "NT_STATUS_OBJECT_PATH_NOT_FOUND":
      case "NT_STATUS_NO_SUCH_FILE":
        return storeErr(
          "missing_dir",
          `${what}: not found in //${this.cfg.host}/${this.cfg.share}/${this.dir}`,
          "check destination.path, or set destination.create_dirs: true",
        );
      case "NT_STATUS_ACCESS_DENIED":
      case "NT_STATUS_MEDIA_WRITE_PROTECTED":
        return storeErr(
          "permission",
          `${what}: access denied on //${this.cfg.host}/${this.cfg.share}/${this.dir}`,
          "check the share's and directory's permissions for that user",
        );
      case "NT_STATUS_DISK_FULL":
      case "NT_STATUS_QUOTA_EXCEEDED":
        return diskFull(what, `//${this.cfg.host}/${this.cfg.share}`, status);
      case "NT_STATUS_CONNECTION_REFUSED":
        return storeErr("refused", `connection refused by ${where}`, "is smbd running there, on that port?");
      case "NT_STATUS_IO_TIMEOUT":
      case "NT_STATUS_HOST_UNREACHABLE":
      case "NT_STATUS_NETWORK_UNREACHABLE":
        return storeErr("unreachable", `cannot reach ${where} (${status})`, "check the network and firewall");
    }
    if (/Unable to resolve|resolve_name|NT_STATUS_UNSUCCESSFUL/i.test(text) && !/\d+\.\d+\.\d+\.\d+/.test(this.cfg.host)) {
      return storeErr("dns", `cannot resolve host ${this.cfg.host}`, "check destination.host and DNS");
    }
    if (r.code > 128 && !status) {
      // Killed by a signal (141: SIGPIPE, the server closed the connection mid-command): there is no message.
      const sig = r.code - 128;
      return storeErr(
        "transfer_cut",
        `${what}: smbclient was killed by signal ${sig}${
          sig === 13 ? " (SIGPIPE: the server closed the connection)" : ""
        } talking to ${where}${text ? ` (${text})` : ""}`,
        "the connection dropped: check the server's log (smbd log level) and the network; the next run tries again",
      );
    }
    return storeErr(
      "transfer",
      `${what} failed on ${where} (smbclient exit ${r.code}${status ? `, ${status}` : ""}${text ? `: ${text}` : ""})`,
      "run the same command by hand with smbclient -d 3 to see the server's answer",
    );
  }

  async open(): Promise<void> {
    if (/^\s|\s$/.test(this.cfg.password ?? "")) {
      throw storeErr(
        "password",
        "the SMB password starts or ends with a space: smbclient's authentication file strips it, so the login would fail",
        "change the password on the server so that it neither starts nor ends with a space (spaces inside are fine)",
      );
    }
    writePrivateFile(this.authFile, `username = ${this.cfg.user}\npassword = ${this.cfg.password}\ndomain = ${this.cfg.domain}\n`);
    const r = await this.smb("ls", `directory ${this.dir || "/"}`, { allowFail: true });
    const status = /NT_STATUS_[A-Z_]+/.exec(r.stdout + r.stderr)?.[0];
    if (r.code === 0 && !status) return;
    const e = this.classify(r, status, `directory ${this.dir}`);
    if (e.code !== "missing_dir") throw e;
    if (!this.cfg.create_dirs) throw missingDir(this.dir, `//${this.cfg.host}:${this.cfg.port}/${this.cfg.share}`);
    for (const d of dirLevels(this.dir)) await this.smb(`mkdir ${q(d)}`, `creating ${d}`, { inRoot: true, allowFail: true });
    await this.smb("ls", `directory ${this.dir}`);
    this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.dir} in //${this.cfg.host}/${this.cfg.share}`);
  }

  async put(localPath: string, name: string): Promise<void> {
    checkName(name);
    try {
      await this.smb(`put ${q(localPath)} ${q(name)}`, `upload of ${name}`);
    } catch (e) {
      await this.smb(`del ${q(name)}`, "cleanup", { allowFail: true }).catch(() => {});
      throw e;
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.smb(`rename ${q(checkName(from))} ${q(checkName(to))}`, `rename of ${from} to ${to}`);
  }

  async list(): Promise<RemoteEntry[]> {
    const r = await this.smb("ls", `listing ${this.dir}`);
    return parseSmbLs(r.stdout);
  }

  async remove(name: string): Promise<void> {
    checkName(name);
    await this.smb(`del ${q(name)}`, `deleting ${name}`);
  }

  /** Samba's vfs recycle (`.recycle`, Synology's `#recycle`) moves deleted files there instead of freeing them. */
  async keptAfterDelete(name: string): Promise<string | undefined> {
    for (const bin of [".recycle", "#recycle"]) {
      const r = await this.smb(`recurse ON; ls ${q(`${bin}\\*`)}`, `looking into ${bin}`, { inRoot: true, allowFail: true });
      if (r.code !== 0) continue;
      let dir = bin;
      for (const line of r.stdout.split("\n")) {
        if (/^\\/.test(line.trim())) dir = line.trim().replace(/^\\/, "");
        else if (parseSmbLs(line).some((e) => e.name === name)) {
          const path = `${dir}\\${name}`;
          await this.smb(`del ${q(path)}`, `removing ${path}`, { inRoot: true, allowFail: true });
          return path.replaceAll("\\", "/");
        }
      }
    }
    return undefined;
  }

  async download(name: string, localPath: string): Promise<void> {
    await this.smb(`get ${q(name)} ${q(localPath)}`, `download of ${name}`);
  }

  async close(): Promise<void> {
    await Deno.remove(this.authFile).catch(() => {});
  }
}

/** Parse `smbclient ls` lines: "  name   A   1234  Sun Nov 22 18:00:00 2026". */
export function parseSmbLs(text: string): RemoteEntry[] {
  const out: RemoteEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^ {2}(.+?)\s+([ADHSRNV]*)\s+(\d+)\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})$/.exec(line.trimEnd());
    if (!m || m[1] === "." || m[1] === "..") continue;
    const t = Date.parse(m[4]);
    out.push({ name: m[1], size: Number(m[3]), isDir: m[2].includes("D"), mtime: Number.isNaN(t) ? undefined : new Date(t) });
  }
  return out;
}

export const smb: TransportKind<SmbConfig> = {
  schema: smbSchema,
  packages: ["smbclient"],
  create: (cfg, ctx) => new SmbTransport(cfg, ctx),
};
