/** Child tools see only the variables they need: never the config's *_env secrets. */
import assert from "node:assert/strict";
import { CHILD_ENV, exec } from "../src/os/exec.ts";
import { toolSaid } from "../src/transports/common.ts";

Deno.test("a child tool's environment holds PATH, HOME, proxies and LC_ALL=C, and no other variable of archivist's", async () => {
  Deno.env.set("ARCHIVIST_TEST_SMTP_PASSWORD", "s3cr3t-from-env");
  Deno.env.set("https_proxy", "http://proxy.example:3128");
  try {
    const r = await exec("env", []);
    assert.equal(r.code, 0);
    const vars = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    assert.ok(!r.stdout.includes("s3cr3t-from-env"), "no secret from the environment");
    assert.equal(vars.LC_ALL, "C");
    assert.equal(vars.PATH, Deno.env.get("PATH"));
    assert.equal(vars.https_proxy, "http://proxy.example:3128", "curl still sees the proxy");
    for (const k of Object.keys(vars)) assert.ok(CHILD_ENV.includes(k) || k === "LC_ALL", `${k} is allowed`);
  } finally {
    Deno.env.delete("ARCHIVIST_TEST_SMTP_PASSWORD");
    Deno.env.delete("https_proxy");
  }
});

Deno.test("a tool's progress output is read while it runs and left out of what errors are judged on", async () => {
  const seen: number[] = [];
  // curl's bar redraws with \r; its error comes last on a line of its own. Split writes test segments across reads.
  const script = `printf '\\r###   12.5%%' >&2; sleep 0.2; printf '\\r######   5' >&2; printf '0.0%%' >&2; sleep 0.2; ` +
    `printf '\\r########## 100.0%%\\n' >&2; printf 'curl: (55) Send failure: Broken pipe\\n' >&2; echo out; exit 55`;
  const r = await exec("sh", ["-c", script], {
    progress: {
      stream: "stderr",
      parse: (seg) => {
        const m = /^[#\s]*(\d+(?:\.\d)?)%\s*$/.exec(seg);
        return m ? Math.round(Number(m[1]) * 10) : undefined;
      },
      onBytes: (n) => seen.push(n),
    },
  });
  assert.deepEqual(seen, [125, 500, 1000]);
  assert.equal(r.code, 55);
  assert.equal(r.stderr, "curl: (55) Send failure: Broken pipe\n", "only the error is left");
  assert.equal(r.stdout, "out\n", "the other stream is read whole");
});

Deno.test("a tool that dies without a word is described by its exit status, never an empty cause", () => {
  assert.equal(toolSaid("Connection closed", "sftp", 255), "Connection closed");
  assert.match(toolSaid("", "sftp", 141), /SIGPIPE\): the connection to the server was lost/);
  assert.match(toolSaid("", "rsync", 137), /killed \(SIGKILL/);
  assert.equal(toolSaid("", "rclone", 143), "rclone was ended by signal 15");
  assert.equal(toolSaid("", "rclone", 1), "rclone printed no error");
});
