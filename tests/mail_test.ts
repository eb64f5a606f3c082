/**
 * The report mail against a real SMTP server on 127.0.0.1 (npm smtp-server with a generated certificate and AUTH),
 * messages parsed back with mailparser; and sendmail through a stand-in script that records what it receives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCert, makeZip, sqlDump, type TestCert } from "../tools/fixtures.ts";
import { serveBytes, startHttpsSource } from "../tools/https_source.ts";
import { historyRuns, runCli, type Sandbox, sandbox } from "./helpers/cli.ts";
import { startSmtpServer } from "./servers/smtp.ts";
import { freePort } from "./servers/common.ts";
import { EXIT } from "../src/errors.ts";
import { shorten } from "../src/report/mail.ts";

const cert: TestCert = await makeCert(await Deno.makeTempDir({ prefix: "archivist-mailcert-" }));
const ZIP = makeZip([{ name: "dump.sql", data: sqlDump(20_000) }]);
const PW = "smtp-Secret-7781";

const startSmtp = (opts: { secure?: boolean; noTLS?: boolean } = {}) => startSmtpServer(cert, PW, opts);

async function withRun(
  routes: Parameters<typeof startHttpsSource>[1],
  mail: Record<string, unknown>,
  fn: (sb: Sandbox, run: () => Promise<{ code: number; stderr: string }>) => Promise<void>,
) {
  const src = startHttpsSource(cert, routes);
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile });
  const pwFile = join(sb.root, "smtp.pw");
  await Deno.writeTextFile(pwFile, PW + "\n");
  await sb.writeConfig({
    mail: {
      enabled: true,
      to: ["dba@example.org"],
      from: "archivist@test.example",
      ...mail,
      ...(mail.username ? { password_file: pwFile } : {}),
    },
  });
  try {
    await fn(sb, () => runCli(["run", "-c", sb.configPath], { env: { ARCHIVIST_NOW: "2026-11-22T02:30:00Z" } }));
  } finally {
    await src.close();
    await sb.cleanup();
  }
}

function lastHistory(sb: Sandbox) {
  return historyRuns(sb.historyFile).at(-1);
}

Deno.test("STARTTLS + AUTH: a failed run mails FAILED with cause, hint, steps, and this run's log attached", async () => {
  const smtp = await startSmtp();
  try {
    await withRun({}, {
      transport: "smtp",
      host: "127.0.0.1",
      port: smtp.port,
      security: "starttls",
      ca_file: cert.caFile,
      username: "archivist",
      cc: ["ops@example.org"],
    }, async (sb, run) => {
      await run(); // an earlier run, whose lines must not be attached to the next mail
      smtp.received.length = 0;
      const r = await run();
      assert.equal(r.code, EXIT.FETCH, r.stderr);
      assert.equal(smtp.received.length, 1);
      const m = smtp.received[0];
      assert.match(m.subject, /^\[archivist\] FAILED testjob: fetch: HTTP 404 Not Found from 127\.0\.0\.1:\d+ for \/dump\.zip/);
      assert.match(m.to, /dba@example\.org/);
      assert.match(m.cc, /ops@example\.org/);
      assert.match(m.text, /Cause: HTTP 404/);
      assert.match(m.text, /Hint: +check source\.url/);
      assert.match(m.text, /✗ fetch /);
      assert.match(m.text, /– unzip/);
      assert.equal(m.attachments.length, 1);
      const att = new TextDecoder().decode(m.attachments[0].content);
      const runId = lastHistory(sb).runId;
      assert.match(m.attachments[0].filename!, new RegExp(runId));
      assert.ok(att.split("\n").filter(Boolean).every((l) => l.includes(`[${runId}]`)), "only this run's lines");
      assert.match(att, /fetch: FAILED: HTTP 404/);
      for (const text of [m.subject, m.text, att]) assert.ok(!text.includes(PW));
      assert.equal(lastHistory(sb).mail.sent, true);
    });
  } finally {
    await smtp.close();
  }
});

Deno.test("implicit TLS: an OK run mails OK (when: always) without attachment when attach_log is off", async () => {
  const smtp = await startSmtp({ secure: true });
  try {
    await withRun({ "/dump.zip": serveBytes(ZIP) }, {
      transport: "smtp",
      host: "127.0.0.1",
      port: smtp.port,
      security: "tls",
      ca_file: cert.caFile,
      username: "archivist",
      when: "always",
      attach_log: false,
    }, async (sb, run) => {
      const r = await run();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(smtp.received.length, 1);
      const m = smtp.received[0];
      assert.equal(m.subject, `[archivist] OK testjob: 20261122.tgz ${m.subject.match(/tgz (.*) \(/)![1]} (${Deno.hostname()})`);
      assert.match(m.text, /Archive: +20261122\.tgz/);
      assert.match(m.text, /✓ store/);
      assert.equal(m.attachments.length, 0);
      assert.ok(lastHistory(sb).mail.sent);
    });
  } finally {
    await smtp.close();
  }
});

Deno.test("when: failure sends nothing for a warning; warning_or_failure sends WARNING", async () => {
  const smtp = await startSmtp();
  try {
    await withRun({ "/dump.zip": serveBytes(ZIP) }, {
      transport: "smtp",
      host: "127.0.0.1",
      port: smtp.port,
      ca_file: cert.caFile,
      username: "archivist",
      when: "failure",
    }, async (sb, run) => {
      assert.equal((await run()).code, 0);
      assert.equal((await run()).code, EXIT.WARNING);
      assert.equal(smtp.received.length, 0, "neither the OK nor the warning run mails with when: failure");
      await sb.writeConfig({
        mail: {
          enabled: true,
          to: ["dba@example.org"],
          transport: "smtp",
          host: "127.0.0.1",
          port: smtp.port,
          ca_file: cert.caFile,
          username: "archivist",
          password_file: join(sb.root, "smtp.pw"),
          when: "warning_or_failure",
        },
      });
      assert.equal((await run()).code, EXIT.WARNING);
      assert.equal(smtp.received.length, 1);
      assert.match(smtp.received[0].subject, /^\[archivist\] WARNING testjob: compare: the dump is identical/);
    });
  } finally {
    await smtp.close();
  }
});

Deno.test("mail failures never change the exit code and are recorded: untrusted cert, wrong password, no STARTTLS, server down", async (t) => {
  const smtp = await startSmtp();
  const plain = await startSmtp({ noTLS: true });
  const down = freePort();
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["untrusted certificate", { port: smtp.port }, /TLS certificate of 127\.0\.0\.1:\d+ not trusted/],
    [
      "wrong password",
      { port: smtp.port, ca_file: cert.caFile, password: "wrong" },
      /SMTP authentication refused by 127\.0\.0\.1:\d+ for archivist/,
    ],
    ["no STARTTLS offered", { port: plain.port, ca_file: cert.caFile }, /does not offer STARTTLS: refusing to send in clear text/],
    ["server down", { port: down, ca_file: cert.caFile }, /connection refused by 127\.0\.0\.1:\d+/],
    [
      "security: tls on a STARTTLS port",
      { port: smtp.port, ca_file: cert.caFile, security: "tls" },
      /does not speak TLS from the first byte \(.*wrong version number\)\): it is probably a STARTTLS port/,
    ],
  ];
  try {
    for (const [name, over, re] of cases) {
      await t.step(name, async () => {
        await withRun({ "/dump.zip": serveBytes(ZIP) }, {
          transport: "smtp",
          host: "127.0.0.1",
          security: "starttls",
          username: "archivist",
          when: "always",
          ...over,
        }, async (sb, run) => {
          if (over.password) {
            const cfg = await Deno.readTextFile(sb.configPath);
            await Deno.writeTextFile(sb.configPath, cfg.replace(/password_file: .*\n/, ""));
          }
          const r = await run();
          assert.equal(r.code, 0, "the archive succeeded: exit 0 whatever the mail did");
          assert.match(r.stderr, /WARN +mail: could not send the report: /);
          const h = lastHistory(sb);
          assert.equal(h.status, "ok");
          assert.equal(h.mail.sent, false);
          assert.match(h.mail.message, re);
          if (over.password) {
            assert.ok(
              !JSON.stringify(h).includes(`"${over.password}"`) && !/\bwrong\b(?! version)/.test(JSON.stringify(h)),
              "no password in the history",
            );
          }
        });
      });
    }
    assert.equal(plain.received.length, 0, "nothing went out in clear text");
  } finally {
    await smtp.close();
    await plain.close();
  }
});

Deno.test("sendmail: called as sendmail -t -oi -f FROM (bounces go to mail.from) with the whole message on stdin", async () => {
  const dir = await Deno.makeTempDir();
  const script = join(dir, "sendmail");
  await Deno.writeTextFile(script, `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/args\ncat > ${dir}/message\n`);
  await Deno.chmod(script, 0o755);
  await withRun({}, { transport: "sendmail", sendmail_path: script }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.FETCH);
    assert.deepEqual((await Deno.readTextFile(join(dir, "args"))).trim().split("\n"), ["-t", "-oi", "-f", "archivist@test.example"]);
    const msg = await Deno.readTextFile(join(dir, "message"));
    assert.match(msg, /^From: archivist@test\.example$/m);
    assert.match(msg, /^To: dba@example\.org$/m);
    assert.match(msg, /^Subject: .*FAILED/m);
    assert.match(msg, /Content-Disposition: attachment;\s+filename=archivist-/);
    assert.equal(lastHistory(sb).mail.sent, true);
    // A sendmail that fails is reported, and the run's own exit code stays.
    await Deno.writeTextFile(script, "#!/bin/sh\necho 'sendmail: fatal: no route' >&2\nexit 75\n");
    const r2 = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r2.code, EXIT.FETCH);
    assert.match(lastHistory(sb).mail.message, /-t -oi exited 75: sendmail: fatal: no route/);
  });
});

Deno.test("mail-test sends a test message, and exits 40 when it cannot", async () => {
  const smtp = await startSmtp();
  try {
    await withRun(
      {},
      { transport: "smtp", host: "127.0.0.1", port: smtp.port, ca_file: cert.caFile, username: "archivist" },
      async (sb) => {
        const r = await runCli(["mail-test", "-c", sb.configPath]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(smtp.received.length, 1);
        assert.match(smtp.received[0].subject, /^\[archivist\] TEST testjob/);
        await smtp.close();
        const r2 = await runCli(["mail-test", "-c", sb.configPath]);
        assert.equal(r2.code, EXIT.MAIL);
        assert.match(r2.stderr, /mail: FAILED: connection refused/);
      },
    );
  } finally {
    await smtp.close().catch(() => {});
  }
});

Deno.test("verify checks the SMTP settings (connect, TLS, AUTH) without sending", async () => {
  const smtp = await startSmtp();
  try {
    await withRun(
      {},
      { transport: "smtp", host: "127.0.0.1", port: smtp.port, ca_file: cert.caFile, username: "archivist" },
      async (sb) => {
        let r = await runCli(["verify", "-c", sb.configPath]);
        assert.match(r.stdout, /✓ mail +127\.0\.0\.1:\d+ accepts TLS connections and our login/);
        assert.equal(smtp.received.length, 0, "verify sends nothing");
        const cfg = await Deno.readTextFile(sb.configPath);
        await Deno.writeTextFile(sb.configPath, cfg.replace(/password_file: .*\n/, "password: wrong-one\n"));
        r = await runCli(["verify", "-c", sb.configPath]);
        assert.equal(r.code, 2);
        assert.match(r.stdout, /✗ mail +SMTP authentication refused by 127\.0\.0\.1:\d+ for archivist/);
      },
    );
  } finally {
    await smtp.close();
  }
});

Deno.test("mail config: enabled without recipients, or smtp without host, is a config error", async () => {
  await withRun({}, { to: [] }, async (sb) => {
    const r = await runCli(["run", "-c", sb.configPath]);
    assert.equal(r.code, EXIT.CONFIG);
    assert.match(r.stderr, /mail\.to: is required when mail is enabled/);
    await sb.writeConfig({ mail: { enabled: true, to: ["a@b.c"], transport: "smtp" } });
    const r2 = await runCli(["run", "-c", sb.configPath]);
    assert.match(r2.stderr, /mail\.host: is required with transport: smtp/);
  });
});

Deno.test("the subject's summary is cut at a word boundary, never inside a parenthesis, and stays under 100 characters", () => {
  const long =
    "compare: the dump is identical to the one archived as 20261121.tgz on 2026-11-21T02:30:00.000Z (sha256 eba2393b4cfd48c5…): not archived again";
  const s = shorten(long, 70);
  assert.ok(s.length <= 70, s);
  assert.ok(s.endsWith("…"));
  assert.doesNotMatch(s, /\([^)]*$/, "no open parenthesis left");
  assert.match(
    s,
    /^compare: the dump is identical to the one archived as 20261121\.tgz on…$|^compare: the dump is identical to the one archived as 20261121\.tgz…$/,
  );
  assert.equal(shorten("short", 70), "short");
});
