/** The SMTP server the mail tests talk to. */
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import type { TestCert } from "../../tools/fixtures.ts";
import { freePort, waitPort } from "./common.ts";

export interface Received {
  subject: string;
  text: string;
  to: string;
  cc: string;
  attachments: { filename?: string; content: Uint8Array }[];
}

/**
 * An SMTP server (npm smtp-server) on 127.0.0.1 with the test certificate: STARTTLS (or implicit TLS with `secure`),
 * AUTH as "archivist" with `password`; every message parsed (mailparser) into `received`.
 */
export async function startSmtpServer(cert: TestCert, password: string, opts: { secure?: boolean; noTLS?: boolean } = {}) {
  const received: Received[] = [];
  const port = freePort();
  const server = new SMTPServer({
    secure: !!opts.secure,
    key: cert.key,
    cert: cert.cert,
    // noTLS: a server without STARTTLS that would accept AUTH and mail in clear text, to prove we never fall back.
    disabledCommands: opts.noTLS ? ["STARTTLS"] : [],
    allowInsecureAuth: !!opts.noTLS,
    authOptional: !!opts.noTLS,
    authMethods: ["PLAIN", "LOGIN"],
    logger: false,
    onAuth(auth: any, _s: unknown, cb: (e: Error | null, r?: any) => void) {
      if (auth.username === "archivist" && auth.password === password) cb(null, { user: "archivist" });
      else cb(new Error("Invalid username or password"));
    },
    onData(stream: any, _s: unknown, cb: (e?: Error) => void) {
      simpleParser(stream).then((p: any) => {
        received.push({
          subject: p.subject ?? "",
          text: p.text ?? "",
          to: p.to?.text ?? "",
          cc: p.cc?.text ?? "",
          attachments: p.attachments ?? [],
        });
        cb();
      }, cb);
    },
  });
  // A client that refuses our certificate would otherwise crash the server.
  server.on("error", () => {});
  server.listen(port, "127.0.0.1");
  await waitPort(port, "smtp-server");
  return { port, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}
