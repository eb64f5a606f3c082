/**
 * `deno task dist [--no-compile] [--runtime auto|current|npm] [--out DIR]`: one file to copy and run.
 *
 * Writes DIR/archivist (default dist/), a copy named archivist-VERSION-linux-x86_64 and DIR/SHA256SUMS:
 * - the output of `deno compile` when it can fetch its `denort` runtime;
 * - otherwise a self-extracting executable (tools/sfx.ts): a POSIX sh header + a gzip'd tar of the Deno runtime at
 *   DENO_VERSION and the bundle of main.ts. The runtime is the `deno` running this build when it is that version
 *   (`--runtime current`), else the binary of the npm package @deno/linux-x64-glibc at that version (`--runtime npm`).
 * The build says which form it produced and why. The self-extracting file is deterministic: the same bundle and
 * runtime give the same bytes, and an unchanged DIR/archivist is kept as it is (install.sh stays idempotent).
 */
import { join, resolve } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import { DENO_PERMISSIONS } from "../src/permissions.ts";
import { DENO_VERSION } from "../src/os/runtime.ts";
import { EXIT } from "../src/errors.ts";
import { sfxHeader } from "./sfx.ts";

const ROOT = resolve(import.meta.dirname!, "..");
const VERSION: string = denoJson.version;

interface Options {
  compile: boolean;
  runtime: "auto" | "current" | "npm";
  out: string;
}

function parseArgs(args: string[]): Options {
  const o: Options = { compile: true, runtime: "auto", out: join(ROOT, "dist") };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--no-compile") o.compile = false;
    else if (a === "--runtime" && ["auto", "current", "npm"].includes(args[i + 1])) o.runtime = args[++i] as Options["runtime"];
    else if (a === "--out" && args[i + 1]) o.out = resolve(args[++i]);
    else {
      console.error(`deno task dist: unknown option ${a}\nUsage: deno task dist [--no-compile] [--runtime auto|current|npm] [--out DIR]`);
      Deno.exit(2);
    }
  }
  return o;
}

async function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, cwd: opts.cwd ?? ROOT, stdout: "piped", stderr: "piped" }).output();
  const td = new TextDecoder();
  return { code: r.code, out: td.decode(r.stdout), err: td.decode(r.stderr) };
}

// deno-lint-ignore no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

async function sha256(data: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** `deno compile` into OUT/archivist; the reason it failed otherwise (its first error line). */
async function tryCompile(out: string): Promise<string | undefined> {
  const r = await run(Deno.execPath(), ["compile", "--quiet", ...DENO_PERMISSIONS, "-o", join(out, "archivist"), "main.ts"]);
  if (r.code === 0) return undefined;
  const lines = plain(r.err).split("\n").map((l) => l.trim()).filter(Boolean);
  const cause = lines.find((l) => /^1: /.test(l))?.replace(/^1: /, "") ?? lines.find((l) => /error/i.test(l)) ?? `exit ${r.code}`;
  return cause.length > 300 ? cause.slice(0, 300) + "…" : cause;
}

/** The Deno runtime to pack: its bytes and where it came from. */
async function runtime(mode: Options["runtime"], tmp: string): Promise<{ bytes: Uint8Array; from: string }> {
  const current = Deno.version.deno === DENO_VERSION && Deno.build.os === "linux" && Deno.build.arch === "x86_64";
  if (mode === "current" || (mode === "auto" && current)) {
    if (!current) {
      throw new Error(`--runtime current: this is Deno ${Deno.version.deno} on ${Deno.build.target}, not ${DENO_VERSION} on linux x86_64`);
    }
    return { bytes: await Deno.readFile(Deno.execPath()), from: `the running deno (${Deno.execPath()})` };
  }
  const pkg = `@deno/linux-x64-glibc@${DENO_VERSION}`;
  const r = await run("npm", ["pack", "--silent", pkg, "--pack-destination", tmp], { cwd: tmp });
  if (r.code !== 0) throw new Error(`npm pack ${pkg} failed: ${r.err.trim().split("\n").slice(-2).join(" ")}`);
  const tgz = join(tmp, r.out.trim().split("\n").pop()!);
  const x = await run("tar", ["-xzf", tgz, "-C", tmp, "package/deno"]);
  if (x.code !== 0) throw new Error(`${pkg}: no package/deno in ${tgz}: ${x.err.trim()}`);
  return { bytes: await Deno.readFile(join(tmp, "package/deno")), from: `npm package ${pkg}` };
}

async function writeSums(out: string, names: string[]): Promise<void> {
  const lines = [];
  for (const n of names) lines.push(`${await sha256(await Deno.readFile(join(out, n)))}  ${n}`);
  await Deno.writeTextFile(join(out, "SHA256SUMS"), lines.join("\n") + "\n");
}

async function main(): Promise<number> {
  const o = parseArgs(Deno.args);
  await Deno.mkdir(o.out, { recursive: true });
  const target = join(o.out, "archivist");
  const copyName = `archivist-${VERSION}-linux-x86_64`;
  const tmp = await Deno.makeTempDir({ prefix: "archivist-dist-" });
  try {
    let why = "--no-compile";
    if (o.compile) {
      const failed = await tryCompile(o.out);
      if (!failed) {
        await Deno.copyFile(target, join(o.out, copyName));
        await writeSums(o.out, ["archivist", copyName]);
        console.log(`${target}: compiled by deno compile (${(await Deno.stat(target)).size} bytes)`);
        return 0;
      }
      why = `deno compile cannot fetch its runtime: ${failed}`;
    }
    const bundle = join(tmp, "archivist.js");
    const b = await run(Deno.execPath(), ["bundle", "--quiet", "--platform", "deno", "-o", bundle, "main.ts"]);
    if (b.code !== 0) throw new Error(`deno bundle failed: ${plain(b.err).trim()}`);
    const rt = await runtime(o.runtime, tmp);
    const header = sfxHeader({
      version: VERSION,
      denoVersion: DENO_VERSION,
      denoSha256: await sha256(rt.bytes),
      bundleSha256: await sha256(await Deno.readFile(bundle)),
      permissions: DENO_PERMISSIONS,
      exitCode: EXIT.UNPACK,
    });
    const headerBytes = new TextEncoder().encode(header);
    const existing = await Deno.open(target).then(async (f) => {
      const buf = new Uint8Array(headerBytes.length);
      const n = await f.read(buf);
      f.close();
      return n === buf.length ? buf : undefined;
    }).catch(() => undefined);
    if (existing && existing.every((v, i) => v === headerBytes[i])) {
      console.log(`${target}: self-extracting (${why}); unchanged, kept`);
    } else {
      // Deterministic payload: sorted names, owner 0, mtime 0, gzip without name or time.
      const stage = join(tmp, "stage");
      await Deno.mkdir(stage);
      await Deno.writeFile(join(stage, "deno"), rt.bytes, { mode: 0o755 });
      await Deno.chmod(join(stage, "deno"), 0o755);
      await Deno.copyFile(bundle, join(stage, "archivist.js"));
      await Deno.chmod(join(stage, "archivist.js"), 0o644);
      const payload = join(tmp, "payload.tgz");
      const t = await run("sh", [
        "-c",
        'tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - -C "$1" archivist.js deno | gzip -n -6 > "$2"',
        "sh",
        stage,
        payload,
      ]);
      if (t.code !== 0) throw new Error(`packing the runtime failed: ${t.err.trim()}`);
      const partial = `${target}.part`;
      const f = await Deno.open(partial, { write: true, create: true, truncate: true, mode: 0o755 });
      await f.write(headerBytes);
      const p = await Deno.open(payload);
      await p.readable.pipeTo(f.writable);
      await Deno.chmod(partial, 0o755);
      await Deno.rename(partial, target);
      console.log(`${target}: self-extracting (${why}); runtime: Deno ${DENO_VERSION} from ${rt.from}`);
    }
    await Deno.copyFile(target, join(o.out, copyName));
    await writeSums(o.out, ["archivist", copyName]);
    console.log(`  ${(await Deno.stat(target)).size} bytes; ${join(o.out, "SHA256SUMS")}`);
    return 0;
  } catch (e) {
    console.error(`deno task dist: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

Deno.exit(await main());
