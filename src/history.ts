/**
 * The run history: one JSON object per line, appended with a single O_APPEND write per run, never rewritten.
 * `archivist history` reads it; monitoring can tail it.
 */
import { dirname } from "node:path";
import { errMsg } from "./errors.ts";
import type { RunResult } from "./run.ts";

/** Append one run. Returns an error message instead of throwing: history must never break a run. */
export function appendHistory(path: string, r: RunResult): string | undefined {
  try {
    Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const f = Deno.openSync(path, { append: true, create: true, mode: 0o640 });
    try {
      f.writeSync(new TextEncoder().encode(JSON.stringify(r) + "\n"));
    } finally {
      f.close();
    }
    return undefined;
  } catch (e) {
    return `cannot append to history ${path}: ${errMsg(e)}`;
  }
}

/** All recorded runs, oldest first; unparseable lines are skipped and counted. */
export function readHistory(path: string): { runs: RunResult[]; bad: number } {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { runs: [], bad: 0 };
    throw e;
  }
  const runs: RunResult[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      runs.push(JSON.parse(line));
    } catch {
      bad++;
    }
  }
  return { runs, bad };
}
