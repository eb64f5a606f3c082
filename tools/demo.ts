/**
 * `deno task demo`: three nights of archivist against a built-in local HTTPS export server, into ./demo-out/.
 * Needs no root and no network (openssl generates the demo certificate).
 *   night 1: the dump is archived;  night 2: the same dump again is skipped (exit 1, a warning);
 *   night 3: a new dump is archived, and retention runs.
 */
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { makeCert, makeZip, sqlDump } from "./fixtures.ts";
import { startHttpsSource } from "./https_source.ts";

const out = resolve("demo-out");
const main = resolve(import.meta.dirname ?? ".", "..", "main.ts");
const bold = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s);

await Deno.remove(out, { recursive: true }).catch(() => {});
await Deno.mkdir(out, { recursive: true });
console.log(bold(`archivist demo: everything goes to ${out}\n`));

let cert;
try {
  cert = await makeCert(join(out, "tls"));
} catch (e) {
  console.error(`The demo generates its HTTPS certificate with openssl: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}
let zip = makeZip([{ name: "shop.sql", data: sqlDump(3_000_000, { seed: 1 }) }]);
const src = startHttpsSource(cert, {
  "/export/shop.zip": () => new Response(zip.slice(), { headers: { "content-type": "application/zip" } }),
});

const configPath = join(out, "archive.yaml");
await Deno.writeTextFile(
  configPath,
  stringify({
    name: "demo",
    state_dir: join(out, "state"),
    work_dir: join(out, "work"),
    source: { url: src.url("/export/shop.zip"), entry: "*.sql", ca_file: cert.caFile },
    check: { expect_trailer: "-- Dump completed" },
    archive: { name: "{YYYY}{MM}{DD}.tgz", timezone: "Europe/Paris" },
    destination: { type: "local", path: join(out, "archives"), create_dirs: true },
    retention: { max_age: "30d", min_keep: 3 },
    log: { file: join(out, "log", "archivist.log") },
  }),
);
await Deno.chmod(configPath, 0o600);

async function archivist(args: string[], now?: string): Promise<number> {
  const env: Record<string, string> = now ? { ARCHIVIST_NOW: now } : {};
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", main, ...args],
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return r.code;
}

try {
  const nights: Array<[string, string, () => void]> = [
    ["night 1: first run, the dump is archived", "2026-11-20T01:30:00Z", () => {}],
    ["night 2: the export did not change: skipped with a warning (exit 1)", "2026-11-21T01:30:00Z", () => {}],
    ["night 3: a new dump: archived; retention deletes archives older than 30 days", "2026-11-22T01:30:00Z", () => {
      zip = makeZip([{ name: "shop.sql", data: sqlDump(3_100_000, { seed: 2 }) }]);
      // Pretend older nights exist on the destination (copies of night 1), plus a file that is not ours.
      const dir = join(out, "archives");
      for (const day of ["20260901", "20260915", "20261001", "20261025"]) {
        Deno.copyFileSync(join(dir, "20261120.tgz"), join(dir, `${day}.tgz`));
        Deno.writeTextFileSync(
          join(dir, `${day}.tgz.sha256`),
          Deno.readTextFileSync(join(dir, "20261120.tgz.sha256")).replace("20261120", day),
        );
      }
      Deno.writeTextFileSync(join(dir, "README.txt"), "not an archive: retention never touches it\n");
      console.log(`(placed 4 older archives and a README.txt in ${dir})`);
    }],
  ];
  for (const [title, when, before] of nights) {
    before();
    console.log(bold(`\n=== ${title}`) + `  (archivist run, clock set to ${when})`);
    const code = await archivist(["run", "-c", configPath], when);
    console.log(bold(`--> exit code ${code}`));
  }
  console.log(bold("\n=== archivist history"));
  await archivist(["history", "-c", configPath]);
  console.log(bold("\n=== archivist list") + "  (what retention keeps, and why)");
  await archivist(["list", "-c", configPath], "2026-11-22T01:30:00Z");
  console.log(bold("\nWhere things are:"));
  console.log(`  archives + sha256 sidecars: ${join(out, "archives")}   (check: cd ${join(out, "archives")} && sha256sum -c *.sha256)`);
  console.log(`  log:                        ${join(out, "log", "archivist.log")}`);
  console.log(`  history (JSON lines):       ${join(out, "state", "history.jsonl")}`);
  console.log(`  config used:                ${configPath}`);
} finally {
  await src.close();
}
