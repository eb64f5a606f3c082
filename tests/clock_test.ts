/** The run date is fixed at the start, in archive.timezone; a run that crosses midnight keeps it and says so. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fixedClock } from "../src/os/clock.ts";
import { parseConfigText } from "../src/config/load.ts";
import { mapEnv } from "../src/os/env.ts";
import { Logger } from "../src/report/log.ts";
import { executeRun, type RunDeps } from "../src/night/run.ts";
import { stringify } from "yaml";

Deno.test("a run that crosses midnight keeps its start date and logs it", async () => {
  const root = await Deno.makeTempDir();
  const cfg = parseConfigText(
    stringify({
      state_dir: join(root, "state"),
      work_dir: join(root, "work"),
      source: { url: "https://example.invalid/x.zip", entry: "d.sql" },
      archive: { timezone: "Europe/Paris" },
      destination: { type: "local", path: join(root, "dest") },
    }),
    "test.yaml",
    mapEnv({}),
  );
  // 23:50 in Paris on 2026-11-21; the step takes "20 minutes".
  const clock = fixedClock("2026-11-21T22:50:00Z");
  let seenDate = "";
  const slow: RunDeps["stages"] = async (n, book) => {
    await book.step(n, "fetch", () => {
      clock.set("2026-11-21T23:10:00Z");
      seenDate = `${n.runDate.year}-${n.runDate.month}-${n.runDate.day}`;
      return Promise.resolve({ status: "ok", message: "slow", value: undefined });
    });
  };
  const lines: string[] = [];
  const log = new Logger({ runId: "t", stderrLevel: "off", sink: (l) => lines.push(l) });
  const r = await executeRun({ config: cfg, clock, env: mapEnv({}), log, stages: slow });
  assert.equal(r.status, "ok");
  assert.equal(r.runDate, "2026-11-21");
  assert.equal(seenDate, "2026-11-21");
  assert.match(lines.join("\n"), /the run crossed midnight: the archive keeps the run's start date 2026-11-21/);
  await Deno.remove(root, { recursive: true });
});
