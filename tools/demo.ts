/**
 * `deno task demo`: three nights of archivist against a built-in local HTTPS export server, into ./demo-out/.
 * Needs no root and no network (openssl generates the demo certificate).
 *   night 1: the dump is archived;  night 2: the same dump again is skipped (exit 1, a warning);
 *   night 3: a new dump is archived, and retention deletes the archives of earlier nights older than 30 days
 *   (those earlier nights run first, quietly: retention deletes only archives archivist itself recorded).
 */
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { makeCert, makeZip, sqlDump } from "./fixtures.ts";
import { startHttpsSource } from "./https_source.ts";
import { DENO_PERMISSIONS } from "../src/permissions.ts";

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
    args: ["run", ...DENO_PERMISSIONS, "--quiet", main, ...args],
    env,
    stdout: quiet ? "null" : "inherit",
    stderr: quiet ? "null" : "inherit",
  }).output();
  return r.code;
}
let quiet = false;

try {
  // Earlier nights, run quietly: their archives are in archivist's catalogue, so retention may delete them later.
  quiet = true;
  const earlier = ["2026-09-01", "2026-09-15", "2026-10-01", "2026-10-25"];
  for (const [i, day] of earlier.entries()) {
    zip = makeZip([{ name: "shop.sql", data: sqlDump(3_000_000, { seed: 10 + i }) }]);
    const code = await archivist(["run", "-c", configPath], `${day}T01:30:00Z`);
    if (code !== 0) throw new Error(`the earlier night ${day} ended with exit ${code}`);
  }
  quiet = false;
  zip = makeZip([{ name: "shop.sql", data: sqlDump(3_000_000, { seed: 1 }) }]);
  console.log(`(ran 4 earlier nights quietly: ${earlier.join(", ")}: their archives are on the destination)`);
  const nights: Array<[string, string, () => void]> = [
    ["night 1: the dump is archived; retention deletes an archive older than 30 days", "2026-11-20T01:30:00Z", () => {}],
    ["night 2: the export did not change: skipped with a warning (exit 1)", "2026-11-21T01:30:00Z", () => {}],
    ["night 3: a new dump: archived; retention deletes the next expired archive, never README.txt", "2026-11-22T01:30:00Z", () => {
      zip = makeZip([{ name: "shop.sql", data: sqlDump(3_100_000, { seed: 2 }) }]);
      // A file that is not ours: retention never touches it.
      const dir = join(out, "archives");
      Deno.writeTextFileSync(join(dir, "README.txt"), "not an archive: retention never touches it\n");
      console.log(`(placed a README.txt in ${dir})`);
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
