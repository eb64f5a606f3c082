/** The HTTPS source of the end-to-end tests: a real TLS server on 127.0.0.1 with the test CA, and a sandbox using it. */
import { makeCert, type TestCert } from "../../tools/fixtures.ts";
import { type HttpsSource, type Route, startHttpsSource } from "../../tools/https_source.ts";
import { type Sandbox, sandbox } from "./cli.ts";

let shared: Promise<TestCert> | undefined;

/** The test CA and the server's certificate, made once per test process. */
export function testCert(): Promise<TestCert> {
  return shared ??= Deno.makeTempDir({ prefix: "archivist-cert-" }).then(makeCert);
}

export interface SourceSetup {
  /** The paths served (default: /dump.zip by `route`, or the zip given). */
  routes?: Record<string, Route>;
  /** /dump.zip's route. */
  route?: Route;
  /** /dump.zip serves this zip; the test changes it with `serve` (a new dump for the next night). */
  zip?: Uint8Array;
  /** Config keys over the sandbox's defaults. */
  config?: Record<string, unknown>;
}

/** A source serving `setup`, a sandbox whose config downloads its /dump.zip, both removed afterwards. */
export async function withSource(
  setup: SourceSetup,
  fn: (sb: Sandbox, src: HttpsSource, serve: (zip: Uint8Array) => void) => Promise<void>,
): Promise<void> {
  if (!setup.routes && !setup.route && !setup.zip) throw new Error("withSource: give routes, route or zip (an empty body is no source)");
  const cert = await testCert();
  let zip = setup.zip;
  const routes = setup.routes ?? { "/dump.zip": setup.route ?? (() => new Response(zip?.slice())) };
  const src = startHttpsSource(cert, routes);
  const sb = await sandbox({ url: src.url("/dump.zip"), caFile: cert.caFile }, setup.config ?? {});
  try {
    await fn(sb, src, (z) => (zip = z));
  } finally {
    await src.close();
    await sb.cleanup();
  }
}
