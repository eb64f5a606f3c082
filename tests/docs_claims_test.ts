/**
 * Every checkable sentence of the docs is checked against the code: each `archivist ...` command line in README,
 * docs/ and the man pages is accepted by the parser; each YAML snippet, laid over the example config, is a valid
 * config; each exit code number written as "exit N" exists; each config key named in backticks exists in the
 * schema; each command's --help lists its own exit codes. Generated text (COMMANDS.md) is checked by docs_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { commandHelp, COMMANDS, exitTable, parseCommandLine } from "../src/cli/registry.ts";
import { parseJobsText } from "../src/config/load.ts";
import { configSchema, walkSchema } from "../src/config/schema.ts";
import { EXIT_DESCRIPTIONS } from "../src/errors.ts";
import { merge } from "./helpers/cli.ts";
import { TRANSPORTS } from "../src/transports/registry.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** Written by hand for people (the generated COMMANDS.md is --help itself). */
const PROSE = [
  "README.md",
  "docs/USER_GUIDE.md",
  "docs/TECHNICAL.md",
  "docs/SCRIPTING.md",
  "docs/man/archivist.1",
  "docs/man/archive.yaml.5",
];
/** Lines the docs show on purpose as refused. */
const REFUSED_ON_PURPOSE = new Set(["run --force"]);

interface Found {
  where: string;
  text: string;
}

function lines(rel: string): string[] {
  // groff escapes a dash as \-: the man pages' command lines read as the others.
  return Deno.readTextFileSync(join(ROOT, rel)).replaceAll("\\-", "-").replaceAll("\\fB", "").replaceAll("\\fR", "").split("\n");
}

/** `archivist ...` in code spans, and at the start of code-block lines (after a prompt, sudo, or a path). */
function commandLines(): Found[] {
  const out: Found[] = [];
  for (const rel of PROSE) {
    let code = false;
    lines(rel).forEach((l, i) => {
      if (/^\s*```/.test(l)) return void (code = !code);
      const where = `${rel}:${i + 1}`;
      if (code || rel.startsWith("docs/man/")) {
        const m = /^\s*(?:[$#] )?(?:sudo (?:-u \S+ )?)?(?:\S*\/)?archivist((?: [^\s|;&>#]+)*)/.exec(l);
        if (m) out.push({ where, text: m[1] });
      } else {
        for (const m of l.matchAll(/`(?:[^`\s]*\/)?archivist((?: [^`|;&>]*)?)`/g)) out.push({ where, text: m[1] });
      }
    });
  }
  return out;
}

/** Shell words, usage brackets taken as what they offer (`[--last N]` → `--last N`), placeholders kept. */
function words(s: string): string[] {
  return [...s.replace(/[[\]]/g, " ").matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

Deno.test("every archivist command line in README, docs/ and the man pages is one the parser accepts", () => {
  const found = commandLines();
  assert.ok(found.length > 100, `found only ${found.length} command lines: the extraction broke`);
  const bad: string[] = [];
  for (const f of found) {
    const argv = words(f.text);
    if (argv[0] === "COMMAND" || argv[0] === "-" || REFUSED_ON_PURPOSE.has(argv.join(" "))) continue; // a placeholder, the man NAME line
    try {
      parseCommandLine(argv);
    } catch (e) {
      bad.push(`${f.where}: archivist ${f.text.trim()}: ${(e as Error).message}`);
    }
  }
  assert.deepEqual(bad, []);
  for (const refused of REFUSED_ON_PURPOSE) assert.throws(() => parseCommandLine(words(refused)), `${refused} is refused, as the docs say`);
});

/** The snippet with each `*_file` that is not on this machine replaced by a mode-600 stand-in (the key is still checked). */
function standIns<T>(v: T): T {
  if (Array.isArray(v)) return v.map(standIns) as T;
  if (!v || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    let exists = false;
    try {
      exists = typeof x === "string" && Deno.statSync(x).isFile;
    } catch { /* not here */ }
    if (k.endsWith("_file") && typeof x === "string" && !exists) {
      const f = Deno.makeTempFileSync({ prefix: "archivist-docs-" });
      Deno.writeTextFileSync(f, "stand-in\n");
      Deno.chmodSync(f, 0o600);
      out[k] = f;
    } else out[k] = standIns(x);
  }
  return out as T;
}

Deno.test("every YAML snippet of the docs, laid over the example config, is a config archivist loads", () => {
  const example = parse(Deno.readTextFileSync(join(ROOT, "archive.yaml.example")));
  const env = { get: () => undefined, toObject: () => ({}) } as never;
  let n = 0;
  for (const rel of ["README.md", "docs/USER_GUIDE.md", "docs/TECHNICAL.md", "docs/SERVERS.md"]) {
    const text = Deno.readTextFileSync(join(ROOT, rel));
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      n++;
      const at = `${rel}:${text.slice(0, m.index).split("\n").length}`;
      const snippet = standIns(parse(m[1]) as Record<string, unknown>);
      // A snippet's destination (another type) or destinations replace the example's one.
      const base = { ...example };
      if (snippet.destinations || snippet.destination) delete base.destination;
      const config = stringify(merge(base, snippet));
      try {
        parseJobsText(config, at, env);
      } catch (e) {
        assert.fail(`${at}: the snippet does not load: ${(e as Error).message}\n${m[1]}`);
      }
    }
  }
  assert.ok(n >= 5, `found ${n} YAML snippets`);
});

Deno.test("every exit code the docs name exists, and every config key named in backticks is in the schema", () => {
  const codes = new Set(EXIT_DESCRIPTIONS.map(([c]) => c));
  const keys = new Set([...walkSchema(configSchema)].map(([p]) => p.replace(/\[\w+\]/g, "")));
  const sections = new Set([...keys].map((k) => k.split(".")[0]));
  const bad: string[] = [];
  for (const rel of PROSE) {
    lines(rel).forEach((l, i) => {
      for (const m of l.matchAll(/\bexits? (\d+)\b/g)) if (!codes.has(Number(m[1]))) bad.push(`${rel}:${i + 1}: exit ${m[1]}`);
      for (const m of l.matchAll(/`([a-z_]+(?:\.[a-z_]+)+)`/g)) {
        const key = m[1];
        if (!sections.has(key.split(".")[0]) || /\.(ts|md|yaml|json|sh|conf|pem|txt|zip|tgz|sql|log|age|example)$/.test(key)) continue;
        if (!keys.has(key)) bad.push(`${rel}:${i + 1}: ${key} is not a config key`);
      }
    });
  }
  assert.deepEqual(bad, []);
});

Deno.test("each command's --help shows its own exit codes", () => {
  for (const c of COMMANDS) {
    const help = commandHelp(c.name);
    for (const [code, meaning] of exitTable(c)) {
      assert.match(
        help,
        new RegExp(`\\b${code}\\b.*${meaning.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
        `${c.name} --help: ${code}`,
      );
    }
  }
});

Deno.test("the user guide is a technician's: at most 6,000 words, a quick start, then a numbered first-job procedure", () => {
  const guide = Deno.readTextFileSync(join(ROOT, "docs/USER_GUIDE.md"));
  const words = guide.split(/\s+/).filter(Boolean).length;
  assert.ok(words <= 6000, `the user guide has ${words} words`);
  const quick = guide.indexOf("## 1. Quick start"), first = guide.indexOf("## 2. Your first job, step by step");
  assert.ok(quick > 0 && first > quick, "a quick start, then the first job");
  const steps = guide.slice(first, guide.indexOf("\n## 3.")).match(/^\d+\. \*\*/gm) ?? [];
  assert.ok(steps.length >= 10, `the first job has ${steps.length} numbered steps`);
  // Every page the guide links to exists.
  for (const m of guide.matchAll(/\]\(([A-Z_]+\.md)/g)) assert.ok(Deno.statSync(join(ROOT, "docs", m[1])).isFile, m[1]);
});

Deno.test("the man page and the user guide name every destination type", () => {
  const man = Deno.readTextFileSync(join(ROOT, "docs/man/archivist.1")).toLowerCase();
  const guide = Deno.readTextFileSync(join(ROOT, "docs/USER_GUIDE.md"));
  const said: Record<string, string> = { local: "mounted directory", rsyncd: "rsync daemon" };
  for (const t of Object.keys(TRANSPORTS)) {
    assert.ok(man.includes(said[t] ?? t), `archivist(1) names ${t}`);
    assert.ok(guide.includes(`| \`${t}\` |`), `the guide's destination table has ${t}`);
  }
});

Deno.test("the benchmark's usage in docs/TECHNICAL.md and in its header is the one bench/pipeline.ts prints", () => {
  const src = Deno.readTextFileSync(join(ROOT, "bench/pipeline.ts"));
  const usage = /const USAGE =\s*"([^"]+)"/.exec(src)?.[1];
  assert.ok(usage?.startsWith("deno task bench "), "bench/pipeline.ts declares USAGE");
  assert.ok(src.includes(`Usage: \${USAGE}`), "the bench prints USAGE on a bad option");
  assert.ok(src.includes(` * \`${usage}\``), "the bench's header comment opens with USAGE");
  // Every option the bench parses is in the usage line.
  const parsed = [...(/const OPTIONS = \[([^\]]+)\]/.exec(src)?.[1] ?? "").matchAll(/"(--[a-z-]+)"/g)].map((m) => m[1]);
  assert.ok(parsed.length >= 10, `the bench's option list (${parsed.length})`);
  for (const o of parsed) assert.ok(usage!.includes(o), `USAGE names ${o}`);
  assert.ok(Deno.readTextFileSync(join(ROOT, "docs/TECHNICAL.md")).includes(`\`${usage}\``), "docs/TECHNICAL.md shows USAGE");
});
