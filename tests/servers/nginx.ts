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
/** The part of nginx.conf both servers share: foreground, root, every path inside `dir`, up to the open http block. */
function preamble(dir: string): string {
  return `daemon off;
worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
`;
}

export async function startNginx(dir: string, root: string, cert: TestCert): Promise<NginxServer> {
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    `${preamble(dir)}  types { application/zip zip; }
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

export interface DavServer extends Server {
  port: number;
  /** URL of a directory under the WebDAV root. */
  url(sub: string): string;
  /** The served directory on disk. */
  root: string;
  user: string;
  password: string;
}

/** WebDAV as nginx serves it: the dav module plus dav-ext (PROPFIND), basic auth, HTTPS (SERVERS.md's recipe). */
export async function startNginxDav(dir: string, cert: TestCert): Promise<DavServer> {
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  const root = join(dir, "www");
  await Deno.mkdir(join(root, "backup"), { recursive: true });
  const user = "backup", password = `Pw-${crypto.randomUUID().slice(0, 12)}`;
  const htp = new Deno.Command("openssl", { args: ["passwd", "-apr1", "-stdin"], stdin: "piped", stdout: "piped" }).spawn();
  const w = htp.stdin.getWriter();
  await w.write(new TextEncoder().encode(password + "\n"));
  await w.close();
  const apr = new TextDecoder().decode((await htp.output()).stdout).trim();
  await Deno.writeTextFile(join(dir, "htpasswd"), `${user}:${apr}\n`);
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    `load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
${preamble(dir)}  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    root ${root};
    location /backup/ {
      auth_basic "backup";
      auth_basic_user_file ${dir}/htpasswd;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      client_max_body_size 0;
    }
  }
}
`,
  );
  const p = startProcess("nginx", ["-c", conf, "-p", dir]);
  await waitPort(port, `nginx (${p.log()})`);
  return {
    port,
    url: (sub) => `https://127.0.0.1:${port}/backup/${sub}`,
    root: join(root, "backup"),
    user,
    password,
    stop: p.stop,
  };
}
