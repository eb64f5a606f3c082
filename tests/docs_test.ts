/** The docs stay true: generated tables up to date, every command and exit code documented. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { commandsReference, DIAGRAMS, EXIT_TABLE_DOC, generated, sourceHash } from "../tools/gendocs.ts";
import { jsonSchema } from "../tools/jsonschema.ts";
import { ROOT } from "./helpers/cli.ts";
import { EXIT_DESCRIPTIONS } from "../src/errors.ts";
import { HELP } from "../src/cli/main.ts";
import { COMMANDS } from "../src/cli/registry.ts";
import { archivistMan, configMan, roff } from "../tools/manpages.ts";
import { configSchema, walkSchema } from "../src/config/schema.ts";
import denoJson from "../deno.json" with { type: "json" };

Deno.test("the diagrams parse, and each SVG was rendered from its current source: run `deno task docs`", async () => {
  const sources = [...Deno.readDirSync(DIAGRAMS)].map((e) => e.name).filter((n) => n.endsWith(".puml")).sort();
  assert.deepEqual(
    sources,
    ["compare.puml", "retention.puml", "run.puml", "servers.puml", "upload.puml"],
    "the activity overview, its details (compare, upload, retention) and the servers diagram",
  );
  for (const s of sources) {
    const puml = join(DIAGRAMS, s);
    const svg = puml.replace(/\.puml$/, ".svg");
    assert.match(Deno.readTextFileSync(svg), /^<\?xml|<svg/, `${svg} is an SVG`);
    assert.equal(
      Deno.readTextFileSync(puml.replace(/\.puml$/, ".svg.source-sha256")).trim(),
      await sourceHash(puml),
      `docs/diagrams/${s} changed since its SVG was rendered: run deno task docs`,
    );
    const check = await new Deno.Command("plantuml", { args: ["-checkonly", puml], stdout: "piped", stderr: "piped" }).output();
    assert.ok(check.success, `${s} does not parse: ${new TextDecoder().decode(check.stderr)}`);
    assert.ok(
      Deno.readTextFileSync(join(ROOT, "docs/TECHNICAL.md")).includes(`diagrams/${s.replace(/\.puml$/, ".svg")}`),
      `TECHNICAL.md shows ${s}`,
    );
  }
});

Deno.test("docs/COMMANDS.md is the --help of every command, up to date", () => {
  assert.equal(Deno.readTextFileSync(join(ROOT, "docs", "COMMANDS.md")), commandsReference(), "run deno task docs");
  for (const c of COMMANDS) assert.match(commandsReference(), new RegExp(`## ${c.name}\\n\\n\`\`\`text\\narchivist ${c.name}: `));
});

Deno.test("the man pages are generated from the declarations, up to date, and groff formats them without a warning", async () => {
  const pages: [string, string][] = [
    ["docs/man/archivist.1", archivistMan(denoJson.version)],
    ["docs/man/archive.yaml.5", configMan(denoJson.version)],
  ];
  for (const [rel, text] of pages) {
    assert.equal(Deno.readTextFileSync(join(ROOT, rel)), text, `${rel}: run deno task docs`);
    const out = await new Deno.Command("groff", { args: ["-man", "-Tutf8", "-ww", "-z", join(ROOT, rel)], stderr: "piped" })
      .output();
    assert.equal(new TextDecoder().decode(out.stderr), "", `${rel}: groff warnings`);
    assert.ok(out.success);
  }
  for (const c of COMMANDS) assert.match(pages[0][1], new RegExp(`^\\.SS ${c.name}\\b`, "m"), c.name);
  for (const [code] of EXIT_DESCRIPTIONS) assert.match(pages[0][1], new RegExp(`^\\.B ${code}$`, "m"), `exit ${code}`);
  for (const [path, f] of walkSchema(configSchema)) {
    if (f.children && !f.help) continue;
    assert.ok(pages[1][1].includes(`.B ${roff(path.replace(/\[(\w+)\]/, " ($1)"))}\n`), path);
  }
  // Text that would be a roff request or escape stays text.
  assert.equal(roff(".x 'y\\z -a ×"), "\\&.x 'y\\ez \\-a \\[u00D7]");
});

Deno.test("archive.schema.json (JSON Schema of archive.yaml, from the config schema) is up to date and describes the example", () => {
  const text = Deno.readTextFileSync(join(ROOT, "archive.schema.json"));
  assert.equal(text, jsonSchema(), "archive.schema.json is out of date: run deno task docs");
  const s = JSON.parse(text);
  assert.equal(s.$schema, "https://json-schema.org/draft/2020-12/schema");
  assert.deepEqual(s.anyOf.map((a: { required: string[] }) => a.required.sort()), [["destination", "source"], [
    "destinations",
    "source",
  ], ["jobs"]]);
  assert.deepEqual(s.properties.source.required.sort(), ["entry", "url"]);
  assert.equal(s.properties.source.properties.timeout.default, "2h");
  assert.deepEqual(s.properties.destination.oneOf.map((v: any) => v.properties.type.const).sort(), [
    "ftps",
    "local",
    "rclone",
    "rsync",
    "rsyncd",
    "sftp",
    "smb",
    "webdav",
  ]);
  const example = Deno.readTextFileSync(join(ROOT, "archive.yaml.example"));
  assert.match(
    example.split("\n")[0],
    /^# yaml-language-server: \$schema=archive\.schema\.json$/,
    "the example points editors at the schema",
  );
});

Deno.test("generated doc blocks (config keys, exit codes) are up to date: run `deno task docs`", () => {
  for (const [rel, { before, after }] of generated()) {
    assert.equal(
      before.includes("<!-- exit-codes:start -->"),
      rel === EXIT_TABLE_DOC,
      `${rel}: the exit code table is told once, in ${EXIT_TABLE_DOC}`,
    );
    assert.equal(before, after, `${rel} is out of date: run deno task docs`);
  }
  for (const rel of ["README.md", "docs/TECHNICAL.md"]) {
    assert.match(
      Deno.readTextFileSync(join(ROOT, rel)),
      /USER_GUIDE\.md#6-what-each-exit-code-means-and-what-to-do/,
      `${rel} links to the table`,
    );
  }
  assert.ok(Deno.readTextFileSync(join(ROOT, "docs/TECHNICAL.md")).includes("<!-- config:start -->"));
});

Deno.test("README names exactly the two newcomer commands and every CLI command is in the user guide", () => {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  assert.match(readme, /npm install -g deno@2\.9\.6/);
  assert.match(readme, /deno task demo/);
  assert.match(readme, /deno task test/);
  const guide = Deno.readTextFileSync(join(ROOT, "docs/USER_GUIDE.md"));
  for (const c of COMMANDS) {
    assert.ok(guide.includes(`archivist ${c.name}`), `the user guide shows archivist ${c.name}`);
    assert.match(HELP, new RegExp(`^  ${c.name} `, "m"), `--help lists ${c.name}`);
    for (const o of c.options) assert.ok(guide.includes(`--${o.name}`), `the user guide documents ${c.name} --${o.name}`);
  }
  for (const [code] of EXIT_DESCRIPTIONS) {
    assert.match(Deno.readTextFileSync(join(ROOT, EXIT_TABLE_DOC)), new RegExp(`\\| ${code} \\|`), `${EXIT_TABLE_DOC}: exit ${code}`);
  }
});

Deno.test("a JSON Schema validator (Ajv, draft 2020-12) accepts the example and a config of each destination type, and rejects what archivist rejects", async () => {
  const { default: Ajv2020 } = await import("ajv/dist/2020.js");
  const { parse } = await import("yaml");
  const ajv = new (Ajv2020 as any)({ strict: false, allErrors: true });
  const validate = ajv.compile(JSON.parse(Deno.readTextFileSync(join(ROOT, "archive.schema.json"))));
  const ok = (cfg: unknown, what: string) => assert.ok(validate(cfg), `${what}: ${JSON.stringify(validate.errors)}`);
  ok(parse(Deno.readTextFileSync(join(ROOT, "archive.yaml.example"))), "archive.yaml.example");
  const source = { url: "https://db.example.org/x.zip", entry: "dump.sql" };
  for (
    const destination of [
      { type: "sftp", host: "h", user: "u", key_file: "/k", known_hosts_file: "/kh", path: "/d", timeout: "30s" },
      { type: "ftps", host: "h", user: "u", password_file: "/p", path: "d", tls_max: 1.2 },
      { type: "webdav", url: "https://dav/x/", user: "u", password_env: "DAV_PW", verify: "checksum" },
      { type: "smb", host: "h", share: "s", user: "u", password_file: "/p" },
      { type: "rclone", remote: "offsite:bucket/db", config_file: "/etc/archivist/rclone.conf", verify: "checksum" },
      { type: "rsync", host: "h", user: "u", key_file: "/k", known_hosts_file: "/kh", path: "db", create_dirs: true },
      { type: "rsyncd", host: "h", module: "backup", path: "db", user: "u", password_file: "/p" },
    ]
  ) ok({ source, destination, retention: { max_age: "30d", max_delete: 5 } }, destination.type);
  assert.ok(!validate({ source, destination: { type: "local", path: "/d" }, retention: { max_agee: "30d" } }), "an unknown key");
  assert.ok(!validate({ source, destination: { type: "nfs", path: "/d" } }), "an unknown destination type");
  assert.ok(
    !validate({ source, destination: { type: "local", path: "/d" }, check: { on_unchanged: "ignore" } }),
    "a value not in the enum",
  );
  assert.ok(!validate({ destination: { type: "local", path: "/d" } }), "source is required");
});
