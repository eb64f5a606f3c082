/**
 * archivist: nightly download, check, archive and rotation of a database dump.
 * Entry point: parse argv, run one command, exit with its code. See src/cli/main.ts.
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
