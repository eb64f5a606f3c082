/**
 * The code's shape stays as the technical document describes it (docs/TECHNICAL.md, "Code organisation"), measured
 * from the TypeScript syntax tree: short functions, no bag of optional fields, no import cycle, src/ by layer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importCycles, longFunctions, looseFiles, wideTypes } from "../tools/structure.ts";
import { ROOT } from "./helpers/cli.ts";

const SRC = join(ROOT, "src");

Deno.test("at most 2 functions in src/ over 80 lines, each saying why it is long", () => {
  const long = longFunctions(SRC);
  assert.ok(long.length <= 2, `over 80 lines: ${long.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines})`).join(", ")}`);
  for (const f of long) {
    const lines = Deno.readTextFileSync(join(SRC, f.file)).split("\n").slice(Math.max(0, f.line - 12), f.line);
    assert.ok(
      lines.some((l) => /Long on purpose:/.test(l)),
      `${f.file}:${f.line} ${f.name} is ${f.lines} lines without a "Long on purpose:" line`,
    );
  }
});

Deno.test("no interface or type in src/ with more than 12 optional fields", () => {
  assert.deepEqual(wideTypes(SRC), []);
});

Deno.test("no runtime import cycle in src/ or tools/", () => {
  assert.deepEqual(importCycles([SRC, join(ROOT, "tools")], ROOT), []);
});

Deno.test("src/ is grouped by layer: at most 8 loose files, each folder opens with a README saying what lives there", () => {
  const loose = looseFiles(SRC);
  assert.ok(loose.length <= 8, loose.join(" "));
  for (const e of Deno.readDirSync(SRC)) {
    if (!e.isDirectory) continue;
    const readme = Deno.readTextFileSync(join(SRC, e.name, "README.md"));
    assert.match(readme, new RegExp(`^# ${e.name}/ — `), `src/${e.name}/README.md names its folder`);
    for (const m of readme.matchAll(/`([\w.-]+\.(?:ts|wat))`/g)) {
      const f = m[1];
      const exists = [join(SRC, e.name, f), join(SRC, f)].some((p) => {
        try {
          return Deno.statSync(p).isFile;
        } catch {
          return false;
        }
      });
      assert.ok(exists, `src/${e.name}/README.md names ${f}, which is not there`);
    }
    if (/one file per/.test(readme)) continue; // commands/, transports/: the rule, not a list
    for (const f of looseFiles(join(SRC, e.name))) {
      assert.ok(readme.includes(`\`${f}\``), `src/${e.name}/README.md does not say what ${f} is`);
    }
  }
});

Deno.test("the measure can fail: a long function, a bag of optionals and a cycle are found", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "a.ts"), `import { b } from "./b.ts";\nexport function a() {\n${"  b();\n".repeat(81)}}\n`);
    const opts = Array.from({ length: 13 }, (_, i) => `  f${i}?: number;`).join("\n");
    Deno.writeTextFileSync(
      join(dir, "b.ts"),
      `import { a } from "./a.ts";\nexport function b() { a; }\nexport interface Bag {\n${opts}\n}\n`,
    );
    assert.deepEqual(longFunctions(dir).map((f) => f.name), ["a"]);
    assert.deepEqual(wideTypes(dir).map((t) => t.name), ["Bag"]);
    assert.equal(importCycles([dir], dir).length, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
