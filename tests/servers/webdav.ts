/** A WebDAV server over HTTPS: `rclone serve webdav` on 127.0.0.1 with a generated certificate and basic auth. */
import { join } from "node:path";
import type { TestCert } from "../../tools/fixtures.ts";
import { freePort, randomPassword, type Server, startProcess, waitPort } from "./common.ts";

export interface DavServer extends Server {
  port: number;
  user: string;
  password: string;
  root: string;
  url(path: string): string;
}

export async function startWebdav(dir: string, cert: TestCert): Promise<DavServer> {
  const root = join(dir, "dav");
  await Deno.mkdir(root, { recursive: true });
  const port = freePort();
  const user = "davuser", password = randomPassword();
  // The test server's own password is on its command line; archivist's never is (netrc file).
  const p = startProcess("rclone", [
    "serve",
    "webdav",
    root,
    "--addr",
    `127.0.0.1:${port}`,
    "--user",
    user,
    "--pass",
    password,
    "--cert",
    cert.certFile,
    "--key",
    cert.keyFile,
    "--config",
    "/dev/null",
    "--dir-cache-time",
    "0s",
  ]);
  await waitPort(port, `rclone webdav (${p.log()})`);
  return {
    port,
    user,
    password,
    root,
    url: (path) => `https://127.0.0.1:${port}/${path.replace(/^\//, "")}`,
    stop: p.stop,
  };
}
