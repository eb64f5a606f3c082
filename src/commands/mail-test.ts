/** `archivist mail-test`: a test message with the mail settings. */
import { hostname } from "node:os";
import type { Config } from "../config/load.ts";
import type { Logger } from "../report/log.ts";
import { asArchivistError, EXIT } from "../errors.ts";
import { sendMail } from "../report/mail.ts";
import { WITH_JOB } from "./options.ts";
import type { Command } from "./context.ts";

async function cmdMailTest(cfg: Config, log: Logger): Promise<number> {
  if (!cfg.mail.to.length) {
    log.error("mail", "FAILED: mail.to is empty: nothing to send to");
    return EXIT.MAIL;
  }
  const m = {
    from: cfg.mail.from ?? `archivist@${hostname()}`,
    to: cfg.mail.to,
    cc: cfg.mail.cc,
    subject: `[archivist] TEST ${cfg.name} (${hostname()})`,
    text:
      `This is a test message from archivist (job ${cfg.name} on ${hostname()}, config ${cfg.file}).\nIf you read this, report mails will reach you.\n`,
    attachments: [],
  };
  try {
    const how = await sendMail(cfg.mail, m);
    log.info("mail", `test message to ${m.to.join(", ")} ${how}`);
    return EXIT.OK;
  } catch (e) {
    const err = asArchivistError("mail", e);
    log.failure("mail", err);
    return EXIT.MAIL;
  }
}

export const mailTest: Command = {
  spec: {
    name: "mail-test",
    summary: "send a test message with the mail settings",
    maxArgs: 0,
    options: WITH_JOB,
    example: "archivist mail-test",
    exits: "run",
    codes: [0, 10, 40],
    exitText: { 0: "success: the test mail was handed to the mail server", 40: "mail: the test mail could not be sent" },
  },
  run: (c) => cmdMailTest(c.cfg, c.log),
};
