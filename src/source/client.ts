/**
 * The source client: Deno's fetch (the default) or curl (`source.client: curl`, for certificates Deno's TLS refuses),
 * behind one interface. Both make one attempt into a file and fail with the same AttemptError classes, messages and
 * hints (./errors.ts), so the retries, the ready marker and the conditional download are written once.
 */
import { attemptCurl } from "./curl.ts";
import { attemptFetch } from "./deno.ts";
import type { Fetched, SourceContext } from "./attempt.ts";
import { makeClient } from "./http.ts";

export interface SourceClient {
  /** One attempt into `dest`: the zip written, or a 304; an AttemptError otherwise. */
  attempt(dest: string, unconditional: boolean): Promise<Fetched>;
  /** Deno's HTTP client for the ready marker's HEAD (undefined with curl: the marker uses curl too). */
  readonly http?: Deno.HttpClient;
  close(): void;
}

export function sourceClient(n: SourceContext): SourceClient {
  if (n.config.source.client === "curl") {
    return { attempt: (dest, unconditional) => attemptCurl(n, dest, unconditional), close: () => {} };
  }
  const http = makeClient(n.config.source);
  return { http, attempt: (dest, unconditional) => attemptFetch(n, http, dest, unconditional), close: () => http.close() };
}
