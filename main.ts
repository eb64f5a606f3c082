/**
 * archivist: nightly download, check, archive and rotation of a database dump.
 * Entry point: parse argv, run one command, exit with its code. See src/cli.ts.
 */
import { main } from "./src/cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
