/**
 * What the systemd service's sandbox must allow for a config to run as it runs from cron: the paths a night writes
 * (ProtectSystem=strict makes everything else read-only), the capabilities it uses as root (an empty
 * CapabilityBoundingSet= leaves root unable to give an archive to another owner), and whether PrivateTmp= would
 * hide what it writes under /tmp. `archivist unit` prints the lines install.sh writes into the unit; `verify` holds
 * the installed unit (with its drop-ins) against the same needs, since verify itself does not run inside it.
 */
import { dirname, join, resolve } from "node:path";
import type { Config } from "./load.ts";
import { type DestinationConfig, type DestinationType, TRANSPORTS } from "../transports/registry.ts";
import type { SandboxNeed, TransportKind } from "../transports/transport.ts";

export type Need = SandboxNeed;

export interface SandboxNeeds {
  writes: Need[];
  capabilities: Need[];
}

/** The self-extracting file's cache, written on every start (install.sh creates it for the run user). */
export const CACHE_DIR = "/var/cache/archivist";

/** What the sandbox must allow for these jobs (one config file), run as `runUser`. */
export function sandboxNeeds(jobs: Config[], runUser = "root"): SandboxNeeds {
  const writes: Need[] = [{ what: CACHE_DIR, why: "the self-extracting file's cache" }];
  const capabilities: Need[] = [];
  const add = (list: Need[], what: string | undefined, why: string) => {
    const at = what && (list === writes ? resolve(what) : what);
    if (at && !list.some((w) => w.what === at)) list.push({ what: at, why });
  };
  for (const j of jobs) {
    add(writes, j.state_dir, "state_dir");
    add(writes, j.work_dir, "work_dir");
    add(writes, dirname(j.log.file), "log.file");
    if (j.history.file) add(writes, dirname(j.history.file), "history.file");
    if (j.monitor.prometheus_textfile) add(writes, dirname(j.monitor.prometheus_textfile), "monitor.prometheus_textfile");
    for (const [i, t] of j.targets.entries()) {
      const key = j.targets.length > 1 ? `destinations[${i}]` : "destination";
      const kind = TRANSPORTS[t.destination.type as DestinationType] as TransportKind<DestinationConfig>;
      const own = kind.sandbox?.(t.destination, runUser);
      for (const w of own?.writes ?? []) add(writes, w.what, `${key}.${w.why}`);
      for (const c of own?.capabilities ?? []) add(capabilities, c.what, `${key}.${c.why}`);
    }
  }
  return { writes, capabilities };
}

const under = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
const inTmp = (p: string) => under(p, "/tmp") || under(p, "/var/tmp");

/** The [Service] sandbox lines for these needs: what install.sh writes into archivist.service. */
export function unitLines(n: SandboxNeeds): string[] {
  // PrivateTmp= would give the service a /tmp of its own: archives or state written there would vanish.
  const keepsTmp = n.writes.some((w) => inTmp(w.what) && w.why !== "work_dir");
  return [
    `ReadWritePaths=${n.writes.map((w) => `-${w.what}`).join(" ")}`,
    `CapabilityBoundingSet=${n.capabilities.map((c) => c.what).join(" ")}`,
    `PrivateTmp=${keepsTmp ? "no" : "yes"}`,
  ];
}

/** The sandbox settings of an installed service, its drop-ins (systemctl edit) applied in systemd's order. */
export interface UnitSandbox {
  user: string;
  protectSystem: string;
  protectHome: string;
  privateTmp: boolean;
  readWrite: string[];
  /** undefined: no CapabilityBoundingSet= (every capability). */
  capabilities?: string[];
}

/** Read `unitFile` and its `unitFile.d/*.conf` drop-ins; undefined when the unit is not installed. */
export function readUnit(unitFile: string): UnitSandbox | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(unitFile);
  } catch {
    return undefined;
  }
  const dropins: string[] = [];
  try {
    for (const e of Deno.readDirSync(`${unitFile}.d`)) if (e.name.endsWith(".conf")) dropins.push(e.name);
  } catch { /* none */ }
  for (const name of dropins.sort()) text += `\n${Deno.readTextFileSync(join(`${unitFile}.d`, name))}`;
  return parseUnit(text);
}

/** The sandbox settings of a unit's text (the [Service] lines; later lines win, an empty one resets a list). */
export function parseUnit(text: string): UnitSandbox {
  const u: UnitSandbox = { user: "root", protectSystem: "no", protectHome: "no", privateTmp: false, readWrite: [] };
  for (const raw of text.split("\n")) {
    const m = /^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$/.exec(raw);
    if (!m) continue;
    const [, key, value] = m;
    const words = value.split(/\s+/).filter(Boolean);
    if (key === "User") u.user = value || "root";
    else if (key === "ProtectSystem") u.protectSystem = value === "true" ? "yes" : value || "no";
    else if (key === "ProtectHome") u.protectHome = value === "true" ? "yes" : value || "no";
    else if (key === "PrivateTmp") u.privateTmp = /^(yes|true|1|on)$/i.test(value);
    else if (key === "ReadWritePaths") u.readWrite = words.length ? [...u.readWrite, ...words.map((w) => w.replace(/^[-+]+/, ""))] : [];
    else if (key === "CapabilityBoundingSet") {
      if (!words.length) u.capabilities = [];
      else if (words[0].startsWith("~")) u.capabilities = undefined; // a deny list: not what install.sh writes; not judged
      else u.capabilities = [...(u.capabilities ?? []), ...words];
    }
  }
  return u;
}

/** Where the unit's sandbox would block what the config needs: one line per blocked path or capability. */
export function sandboxProblems(n: SandboxNeeds, u: UnitSandbox): string[] {
  const problems: string[] = [];
  const readOnly = (p: string): string | undefined => {
    if (u.readWrite.some((rw) => under(p, rw))) return undefined;
    if (u.protectSystem === "strict") return "ProtectSystem=strict";
    if (u.protectSystem === "full" && ["/usr", "/boot", "/efi", "/etc"].some((d) => under(p, d))) return "ProtectSystem=full";
    if (u.protectSystem === "yes" && ["/usr", "/boot", "/efi"].some((d) => under(p, d))) return "ProtectSystem=yes";
    if (u.protectHome !== "no" && ["/home", "/root", "/run/user"].some((d) => under(p, d))) return `ProtectHome=${u.protectHome}`;
    return undefined;
  };
  for (const w of n.writes) {
    const why = readOnly(w.what);
    if (why) problems.push(`${w.what} (${w.why}) is read-only under ${why}: it is not in ReadWritePaths=`);
    else if (u.privateTmp && inTmp(w.what) && w.why !== "work_dir") {
      problems.push(`${w.what} (${w.why}) is under PrivateTmp=yes: what the service writes there vanishes when it ends`);
    }
  }
  if (u.user === "root" && u.capabilities) {
    for (const c of n.capabilities) {
      if (!u.capabilities.includes(c.what)) problems.push(`${c.what} (${c.why}) is not in CapabilityBoundingSet=`);
    }
  }
  return problems;
}
