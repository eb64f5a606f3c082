/** `archivist restore [NAME|latest]`: download an archive, check it, extract the dump. */
import type { Config } from "../config/load.ts";
import type { Clock } from "../os/clock.ts";
import type { Env } from "../os/env.ts";
import type { Logger } from "../report/log.ts";
import { asArchivistError, EXIT } from "../errors.ts";
import { withTransport } from "../transports/registry.ts";
import { restore } from "../ops/restore.ts";
import { DESTINATION, IDENTITY, WITH_JOB } from "./options.ts";
import type { Command, Parsed } from "./context.ts";

async function cmdRestore(cfg: Config, clock: Clock, env: Env, log: Logger, p: Parsed, out: (s: string) => void): Promise<number> {
  try {
    const path = await withTransport(
      cfg.destination,
      { log, env, step: "restore" },
      (t) =>
        restore(t, cfg, log, p.target ?? "latest", p.to ?? Deno.cwd(), p.force, clock.now(), {
          fallback: p.fallback,
          identity: p.identity ?? cfg.archive.encrypt.identity_file,
        }),
    );
    out(path);
    return EXIT.OK;
  } catch (e) {
    const err = asArchivistError("restore", e);
    log.failure("restore", err);
    return EXIT.RESTORE;
  }
}

export const restoreCommand: Command = {
  spec: {
    name: "restore",
    summary: "download an archive, check its sha256, extract the dump into DIR, print its path",
    args: "[NAME|latest]",
    maxArgs: 1,
    options: [
      ...WITH_JOB,
      DESTINATION,
      { name: "to", value: "DIR", help: "where to extract (default: the current directory)" },
      { name: "force", help: "overwrite an existing dump file there" },
      { name: "fallback", help: "with latest: when the newest archive is incomplete, restore the newest complete one (said in the log)" },
      IDENTITY,
    ],
    example: "archivist restore latest --to /srv/restore",
    exits: "run",
    codes: [0, 10, 50, 70],
    exitText: { 0: "success: the dump is extracted, its sha256 checked" },
  },
  run: (c) => cmdRestore(c.cfg, c.clock, c.env, c.log, c.p, c.out),
};
