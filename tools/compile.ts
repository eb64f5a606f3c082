/** `deno task compile`: `deno compile` main.ts into dist/archivist with the permissions of src/permissions.ts. */
import { DENO_PERMISSIONS } from "../src/permissions.ts";

const out = await new Deno.Command(Deno.execPath(), {
  args: ["compile", ...DENO_PERMISSIONS, "-o", "dist/archivist", "main.ts"],
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(out.code);
