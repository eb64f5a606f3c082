/**
 * nginx (Debian's) as an HTTPS source, in the foreground with a private config and prefix on 127.0.0.1: the web
 * server people really put the export behind. Serves `root` with HTTP/2, gzip_static and a redirect.
 */
import { join } from "node:path";
import type { TestCert } from "../../tools/fixtures.ts";
import { freePort, type Server, startProcess, waitPort } from "./common.ts";

export interface NginxServer extends Server {
  port: number;
  url(path: string): string;
}

/**
 * Locations: `/` plain files (gzip_static on: a .gz beside a file is served only to clients that accept gzip),
 * `/always/` (gzip_static always: the .gz whatever the client asks), `/old.zip` (301 to /dump.zip).
 */
export async function startNginx(dir: string, root: string, cert: TestCert): Promise<NginxServer> {
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    `daemon off;
worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  types { application/zip zip; }
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    root ${root};
    location / { gzip_static on; }
    location /always/ { gzip_static always; gunzip off; }
    location = /old.zip { return 301 https://127.0.0.1:${port}/dump.zip; }
  }
}
`,
  );
  const p = startProcess("nginx", ["-c", conf, "-p", dir]);
  await waitPort(port, `nginx (${p.log()})`);
  return { port, url: (path) => `https://127.0.0.1:${port}${path}`, stop: p.stop };
}
