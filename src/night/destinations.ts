/**
 * store and retention over every destination, in order. Each destination stores tonight's archive (or is skipped
 * when compare sent it only to the ones that missed the last one); the archive counts as stored per store.require:
 * a failed destination is a warning with `any` (while another has it), the night's failure with `all`. Retention
 * then runs on every destination that stored it, each with its own retention. One destination alone runs the plain
 * stage: its failure is the night's, its lines carry no location.
 */
import { ArchivistError, asArchivistError } from "../errors.ts";
import type { Book } from "./book.ts";
import { catchUpCopy } from "./catchup.ts";
import { store } from "./store.ts";
import type { Archive, Night, Pruned, Stored, Target, Verdict } from "./types.ts";

/** What store did across the destinations. */
export interface Spread {
  /** The destinations whose store ran without error (in a dry run: what they would store). */
  done: { target: Target; stored?: Stored }[];
  /** Where it failed (store.require: any, another has it). */
  missingOn: string[];
}

/**
 * Store `archive` (undefined: a dry run's preview after an unchanged dump) on the targets. Throws Halt (recorded)
 * when the night fails; returns undefined when nothing is to be stored after all (the night stops with a warning).
 */
export async function storeAll(n: Night, book: Book, targets: Target[], archive: Archive | undefined, verdict?: Verdict) {
  const link = verdict?.kind === "unchanged" && verdict.then === "link" ? verdict.linkTo : undefined;
  const catchUp = verdict?.kind === "unchanged" && verdict.then === "catch-up" ? verdict.catchUp : undefined;
  if (targets.length === 1 && !catchUp && archive) {
    const stored = await book.step(n, "store", () => store(n, targets[0], archive, link));
    return { done: [{ target: targets[0], stored }], missingOn: [] } satisfies Spread;
  }
  const onlyTo = catchUp?.onlyTo;
  if (onlyTo && !targets.some((t) => onlyTo.includes(t.location))) {
    const why = `the dump is unchanged and no destination of this config misses the last archive (${
      onlyTo.join(", ")
    } is no longer one): nothing stored`;
    book.record("store", "warning", why, 0);
    n.log.warn("store", why);
    return undefined;
  }
  const spread: Spread = { done: [], missingOn: [] };
  const failures: ArchivistError[] = [];
  for (const target of targets) {
    const location = target.location;
    if (onlyTo && !onlyTo.includes(location)) {
      book.record("store", "skipped", `${location}: it holds the last archive, the same data`, 0);
      continue;
    }
    const what = catchUp && archive ? await catchUpArchive(n, targets, target, archive, catchUp) : archive;
    const r = await book.attempt("store", () => store(n, target, what, link), location);
    if (r.ok) {
      spread.done.push({ target, stored: r.value });
      continue;
    }
    const err = asArchivistError("store", r.err);
    failures.push(err);
    spread.missingOn.push(location);
    const tolerated = n.config.store.require === "any";
    book.record("store", tolerated ? "warning" : "failed", `${location}: ${err.message}`, r.ms);
    n.log.failure("store", err, tolerated ? "warn" : "error", `${location}: `);
  }
  const first = failures[0];
  if (first && (n.config.store.require === "all" || !spread.done.length)) {
    const on = spread.done.map((d) => d.target.location).join(", ");
    const message = `${failures.length > 1 ? `${failures.length} destinations failed; ` : ""}${spread.missingOn[0]}: ${first.message}${
      spread.done.length ? ` (stored on ${on}; store.require: ${n.config.store.require})` : ""
    }`;
    return book.halt(new ArchivistError("store", message, first.hint, { code: first.code }));
  }
  return spread;
}

/** The catch-up copy for `target`: the archive it missed, from a destination that has it (else tonight's). */
async function catchUpArchive(
  n: Night,
  targets: Target[],
  target: Target,
  tonight: Archive,
  plan: { name: string; from: string[] },
): Promise<Archive> {
  const { name, from } = plan;
  const src = targets.find((t) => from.includes(t.location));
  const got = !src
    ? `no destination of this config holds ${name} any more (${from.join(", ")})`
    : await src.open("store").then((t) => catchUpCopy(n.config, t, name, n.workDir, tonight.dump)).catch((e) => String(e));
  if (typeof got === "string") {
    n.log.warn("store", `${target.location}: ${got}: storing tonight's archive ${tonight.name} instead of ${name}`);
    return tonight;
  }
  n.log.info("store", `${target.location}: the catch-up copy is ${name} itself, read from ${src!.location} (sha256 as catalogued)`);
  return got;
}

/**
 * Retention on every destination that stored tonight's archive (in a dry run: that would have), each with its own.
 * One destination alone: the plain stage. Several: a failure on one is recorded, the others still run.
 */
export async function retainAll(n: Night, book: Book, spread: Spread, single: boolean): Promise<Pruned | undefined> {
  if (single) {
    const { target, stored } = spread.done[0];
    return await book.step(n, "retention", () => n.writes.retain(n, target, stored?.name));
  }
  const all: Pruned = { deleted: [], failed: [] };
  for (const { target, stored } of spread.done) {
    const location = target.location;
    const r = await book.attempt("retention", () => n.writes.retain(n, target, stored?.name), location);
    if (r.ok) {
      all.deleted.push(...r.value?.deleted ?? []);
      all.failed.push(...r.value?.failed ?? []);
      continue;
    }
    const err = asArchivistError("retention", r.err);
    book.record("retention", "failed", `${location}: ${err.message}`, r.ms);
    book.error ??= new ArchivistError("retention", `${location}: ${err.message}`, err.hint, { code: err.code });
  }
  return all;
}
