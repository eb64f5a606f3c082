/** Config: lookup order, YAML and schema errors naming file and key, secrets, units, and the example config. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { findConfigPath, loadConfig, parseConfigText } from "../src/config/load.ts";
import { configSchema, walkSchema } from "../src/config/schema.ts";
import { mapEnv } from "../src/os/env.ts";
import { ConfigError } from "../src/errors.ts";
import { formatSize, parseDuration, parseSize } from "../src/config/units.ts";
import { ROOT } from "./helpers/cli.ts";

const MIN = { source: { url: "https://h.example/d.zip", entry: "d.sql" }, destination: { type: "local", path: "/backup" } };
const env = mapEnv({});

function parse(obj: unknown, mode = 0o600, e = env) {
  return parseConfigText(typeof obj === "string" ? obj : stringify(obj), "/etc/archivist/archive.yaml", e, mode);
}

function fails(obj: unknown, re: RegExp, mode = 0o600, e = env) {
  assert.throws(() => parse(obj, mode, e), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.exitCode, 10);
    assert.match(err.message + " " + err.hint, re);
    assert.ok(err.message.startsWith("/etc/archivist/archive.yaml"), "the message names the file");
    return true;
  });
}

Deno.test("a minimal config gets every default", () => {
  const c = parse(MIN);
  assert.equal(c.name, "archivist");
  assert.equal(c.archive.name, "{YYYY}{MM}{DD}.tgz");
  assert.equal(c.source.retries, 3);
  assert.equal(c.source.timeout, 2 * 3600_000);
  assert.equal(c.check.on_unchanged, "skip");
  assert.equal(c.retention.min_keep, 3);
  assert.equal(c.retention.max_delete, 10);
  assert.equal(c.retention.max_age, undefined);
  assert.equal(c.archive.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone, "default: the machine's zone");
  assert.deepEqual(c.destination, {
    type: "local",
    path: "/backup",
    create_dirs: false,
    require_mount: false,
    verify: "size",
    owner: undefined,
    group: undefined,
    mode: undefined,
    strict_ownership: false,
  });
});

Deno.test("errors name the key path and what was expected", async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["missing section key", { destination: MIN.destination, source: { url: "https://h/x.zip" } }, /source\.entry: is required/],
    ["http url", { ...MIN, source: { ...MIN.source, url: "http://h/x.zip" } }, /source\.url: expected an https:\/\/ URL/],
    ["credentials in url", { ...MIN, source: { ...MIN.source, url: "https://u:p@h/x.zip" } }, /credentials in the URL are not accepted/],
    ["unknown key with a guess", { ...MIN, retention: { max_agee: "30d" } }, /retention\.max_agee: unknown key; did you mean 'max_age'\?/],
    ["unknown top-level key", { ...MIN, destinaton: {} }, /destinaton: unknown key; did you mean 'destination'\?/],
    [
      "bad duration",
      { ...MIN, source: { ...MIN.source, timeout: "2 hours" } },
      /source\.timeout: expected a duration like 30s, 5m, 12h, 30d, got the string "2 hours"/,
    ],
    ["bad size", { ...MIN, source: { ...MIN.source, max_size: "lots" } }, /source\.max_size: expected a size/],
    ["number as string", { ...MIN, retention: { min_keep: "3" } }, /retention\.min_keep: expected an integer, got the string "3"/],
    ["min_keep 0", { ...MIN, retention: { min_keep: 0 } }, /retention\.min_keep: expected an integer from 1/],
    ["enum", { ...MIN, check: { on_unchanged: "ignore" } }, /check\.on_unchanged: expected one of skip, archive, fail/],
    ["time zone", { ...MIN, archive: { timezone: "Europe/Pariss" } }, /archive\.timezone: unknown time zone "Europe\/Pariss"/],
    ["name pattern", { ...MIN, archive: { name: "{YYYY}.tgz" } }, /archive\.name: must contain \{MM\}/],
    [
      "destination type",
      { ...MIN, destination: { type: "locl", path: "/x" } },
      /destination\.type: expected one of .*local.*; did you mean 'local'\?/,
    ],
    ["relative path", { ...MIN, destination: { type: "local", path: "backup" } }, /destination\.path: expected an absolute path/],
    ["bad regex", { ...MIN, check: { expect_trailer: "(" } }, /check\.expect_trailer: not a valid regular expression/],
    ["YAML syntax", "source:\n  url: [unclosed\n", /line \d+, column \d+: invalid YAML/],
    [
      "alias before its anchor",
      "name: t\nsource: *src\nx: &src { url: https://a.example/d.zip }\n",
      /archive\.yaml: line 2: the alias \*src is used before its anchor &src is set YAML reads top to bottom/,
    ],
    ["empty file", "", /the file is empty/],
    ["not a mapping", "- a\n- b\n", /expected a mapping of keys, got a list/],
    [
      "basic auth without password",
      { ...MIN, source: { ...MIN.source, auth: { type: "basic", username: "u" } } },
      /source\.auth\.password: is required: give source\.auth\.password_file/,
    ],
    ["two ways to give a secret", {
      ...MIN,
      source: { ...MIN.source, auth: { type: "basic", username: "u", password: "a", password_env: "B" } },
    }, /give only one of password, password_env/],
  ];
  for (const [name, obj, re] of cases) await t.step(name, () => fails(obj, re));
});

Deno.test("secrets: inline only in a 0600 file; from a file; from the environment; all collected for redaction", async () => {
  const inline = { ...MIN, source: { ...MIN.source, auth: { type: "basic", username: "u", password: "inline-pw" } } };
  assert.equal(parse(inline, 0o600).source.auth!.type, "basic");
  fails(inline, /inline secret in a config readable by group or others \(mode 0640\)[\s\S]*chmod 600/, 0o640);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "pw"), "file-pw\nsecond line ignored\n");
  const fromFile = parse(
    { ...MIN, source: { ...MIN.source, auth: { type: "basic", username: "u", password_file: join(dir, "pw") } } },
    0o644,
  );
  assert.deepEqual(fromFile.secretValues, ["file-pw"]);
  const a = fromFile.source.auth!;
  assert.ok(a.type === "basic" && a.password === "file-pw");
  fails(
    { ...MIN, source: { ...MIN.source, auth: { type: "basic", username: "u", password_file: join(dir, "missing") } } },
    /password_file: cannot read .*missing/,
  );
  const fromEnv = parse(
    { ...MIN, source: { ...MIN.source, auth: { type: "header", name: "Authorization", value_env: "TOKEN" } } },
    0o644,
    mapEnv({ TOKEN: "Bearer t0k" }),
  );
  assert.deepEqual(fromEnv.secretValues, ["Bearer t0k"]);
  fails(
    { ...MIN, source: { ...MIN.source, auth: { type: "header", name: "X", value_env: "NOPE" } } },
    /value_env: environment variable NOPE is not set/,
  );
});

Deno.test("config lookup: --config, then $ARCHIVIST_CONFIG, then /etc/archivist/archive.yaml, then ./archive.yaml", () => {
  assert.deepEqual(findConfigPath("/a.yaml", mapEnv({ ARCHIVIST_CONFIG: "/b.yaml" })), { path: "/a.yaml", how: "--config" });
  assert.deepEqual(findConfigPath(undefined, mapEnv({ ARCHIVIST_CONFIG: "/b.yaml" })), { path: "/b.yaml", how: "$ARCHIVIST_CONFIG" });
  assert.equal(findConfigPath(undefined, env, (p) => p === "/etc/archivist/archive.yaml").path, "/etc/archivist/archive.yaml");
  assert.equal(findConfigPath(undefined, env, (p) => p === "./archive.yaml").path, "./archive.yaml");
  assert.throws(() => findConfigPath(undefined, env, () => false), /no config file: none given with --config or \$ARCHIVIST_CONFIG/);
});

Deno.test("units: durations and sizes", () => {
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("30d"), 30 * 86_400_000);
  assert.equal(parseDuration("2w"), 14 * 86_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30"), undefined);
  assert.equal(parseDuration("-1d"), undefined);
  assert.equal(parseSize("20GiB"), 20 * 1024 ** 3);
  assert.equal(parseSize("500MB"), 500e6);
  assert.equal(parseSize("1024"), 1024);
  assert.equal(parseSize("12 parsecs"), undefined);
  assert.equal(formatSize(1536), "1.50 KiB");
});

Deno.test("archive.yaml.example is valid and shows every config key", () => {
  const path = join(ROOT, "archive.yaml.example");
  const cfg = loadConfig(path, env);
  assert.equal(cfg.destination.type, "local");
  const text = Deno.readTextFileSync(path);
  const missing: string[] = [];
  for (const [p] of walkSchema(configSchema)) {
    const key = p.split(".").pop()!.replace(/\[.*\]$/, "");
    if (key && !new RegExp(`(^|\\s|#\\s*)${key}:`, "m").test(text)) missing.push(p);
  }
  assert.deepEqual(missing, [], "keys the example does not mention");
  // Each destination type shows every one of its own keys in its own block (not only somewhere in the file).
  const dest = configSchema.children!.destination.variants!;
  for (const [type, schema] of Object.entries(dest)) {
    const head = new RegExp(`^#?[ \\t]*type: ${type}\\b.*$`, "m").exec(text);
    assert.ok(head, `the example has a ${type} destination block`);
    const rest = text.slice(head.index + head[0].length);
    const next = rest.search(/^#?[ \t]*(type: \w+|#? ?destination:)|^[a-z_]+:[ \t]*$/m);
    const block = next < 0 ? rest : rest.slice(0, next);
    for (const key of Object.keys(schema.children!)) {
      if (key === "type") continue;
      const secret = /^(password|value)(_file|_env)?$/.test(key);
      if (secret) continue; // one of the three forms is shown
      assert.match(block, new RegExp(`(^|\\s|#\\s*)${key}:`, "m"), `the ${type} block shows ${key}`);
    }
  }
});

Deno.test("ftps tls_max takes 1.2 or 1.3 quoted or not (YAML reads an unquoted 1.2 as a number); anything else names the key", () => {
  const ftps = (tls_max: unknown) => ({ ...MIN, destination: { type: "ftps", host: "h", user: "u", password: "p", path: "x", tls_max } });
  assert.equal((parse(ftps(1.3)).destination as { tls_max: string }).tls_max, "1.3");
  assert.equal((parse(ftps("1.2")).destination as { tls_max: string }).tls_max, "1.2");
  fails(ftps(1.1), /destination\.tls_max: expected 1\.2 or 1\.3, got 1\.1/);
});

Deno.test("files the run trusts are refused when others could change them or another user owns them (exit 10, the key, the fix)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "archivist-trust-" });
  const file = async (name: string, text: string, mode: number, uid?: number) => {
    const p = join(dir, name);
    await Deno.writeTextFile(p, text);
    await Deno.chmod(p, mode);
    if (uid !== undefined) await Deno.chown(p, uid, null);
    return p;
  };
  const refused = (cfgPath: string, re: RegExp) =>
    assert.throws(() => loadConfig(cfgPath, env), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.exitCode, 10);
      assert.match(`${err.message} (hint: ${err.hint})`, re);
      return true;
    });
  try {
    await t.step("a config writable by group or others", async () => {
      const p = await file("a.yaml", stringify(MIN), 0o666);
      refused(p, /config file .*a\.yaml is writable by group and others \(mode 0666, owner root\).*hint: run: chmod go-w .*a\.yaml/);
      await Deno.chmod(p, 0o620);
      refused(p, /is writable by its group \(mode 0620/);
      await Deno.chmod(p, 0o644);
      assert.equal(loadConfig(p, env).name, "archivist", "readable by others is no write access (inline secrets aside)");
    });
    await t.step("a config of another user than the run user or root", async () => {
      const p = await file("b.yaml", stringify(MIN), 0o600, 65534);
      refused(p, /config file .*b\.yaml belongs to nobody, but archivist runs as root.*hint: run: chown root: .*b\.yaml/);
    });
    await t.step("a secret file, an ssh key, a CA file, the sendmail program", async () => {
      const pw = await file("pw", "secret\n", 0o664);
      const key = await file("key", "KEY\n", 0o600, 65534);
      const hosts = await file("known_hosts", "", 0o644);
      const ca = await file("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o646);
      const sendmail = await file("sendmail", "#!/bin/sh\n", 0o775);
      const cases: [Record<string, unknown>, RegExp][] = [
        [
          { source: { ...MIN.source, auth: { type: "basic", username: "u", password_file: pw } } },
          /source\.auth\.password_file .*pw is writable by its group/,
        ],
        [
          { destination: { type: "sftp", host: "h", user: "u", path: "/x", key_file: key, known_hosts_file: hosts } },
          /destination\.key_file .*key belongs to nobody/,
        ],
        [{ source: { ...MIN.source, ca_file: ca } }, /source\.ca_file .*ca\.pem is writable by others \(mode 0646/],
        [
          { mail: { to: ["a@b.example"], transport: "sendmail", sendmail_path: sendmail } },
          /mail\.sendmail_path .*sendmail is writable by its group/,
        ],
      ];
      for (const [over, re] of cases) refused(await file("c.yaml", stringify({ ...MIN, ...over }), 0o600), re);
      await Deno.chmod(pw, 0o600);
      assert.ok(
        loadConfig(
          await file(
            "d.yaml",
            stringify({ ...MIN, source: { ...MIN.source, auth: { type: "basic", username: "u", password_file: pw } } }),
            0o600,
          ),
          env,
        ),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
