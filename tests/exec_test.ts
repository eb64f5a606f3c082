/** Child tools see only the variables they need: never the config's *_env secrets. */
import assert from "node:assert/strict";
import { CHILD_ENV, exec } from "../src/exec.ts";

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
