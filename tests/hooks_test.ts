/**
 * hooks.before / after / on_failure through the CLI, with real scripts: their environment (the night's facts, no
 * secrets), their order around the night, a failing or hung before hook (nothing fetched, nothing stored, the state
 * unchanged; the hung one killed with its children), a failing after hook (a warning), SIGTERM while a hook runs,
 * the dry run, verify and the config check.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeZip, sqlDump } from "../tools/fixtures.ts";
import { serveBytes } from "../tools/https_source.ts";
import { historyRuns, processGone, runCli, type Sandbox, spawnCli, waitFor } from "./helpers/cli.ts";
import { withSource } from "./helpers/source.ts";
import { EXIT } from "../src/errors.ts";

const ZIP = makeZip([{ name: "dump.sql", data: sqlDump(50_000) }]);
const NOW = { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" };

/** An executable script in the sandbox that appends its environment's ARCHIVIST_* and a tag to `out`, then `body`. */
async function script(sb: Sandbox, name: string, body: string): Promise<string> {
  const path = join(sb.root, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return path;
}

const envOf = (text: string) => Object.fromEntries(text.trim().split("\n").filter((l) => l.includes("=")).map((l) => l.split(/=(.*)/s)));

Deno.test("before and after: run around the night, in that order, with its facts and without its secrets", async () => {
  await withSource({ route: serveBytes(ZIP), config: { mail: { enabled: false } } }, async (sb, src) => {
    const out = join(sb.root, "hooks.out");
    const before = await script(
      sb,
      "before.sh",
      `echo "before hits=$(cat ${sb.root}/hits 2>/dev/null || echo 0)" >> ${out}; env > ${out}.before; echo said on stdout; echo warned >&2`,
    );
    const after = await script(sb, "after.sh", `env > ${out}.after; echo after >> ${out}`);
    await sb.writeConfig({ hooks: { before: [before, "--db", "shop"], after: [after] } });
    const r = await runCli(["run", "-c", sb.configPath], { env: { ...NOW, SMTP_PASSWORD: "s3cret-in-env" } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(src.hits.get("/dump.zip"), 1);
    assert.deepEqual(Deno.readTextFileSync(out).trim().split("\n"), ["before hits=0", "after"]);
    const b = envOf(Deno.readTextFileSync(`${out}.before`));
    assert.equal(b.ARCHIVIST_JOB, "testjob");
    assert.match(b.ARCHIVIST_RUN_ID, /\S/);
    assert.equal(b.ARCHIVIST_DESTINATIONS, sb.dest);
    assert.equal(b.ARCHIVIST_LOG_FILE, sb.logFile);
    assert.equal(b.ARCHIVIST_STATUS, undefined, "before the night there is no outcome yet");
    const a = envOf(Deno.readTextFileSync(`${out}.after`));
    assert.equal(a.ARCHIVIST_STATUS, "ok");
    assert.equal(a.ARCHIVIST_EXIT_CODE, "0");
    assert.equal(a.ARCHIVIST_ARCHIVE, "20261122.tgz");
    assert.equal(a.ARCHIVIST_ARCHIVE_SHA256, Deno.readTextFileSync(join(sb.dest, "20261122.tgz.sha256")).split(" ")[0]);
    assert.equal(a.ARCHIVIST_RUN_ID, b.ARCHIVIST_RUN_ID, "one run id for the night");
    for (const f of [`${out}.before`, `${out}.after`]) assert.doesNotMatch(Deno.readTextFileSync(f), /s3cret-in-env/, "no secret of ours");
    const log = Deno.readTextFileSync(sb.logFile);
    assert.match(log, /hook: before: said on stdout/);
    assert.match(log, /hook: before: warned/);
    assert.ok(log.indexOf("hooks.before") < log.indexOf("GET https://"), "the before hook runs before the fetch");
    assert.doesNotMatch(r.stderr, /said on stdout/, "a hook's output goes to the log file, not to cron's mail");
    const h = historyRuns(sb.historyFile).at(-1);
    assert.deepEqual(h.steps.map((s: { step: string }) => s.step).filter((s: string) => s === "hook"), ["hook", "hook"]);
  });
});

Deno.test("a failing before hook fails the night at once (exit 25): nothing fetched or stored, state unchanged; on_failure is told", async () => {
  await withSource({ route: serveBytes(ZIP) }, async (sb, src) => {
    const out = join(sb.root, "failure.env");
    const before = await script(sb, "not-ready.sh", `echo "export of shop not finished" >&2; echo "lock held by pid 4242" >&2; exit 3`);
    const page = await script(sb, "page.sh", `env > ${out}`);
    await sb.writeConfig({ hooks: { before: [before], on_failure: [page], after: ["/bin/false"] } });
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.HOOK, r.stderr);
    assert.match(
      r.stderr,
      /hook: FAILED: hooks\.before \(\S+not-ready\.sh\) exited with status 3: export of shop not finished \| lock held by pid 4242/,
    );
    assert.equal(src.hits.get("/dump.zip") ?? 0, 0, "nothing fetched");
    assert.deepEqual([...Deno.readDirSync(sb.root)].some((e) => e.name === "dest") ? [...Deno.readDirSync(sb.dest)] : [], []);
    assert.throws(() => Deno.statSync(join(sb.stateDir, "testjob.state.json")), Deno.errors.NotFound, "the state is unchanged");
    const e = envOf(Deno.readTextFileSync(out));
    assert.equal(e.ARCHIVIST_STATUS, "failed");
    assert.equal(e.ARCHIVIST_EXIT_CODE, String(EXIT.HOOK));
    assert.equal(e.ARCHIVIST_ARCHIVE, undefined);
    const h = historyRuns(sb.historyFile).at(-1);
    assert.equal(h.error.step, "hook");
    assert.equal(h.steps.find((s: { step: string }) => s.step === "fetch").message, "not run: hook failed");
  });
});

Deno.test("a hung before hook is killed past hooks.timeout with every process it started; SIGTERM during a hook stops both", async () => {
  await withSource({ route: serveBytes(ZIP) }, async (sb, src) => {
    const pids = join(sb.root, "pids");
    const hung = await script(sb, "hung.sh", `sleep 300 & echo $! >> ${pids}; echo $$ >> ${pids}; sleep 300`);
    await sb.writeConfig({ hooks: { before: [hung], timeout: "1s" } });
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.HOOK, r.stderr);
    assert.match(
      r.stderr,
      /hooks\.before \(\S+hung\.sh\) did not finish within hooks\.timeout \(1s\): it was killed, with every process it started/,
    );
    assert.equal(src.hits.get("/dump.zip") ?? 0, 0);
    const started = Deno.readTextFileSync(pids).trim().split("\n").map(Number);
    assert.equal(started.length, 2);
    for (const pid of started) await waitFor(() => processGone(pid), `the hook's process ${pid} to be gone`, 5000);

    // SIGTERM while the hook runs: the night stops (exit 130) and takes the hook's group with it.
    await Deno.remove(pids);
    await sb.writeConfig({ hooks: { before: [hung], timeout: "5m" } });
    const child = spawnCli(["run", "-c", sb.configPath], NOW);
    await waitFor(() => Deno.readTextFile(pids).then((t) => t.trim().split("\n").length === 2, () => false), "the hook to start");
    child.kill("SIGTERM");
    const o = await child.output();
    assert.equal(o.code, EXIT.INTERRUPTED, new TextDecoder().decode(o.stderr));
    for (const pid of Deno.readTextFileSync(pids).trim().split("\n").map(Number)) {
      await waitFor(() => processGone(pid), `the hook's process ${pid} to be gone after SIGTERM`, 5000);
    }
    assert.equal(src.hits.get("/dump.zip") ?? 0, 0);
  });
});

Deno.test("a failing after hook is a warning (exit 1) and hides nothing: the archive is stored, the state advanced", async () => {
  await withSource({ route: serveBytes(ZIP) }, async (sb) => {
    const notify = await script(sb, "notify.sh", `echo "mail relay down" >&2; exit 7`);
    await sb.writeConfig({ hooks: { after: [notify, "ok"] } });
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, EXIT.WARNING, r.stderr);
    assert.match(r.stderr, /hook: hooks\.after \(\S+notify\.sh ok\) exited with status 7: mail relay down/);
    assert.ok(Deno.statSync(join(sb.dest, "20261122.tgz")).isFile);
    assert.match(Deno.readTextFileSync(join(sb.stateDir, "testjob.state.json")), /20261122\.tgz/);
    const h = historyRuns(sb.historyFile).at(-1);
    assert.equal(h.status, "warning");
    assert.ok(h.warnings.some((w: string) => /^hook: hooks\.after/.test(w)));
  });
});

Deno.test("dry run runs no hook and says which it would; verify checks each hook's program; a hook given as a string is refused", async () => {
  await withSource({ route: serveBytes(ZIP) }, async (sb) => {
    const marker = join(sb.root, "ran");
    const before = await script(sb, "before.sh", `touch ${marker}`);
    await sb.writeConfig({ hooks: { before: [before], after: [before] } });
    const dry = await runCli(["run", "--dry-run", "-c", sb.configPath], { env: NOW });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /dry run: would run hooks\.before \(\S+before\.sh\)/);
    assert.match(dry.stderr, /dry run: would run hooks\.after/);
    assert.throws(() => Deno.statSync(marker), Deno.errors.NotFound, "no hook ran");

    await sb.writeConfig({ hooks: { before: [before], after: [join(sb.root, "missing.sh")], on_failure: ["sh", "-c", "true"] } });
    const v = await runCli(["verify", "-c", sb.configPath], { env: NOW });
    assert.match(v.stdout, /✓ hooks +hooks\.before: \S+before\.sh is executable \(timeout 10m\)/);
    assert.match(v.stdout, /✗ hooks +hooks\.after: \S+missing\.sh is not an executable file/);
    assert.match(v.stdout, /✓ hooks +hooks\.on_failure: \/\S+\/sh is executable/, "a name is looked up on PATH");

    await sb.writeConfig({ hooks: { before: `${before} --db shop` } });
    const bad = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(bad.code, EXIT.CONFIG, bad.stderr);
    assert.match(bad.stderr, /hooks\.before: expected a command as a list: \[\/usr\/local\/bin\/program, --arg\]/);
  });
});

Deno.test("with jobs: the top-level hooks apply to every job, a job's own replace them; each is told its job", async () => {
  const zip = serveBytes(ZIP);
  await withSource({ routes: { "/shop.zip": zip, "/wiki.zip": zip } }, async (sb, src) => {
    const out = join(sb.root, "jobs.out");
    const top = await script(sb, "top.sh", `echo "top $ARCHIVIST_JOB" >> ${out}`);
    const own = await script(sb, "own.sh", `echo "own $ARCHIVIST_JOB" >> ${out}`);
    const job = (name: string, extra = {}) => ({
      name,
      source: { url: src.url(`/${name}.zip`) },
      destination: { type: "local", path: join(sb.root, name), create_dirs: true },
      ...extra,
    });
    await sb.writeConfig({ name: undefined, hooks: { after: [top] }, jobs: [job("shop"), job("wiki", { hooks: { after: [own] } })] });
    const r = await runCli(["run", "-c", sb.configPath], { env: NOW });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Deno.readTextFileSync(out).trim().split("\n"), ["top shop", "own wiki"]);
  });
});
