/**
 * A local HTTPS export server (Deno.serve on 127.0.0.1, a port chosen by the OS) for the demo and the tests.
 * Routes are plain functions, so a test can serve a 404, a 500 then a 200, an HTML page, or a cut body.
 */
import type { TestCert } from "./fixtures.ts";

export type Route = (req: Request, hit: number) => Response | Promise<Response>;

export interface HttpsSource {
  port: number;
  url(path: string): string;
  /** How many requests each path received. */
  hits: Map<string, number>;
  /** Last request headers per path. */
  headers: Map<string, Headers>;
  routes: Map<string, Route>;
  close(): Promise<void>;
}

export function startHttpsSource(cert: TestCert, routes: Record<string, Route> = {}): HttpsSource {
  const table = new Map(Object.entries(routes));
  const hits = new Map<string, number>();
  const headers = new Map<string, Headers>();
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: cert.cert,
    key: cert.key,
    signal: ac.signal,
    onListen: () => {},
    onError: () => new Response("internal error", { status: 500 }),
  }, (req) => {
    const path = new URL(req.url).pathname;
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    headers.set(path, req.headers);
    const route = table.get(path);
    return route
      ? route(req, n)
      : new Response("<html><body>Not Found</body></html>", { status: 404, headers: { "content-type": "text/html" } });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    port,
    url: (path) => `https://127.0.0.1:${port}${path}`,
    hits,
    headers,
    routes: table,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

/** A route that serves fixed bytes as a zip. */
export function serveBytes(body: Uint8Array, contentType = "application/zip"): Route {
  return () => new Response(body.slice(), { headers: { "content-type": contentType, "content-length": String(body.length) } });
}
