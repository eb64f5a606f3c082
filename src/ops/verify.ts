/**
 * `archivist verify` (also `--verify`): a health check of everything a night needs, without archiving anything.
 * One line per check (✓ ok, ! warning, ✗ critical) with a hint; the result maps to Nagios plugin exit codes
 * (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) so that it can run as a monitoring check.
 */
import { join, resolve } from "node:path";
import type { Clock } from "../os/clock.ts";
import { atTarget, type Config } from "../config/load.ts";
import { formatDuration, formatSize, shortDuration } from "../config/units.ts";
import type { Env } from "../os/env.ts";
import { asArchivistError, errMsg } from "../errors.ts";
import { exec } from "../os/exec.ts";
import { processes } from "../os/procs.ts";
import { readHistory } from "../records/history.ts";
import type { RunResult } from "../records/history.ts";
import { nearestExisting } from "../os/fs.ts";
import type { Logger } from "../report/log.ts";
import { verifyMail } from "../report/mail.ts";
import { targetLocations, withTransport } from "../transports/registry.ts";
import { readCatalogue, vanished } from "../records/catalogue.ts";
import { uploadAtomic } from "../transports/transport.ts";
import { PROBE_NAME, probeName } from "../transports/common.ts";
import { findEntry, readDirectoryFrom, ZipError } from "../formats/zip.ts";
import { probeSource, type SourceProbe } from "../source/probe.ts";
import { readUnit, sandboxNeeds, sandboxProblems, unitLines } from "../config/sandbox.ts";
import { encrypting } from "../formats/age.ts";
import { statusError } from "../source/attempt.ts";

export type CheckStatus = "ok" | "warn" | "crit";

export interface Check {
  name: string;
  status: CheckStatus;
  message: string;
  hint?: string;
}

export const NAGIOS = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;

const ICON: Record<CheckStatus, string> = { ok: "✓", warn: "!", crit: "✗" };

export interface VerifyDeps {
  config: Config;
  clock: Clock;
  env: Env;
  log: Logger;
  configMode: number;
  historyFile: string;
  /** The program as cron should call it (for the schedule check). */
  programHint?: string;
  /**
   * Which checks concern the whole file rather than this job, for a config with jobs: the file's mode and the
   * schedule (`run`), and the mail server (`mail`). Both default to true; verify makes each once per file (and the
   * mail check once per distinct mail setting).
   */
  once?: { run: boolean; mail: boolean };
}

function ok(name: string, message: string): Check {
  return { name, status: "ok", message };
}
function warn(name: string, message: string, hint?: string): Check {
  return { name, status: "warn", message, hint };
}
function crit(name: string, message: string, hint?: string): Check {
  return { name, status: "crit", message, hint };
}

/** Run every check. Never throws: a failing check is a line. */
export async function runVerify(d: VerifyDeps): Promise<Check[]> {
  const c = d.config;
  const once = d.once ?? { run: true, mail: true };
  const checks: Check[] = [ok("config", `${c.file} is valid (job ${c.name})`)];
  if (once.run) {
    checks.push(
      d.configMode & 0o077
        ? warn(
          "config",
          `${c.file} is readable by group or others (mode ${d.configMode.toString(8).padStart(4, "0")})`,
          `chmod 600 ${c.file}`,
        )
        : ok("config", `${c.file} permissions ${d.configMode.toString(8).padStart(4, "0")}`),
    );
  }
  // Only the lines that describe this job's destinations: a copy of the config (same name, another destination)
  // keeps its own lines, and they never stand for this one's nights or drills.
  const mine = targetLocations(c.targets);
  const runs = readHistory(d.historyFile).runs.filter((r) => !r.destinations || r.destinations.some((l) => mine.includes(l)));
  checks.push(...await guard("source", () => checkSource(c)));
  checks.push(...await guard("work_dir", () => checkWorkDir(c, runs)));
  // Every destination (destinations:), each named by its place when there are several.
  for (const [i, t] of c.targets.entries()) {
    const name = c.targets.length > 1 ? `destination ${i + 1}` : "destination";
    const own = await guard(name, () => checkDestination({ ...d, config: atTarget(c, t) }));
    checks.push(...own.map((x) => ({ ...x, name })));
  }
  checks.push(...checkHooks(c));
  checks.push(...await guard("encryption", () => checkEncryption(c)));
  if (c.mail.enabled && once.mail) {
    checks.push(...await guard("mail", async () => [ok("mail", await verifyMail(c.mail))]));
  }
  if (once.run) checks.push(await checkSchedule(c, d.programHint));
  checks.push(checkLastRun(c, runs, d.historyFile, d.clock));
  checks.push(checkLastCheck(c, runs, d.clock));
  return checks;
}

async function guard(name: string, fn: () => Promise<Check[]>): Promise<Check[]> {
  try {
    return await fn();
  } catch (e) {
    const err = asArchivistError("internal", e);
    return [crit(name, err.message, err.hint || undefined)];
  }
}

/** Overall Nagios status and the one-line summary. */
export function nagios(checks: Check[]): { code: number; label: string; summary: string } {
  const worst = checks.some((x) => x.status === "crit") ? "crit" : checks.some((x) => x.status === "warn") ? "warn" : "ok";
  const label = worst === "crit" ? "CRITICAL" : worst === "warn" ? "WARNING" : "OK";
  const bad = checks.filter((x) => x.status === worst && worst !== "ok");
  const summary = bad.length ? bad.map((x) => `${x.name}: ${x.message}`).join("; ") : `${checks.length} checks passed`;
  return { code: NAGIOS[label], label, summary };
}

/** The checklist as text. */
export function formatChecks(checks: Check[]): string {
  const lines: string[] = [];
  for (const x of checks) {
    lines.push(`${ICON[x.status]} ${x.name.padEnd(12)} ${x.message}`);
    if (x.hint && x.status !== "ok") lines.push(`  ${" ".repeat(12)} hint: ${x.hint}`);
  }
  return lines.join("\n");
}

/** source: reachable with TLS verified, within max_size, the entry inside the zip where the server offers ranges. */
async function checkSource(c: Config): Promise<Check[]> {
  const src = c.source;
  let p: SourceProbe;
  try {
    p = await probeSource(src);
  } catch (e) {
    const a = e as { message: string; hint?: string };
    return [crit("source", a.message, a.hint || undefined)];
  }
  try {
    if (p.status < 200 || p.status > 299) {
      const a = statusError(p.status, p.reason, new URL(src.url), src, !!src.auth);
      return [
        crit(
          "source",
          a.message,
          p.client === "curl" ? a.hint : p.status === 401 || p.status === 403 ? "check source.auth" : "check source.url",
        ),
      ];
    }
    const size = p.total !== undefined ? `, ${formatSize(p.total)}` : "";
    if (p.client === "curl") {
      return [
        ok("source", `${src.url} reachable with curl (HTTP ${p.status}, TLS verified${size})`),
        ok("source", "the entry inside the zip is checked at run time (source.client: curl reads no byte ranges)"),
      ];
    }
    const out = [ok("source", `${src.url} reachable (HTTP ${p.status}, TLS verified${size})`)];
    if (p.total !== undefined && p.total > src.max_size) {
      out.push(
        crit("source", `the zip is ${formatSize(p.total)}, above source.max_size (${formatSize(src.max_size)})`, "raise source.max_size"),
      );
    }
    out.push(await checkEntry(src.entry, p));
    return out;
  } finally {
    p.close();
  }
}

/** The entry inside the zip, read through byte ranges (the central directory only), when the server offers them. */
async function checkEntry(entry: string, p: SourceProbe): Promise<Check> {
  // Not a fault: many servers offer no ranges. The night checks the entry; verify cannot without downloading.
  if (!p.ranges) return ok("source", "the server offers no byte ranges: the entry inside the zip is checked at run time");
  try {
    const e = findEntry(await readDirectoryFrom(p.ranges), entry);
    return ok("source", `entry ${e.name} present (${formatSize(e.size)} uncompressed)`);
  } catch (e) {
    if (e instanceof ZipError) return crit("source", e.message, e.hint || undefined);
    return warn("source", `could not look inside the zip: ${errMsg(e)}`, "the entry is checked at the next run");
  }
}

/** Each configured hook's program: there, a file, executable by the run user (a name is looked up on PATH). */
export function checkHooks(c: Config, path = Deno.env.get("PATH") ?? "/usr/bin:/bin"): Check[] {
  const out: Check[] = [];
  for (const which of ["before", "after", "on_failure"] as const) {
    const argv = c.hooks[which];
    if (!argv) continue;
    const key = `hooks.${which}`;
    const prog = argv[0].includes("/") ? argv[0] : path.split(":").map((d) => join(d || ".", argv[0])).find(isExecutable);
    if (!prog || !isExecutable(prog)) {
      out.push(
        crit(
          "hooks",
          `${key}: ${argv[0]} is not an executable file${argv[0].includes("/") ? "" : ` on PATH (${path})`}`,
          "check the path and chmod +x",
        ),
      );
    } else out.push(ok("hooks", `${key}: ${prog} is executable (timeout ${shortDuration(c.hooks.timeout)})`));
  }
  return out;
}

/** archive.encrypt: the age program there, the recipients file readable, and no private key where the night runs it. */
async function checkEncryption(c: Config): Promise<Check[]> {
  const e = c.archive.encrypt;
  if (!encrypting(e)) return [];
  const age = await exec("age", ["--version"], { timeoutMs: 10_000 }, "age").catch(() => undefined);
  if (!age || age.code !== 0) return [crit("encryption", "archive.encrypt is set but age is not installed", "apt-get install age")];
  const out = [
    ok(
      "encryption",
      `archives are encrypted with age ${age.stdout.trim()} to ${e.age_recipients.length} key(s)${
        e.age_recipients_file ? ` and those of ${e.age_recipients_file}` : ""
      }`,
    ),
  ];
  if (e.age_recipients_file) {
    try {
      const keys = Deno.readTextFileSync(e.age_recipients_file).split("\n").filter((l) => l.trim() && !l.startsWith("#"));
      if (!keys.length) out.push(crit("encryption", `${e.age_recipients_file} holds no public key`, "one age1… key a line"));
    } catch (err) {
      out.push(
        crit(
          "encryption",
          `cannot read archive.encrypt.age_recipients_file ${e.age_recipients_file}: ${errMsg(err)}`,
          "check the path and permissions",
        ),
      );
    }
  }
  return out;
}

/** A regular file this user may execute (by the owner, group or other bits that apply; root: any x bit). */
function isExecutable(p: string): boolean {
  try {
    const st = Deno.statSync(p);
    const mode = st.mode ?? 0, uid = Deno.uid();
    if (!st.isFile) return false;
    if (uid === 0) return (mode & 0o111) !== 0;
    if (st.uid === uid) return (mode & 0o100) !== 0;
    if (st.gid === Deno.gid()) return (mode & 0o010) !== 0;
    return (mode & 0o001) !== 0;
  } catch {
    return false;
  }
}

/** Available bytes on the filesystem of `dir` (or its nearest existing parent), from df. */
async function freeBytes(dir: string): Promise<number | undefined> {
  const r = await exec("df", ["-Pk", nearestExisting(dir)], { timeoutMs: 10_000 }, "coreutils");
  const cols = r.stdout.trim().split("\n").pop()?.split(/\s+/);
  return cols && /^\d+$/.test(cols[3] ?? "") ? Number(cols[3]) * 1024 : undefined;
}

/**
 * A run holds, in work_dir, the downloaded zip and the .tgz written from it (the dump itself is never written
 * uncompressed): about the zip's size plus the last archive's. Histories from before zipSize was recorded fall back to
 * the dump's size.
 */
async function checkWorkDir(c: Config, runs: RunResult[]): Promise<Check[]> {
  const free = await freeBytes(c.work_dir);
  if (free === undefined) return [warn("work_dir", `cannot tell the free space of ${c.work_dir}`)];
  const last = runs.filter((r) => r.dump).pop()?.dump;
  if (last === undefined) return [ok("work_dir", `${formatSize(free)} free in ${c.work_dir} (no earlier dump to compare with)`)];
  const archive = runs.filter((r) => r.archive).pop()?.archive?.size;
  const need = last.zipSize !== undefined ? last.zipSize + (archive ?? last.zipSize) : last.size;
  const what = last.zipSize !== undefined
    ? `the zip (${formatSize(last.zipSize)}) and the .tgz (${formatSize(archive ?? last.zipSize)}) of the last run`
    : `the last dump (${formatSize(last.size)})`;
  if (free < need) {
    return [
      crit(
        "work_dir",
        `${formatSize(free)} free in ${c.work_dir}, less than a run needs: ${what}`,
        "free space, or point work_dir at a bigger filesystem",
      ),
    ];
  }
  if (free < need * 1.5) {
    return [
      warn(
        "work_dir",
        `${formatSize(free)} free in ${c.work_dir}; a run needs about ${formatSize(need)} (${what}), with no room to grow`,
        "free space before the dump grows",
      ),
    ];
  }
  return [ok("work_dir", `${formatSize(free)} free in ${c.work_dir}; a run needs about ${formatSize(need)}`)];
}

async function checkDestination(d: VerifyDeps): Promise<Check[]> {
  const probe = probeName();
  const dest = d.config.destination as { create_dirs?: boolean };
  // A health check changes nothing but its own probe: it never creates the destination directory.
  const cfg = { ...d.config.destination, create_dirs: false } as typeof d.config.destination;
  try {
    return await withTransport(cfg, { log: d.log, env: d.env, step: "verify" }, async (t, priv) => {
      const listed = await t.list();
      const gone = vanished(readCatalogue(d.config.state_dir, d.config.name), t.location, listed);
      if (gone) return [crit("destination", gone.message, gone.hint)];
      for (const e of listed) {
        if (PROBE_NAME.test(e.name)) {
          await t.remove(e.name).then(() => d.log.info("verify", `removed ${e.name}, left by a verify that was killed`), () => {});
        }
      }
      const local = join(priv, "probe");
      Deno.writeTextFileSync(local, `archivist verify probe ${new Date().toISOString()}\n`);
      await uploadAtomic(t, local, probe);
      await t.remove(probe);
      const left = (await t.list()).some((e) => e.name === probe);
      if (left) return [warn("destination", `${t.location}: the probe file ${probe} could not be removed`, "check delete permissions")];
      const kept = await t.keptAfterDelete?.(probe);
      if (kept) {
        return [
          warn(
            "destination",
            `${t.location}: the server keeps deleted files (the probe went to ${kept}, a recycle bin): retention's deletions free no space there`,
            "exclude archivist's directory from the share's recycle bin (recycle:exclude_dir, or vfs objects without recycle), or empty the bin regularly",
          ),
        ];
      }
      return [ok("destination", `${t.location}: connected, directory exists, write + rename + delete of a probe file work`)];
    });
  } catch (e) {
    const err = asArchivistError("store", e);
    if (err.code === "missing_dir" && dest.create_dirs) {
      return [
        warn(
          "destination",
          `${err.message}: the first run creates it (create_dirs: true); verify does not`,
          "run archivist run once, or create it",
        ),
      ];
    }
    return [crit("destination", err.message, err.hint || undefined)];
  }
}

/**
 * Would the installed systemd service's sandbox block what this config does (a path it writes, a capability it uses)?
 * Checked against the unit file, since verify itself does not run inside the sandbox. No line without the unit.
 */
export function checkSandbox(jobs: Config[]): Check | undefined {
  const unitFile = jobs[0].verify.unit_file;
  const unit = readUnit(unitFile);
  if (!unit) return undefined;
  const needs = sandboxNeeds(jobs, unit.user);
  const problems = sandboxProblems(needs, unit);
  if (!problems.length) return ok("sandbox", `${unitFile} allows every path and capability this config needs`);
  return crit(
    "sandbox",
    `${unitFile} would block the night: ${problems.join("; ")}`,
    `re-run install.sh (it derives the unit from the config), or systemctl edit archivist.service and set: ${unitLines(needs).join(" ")}`,
  );
}

const TIMER_UNITS = ["/etc/systemd/system/archivist.timer", "/lib/systemd/system/archivist.timer"];
const DEFAULT_CONFIG = "/etc/archivist/archive.yaml";

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Does something run this config at night? A cron line for *this* config (several configs may share the file) and a
 * running cron daemon; or a systemd timer that is enabled and active, with systemd running.
 */
async function checkSchedule(c: Config, program?: string): Promise<Check> {
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(c.verify.schedule_file);
  } catch { /* no cron file */ }
  const timer = TIMER_UNITS.find(exists);
  const lines = (text ?? "").split("\n").filter((l) =>
    l.trim() && !l.trim().startsWith("#") && /\barchivist\b/.test(l) && /\brun\b/.test(l)
  );
  if (lines.length) {
    const configOf = (l: string) => /(?:-c|--config)[ =](\S+)/.exec(l)?.[1];
    // The same file however it was named: verify -c archive.yaml in /etc/archivist is the cron line's absolute path.
    const real = (p: string) => {
      try {
        return Deno.realPathSync(p);
      } catch {
        return resolve(p);
      }
    };
    const mine = real(c.file);
    const line = lines.find((l) => configOf(l) !== undefined && real(configOf(l)!) === mine) ??
      (mine === real(DEFAULT_CONFIG) ? lines.find((l) => !configOf(l)) : undefined);
    if (!line) {
      return warn(
        "schedule",
        `${c.verify.schedule_file} has ${lines.length} archivist line(s), none for ${c.file} (${
          lines.map(configOf).filter(Boolean).join(", ")
        })`,
        "add a line with -c for this config (install.sh writes one), or point verify.schedule_file at the right file",
      );
    }
    if (program && !line.includes(program)) {
      return warn("schedule", `${c.verify.schedule_file} does not call ${program}`, "point the cron line at this binary");
    }
    const fields = line.trim().split(/\s+/);
    const where = `${c.verify.schedule_file}: ${fields.slice(0, 5).join(" ")} as ${fields[5]}`;
    const procs = processes();
    const daemon = procs && [...procs.values()].some((p) => /^(\S*\/)?(cron|crond|anacron|busybox crond)( |$)/.test(p.args));
    if (procs && !daemon) {
      return warn(
        "schedule",
        `${where}, but no cron daemon is running: nothing will run that line`,
        "apt-get install cron and start it (systemctl enable --now cron); with systemd you can use install.sh --systemd instead",
      );
    }
    return ok("schedule", procs ? `${where}; cron is running` : where);
  }
  if (timer) {
    if (!exists("/run/systemd/system")) {
      return crit(
        "schedule",
        `${timer} is installed but systemd is not running on this machine: the timer never fires`,
        "use cron: install.sh --cron",
      );
    }
    const state = async (what: string) =>
      (await exec("systemctl", [what, "archivist.timer"], { timeoutMs: 10_000 }, "systemd").catch(() => undefined))?.stdout.trim() ??
        "unknown";
    const enabled = await state("is-enabled"), active = await state("is-active");
    if (enabled !== "enabled" || active !== "active") {
      return crit(
        "schedule",
        `archivist.timer is ${enabled} and ${active}: nothing runs archivist at night`,
        "systemctl enable --now archivist.timer",
      );
    }
    return ok("schedule", "archivist.timer is enabled and active");
  }
  return warn(
    "schedule",
    text === undefined
      ? `no cron entry ${c.verify.schedule_file} and no systemd timer archivist.timer: nothing runs archivist at night`
      : `${c.verify.schedule_file} has no line running 'archivist run'`,
    "run install.sh, or add a cron entry (see the user guide)",
  );
}

function checkLastRun(c: Config, runs: RunResult[], historyFile: string, clock: Clock): Check {
  const last = runs.filter((r) => r.command === "run" && (r.job ?? c.name) === c.name).pop(); // this job only: a history file may be shared
  if (!last) return warn("last run", `no run recorded in ${historyFile} yet`, "run archivist run once, or wait for the first night");
  const age = clock.now().getTime() - new Date(last.startedAt).getTime();
  const when = since(age);
  if (age < -CLOCK_SLACK) {
    return warn(
      "last run",
      `the last run is dated ${last.startedAt}, ${formatDuration(-age)} in the future: the clock was ahead then, or is behind now`,
      "check the clock (timedatectl, NTP); while the clock disagrees with the history, retention deletes nothing",
    );
  }
  if (age > c.verify.max_age) {
    return crit(
      "last run",
      `the last run was ${when} (${last.startedAt}), more than verify.max_age (${formatDuration(c.verify.max_age)})`,
      "is the cron job or timer running? check /var/log/archivist/cron.log and syslog",
    );
  }
  if (last.status === "failed") {
    return crit("last run", `FAILED ${when} at ${last.error?.step}: ${last.error?.message}`, last.error?.hint || undefined);
  }
  if (last.status === "warning" && last.unchangedSince && last.warnings.every((w) => /^(fetch|compare): /.test(w))) {
    // An unchanged night: normal for check.max_unchanged (a weekend), a warning past it or without it.
    const still = clock.now().getTime() - new Date(last.unchangedSince).getTime();
    const max = c.check.max_unchanged;
    const msg = `unchanged ${when}: the export has not changed for ${formatDuration(Math.max(0, still))}`;
    if (max !== undefined && still <= max) return ok("last run", `${msg} (within check.max_unchanged, ${formatDuration(max)})`);
    return warn(
      "last run",
      max === undefined ? msg : `${msg}, more than check.max_unchanged (${formatDuration(max)})`,
      max === undefined
        ? "check the export on the database server; if the data is unchanged on some days, set check.max_unchanged (e.g. 3d)"
        : "check the export on the database server: did its job run?",
    );
  }
  if (last.status === "warning") return warn("last run", `WARNING ${when}: ${last.warnings[0] ?? ""}`);
  return ok("last run", `OK ${when}${last.archive ? `: ${last.archive.name} (${formatSize(last.archive.size)})` : ""}`);
}

/** "6h 30m ago", or "2d in the future" for a time after now (a clock that went back). */
function since(ms: number): string {
  return ms >= 0 ? `${formatDuration(ms)} ago` : `${formatDuration(-ms)} in the future`;
}

/** A record up to this far in the future is clock jitter between machines or NTP steps, not a wrong clock. */
const CLOCK_SLACK = 10 * 60_000;

/** How long ago `archivist check` last passed (the restore drill); a failed last check is CRITICAL. */
function checkLastCheck(c: Config, runs: RunResult[], clock: Clock): Check {
  const checks = runs.filter((r) => r.command === "check" && (r.job ?? c.name) === c.name);
  const last = checks.at(-1);
  const ago = (r: RunResult) => since(clock.now().getTime() - new Date(r.startedAt).getTime());
  if (!last) return ok("last check", "`archivist check` has not run yet (schedule it weekly: it reads an archive back whole)");
  if (last.status === "failed") {
    return crit(
      "last check",
      `FAILED ${ago(last)}: ${last.check?.summary ?? last.warnings[0] ?? ""}`,
      "run `archivist check --all` and see `archivist list`",
    );
  }
  const passed = checks.filter((r) => r.status === "ok").at(-1);
  if (last.status === "warning") {
    return warn("last check", `WARNING ${ago(last)}: ${last.check?.summary ?? ""}${passed ? `; last passed ${ago(passed)}` : ""}`);
  }
  return ok("last check", `passed ${ago(last)}${last.check?.read.length ? ` (read back ${last.check.read.join(", ")})` : ""}`);
}
