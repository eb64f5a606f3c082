/** The docs stay true: generated tables up to date, every command and exit code documented. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DOCS, generated } from "../tools/gendocs.ts";
import { ROOT } from "./helpers/cli.ts";
import { EXIT_DESCRIPTIONS } from "../src/errors.ts";
import { HELP } from "../src/cli.ts";
import { COMMANDS } from "../src/commands.ts";

Deno.test("generated doc blocks (config keys, exit codes) are up to date: run `deno task docs`", () => {
  for (const [rel, { before, after }] of generated()) {
    assert.ok(before.includes("<!-- exit-codes:start -->"), `${rel} has the exit code table`);
    assert.equal(before, after, `${rel} is out of date: run deno task docs`);
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
    for (const rel of DOCS) assert.match(Deno.readTextFileSync(join(ROOT, rel)), new RegExp(`\\| ${code} \\|`), `${rel}: exit ${code}`);
  }
});
