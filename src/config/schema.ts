/**
 * The config schema: the single source of truth for every key of archive.yaml.
 * Validation (load.ts), the typed `Config`, the docs table (tools/gendocs.ts → docs/TECHNICAL.md) and the test
 * that checks archive.yaml.example all read this declaration.
 */
import { isValidTimeZone } from "../os/clock.ts";
import { patternProblem } from "../formats/naming.ts";
import { TRANSPORTS } from "../transports/registry.ts";
import { absPath, bool, duration, Field, FieldError, int, list, nonEmpty, obj, oneOf, secretFields, size, str, tagged } from "./fields.ts";

const httpsUrl = str((s) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `expected an https:// URL, got ${JSON.stringify(s)}`;
  }
  if (u.protocol !== "https:") {
    return `expected an https:// URL, got ${u.protocol}// (plain HTTP is not accepted: the dump would travel in clear)`;
  }
  if (u.username || u.password) return "credentials in the URL are not accepted: use source.auth with password_file";
  return undefined;
}, "https URL");

const regex = str((s) => {
  try {
    new RegExp(s, "m");
    return undefined;
  } catch (e) {
    return `not a valid regular expression: ${(e as Error).message}`;
  }
}, "regex");

const jobName = str(
  (
    s,
  ) => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(s)
    ? undefined
    : "expected letters, digits, '.', '_' or '-' (it names the state and lock files)"),
  "name",
);

export const authSchema = tagged({
  basic: obj({
    type: oneOf("basic").doc("HTTP basic authentication."),
    username: nonEmpty().doc("User name.", "backup"),
    ...secretFields("password", "password", true),
  }),
  header: obj({
    type: oneOf("header").doc("A request header carrying a token, e.g. Authorization: Bearer ..."),
    name: nonEmpty().doc("Header name.", "Authorization"),
    ...secretFields("value", "header value", true),
  }),
});

export const sourceSchema = obj({
  url: httpsUrl.doc("HTTPS URL of the zip to download. TLS is always verified.", "https://db.example.org/export/dump.zip"),
  entry: nonEmpty("entry name").doc(
    "Name of the SQL dump inside the zip: an exact path, or a glob (*, ?) matching exactly one entry.",
    "dump.sql",
  ),
  ca_file: absPath().trust().optional().doc(
    "PEM file of extra CA certificates to trust (a private CA or a self-signed server).",
    "/etc/archivist/ca.pem",
  ),
  client: oneOf("deno", "curl").default("deno").doc(
    "HTTP client for the download. deno: built in. curl: the curl program, for a server whose certificate Deno's TLS refuses although it is given as ca_file (a self-signed certificate made with `openssl req -x509`, which is a CA certificate). Same checks, timeouts, retries and messages.",
  ),
  auth: authSchema.optional().doc("Authentication: `type: basic` (username + password) or `type: header` (name + value)."),
  connect_timeout: duration().timer().default(30_000).doc("Time allowed to connect and receive the response headers.", "30s"),
  timeout: duration().timer().default(2 * 3_600_000).doc("Time allowed for the whole download.", "2h"),
  idle_timeout: duration().timer().default(120_000).doc("The download fails when no byte arrives for this long.", "2m"),
  retries: int(0, 20).default(3).doc("Further attempts after a network error or an HTTP 5xx (never after a 4xx).", 3),
  retry_delay: duration().timer().default(30_000).doc("Wait before the first retry; doubled for each next one.", "30s"),
  max_size: size().default(50 * 1024 ** 3).doc("Largest zip accepted; a bigger download is aborted.", "50GiB"),
  ready_url: httpsUrl.optional().doc(
    "A marker the export writes when it is complete: the zip is fetched only once this URL answers 2xx to HEAD (same TLS and auth as url).",
    "https://db.example.org/export/dump.ready",
  ),
  ready_file: absPath().optional().doc("The same, as a file on a mounted export: it must exist.", "/mnt/export/dump.ready"),
  ready_newer: bool().default(false).doc(
    "The marker must also be newer than the last archived zip (its Last-Modified or mtime): yesterday's marker is not ready.",
  ),
  ready_wait: duration().timer().optional().doc(
    "How long to wait for the marker (polling every twentieth of it, 1s to 5m); absent: fail at once when it is not there.",
    "2h",
  ),
  conditional: bool().default(true).doc(
    "Send the ETag / Last-Modified of the last archived zip (If-None-Match / If-Modified-Since): a 304 Not Modified is 'unchanged' without downloading anything (then check.on_unchanged applies).",
  ),
}).refine((src) =>
  src.ready_url && src.ready_file
    ? ["ready_file", "give ready_url or ready_file, not both"]
    : (src.ready_newer || src.ready_wait) && !src.ready_url && !src.ready_file
    ? [src.ready_newer ? "ready_newer" : "ready_wait", "needs source.ready_url or source.ready_file"]
    : undefined
);

export const checkSchema = obj({
  min_size: size().default(1).doc("Smallest acceptable dump (uncompressed). The default 1 byte rejects an empty dump.", "1MB"),
  expect_trailer: regex.optional().doc(
    "Regular expression that must match in the last KiB of the dump: catches a dump cut short. mysqldump: '-- Dump completed', pg_dump: '-- PostgreSQL database dump complete'.",
    "-- Dump completed",
  ),
  on_unchanged: oneOf("skip", "archive", "fail", "link").default("skip").doc(
    "When the dump is the same as the last archived one (see compare): skip (exit 1, warning), archive anyway, fail (exit 23), or link: tonight's name becomes a hard link to the archive it equals, with its own sidecar (a local destination only: an archive per day, one copy on disk).",
  ),
  max_unchanged: duration().optional().doc(
    "How long an unchanged export is normal (e.g. 3d over a weekend). An unchanged night still exits 1 and says for how long the export has not changed; `archivist verify` is OK within this time, WARNING past it. Unset: every unchanged night is a WARNING in verify.",
    "3d",
  ),
  compare: oneOf("content", "bytes").default("content").doc(
    "How 'the same dump' is decided. content: the same lines, ignoring those the dump tool changes on every run (mysqldump's '-- Dump completed on' date, pg_dump's \\restrict keys, version and host comments) and check.ignore_lines. bytes: byte for byte.",
  ),
  ignore_lines: list(regex).default([]).doc(
    "More lines to leave out of the content comparison: regular expressions tested against each line (without its newline).",
    ["^-- Generated at "],
  ),
  max_unpacked_size: size().default(200 * 1024 ** 3).doc("Largest dump accepted after decompression (zip bomb guard).", "200GiB"),
  max_ratio: int(1).default(1000).doc(
    "Largest compression ratio accepted for the dump entry (zip bomb guard; SQL compresses ~5-15x).",
    1000,
  ),
});

export const archiveSchema = obj({
  name: str(patternProblem, "name pattern").default("{YYYY}{MM}{DD}.tgz").doc(
    "Archive file name. Tokens: {YYYY} {MM} {DD} (required), {HH} {mm}, {job}. Must end in .tgz or .tar.gz.",
    "{YYYY}{MM}{DD}.tgz",
  ),
  timezone: str(
    (s) =>
      s === "local" || isValidTimeZone(s)
        ? undefined
        : `unknown time zone ${JSON.stringify(s)} (use an IANA name like Europe/Paris or UTC, or local)`,
    "time zone",
  )
    .default("local").doc(
      "Time zone of the date in the name and of retention's days (IANA name, or local: the machine's zone, as cron uses).",
      "Europe/Paris",
    ),
  compression_level: int(1, 9).default(6).doc(
    "gzip level when the archive is compressed here (a stored entry, or recompress: always): 1 fastest, 9 smallest.",
    6,
  ),
  recompress: oneOf("auto", "always").default("auto").doc(
    "auto: a deflate entry (nearly every export) goes into the .tgz as it is, its compressed bytes copied from the zip (a multi-member gzip: I/O speed, as small as the zip); a stored entry is compressed. always: compress at compression_level (one gzip member).",
    "auto",
  ),
  threads: int(1, 256).optional().doc(
    "Compression threads when archivist compresses (a stored entry, or recompress: always): blocks deflated in parallel, pigz's way, one gzip member. Default: all cores.",
    2,
  ),
  verify: bool().default(false).doc(
    "Read the written .tgz back through gunzip and tar before anything is uploaded, and require the dump's sha256: proof that what is uploaded restores to the dump that was checked, for one more inflate of the dump (a third more time: 1 GiB 3.2 → 4.3 s here; `archivist check` reads archives back later either way).",
    true,
  ),
  member_name: str(
    (s) => (/[/\\]/.test(s) || s === "." || s === ".." || s.startsWith(".") ? "must be a plain file name (no '/', not hidden)" : undefined),
    "file name",
  )
    .optional().doc(
      "Name of the dump inside the .tgz (and of the restored file). Default: the entry's name in the zip; for a zip written from a pipe (entry '-' or empty), source.entry when it is a plain name, else dump.sql.",
      "shop.sql",
    ),
  encrypt: obj({
    age_recipients: list(
      str((s) =>
        /^(age1[0-9a-z]{58}|ssh-(ed25519|rsa) \S+.*)$/.test(s)
          ? undefined
          : "expected an age public key (age1…) or an ssh-ed25519/ssh-rsa public key line"
      ),
    ).default([]).doc(
      "Encrypt every archive to these public keys with age: it becomes NAME.tgz.age (its sidecar covers the stored bytes); any one private key opens it. The nightly run needs no private key.",
      ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"],
    ),
    age_recipients_file: absPath().trust().optional().doc(
      "A file of public keys, one a line (age -R): the recipients, with or instead of age_recipients.",
      "/etc/archivist/recipients.txt",
    ),
    identity_file: absPath().trust().optional().doc(
      "A private key (age-keygen) for check's scheduled read-back and restore; never used by the nightly run. Without one, check verifies presence, size and sidecar only.",
      "/root/archivist-age-key.txt",
    ),
  }).doc("Encryption at rest (age)."),
});

const destinationVariants = Object.fromEntries(Object.entries(TRANSPORTS).map(([k, v]) => [k, v.schema])) as {
  [K in keyof typeof TRANSPORTS]: (typeof TRANSPORTS)[K]["schema"];
};

export const retentionSchema = obj({
  max_age: duration().optional().doc(
    "Archives stored longer ago than this (the date of the run that stored them, from the catalogue) are deleted. Absent: keep forever (GFS rules still apply). It also bounds the clock check: a clock further ahead than this of the last archive stored deletes nothing.",
    "30d",
  ),
  min_keep: int(1).default(3).doc("The N complete archives stored last are never deleted, whatever their age.", 3),
  keep_hourly: int(0).default(0).doc(
    "Keep the newest archive of each of the last N hours (0: rule off); for jobs run every hour, with {HH} in archive.name.",
    0,
  ),
  keep_daily: int(0).default(0).doc("Keep the newest archive of each of the last N days (0: rule off).", 7),
  keep_weekly: int(0).default(0).doc("Keep the newest archive of each of the last N ISO weeks.", 4),
  keep_monthly: int(0).default(0).doc("Keep the newest archive of each of the last N months.", 12),
  keep_yearly: int(0).default(0).doc("Keep the newest archive of each of the last N years.", 0),
  max_delete: int(1).default(10).doc(
    "A run that would delete more archives than this deletes none and fails (exit 31); `prune --force` overrides once.",
    10,
  ),
});

/** A destination's own retention: any key of retention:, the others inherited from it. */
const retentionOverride = obj(
  Object.fromEntries(Object.entries(retentionSchema.children!).map(([k, f]) => [k, f.optional()])) as {
    [K in keyof typeof retentionSchema.children]: Field<unknown>;
  },
).optional().doc("This destination's own retention: any key of retention:, the others taken from retention:.");

/** One item of destinations: a destination of any type, with its own retention. */
const destinationItem = tagged(
  Object.fromEntries(
    Object.entries(destinationVariants).map(([k, v]) => [k, obj({ ...(v as Field<unknown>).children!, retention: retentionOverride })]),
  ) as {
    [K in keyof typeof destinationVariants]: Field<
      (typeof destinationVariants)[K] extends Field<infer T> ? T & { retention?: Partial<RetentionShape> } : never
    >;
  },
);
type RetentionShape = ReturnType<typeof retentionSchema.parse>;

export const storeSchema = obj({
  require: oneOf("all", "any").default("all").doc(
    "With destinations: the state advances (the archive counts as stored) when it is stored and verified on all of them (all), or on at least one (any: the others are named in a warning, and the next run sends them the missing copy, even when the dump is unchanged).",
  ),
});

export const logSchema = obj({
  file: absPath().default("/var/log/archivist/archivist.log").doc(
    "Human log file. When it cannot be written, the log goes to <state_dir>/archivist.log (with a warning).",
  ),
  level: oneOf("debug", "info", "warn", "error").default("info").doc("Lowest level written to the log file."),
});

export const historySchema = obj({
  file: absPath().optional().doc(
    "Append-only run history, one JSON line per run. Default: <state_dir>/history.jsonl.",
    "/var/lib/archivist/history.jsonl",
  ),
});

const email = str(
  (s) => (/^([^<>@]*<)?[^@\s<>]+@[^@\s<>]+>?$/.test(s.trim()) ? undefined : `expected an e-mail address, got ${JSON.stringify(s)}`),
  "e-mail address",
);

export const mailSchema = obj({
  enabled: bool().default(false).doc("Send a report mail after each run (see `when`)."),
  when: oneOf("always", "failure", "warning_or_failure").default("warning_or_failure").doc(
    "Which runs send a mail: always, failure only, or warning_or_failure (an unchanged dump is a warning).",
  ),
  to: list(email).default([]).doc("Recipients (a list, or one address).", ["dba@example.org"]),
  cc: list(email).default([]).doc("Copy recipients.", []),
  from: email.optional().doc("Sender address. Default: archivist@<host name>.", "archivist@db1.example.org"),
  subject: nonEmpty("template").default("[archivist] {status} {job}: {summary} ({host})").doc(
    "Subject template. Tokens: {status} (OK, WARNING, FAILED), {job}, {host}, {archive}, {date}, {summary}, {step}.",
  ),
  attach_log: bool().default(true).doc("Attach this run's log lines (not the whole log file)."),
  transport: oneOf("sendmail", "smtp").default("sendmail").doc(
    "sendmail: the machine's mail system (sendmail -t -oi). smtp: talk to an SMTP server directly.",
  ),
  sendmail_path: absPath().trust().default("/usr/sbin/sendmail").doc("The sendmail program (Postfix, Exim and msmtp all provide one)."),
  host: nonEmpty("host name").optional().doc("SMTP server (transport: smtp).", "smtp.example.org"),
  port: int(1, 65535).optional().doc("SMTP port. Default: 587 for starttls, 465 for tls, 25 for none.", 587),
  security: oneOf("starttls", "tls", "none").default("starttls").doc(
    "starttls: plain connection upgraded with STARTTLS, required (never falls back to clear text). tls: TLS from the first byte (SMTPS). none: clear text, only when written explicitly.",
  ),
  ca_file: absPath().trust().optional().doc(
    "PEM file of the CA that signed the SMTP server's certificate (when not a public CA).",
    "/etc/archivist/smtp-ca.pem",
  ),
  username: nonEmpty().optional().doc("SMTP user (AUTH).", "archivist"),
  ...secretFields("password", "SMTP password"),
  timeout: duration().timer().default(30_000).doc("Connect and command timeout for SMTP or sendmail.", "30s"),
}).refine((m) => {
  if (!m.enabled) return undefined;
  if (!m.to.length) return ["to", "is required when mail is enabled: at least one recipient"];
  if (m.transport === "smtp" && !m.host) return ["host", "is required with transport: smtp"];
  return undefined;
});

export const verifySchema = obj({
  max_age: duration().default(26 * 3_600_000).doc(
    "`archivist verify` reports CRITICAL when the last run is older than this (a night the job never ran).",
    "26h",
  ),
  schedule_file: absPath().default("/etc/cron.d/archivist").doc(
    "Cron file checked by `archivist verify` (install.sh writes it). A systemd timer archivist.timer is accepted instead.",
  ),
  unit_file: absPath().default("/etc/systemd/system/archivist.service").doc(
    "The systemd service of install.sh --systemd: when it exists, `archivist verify` checks that its sandbox (ReadWritePaths=, CapabilityBoundingSet=, PrivateTmp=, with its drop-ins) allows every path and capability this config needs.",
  ),
});

const pingUrl = str((s) => {
  try {
    const u = new URL(s);
    return u.protocol === "https:" || u.protocol === "http:" ? undefined : "expected an http(s):// URL";
  } catch {
    return `expected a URL, got ${JSON.stringify(s)}`;
  }
}, "URL");

/** A command as an argv list (no shell): `[/usr/local/bin/notify, ok]`; `[sh, -c, "..."]` for a shell. */
const command = new Field<string[]>("command (argv list)", (raw, path) => {
  if (!Array.isArray(raw) || !raw.length || raw.some((a) => typeof a !== "string") || !raw[0]) {
    throw new FieldError(
      path,
      `expected a command as a list: [/usr/local/bin/program, --arg], got ${JSON.stringify(raw)}`,
      'no shell runs it; for one, write [sh, -c, "..."]',
    );
  }
  return raw as string[];
});

export const hooksSchema = obj({
  before: command.trust().optional().doc(
    "Run before the fetch (the export's own 'ready' script, a snapshot); its failure or timeout fails the night at once (exit 25), nothing fetched.",
    ["/usr/local/bin/export-ready", "--db", "shop"],
  ),
  after: command.trust().optional().doc(
    "Run after a night that did not fail, with ARCHIVIST_STATUS, ARCHIVIST_ARCHIVE... in its environment; its failure is a warning.",
    ["/usr/local/bin/notify", "ok"],
  ),
  on_failure: command.trust().optional().doc("Run after a failed night; its failure is a warning.", ["/usr/local/bin/page-oncall"]),
  timeout: duration().timer().default(600_000).doc(
    "Each hook's time limit: past it, the hook and every process it started are killed.",
    "10m",
  ),
});

export const monitorSchema = obj({
  ping_url: pingUrl.optional().doc(
    "Heartbeat URL (healthchecks.io style): GET URL/start at start, POST URL on success, POST URL/fail on failure, with the summary as body and ?rid=<run id>. A ping failure is logged, never fatal.",
    "https://hc-ping.com/your-uuid",
  ),
  ping_timeout: duration().timer().default(10_000).doc("Timeout of each ping.", "10s"),
  prometheus_textfile: absPath().optional().doc(
    'node_exporter textfile collector file, written atomically after each run (last run, last success, duration, archive size, status), each sample labelled archivist_job="NAME".',
    "/var/lib/prometheus/node-exporter/archivist.prom",
  ),
});

/** The whole file. */
export const configSchema = obj({
  name: jobName.default("archivist").doc("Job name: appears in logs, mails and the state/lock file names.", "shop-db"),
  state_dir: absPath().default("/var/lib/archivist").doc("Where the state (last sha256), the lock and the history live."),
  work_dir: absPath().default("/var/tmp/archivist").doc(
    "Temporary files during a run (the download and the archive; the dump is never written uncompressed): needs room for about twice the zip. Removed at exit.",
  ),
  source: sourceSchema,
  check: checkSchema,
  archive: archiveSchema,
  destination: tagged(destinationVariants).optional().doc(`Where archives go: type ${Object.keys(TRANSPORTS).join(" | ")}.`),
  destinations: list(destinationItem).optional().doc(
    "Several destinations instead of destination: (the 3-2-1 rule: a NAS and an off-site copy): each archive is stored to every one, in order, each with its own retention (a retention: key inside it).",
  ),
  store: storeSchema,
  retention: retentionSchema,
  log: logSchema,
  history: historySchema,
  mail: mailSchema,
  verify: verifySchema,
  monitor: monitorSchema,
  hooks: hooksSchema,
}).refine((c) => {
  if (!c.destination && !c.destinations) return ["destination", "is required (or destinations: a list of them)"];
  if (c.destination && c.destinations) return ["destinations", "give destination: or destinations:, not both"];
  if (c.destinations && !c.destinations.length) return ["destinations", "is empty: list at least one destination"];
  const other = (c.destinations ?? [c.destination!]).find((d) => d.type !== "local");
  if (c.check.on_unchanged === "link" && other) {
    return [
      "check.on_unchanged",
      `link makes a hard link on the destination's disk: it needs destination.type: local, not ${other.type} (use skip or archive there)`,
    ];
  }
  const hourly = [c.retention.keep_hourly, ...(c.destinations ?? []).map((d) => d.retention?.keep_hourly)].some((n) => (n ?? 0) > 0);
  if (hourly && !c.archive.name.includes("{HH}")) {
    return [
      "retention.keep_hourly",
      `counts the hours in the archives' names, and archive.name (${c.archive.name}) has no {HH}: put {HH} in it (e.g. "{YYYY}{MM}{DD}-{HH}.tgz") for a job run every hour`,
    ];
  }
  return undefined;
});

export type RawConfig = ReturnType<typeof configSchema.parse>;
export type SourceConfig = RawConfig["source"];
export type AuthConfig = NonNullable<SourceConfig["auth"]>;
export type CheckConfig = RawConfig["check"];
export type ArchiveConfig = RawConfig["archive"];
export type RetentionConfig = RawConfig["retention"];
export type MailConfig = RawConfig["mail"];

/** Walk the schema: every documented key with its field (for docs and the example-config test). */
export function* walkSchema(f: Field<unknown>, path = ""): Generator<[string, Field<unknown>]> {
  if (f.children) {
    if (path) yield [path, f];
    for (const [k, c] of Object.entries(f.children)) yield* walkSchema(c, path ? `${path}.${k}` : k);
  } else if (f.variants) {
    yield [path, f];
    for (const [name, v] of Object.entries(f.variants)) {
      for (const [p, c] of walkSchema(v, `${path}[${name}]`)) if (p !== `${path}[${name}]`) yield [p, c];
    }
  } else {
    yield [path, f];
  }
}
