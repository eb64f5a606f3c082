/**
 * `deno task bench:prune [--archives 10000]`: `archivist prune` over many archives on a directory and on SFTP (the
 * test sshd), timed, with the number of SFTP logins it took. The archives are tiny files with sidecars and a
 * catalogue that dates them 10 minutes apart into the past, so that retention (max_age 7d) deletes most of them.
 * Not a test: nothing asserts a time.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { startSshd } from "../tests/servers/sshd.ts";
import { DENO_PERMISSIONS } from "../src/permissions.ts";

const i = Deno.args.indexOf("--archives");
const count = i >= 0 ? Number(Deno.args[i + 1]) : 10_000;
const root = new URL("..", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "archivist-bench-prune-" });

const pad = (n: number) => String(n).padStart(2, "0");
const nameOf = (d: Date) =>
  `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}.tgz`;

/** Write `count` archives + sidecars into `dest` and a catalogue naming them as stored at `location`. */
async function populate(dest: string, stateDir: string, location: string) {
  await Deno.mkdir(dest, { recursive: true });
  await Deno.mkdir(stateDir, { recursive: true });
  const now = Date.now();
  const lines: string[] = [];
  for (let k = count; k >= 1; k--) {
    const at = new Date(now - k * 10 * 60_000);
    const name = nameOf(at);
    await Deno.writeTextFile(join(dest, name), "archive\n");
    await Deno.writeTextFile(join(dest, `${name}.sha256`), `x  ${name}\n`);
    lines.push(JSON.stringify({
      op: "stored",
      name,
      location,
      pattern: "{YYYY}{MM}{DD}-{HH}{mm}.tgz",
      runDate: at.toISOString().slice(0, 16),
      storedAt: at.toISOString(),
      size: 8,
      sha256: "0".repeat(64),
      dumpName: "dump.sql",
      dumpSize: 1,
      dumpSha256: "0".repeat(64),
      runId: `bench-${k}`,
    }));
  }
  await Deno.writeTextFile(join(stateDir, "bench.catalogue.jsonl"), lines.join("\n") + "\n");
}

function config(w: string, destination: Record<string, unknown>): string {
  return stringify({
    name: "bench",
    state_dir: join(w, "state"),
    work_dir: join(w, "work"),
    source: { url: "https://127.0.0.1:9/dump.zip", entry: "dump.sql" },
    archive: { name: "{YYYY}{MM}{DD}-{HH}{mm}.tgz", timezone: "UTC" },
    destination,
    retention: { max_age: "7d", min_keep: 3, max_delete: count },
    log: { file: join(w, "archivist.log") },
  });
}

async function prune(conf: string): Promise<{ seconds: number; out: string }> {
  const t = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...DENO_PERMISSIONS, "--quiet", join(root, "main.ts"), "prune", "-c", conf],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t) / 1000;
  const out = new TextDecoder().decode(r.stderr);
  if (r.code !== 0) throw new Error(`prune exit ${r.code}: ${out.split("\n").slice(-5).join("\n")}`);
  return { seconds, out };
}

const deletedOf = (out: string) => Number(/deleting (\d+)/.exec(out)?.[1] ?? NaN);

try {
  // A directory.
  const wl = join(dir, "local");
  const destL = join(wl, "dest");
  await populate(destL, join(wl, "state"), destL);
  const confL = join(wl, "archive.yaml");
  await Deno.writeTextFile(confL, config(wl, { type: "local", path: destL }), { mode: 0o600 });
  const l = await prune(confL);
  console.log(`directory: ${count} archives, ${deletedOf(l.out)} deleted (+ sidecars) in ${l.seconds.toFixed(1)} s`);

  // SFTP.
  const s = await startSshd(join(dir, "sshd"));
  try {
    const ws = join(dir, "sftp");
    const path = join(s.root, "db");
    const location = `sftp://${s.user}@127.0.0.1:${s.port}${path}`;
    await populate(path, join(ws, "state"), location);
    const confS = join(ws, "archive.yaml");
    await Deno.writeTextFile(
      confS,
      config(ws, s.destination(path)),
      { mode: 0o600 },
    );
    const before = await s.logins();
    const r = await prune(confS);
    const logins = (await s.logins()) - before;
    if (!r.out.includes("deleting")) console.log(r.out);
    console.log(`sftp:      ${count} archives, ${deletedOf(r.out)} deleted (+ sidecars) in ${r.seconds.toFixed(1)} s, ${logins} login(s)`);
    const left = [...Deno.readDirSync(path)].length;
    console.log(`           ${left} files left on the server`);
  } finally {
    await s.stop();
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
