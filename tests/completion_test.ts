/**
 * Shell completion: the scripts `archivist completion bash|zsh|fish` prints are read by the real shells; bash (with
 * bash-completion's own loader) and fish complete commands, options and the config's job names with them; the
 * committed docs/completion/archivist.bash (what install.sh installs) is the generated one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { DENO_PERMISSIONS } from "../src/permissions.ts";
import { COMMANDS } from "../src/cli/registry.ts";
import { completionScript } from "../src/commands/completion.ts";
import { MAIN, ROOT, runCli } from "./helpers/cli.ts";

const sh = async (cmd: string, args: string[], env: Record<string, string> = {}) => {
  const o = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const td = new TextDecoder();
  return { code: o.code, out: td.decode(o.stdout), err: td.decode(o.stderr) };
};

/** A directory with `archivist` on it (the CLI as users run it), and a config with two jobs. */
async function setUp(): Promise<{ dir: string; bin: string; cfg: string; scripts: Record<string, string> }> {
  const dir = await Deno.makeTempDir({ prefix: "archivist-completion-" });
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "archivist"),
    `#!/bin/sh\nexec ${Deno.execPath()} run ${DENO_PERMISSIONS.join(" ")} --quiet ${MAIN} "$@"\n`,
    {
      mode: 0o755,
    },
  );
  const cfg = join(dir, "archive.yaml");
  const job = (name: string) => ({
    name,
    source: { url: `https://127.0.0.1:9/${name}.zip` },
    destination: { type: "local", path: join(dir, name) },
  });
  await Deno.writeTextFile(
    cfg,
    stringify({ state_dir: join(dir, "state"), source: { entry: "dump.sql" }, jobs: [job("shop"), job("wiki")] }),
    {
      mode: 0o600,
    },
  );
  const scripts: Record<string, string> = {};
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await runCli(["completion", shell]);
    assert.equal(r.code, 0, r.stderr);
    scripts[shell] = join(dir, `archivist.${shell}`);
    await Deno.writeTextFile(scripts[shell], r.stdout);
  }
  return { dir, bin, cfg, scripts };
}

Deno.test("bash reads the script, and completes commands, a command's options, files and the config's jobs with it", async () => {
  const { dir, bin, cfg, scripts } = await setUp();
  try {
    assert.equal((await sh("bash", ["-n", scripts.bash])).code, 0, "bash -n accepts it");
    // The words typed so far, completed as bash-completion would (its loader sourced, then our script).
    const complete = async (...words: string[]) => {
      const line = words.map((w) => `'${w}'`).join(" ");
      const r = await sh("bash", [
        "-c",
        `. /usr/share/bash-completion/bash_completion; . ${scripts.bash}; COMP_WORDS=(${line}); COMP_CWORD=${
          words.length - 1
        }; _archivist; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ], { PATH: `${bin}:/usr/bin:/bin`, HOME: dir });
      assert.equal(r.code, 0, r.err);
      return r.out.trim().split("\n").filter(Boolean);
    };
    assert.deepEqual(await complete("archivist", "re"), ["restore"]);
    assert.deepEqual((await complete("archivist", "")).sort(), [...COMMANDS.map((c) => c.name), "--help", "--version"].sort());
    assert.deepEqual(await complete("archivist", "restore", "--de"), ["--destination"]);
    assert.ok((await complete("archivist", "run", "-")).includes("--dry-run"));
    assert.deepEqual(await complete("archivist", "completion", "z"), ["zsh"]);
    assert.deepEqual(await complete("archivist", "list", "-c", cfg, "--job", ""), ["shop", "wiki"], "the job names come from the config");
    assert.deepEqual(await complete("archivist", "-c", join(dir, "archive.y")), [cfg], "a FILE option completes files");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("zsh and fish read their scripts; fish completes commands and options with it", async () => {
  const { dir, bin, cfg, scripts } = await setUp();
  try {
    for (const shell of ["zsh", "fish"]) {
      const r = await sh(shell, ["-n", scripts[shell]]);
      assert.equal(r.code, 0, `${shell} -n: ${r.err}`);
    }
    const fish = async (line: string) => {
      const r = await sh("fish", ["--no-config", "-c", `source ${scripts.fish}; complete -C '${line}'`], {
        PATH: `${bin}:/usr/bin:/bin`,
        HOME: dir,
      });
      assert.equal(r.code, 0, r.err);
      return r.out.trim().split("\n").map((l) => l.split("\t")[0]).filter(Boolean);
    };
    assert.deepEqual(await fish("archivist re"), ["restore"]);
    assert.ok((await fish("archivist prune --")).includes("--force"));
    assert.deepEqual(await fish(`archivist list -c ${cfg} --job `), ["shop", "wiki"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bash script install.sh installs is the generated one; completion without a shell is a usage error", async () => {
  assert.equal(
    Deno.readTextFileSync(join(ROOT, "docs/completion/archivist.bash")),
    completionScript("bash", COMMANDS),
    "run deno task docs",
  );
  const r = await runCli(["completion"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /name a shell: bash, zsh, fish/);
});
