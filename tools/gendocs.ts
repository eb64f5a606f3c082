/**
 * `deno task docs`: regenerate the generated parts of the docs from the code:
 *  - docs/TECHNICAL.md, between <!-- config:start --> and <!-- config:end -->: every config key from the schema;
 *  - docs/USER_GUIDE.md, between <!-- exit-codes:start/end -->: the exit codes (told once; README and TECHNICAL link to it);
 *  - docs/COMMANDS.md, archive.schema.json, the man pages in docs/man (tools/manpages.ts), the bash completion in
 *    docs/completion (src/commands/completion.ts), the diagrams' SVGs.
 * tests/docs_test.ts fails when a generated part is out of date.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { configSchema, walkSchema } from "../src/config/schema.ts";
import { EXIT_DESCRIPTIONS } from "../src/errors.ts";
import { fmtDefault } from "../src/config/units.ts";
import { jsonSchema } from "./jsonschema.ts";
import { commandHelp, COMMANDS } from "../src/cli/registry.ts";
import { completionScript } from "../src/commands/completion.ts";
import { archivistMan, configMan } from "./manpages.ts";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The markdown table of every config key. */
export function configTable(): string {
  const rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"];
  for (const [path, f] of walkSchema(configSchema)) {
    if (f.children && !f.help) continue; // plain sections
    const key = path.replace(/\[(\w+)\]/, " ($1)");
    const req = f.required && !f.children ? "**required**" : fmtDefault(f.type, f.defaultValue);
    const type = f.variants ? `one of: ${Object.keys(f.variants).join(", ")}` : f.type;
    rows.push(`| \`${key}\` | ${type.replace(/\|/g, "\\|")} | ${req.replace(/\|/g, "\\|")} | ${f.help.replace(/\|/g, "\\|")} |`);
  }
  return rows.join("\n");
}

export function exitTable(): string {
  return ["| code | meaning |", "| --- | --- |", ...EXIT_DESCRIPTIONS.map(([c, d]) => `| ${c} | ${d} |`)].join("\n");
}

export function replaceBlock(text: string, name: string, body: string): string {
  const re = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`);
  if (!re.test(text)) return text;
  return text.replace(re, (_m, a, b) => `${a}\n${body}\n${b}`);
}

export const DOCS = ["docs/USER_GUIDE.md", "docs/TECHNICAL.md"];
/** The one doc that holds the exit-code table (README and TECHNICAL link to it). */
export const EXIT_TABLE_DOC = "docs/USER_GUIDE.md";

/** Each doc with its generated blocks refreshed. */
export function generated(): Map<string, { before: string; after: string }> {
  const out = new Map<string, { before: string; after: string }>();
  for (const rel of DOCS) {
    const p = join(ROOT, rel);
    const before = Deno.readTextFileSync(p);
    const after = replaceBlock(replaceBlock(before, "config", configTable()), "exit-codes", exitTable());
    out.set(rel, { before, after });
  }
  return out;
}

/** docs/COMMANDS.md: every command's `--help`, generated from src/cli/registry.ts (the parser's own declarations). */
export function commandsReference(): string {
  const parts = [
    "# archivist commands",
    "",
    "Generated from `src/cli/registry.ts` by `deno task docs`: the same text as `archivist COMMAND --help`, so it cannot",
    "drift from what each command accepts. Exit codes are listed per command; see also the user guide's troubleshooting.",
    "",
  ];
  for (const c of COMMANDS) parts.push(`## ${c.name}`, "", "```text", commandHelp(c.name).trimEnd(), "```", "");
  return parts.join("\n");
}

/** Write a generated file (relative to the repository) only when its content changed, and say so. */
function writeIfChanged(rel: string, content: string): void {
  let current = "";
  try {
    current = Deno.readTextFileSync(join(ROOT, rel));
  } catch { /* first time */ }
  if (current === content) return;
  Deno.writeTextFileSync(join(ROOT, rel), content);
  console.log(`updated ${rel}`);
}

export const DIAGRAMS = join(ROOT, "docs", "diagrams");

/** The sha256 of a diagram's source, recorded beside its rendered SVG (`NAME.svg.source-sha256`). */
export async function sourceHash(puml: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(Deno.readFileSync(puml)).digest("hex");
}

/** Render every docs/diagrams/*.puml whose SVG is older than its source, when PlantUML is installed. */
async function renderDiagrams(): Promise<void> {
  for (const e of Deno.readDirSync(DIAGRAMS)) {
    if (!e.name.endsWith(".puml")) continue;
    const puml = join(DIAGRAMS, e.name);
    const stamp = puml.replace(/\.puml$/, ".svg.source-sha256");
    const hash = await sourceHash(puml);
    let recorded = "";
    try {
      recorded = Deno.readTextFileSync(stamp).trim();
    } catch { /* never rendered */ }
    if (recorded === hash) continue;
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("plantuml", { args: ["-tsvg", puml], stdout: "piped", stderr: "piped" }).output();
    } catch {
      console.log(`${e.name}: not rendered (PlantUML is not installed: apt-get install plantuml graphviz)`);
      continue;
    }
    if (!out.success) throw new Error(`plantuml ${e.name}: ${new TextDecoder().decode(out.stderr)}`);
    Deno.writeTextFileSync(stamp, hash + "\n");
    console.log(`rendered docs/diagrams/${e.name.replace(/\.puml$/, ".svg")}`);
  }
}

if (import.meta.main) {
  for (const [rel, { before, after }] of generated()) {
    if (before !== after) {
      Deno.writeTextFileSync(join(ROOT, rel), after);
      console.log(`updated ${rel}`);
    }
  }
  writeIfChanged("docs/COMMANDS.md", commandsReference());
  writeIfChanged("archive.schema.json", jsonSchema());
  Deno.mkdirSync(join(ROOT, "docs", "man"), { recursive: true });
  writeIfChanged("docs/man/archivist.1", archivistMan(denoJson.version));
  writeIfChanged("docs/man/archive.yaml.5", configMan(denoJson.version));
  writeIfChanged("docs/completion/archivist.bash", completionScript("bash", COMMANDS));
  await renderDiagrams();
}
