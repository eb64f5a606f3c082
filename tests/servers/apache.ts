/** Apache 2.4 with mod_dav_fs over HTTPS, basic auth: the other WebDAV server people run (SERVERS.md's recipe). */
import { join } from "node:path";
import { sh, type TestCert } from "../../tools/fixtures.ts";
import { freePort, startProcess, waitPort } from "./common.ts";
import type { DavServer } from "./nginx.ts";

export async function startApacheDav(dir: string, cert: TestCert): Promise<DavServer> {
  await Deno.mkdir(join(dir, "run"), { recursive: true });
  const root = join(dir, "www", "backup");
  await Deno.mkdir(root, { recursive: true });
  await Deno.mkdir(join(dir, "lock"), { recursive: true });
  const user = "backup", password = `Pw-${crypto.randomUUID().slice(0, 12)}`;
  await sh("htpasswd", ["-b", "-c", join(dir, "htpasswd"), user, password]);
  // Apache's workers run as www-data: they write the served tree and the lock database.
  await sh("chown", ["-R", "www-data:", join(dir, "www"), join(dir, "lock")]);
  await Deno.chmod(dir, 0o755);
  const port = freePort();
  const mods = [
    "mpm_event",
    "authz_core",
    "authn_core",
    "authn_file",
    "auth_basic",
    "authz_user",
    "dav",
    "dav_fs",
    "ssl",
    "socache_shmcb",
    "mime",
    "dir",
  ];
  const conf = join(dir, "apache2.conf");
  await Deno.writeTextFile(
    conf,
    `ServerRoot /etc/apache2
${mods.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`).join("\n")}
User www-data
Group www-data
PidFile ${dir}/run/apache2.pid
DefaultRuntimeDir ${dir}/run
Mutex file:${dir}/run
ErrorLog ${dir}/error.log
LogLevel warn
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
TypesConfig /etc/mime.types
DavLockDB ${dir}/lock/DavLock
<VirtualHost 127.0.0.1:${port}>
  SSLEngine on
  SSLCertificateFile ${cert.certFile}
  SSLCertificateKeyFile ${cert.keyFile}
  DocumentRoot ${dir}/www
  <Directory ${dir}/www>
    Require all granted
  </Directory>
  <Location /backup/>
    Dav On
    AuthType Basic
    AuthName backup
    AuthUserFile ${dir}/htpasswd
    Require valid-user
  </Location>
</VirtualHost>
`,
  );
  const p = startProcess("apache2", ["-f", conf, "-DFOREGROUND"]);
  await waitPort(port, `apache2 (${p.log()})`);
  return { port, url: (sub) => `https://127.0.0.1:${port}/backup/${sub}`, root, user, password, stop: p.stop };
}
