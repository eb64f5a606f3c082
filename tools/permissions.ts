/** Print the permission flags of src/permissions.ts on one line (install.sh writes them into the launcher). */
import { DENO_PERMISSIONS } from "../src/permissions.ts";

console.log(DENO_PERMISSIONS.join(" "));
