/** vsftpd with explicit TLS required, TLS session reuse required, loopback passive ports, a local test user. */
import { join } from "node:path";
import type { TestCert } from "../../tools/fixtures.ts";
import { ensureUser, freePort, randomPassword, type Server, startProcess, TEST_USER, waitPort } from "./common.ts";

export interface FtpServer extends Server {
  port: number;
  user: string;
  password: string;
  home: string;
}

/** vsftpd with explicit TLS (AUTH TLS), or with `implicit` TLS from the first byte (FTPS proper). */
export async function startVsftpd(
  dir: string,
  cert: TestCert,
  opts: { implicit?: boolean; extra?: string[] } = {},
): Promise<FtpServer> {
  await Deno.mkdir(dir, { recursive: true });
  const password = randomPassword();
  const home = await ensureUser(password);
  const port = freePort();
  const pasv = 30000 + Math.floor(Math.random() * 20000);
  const empty = join(dir, "empty");
  await Deno.mkdir(empty, { recursive: true });
  const conf = join(dir, "vsftpd.conf");
  await Deno.writeTextFile(
    conf,
    [
      "listen=YES",
      "listen_ipv6=NO",
      "listen_address=127.0.0.1",
      `listen_port=${port}`,
      "background=NO",
      "seccomp_sandbox=NO",
      "anonymous_enable=NO",
      "local_enable=YES",
      "write_enable=YES",
      "local_umask=022",
      "pasv_enable=YES",
      "pasv_address=127.0.0.1",
      `pasv_min_port=${pasv}`,
      `pasv_max_port=${pasv + 20}`,
      "ssl_enable=YES",
      "force_local_logins_ssl=YES",
      "force_local_data_ssl=YES",
      "require_ssl_reuse=YES",
      `implicit_ssl=${opts.implicit ? "YES" : "NO"}`,
      "ssl_tlsv1=YES",
      `rsa_cert_file=${cert.certFile}`,
      `rsa_private_key_file=${cert.keyFile}`,
      `secure_chroot_dir=${empty}`,
      "pam_service_name=vsftpd",
      "userlist_enable=NO",
      "check_shell=NO",
      `vsftpd_log_file=${join(dir, "vsftpd.log")}`,
      ...(opts.extra ?? []),
      "",
    ].join("\n"),
  );
  const p = startProcess("/usr/sbin/vsftpd", [conf]);
  await waitPort(port, `vsftpd (${p.log()})`);
  return {
    port,
    user: TEST_USER,
    password,
    home,
    stop: p.stop,
  };
}
