/**
 * The one declaration of the Deno permissions (and the one V8 flag) archivist runs with. `deno task compile` (tools/compile.ts),
 * `deno task dist` (tools/dist.ts: compiled, or written into the self-extracting file's header) and the test suite's
 * CLI runner (tests/helpers/cli.ts) all read this list, so that a feature needing more than it grants fails a test.
 *
 * Not --allow-all. Deno 2 grants /proc only with --allow-all; archivist does not read /proc: mount checks use
 * stat() (src/transports/local.ts) and process checks use `ps` (src/os/procs.ts).
 */
export const DENO_PERMISSIONS: readonly string[] = [
  "--allow-read", // config, secrets files, work_dir, state_dir, a local destination, CA files
  "--allow-write", // work_dir, state_dir, the log, a local destination, restore targets
  "--allow-net", // the HTTPS source, SMTP, the monitoring ping
  "--allow-env", // ARCHIVIST_* variables, secrets from the environment (`*_env` keys), TMPDIR
  "--allow-run", // sftp/ssh, rsync, rclone, curl, smbclient, sendmail, getent, ps, age, mkfifo; the admin's hooks (through setsid)
  "--allow-sys", // the host name (logs, history, lock record) and os facts used by node modules
  // Not permissions: V8 flags. Paced garbage collection and a small young generation keep memory flat (src/os/memory.ts).
  "--v8-flags=--expose-gc,--max-semi-space-size=2",
];
