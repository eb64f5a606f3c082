/**
 * Running the transfer tools (sftp, ssh, curl, smbclient): argument arrays, never shell strings; a timeout;
 * stdin for batch input; output captured and decoded; secrets redacted from anything that reaches an error.
 * Children are killed when archivist is interrupted.
 */
import { whileRunning } from "./cleanup.ts";
import { commandLine } from "./procs.ts";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** True when the timeout killed it. */
  timedOut: boolean;
}

export interface ExecOptions {
  stdin?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** A transfer tool's own progress output, read while it runs (curl's bar, rsync's progress2, rclone's stats). */
  progress?: ExecProgress;
}

/**
 * Where a tool prints its progress, and how to read it. The stream is cut into segments at `\r` and `\n` (progress
 * lines are redrawn with `\r`); a segment `parse` reads is reported and left out of the captured output, so error
 * classification sees only the tool's other words.
 */
export interface ExecProgress {
  stream: "stdout" | "stderr";
  /** Bytes done according to one segment, or undefined for any other text. */
  parse: (segment: string) => number | undefined;
  onBytes: (done: number) => void;
}

/** Read a child's stream to its end as text; with `p`, report and drop the progress segments as they arrive. */
async function readText(stream: ReadableStream<Uint8Array>, p?: ExecProgress): Promise<string> {
  const td = new TextDecoder();
  let text = "";
  let pending = "";
  const segment = (seg: string) => {
    if (!seg.trim()) return;
    const n = p!.parse(seg);
    if (n !== undefined) p!.onBytes(n);
    else text += seg + "\n";
  };
  const take = (final: boolean) => {
    for (let i = pending.search(/[\r\n]/); i >= 0; i = pending.search(/[\r\n]/)) {
      segment(pending.slice(0, i));
      pending = pending.slice(i + 1);
    }
    if (final && pending) (segment(pending), pending = "");
  };
  for await (const c of stream) {
    if (!p) text += td.decode(c, { stream: true });
    else (pending += td.decode(c, { stream: true }), take(false));
  }
  if (!p) return text + td.decode();
  pending += td.decode();
  take(true);
  return text;
}

/**
 * The variables a child tool may see: what running it needs (PATH, HOME, TMPDIR, TZ, the user), the proxy and
 * CA-bundle variables curl honours, and a Kerberos ticket cache for smbclient. Nothing else: the config's
 * `*_env` secrets (an SMTP password, a source token) never reach ssh, curl or smbclient.
 */
export const CHILD_ENV = [
  "PATH",
  "HOME",
  "TMPDIR",
  "TZ",
  "USER",
  "LOGNAME",
  "http_proxy",
  "https_proxy",
  "HTTPS_PROXY",
  "all_proxy",
  "ALL_PROXY",
  "no_proxy",
  "NO_PROXY",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "CURL_CA_BUNDLE",
  "KRB5CCNAME",
];

/** The environment of a child tool: the allowed variables of ours, LC_ALL=C, and `extra`. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of CHILD_ENV) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return { ...env, LC_ALL: "C", ...extra };
}

/** A client tool that is not installed: names the Debian package. */
export class MissingToolError extends Error {
  constructor(readonly tool: string, readonly pkg: string) {
    super(`${tool} is not installed (Debian package: ${pkg}; install it with: apt-get install ${pkg})`);
  }
}

/**
 * Run `cmd args`. Never throws for a non-zero exit (the caller classifies it); throws MissingToolError when the
 * command does not exist.
 * @example const r = await exec("curl", ["--version"], { timeoutMs: 5000 }, "curl");
 */
export async function exec(cmd: string, args: string[], opts: ExecOptions = {}, pkg = cmd): Promise<ExecResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      cwd: opts.cwd,
      clearEnv: true,
      env: childEnv(opts.env),
      stdin: opts.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new MissingToolError(cmd, pkg);
    throw e;
  }
  const unregister = whileRunning(() => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }, { pid: child.pid, what: cmd, args: commandLine(cmd, args) });
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, opts.timeoutMs)
    : undefined;
  try {
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    if (opts.progress) {
      const p = opts.progress;
      const [stdout, stderr, status] = await Promise.all([
        readText(child.stdout, p.stream === "stdout" ? p : undefined),
        readText(child.stderr, p.stream === "stderr" ? p : undefined),
        child.status,
      ]);
      return { code: status.code, stdout, stderr, timedOut };
    }
    const out = await child.output();
    const td = new TextDecoder();
    return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr), timedOut };
  } finally {
    clearTimeout(timer);
    unregister(); // the process has exited: nothing to kill any more
  }
}

/** Write a credentials file readable only by us (0600), in a private directory. */
export function writePrivateFile(path: string, content: string): void {
  const f = Deno.openSync(path, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    Deno.chmodSync(path, 0o600);
    f.writeSync(new TextEncoder().encode(content));
  } finally {
    f.close();
  }
}

/** What a command run in its own process group did (a hook). */
export interface GroupResult {
  code: number;
  timedOut: boolean;
  /** The last lines it wrote on stderr (for the failure's message). */
  stderrTail: string[];
}

/**
 * Run `argv` (no shell) in a process group of its own (`setsid`), its output handed line by line to `onLine`;
 * past `timeoutMs`, or when archivist is interrupted, the whole group is killed (a hook's own children too).
 * Throws MissingToolError when the program does not exist.
 */
export async function execGroup(
  argv: string[],
  opts: { env: Record<string, string>; timeoutMs: number; onLine: (stream: "stdout" | "stderr", line: string) => void },
): Promise<GroupResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("setsid", {
      args: argv,
      clearEnv: true,
      env: childEnv(opts.env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new MissingToolError("setsid", "util-linux");
    throw e;
  }
  // setsid, not a group leader here, makes its own session and execs the command: its pid is the group's id.
  const killGroup = () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* gone */ }
  };
  const unregister = whileRunning(killGroup, { pid: child.pid, what: argv[0], args: commandLine(argv[0], argv.slice(1)) });
  let timedOut = false;
  const timer = setTimeout(() => (timedOut = true, killGroup()), opts.timeoutMs);
  const tail: string[] = [];
  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const lines = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    const reader = stream.getReader();
    readers.push(reader);
    let pending = "";
    const td = new TextDecoder();
    const emit = (l: string) => {
      opts.onLine(name, l);
      if (name === "stderr" && l.trim()) (tail.push(l), tail.length > 5 && tail.shift());
    };
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      pending += td.decode(value, { stream: true });
      for (let i = pending.indexOf("\n"); i >= 0; i = pending.indexOf("\n")) (emit(pending.slice(0, i)), pending = pending.slice(i + 1));
    }
    if (pending) emit(pending);
  };
  try {
    const read = Promise.all([lines(child.stdout, "stdout"), lines(child.stderr, "stderr")]);
    const status = await child.status;
    // A program it left running in the background may hold the pipes: a second for its last words, then stop reading.
    let t: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((r) => (t = setTimeout(r, 1000)));
    await Promise.race([read, grace.then(() => Promise.all(readers.map((x) => x.cancel().catch(() => {}))))]);
    clearTimeout(t);
    return { code: status.code, timedOut, stderrTail: tail };
  } finally {
    clearTimeout(timer);
    if (timedOut) killGroup();
    unregister();
  }
}
