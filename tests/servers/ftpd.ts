/**
 * The other FTPS servers people run, unpacked by tests/setup.ts under /opt/archivist-test-servers (they conflict
 * as packages) and run from there in the foreground on 127.0.0.1, TLS required, the test system user logging in.
 */
import { join } from "node:path";
import type { TestCert } from "../../tools/fixtures.ts";
import { ensureUser, freePort, randomPassword, startProcess, TEST_USER, waitPort } from "./common.ts";
import type { FtpServer } from "./vsftpd.ts";

const UNPACKED = "/opt/archivist-test-servers";

/** pure-ftpd 1.0.50: `-Y 2` TLS required, `-A` everyone chrooted; `noDotFiles` adds `-x` (dot-files refused). */
export async function startPureFtpd(dir: string, cert: TestCert, opts: { noDotFiles?: boolean } = {}): Promise<FtpServer> {
  await Deno.mkdir(dir, { recursive: true });
  const password = randomPassword();
  const home = await ensureUser(password);
  const port = freePort();
  const pasv = 30000 + Math.floor(Math.random() * 20000);
  // pure-ftpd wants the certificate and the key in one PEM file.
  const pem = join(dir, "pure-ftpd.pem");
  await Deno.writeTextFile(pem, cert.key + "\n" + cert.cert);
  await Deno.chmod(pem, 0o600);
  const p = startProcess(join(UNPACKED, "pure-ftpd/usr/sbin/pure-ftpd"), [
    "-S",
    `127.0.0.1,${port}`,
    "-p",
    `${pasv}:${pasv + 20}`,
    "-P",
    "127.0.0.1",
    "-Y",
    "2",
    "-A",
    "-l",
    "unix",
    "-E", // no anonymous
    "-u",
    "1",
    `--certfile=${pem}`,
    ...(opts.noDotFiles ? ["-x"] : []),
  ]);
  await waitPort(port, `pure-ftpd (${p.log()})`);
  return { port, user: TEST_USER, password, home, stop: p.stop };
}

/** proftpd 1.3.8 with mod_tls: TLSRequired on, TLS session reuse required on the data channel (its default). */
export async function startProftpd(dir: string, cert: TestCert): Promise<FtpServer> {
  await Deno.mkdir(dir, { recursive: true });
  const password = randomPassword();
  const home = await ensureUser(password);
  const port = freePort();
  const pasv = 30000 + Math.floor(Math.random() * 20000);
  const root = join(UNPACKED, "proftpd");
  const conf = join(dir, "proftpd.conf");
  await Deno.writeTextFile(
    conf,
    `ServerType standalone
ServerName "archivist test"
DefaultAddress 127.0.0.1
Port ${port}
PassivePorts ${pasv} ${pasv + 20}
MasqueradeAddress 127.0.0.1
User nobody
Group nogroup
DefaultRoot ~
AuthPAM off
AuthOrder mod_auth_unix.c
RequireValidShell off
UseIPv6 off
WtmpLog off
PidFile ${dir}/proftpd.pid
ScoreboardFile ${dir}/proftpd.scoreboard
DelayTable ${dir}/proftpd.delay
ModulePath ${root}/usr/lib/proftpd
LoadModule mod_tls.c
TLSEngine on
TLSRequired on
TLSProtocol TLSv1.2 TLSv1.3
TLSRSACertificateFile ${cert.certFile}
TLSRSACertificateKeyFile ${cert.keyFile}
TLSLog ${dir}/tls.log
<Directory />
  AllowOverwrite on
</Directory>
`,
  );
  const p = startProcess(join(root, "usr/sbin/proftpd"), ["-n", "-q", "-c", conf]);
  await waitPort(port, `proftpd (${p.log()})`);
  return { port, user: TEST_USER, password, home, stop: p.stop };
}
