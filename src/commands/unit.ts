/** `archivist unit`: the systemd service's sandbox lines this config needs (install.sh writes them into the unit). */
import type { Config } from "../config/load.ts";
import { EXIT } from "../errors.ts";
import { sandboxNeeds, unitLines } from "../config/sandbox.ts";
import { COMMON } from "./options.ts";
import type { Command } from "./context.ts";

function cmdUnit(jobs: Config[], user: string | undefined, out: (s: string) => void): number {
  const needs = sandboxNeeds(jobs, user ?? "root");
  for (const w of needs.writes) out(`# writes ${w.what} (${w.why})`);
  for (const c of needs.capabilities) out(`# uses ${c.what} (${c.why})`);
  out(unitLines(needs).join("\n"));
  return EXIT.OK;
}

export const unit: Command = {
  spec: {
    name: "unit",
    summary: "print the systemd sandbox lines (ReadWritePaths=, CapabilityBoundingSet=, PrivateTmp=) this config needs",
    maxArgs: 0,
    options: [...COMMON, { name: "user", value: "USER", help: "the service's User= (default root: capabilities count only for root)" }],
    example: "archivist unit -c /etc/archivist/archive.yaml --user root",
    exits: "simple",
    readOnly: true,
    printsOnly: true,
  },
  run: (c) => cmdUnit(c.jobs, c.p.user, c.out),
};
