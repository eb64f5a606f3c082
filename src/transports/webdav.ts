/**
 * `type: webdav`: WebDAV with curl. HTTPS by default; plain HTTP only when `allow_http: true` is written.
 * Upload: PUT to `NAME.part`, MOVE to NAME with `Overwrite: F`, then the size from PROPFIND.
 * Credentials go in a netrc file (mode 0600) in the run's private dir, never on the command line.
 */
import { join } from "node:path";
import { absPath, bool, nonEmpty, obj, oneOf, secretFields, str } from "../config/fields.ts";
import { type ExecResult, writePrivateFile } from "../os/exec.ts";
import { duration } from "../config/fields.ts";
import {
  checkName,
  curl,
  dirLevels,
  diskFull,
  isBodyTempOf,
  missingDir,
  netrcLine,
  probeName,
  storeErr,
  type UploadProgress,
  uploadProgress,
  verifyField,
} from "./common.ts";
import type { RemoteEntry, Transport, TransportContext, TransportKind } from "./transport.ts";

const davUrl = str((s) => {
  try {
    const u = new URL(s);
    if (u.protocol !== "https:" && u.protocol !== "http:") return "expected an https:// (or http://) URL";
    if (u.username || u.password) return "credentials in the URL are not accepted: use user and password_file";
    return undefined;
  } catch {
    return `expected a URL, got ${JSON.stringify(s)}`;
  }
}, "URL");

export const webdavSchema = obj({
  type: oneOf("webdav").doc("WebDAV over HTTPS (curl).", "webdav"),
  url: davUrl.doc("URL of the directory that receives the archives.", "https://dav.example.org/backup/db/"),
  user: nonEmpty("user name").optional().doc("User for basic/digest authentication.", "backup"),
  ...secretFields("password", "WebDAV password"),
  ca_file: absPath().trust().optional().doc(
    "PEM file of the CA that signed the server's certificate (when not a public CA).",
    "/etc/archivist/dav-ca.pem",
  ),
  allow_http: bool().default(false).doc("Accept an http:// URL (archives and password then travel in clear). Off: only https."),
  create_dirs: bool().default(false).doc("Create the remote directory (MKCOL) when it is missing."),
  timeout: duration().timer().default(30_000).doc("Connect timeout; transfers fail when stalled this long.", "30s"),
  verify: verifyField,
});
export type WebdavConfig = ReturnType<typeof webdavSchema.parse>;

export class WebdavTransport implements Transport {
  readonly location: string;
  private readonly netrc: string;
  private readonly base: URL;

  constructor(private readonly cfg: WebdavConfig, private readonly ctx: TransportContext) {
    this.base = new URL(cfg.url.endsWith("/") ? cfg.url : cfg.url + "/");
    this.location = this.base.href;
    this.netrc = join(ctx.privateDir, "webdav.netrc");
  }

  private fileUrl(name: string): string {
    checkName(name);
    return new URL(encodeURIComponent(name), this.base).href;
  }

  /** Run curl; returns the HTTP status (0 when no response). */
  private async curl(args: string[], what: string, progress?: UploadProgress): Promise<{ status: number; body: string; r: ExecResult }> {
    const dav = ["--globoff", "--http1.1", "--write-out", "\n%{http_code}"];
    if (this.cfg.user) dav.push("--netrc-file", this.netrc, "--anyauth");
    const r = await curl([...dav, ...args], { timeoutMs: this.cfg.timeout, caFile: this.cfg.ca_file, progress });
    const nl = r.stdout.lastIndexOf("\n");
    const status = Number(r.stdout.slice(nl + 1)) || 0;
    const body = r.stdout.slice(0, Math.max(0, nl));
    if (r.code !== 0) throw this.networkError(r, what);
    return { status, body, r };
  }

  private networkError(r: ExecResult, what: string) {
    const where = `${this.base.hostname}:${this.base.port || (this.base.protocol === "https:" ? 443 : 80)}`;
    const msg = r.stderr.trim().split("\n").pop() ?? "";
    switch (r.code) {
      case 6:
        return storeErr("dns", `cannot resolve host ${this.base.hostname}`, "check destination.url and DNS");
      case 7:
        return storeErr("refused", `connection refused by ${where}`, "is the WebDAV server running there?");
      case 28:
        return storeErr("timeout", `${what}: timed out talking to ${where}`, "check the network, or raise destination.timeout");
      case 60:
      case 77:
        return storeErr(
          "tls_untrusted",
          `TLS certificate of ${where} not trusted (${msg})`,
          this.cfg.ca_file
            ? `check destination.ca_file (${this.cfg.ca_file})`
            : "set destination.ca_file to the PEM of the CA that signed the server's certificate",
        );
      case 35:
        return storeErr("tls", `TLS handshake with ${where} failed (${msg})`);
      case 18:
      case 55:
      case 56:
        return storeErr("transfer_cut", `${what}: transfer cut (${msg})`, "the connection dropped; the next run retries");
      default:
        return storeErr("transfer", `${what}: curl exit ${r.code} talking to ${where}: ${msg}`);
    }
  }

  private statusError(status: number, what: string, body = "") {
    const where = this.location;
    // The server's own words (an HTML or XML error page, reduced to its text).
    const words = body.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 160);
    const quoted = words ? `: "${words}"` : "";
    if (status === 507 || /no space left|insufficient storage|quota|disk full/i.test(words)) {
      return diskFull(what, where, `HTTP ${status}${quoted}`);
    }
    if (status === 413) {
      return storeErr(
        "too_large",
        `${what}: the server refused the size of the upload (HTTP 413 Request Entity Too Large)`,
        "raise the server's body limit: nginx client_max_body_size 0; Apache LimitRequestBody 0",
      );
    }
    if (status === 405 && /^upload/.test(what)) {
      return storeErr(
        "transfer",
        `${what}: the server refused the PUT (HTTP 405 Method Not Allowed${quoted})`,
        "PUT must be enabled there (nginx: dav_methods PUT DELETE MKCOL COPY MOVE; Apache: Dav On); rclone answers 405 when the write itself failed: check free space on the server",
      );
    }
    if (status === 401) {
      return storeErr("auth", `${what}: authentication refused by ${where} (HTTP 401)`, "check destination.user and the password");
    }
    if (status === 403) {
      return storeErr("permission", `${what}: permission denied by ${where} (HTTP 403)`, "check the account's rights on that directory");
    }
    if (status === 404 || status === 409) {
      return storeErr(
        "missing_dir",
        `${what}: remote directory missing at ${where} (HTTP ${status})`,
        "check destination.url, or set destination.create_dirs: true",
      );
    }
    if (status === 507) {
      return storeErr(
        "disk_full",
        `${what}: remote disk full at ${where} (HTTP 507 Insufficient Storage)`,
        "free space on the server or shorten retention",
      );
    }
    if (status === 412) return storeErr("exists", `${what}: the target already exists (HTTP 412)`);
    if (status >= 500 && /^upload/.test(what)) {
      return storeErr(
        "transfer",
        `${what}: the server failed to store it (HTTP ${status}${quoted})`,
        "see the server's error log: a full disk, a quota or the server's own file permissions show as 500 with nginx and Apache; the next run tries again",
      );
    }
    return storeErr("transfer", `${what}: HTTP ${status} from ${where}${quoted}`, "see the server's log for why it refused");
  }

  async open(): Promise<void> {
    if (this.base.protocol === "http:" && !this.cfg.allow_http) {
      throw storeErr(
        "insecure",
        `destination.url ${this.cfg.url} is plain HTTP`,
        "use https://, or set destination.allow_http: true if you accept sending archives and the password in clear",
      );
    }
    if (this.cfg.user) writePrivateFile(this.netrc, netrcLine(this.base.hostname, this.cfg.user, this.cfg.password ?? ""));
    const { status } = await this.curl(
      ["-X", "PROPFIND", "-H", "Depth: 0", "-o", "/dev/null", this.base.href],
      `directory ${this.base.pathname}`,
    );
    if (status === 207 || status === 200) return;
    if (status === 404 && !this.cfg.create_dirs) throw missingDir(this.base.pathname, this.base.host);
    if (status === 405 || status === 501) {
      throw storeErr(
        "not_webdav",
        `${this.location} does not answer PROPFIND (HTTP ${status}): WebDAV listing is not enabled there`,
        "nginx: load the dav-ext module (libnginx-mod-http-dav-ext) and add dav_ext_methods PROPFIND OPTIONS; Apache: Dav On in that <Location>",
      );
    }
    if (status !== 404) throw this.statusError(status, `directory ${this.base.pathname}`);
    for (const d of dirLevels(this.base.pathname)) {
      const { status: s } = await this.curl(["-X", "MKCOL", "-o", "/dev/null", new URL(d + "/", this.base).href], `creating ${d}/`);
      if (![201, 405].includes(s)) throw this.statusError(s, `creating ${d}/`); // 405: exists
    }
    this.ctx.log.info(this.ctx.step ?? "store", `created remote directory ${this.base.pathname}`);
  }

  async put(localPath: string, name: string, onBytes?: (done: number) => void): Promise<void> {
    const url = this.fileUrl(name);
    const progress = await uploadProgress(localPath, onBytes);
    const bodyFile = join(this.ctx.privateDir, "put.body");
    const cleanup = () => this.curl(["-X", "DELETE", "-o", "/dev/null", url], "cleanup").catch(() => {});
    try {
      const put = await this.curl(["-T", localPath, "-o", bodyFile, url], `upload of ${name}`, progress).catch(async (e) => {
        await cleanup();
        throw e;
      });
      if (![200, 201, 204].includes(put.status)) {
        const body = await Deno.readTextFile(bodyFile).catch(() => "");
        await cleanup(); // a failed PUT may leave a 0-byte file behind
        // ... and nginx its own body temp file beside it (NAME.0000000004).
        for (const e of await this.list().catch(() => [])) {
          if (isBodyTempOf(e.name, name)) await this.remove(e.name).catch(() => {});
        }
        if (put.status === 405 || put.status === 500) {
          const full = await this.fullDisk(name, put.status);
          if (full) throw full;
        }
        throw this.statusError(put.status, `upload of ${name}`, body);
      }
    } finally {
      await Deno.remove(bodyFile).catch(() => {});
    }
  }

  /**
   * A PUT refused with 405 or 500 is a disabled PUT, or (rclone serve webdav, some others) a write that failed on a
   * full disk. A 4 KiB test write tells: it fails the same way when PUT is refused, and goes through when only the
   * big file found no room. The disk-full error, or undefined.
   */
  private async fullDisk(name: string, status: number): Promise<ReturnType<typeof diskFull> | undefined> {
    const probe = probeName();
    const local = join(this.ctx.privateDir, probe);
    try {
      await Deno.writeFile(local, new Uint8Array(4096));
      const p = await this.curl(["-T", local, "-o", "/dev/null", this.fileUrl(probe)], `upload of ${probe} (a test write)`);
      await this.curl(["-X", "DELETE", "-o", "/dev/null", this.fileUrl(probe)], "cleanup").catch(() => {});
      if (![200, 201, 204].includes(p.status)) return undefined;
      return diskFull(
        `upload of ${name}`,
        this.location,
        `HTTP ${status} to the PUT, while a 4 KiB test write went through: no room for the archive`,
      );
    } catch {
      return undefined;
    } finally {
      await Deno.remove(local).catch(() => {});
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const mv = await this.curl(
      ["-X", "MOVE", "-H", `Destination: ${this.fileUrl(to)}`, "-H", "Overwrite: F", "-o", "/dev/null", this.fileUrl(from)],
      `rename of ${from} to ${to}`,
    );
    if (![201, 204].includes(mv.status)) throw this.statusError(mv.status, `rename of ${from} to ${to}`);
  }

  async list(): Promise<RemoteEntry[]> {
    const { status, body } = await this.curl(
      ["-X", "PROPFIND", "-H", "Depth: 1", "-H", "Content-Type: application/xml", this.base.href],
      `listing ${this.base.pathname}`,
    );
    if (status !== 207) throw this.statusError(status, `listing ${this.base.pathname}`);
    return parsePropfind(body, this.base);
  }

  async remove(name: string): Promise<void> {
    const { status } = await this.curl(["-X", "DELETE", "-o", "/dev/null", this.fileUrl(name)], `deleting ${name}`);
    if (![200, 204].includes(status)) throw this.statusError(status, `deleting ${name}`);
  }

  async download(name: string, localPath: string): Promise<void> {
    const { status } = await this.curl(["-o", localPath, this.fileUrl(name)], `download of ${name}`);
    if (status !== 200) {
      await Deno.remove(localPath).catch(() => {});
      throw this.statusError(status, `download of ${name}`);
    }
  }

  async close(): Promise<void> {
    await Deno.remove(this.netrc).catch(() => {});
  }
}

/** Parse a PROPFIND Depth 1 multistatus body (any namespace prefix) into the directory's entries. */
export function parsePropfind(xml: string, base: URL): RemoteEntry[] {
  const out: RemoteEntry[] = [];
  const tag = (name: string) => new RegExp(`<(?:[\\w-]+:)?${name}\\b[^>]*>([\\s\\S]*?)</(?:[\\w-]+:)?${name}>`, "i");
  for (const m of xml.matchAll(/<(?:[\w-]+:)?response\b[^>]*>([\s\S]*?)<\/(?:[\w-]+:)?response>/gi)) {
    const block = m[1];
    const href = tag("href").exec(block)?.[1]?.trim();
    if (!href) continue;
    const path = decodeURIComponent(new URL(href.replace(/&amp;/g, "&"), base).pathname);
    if (path.replace(/\/+$/, "") === decodeURIComponent(base.pathname).replace(/\/+$/, "")) continue; // the directory itself
    const isDir = /<(?:[\w-]+:)?collection\b/i.test(block);
    const name = path.replace(/\/+$/, "").split("/").pop()!;
    const size = Number(tag("getcontentlength").exec(block)?.[1] ?? 0);
    const lm = tag("getlastmodified").exec(block)?.[1];
    out.push({ name, size, isDir, mtime: lm ? new Date(lm) : undefined });
  }
  return out;
}

export const webdav: TransportKind<WebdavConfig> = {
  schema: webdavSchema,
  packages: ["curl"],
  create: (cfg, ctx) => new WebdavTransport(cfg, ctx),
};
