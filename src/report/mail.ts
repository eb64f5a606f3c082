/**
 * The report mail: a subject that says OK / WARNING / FAILED first, a short plain-text body readable on a phone,
 * and optionally this run's log lines attached. Sent through the machine's sendmail (`sendmail -t -oi`, message on
 * stdin) or directly over SMTP with nodemailer (STARTTLS required, or implicit TLS, or clear text when written).
 * A mail failure is logged and recorded; it never changes the run's exit code and never hides the run's failure.
 */
import { hostname } from "node:os";
import { Buffer } from "node:buffer";
import type Nodemailer from "nodemailer";
// @ts-types="npm:@types/nodemailer@8.0.2/lib/mail-composer/index.d.ts"
import type MailComposerClass from "nodemailer/lib/mail-composer/index.js";
import type { MailConfig } from "../config/schema.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import { ArchivistError, errMsg } from "../errors.ts";
import { exec } from "../os/exec.ts";
import { localIso } from "./log.ts";
import type { RunResult } from "../records/history.ts";

export interface Message {
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  text: string;
  attachments: { filename: string; content: string }[];
}

const ICON: Record<string, string> = { ok: "✓", warning: "!", failed: "✗", skipped: "–" };

/**
 * `text` in at most `max` characters, cut at a word boundary (never inside a parenthesis or a hash), with "…".
 * @example shorten("the dump is identical to the one archived (sha256 eba2393b…)", 30) // "the dump is identical to the…"
 */
export function shorten(text: string, max: number): string {
  const t = text.replace(/\s+/g, " ").trim();
  if (t.length <= max) return t;
  let cut = t.slice(0, max - 1);
  const open = cut.lastIndexOf("(");
  if (open > 0 && cut.indexOf(")", open) < 0) cut = cut.slice(0, open); // no half parenthesis
  const space = cut.lastIndexOf(" ");
  if (space > max / 3) cut = cut.slice(0, space);
  return cut.replace(/[\s,:;(]+$/, "") + "…";
}

/** The short summary used in the subject: under ~70 characters, so that the subject stays under ~100. */
export function summary(r: RunResult): string {
  if (r.error) return shorten(`${r.error.step}: ${r.error.message}`, 70);
  if (r.status === "warning") return shorten(r.warnings[0] ?? "warning", 70);
  return r.archive ? `${r.archive.name} ${formatSize(r.archive.size)}` : "nothing to do";
}

const LABEL = { ok: "OK", warning: "WARNING", failed: "FAILED" } as const;

function fill(template: string, tokens: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k) => tokens[k] ?? m).replace(/\s+/g, " ").trim();
}

/** Fill the subject template. */
export function subjectFor(template: string, r: RunResult): string {
  return fill(template, {
    status: LABEL[r.status],
    job: r.job,
    host: r.host || hostname(),
    archive: r.archive?.name ?? "-",
    date: r.runDate,
    summary: summary(r),
    step: r.error?.step ?? "",
  });
}

/** The worst status of several jobs' runs. */
export function worstStatus(rs: RunResult[]): RunResult["status"] {
  return rs.some((r) => r.status === "failed") ? "failed" : rs.some((r) => r.status === "warning") ? "warning" : "ok";
}

/** "FAILED 1 (shop), WARNING 1 (blog), OK 2": the jobs counted by status, worst first. */
export function jobsSummary(rs: RunResult[]): string {
  return (["failed", "warning", "ok"] as const).map((s) => {
    const jobs = rs.filter((r) => r.status === s).map((r) => r.job);
    return jobs.length ? `${LABEL[s]} ${jobs.length}${s === "ok" ? "" : ` (${jobs.join(", ")})`}` : "";
  }).filter(Boolean).join(", ");
}

/** The subject for several jobs' runs: {job} is "N jobs", {summary} counts them by status. */
export function jobsSubjectFor(template: string, rs: RunResult[]): string {
  const failed = rs.find((r) => r.status === "failed");
  return fill(template, {
    status: LABEL[worstStatus(rs)],
    job: `${rs.length} jobs`,
    host: rs[0].host || hostname(),
    archive: rs.length === 1 ? rs[0].archive?.name ?? "-" : "-",
    date: rs[0].runDate,
    summary: shorten(jobsSummary(rs), 70),
    step: failed?.error?.step ?? "",
  });
}

/** The plain-text body. */
export function bodyFor(r: RunResult): string {
  const status = r.status === "ok" ? "OK" : r.status === "warning" ? "WARNING" : "FAILED";
  const lines: string[] = [];
  lines.push(`archivist ${r.command}: ${status}${r.error ? ` at ${r.error.step}` : ""} (job ${r.job} on ${r.host})`);
  lines.push("");
  if (r.error) {
    lines.push(`Cause: ${r.error.message}`);
    if (r.error.hint) lines.push(`Hint:  ${r.error.hint}`);
    lines.push("");
  }
  for (const w of r.warnings) lines.push(`Warning: ${w}`);
  if (r.warnings.length) lines.push("");
  lines.push("Steps:");
  for (const s of r.steps) {
    lines.push(
      `  ${ICON[s.status] ?? "?"} ${s.step.padEnd(9)} ${
        s.status === "skipped" ? "" : formatDuration(s.durationMs).padStart(7)
      }  ${s.message}`.trimEnd(),
    );
  }
  lines.push("");
  if (r.archive) {
    lines.push(`Archive:   ${r.archive.name} (${formatSize(r.archive.size)}) on ${r.archive.location}`);
    lines.push(`sha256:    ${r.archive.sha256}`);
  }
  if (r.dump) lines.push(`Dump:      ${r.dump.name} (${formatSize(r.dump.size)}), sha256 ${r.dump.sha256}`);
  if (r.retention) {
    lines.push(`Retention: ${r.retention.deleted.length ? `deleted ${r.retention.deleted.join(", ")}` : "nothing deleted"}`);
    for (const f of r.retention.failed) lines.push(`           could not delete ${f.name}: ${f.error}`);
  }
  lines.push(`Run:       ${r.runId}, ${localIso(new Date(r.startedAt)).slice(0, 19).replace("T", " ")}, ${formatDuration(r.durationMs)}`);
  if (r.logFile) lines.push(`Full log:  ${r.logFile} (grep ${r.runId})`);
  return lines.join("\n") + "\n";
}

/** Whether this run's outcome calls for a mail. */
export function shouldSend(cfg: MailConfig, r: RunResult): boolean {
  if (!cfg.enabled) return false;
  if (cfg.when === "always") return true;
  if (cfg.when === "failure") return r.status === "failed";
  return r.status !== "ok";
}

/** One report for several jobs' runs: the count by status, then one section per job, in run order. */
export function composeJobsReport(cfg: MailConfig, rs: RunResult[], logLines: string[]): Message {
  const overview = [
    `archivist run: ${LABEL[worstStatus(rs)]}: ${jobsSummary(rs)} (on ${rs[0].host})`,
    "",
    ...rs.map((r) => `  ${LABEL[r.status].padEnd(8)} ${r.job.padEnd(16)} ${summary(r)}`),
    "",
  ];
  const sections = rs.map((r) => `=== job ${r.job}: ${LABEL[r.status]} ===\n\n${bodyFor(r)}`);
  return message(cfg, jobsSubjectFor(cfg.subject, rs), [overview.join("\n"), ...sections].join("\n"), rs[0].runId, logLines);
}

/** Compose the report for a run. `logLines` are this run's (already redacted) log lines. */
export function composeReport(cfg: MailConfig, r: RunResult, logLines: string[]): Message {
  return message(cfg, subjectFor(cfg.subject, r), bodyFor(r), r.runId, logLines);
}

/** A report: the configured sender and recipients, and the run's log lines attached when mail.attach_log asks. */
function message(cfg: MailConfig, subject: string, text: string, runId: string, logLines: string[]): Message {
  return {
    from: cfg.from ?? `archivist@${hostname()}`,
    to: cfg.to,
    cc: cfg.cc,
    subject,
    text,
    attachments: cfg.attach_log ? [{ filename: `archivist-${runId}.log`, content: logLines.join("\n") + "\n" }] : [],
  };
}

/** The SMTP port: mail.port, else the usual one for mail.security. */
function smtpPort(cfg: MailConfig): number {
  return cfg.port ?? (cfg.security === "tls" ? 465 : cfg.security === "none" ? 25 : 587);
}

function smtpOptions(cfg: MailConfig) {
  let ca: string[] | undefined;
  if (cfg.ca_file) {
    try {
      ca = [Deno.readTextFileSync(cfg.ca_file)];
    } catch (e) {
      throw new ArchivistError("mail", `mail.ca_file: cannot read ${cfg.ca_file}: ${errMsg(e)}`, "check the path", { code: "ca_file" });
    }
  }
  return {
    host: cfg.host,
    port: smtpPort(cfg),
    secure: cfg.security === "tls",
    requireTLS: cfg.security === "starttls",
    ignoreTLS: cfg.security === "none",
    auth: cfg.username ? { user: cfg.username, pass: cfg.password ?? "" } : undefined,
    tls: { rejectUnauthorized: true, ca },
    connectionTimeout: cfg.timeout,
    greetingTimeout: cfg.timeout,
    socketTimeout: cfg.timeout,
  };
}

/** A readable cause for an SMTP failure. */
function smtpError(cfg: MailConfig, e: unknown): ArchivistError {
  const err = e as { code?: string; responseCode?: number; message?: string };
  const msg = errMsg(e);
  const where = `${cfg.host}:${smtpPort(cfg)}`;
  if (err.code === "EAUTH" || err.responseCode === 535) {
    return new ArchivistError(
      "mail",
      `SMTP authentication refused by ${where} for ${cfg.username}`,
      "check mail.username and the password",
      { code: "auth" },
    );
  }
  if (/certificate|self.signed|unable to verify|CERT_|UnknownIssuer/i.test(msg)) {
    return new ArchivistError(
      "mail",
      `TLS certificate of ${where} not trusted (${msg})`,
      "set mail.ca_file to the PEM of the CA that signed the SMTP server's certificate",
      { code: "tls_untrusted" },
    );
  }
  if (/wrong version number|WRONG_VERSION_NUMBER|ssl3_get_record|packet length too long/i.test(msg) && cfg.security === "tls") {
    return new ArchivistError(
      "mail",
      `${where} does not speak TLS from the first byte (${msg}): it is probably a STARTTLS port`,
      "set mail.security: starttls for port 587 (or 25), or use the SMTPS port (465) with security: tls",
      { code: "tls_mode" },
    );
  }
  if (/STARTTLS/i.test(msg) || err.code === "ETLS") {
    return new ArchivistError(
      "mail",
      `${where} does not offer STARTTLS: refusing to send in clear text (${msg})`,
      "use mail.security: tls for SMTPS, or fix the server",
      { code: "tls" },
    );
  }
  if (err.code === "ECONNREFUSED" || /ECONNREFUSED|Connection refused/i.test(msg)) {
    return new ArchivistError("mail", `connection refused by ${where}`, "is the SMTP server up, and is mail.port right?", {
      code: "refused",
    });
  }
  if (err.code === "EDNS" || /ENOTFOUND|EAI_AGAIN|getaddrinfo/i.test(msg)) {
    return new ArchivistError("mail", `cannot resolve host ${cfg.host}`, "check mail.host", { code: "dns" });
  }
  if (err.code === "ETIMEDOUT" || /timeout/i.test(msg)) {
    return new ArchivistError("mail", `timed out talking to ${where}`, "check the network, or raise mail.timeout", { code: "timeout" });
  }
  return new ArchivistError("mail", `SMTP error from ${where}: ${msg}`, "", { code: "smtp" });
}

/** Send `m`. Throws an ArchivistError of step "mail" with the cause. */
/**
 * nodemailer is loaded when a mail is composed or sent, not at start: it is ~10 MiB of memory that a run without
 * mail, and a run's data steps, do not carry (the flat-memory target).
 */
const nodemailer = async (): Promise<typeof Nodemailer> => (await import("nodemailer")).default;
const mailComposer = async (): Promise<typeof MailComposerClass> =>
  ((await import("nodemailer/lib/mail-composer/index.js")) as { default: typeof MailComposerClass }).default;

export async function sendMail(cfg: MailConfig, m: Message): Promise<string> {
  const options = {
    from: m.from,
    to: m.to,
    cc: m.cc.length ? m.cc : undefined,
    subject: m.subject,
    text: m.text,
    attachments: m.attachments,
  };
  if (cfg.transport === "sendmail") {
    const MailComposer = await mailComposer();
    const raw = await new MailComposer(options).compile().build();
    let r;
    try {
      // -f: the envelope sender, so that bounces go to mail.from rather than to the run user (root).
      const envelope = /<([^>]+)>/.exec(m.from)?.[1] ?? m.from;
      r = await exec(cfg.sendmail_path, ["-t", "-oi", "-f", envelope], {
        stdin: Buffer.from(raw).toString("utf8"),
        timeoutMs: cfg.timeout,
      });
    } catch (e) {
      throw new ArchivistError(
        "mail",
        `cannot run ${cfg.sendmail_path}: ${errMsg(e)}`,
        "install a mail system (postfix, exim4, msmtp-mta), or use mail.transport: smtp",
        { code: "sendmail_missing" },
      );
    }
    if (r.timedOut) {
      throw new ArchivistError("mail", `${cfg.sendmail_path} did not finish within mail.timeout`, "check the local mail system", {
        code: "timeout",
      });
    }
    if (r.code !== 0) {
      throw new ArchivistError(
        "mail",
        `${cfg.sendmail_path} -t -oi exited ${r.code}: ${r.stderr.trim().split("\n").pop() ?? ""}`,
        "check the local mail system's log (/var/log/mail.log)",
        { code: "sendmail" },
      );
    }
    return `handed to ${cfg.sendmail_path}`;
  }
  const t = (await nodemailer()).createTransport(smtpOptions(cfg));
  try {
    const info = await t.sendMail(options);
    return `accepted by ${cfg.host} (${info.response ?? "ok"})`;
  } catch (e) {
    throw smtpError(cfg, e);
  } finally {
    t.close();
  }
}

/** Connect, TLS and AUTH without sending (for --verify). */
export async function verifyMail(cfg: MailConfig): Promise<string> {
  if (cfg.transport === "sendmail") {
    try {
      const st = await Deno.stat(cfg.sendmail_path);
      if (!st.isFile || !((st.mode ?? 0) & 0o111)) throw new Error("not an executable file");
      return `${cfg.sendmail_path} is executable`;
    } catch (e) {
      throw new ArchivistError(
        "mail",
        `${cfg.sendmail_path}: ${errMsg(e)}`,
        "install a mail system (postfix, exim4, msmtp-mta), or use mail.transport: smtp",
        { code: "sendmail_missing" },
      );
    }
  }
  const t = (await nodemailer()).createTransport(smtpOptions(cfg));
  try {
    await t.verify();
    return `${cfg.host}:${smtpPort(cfg)} accepts ${cfg.security === "none" ? "clear-text" : "TLS"} connections${
      cfg.username ? " and our login" : ""
    }`;
  } catch (e) {
    throw smtpError(cfg, e);
  } finally {
    t.close();
  }
}
