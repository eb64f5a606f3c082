/**
 * Test prerequisites. `deno task test` runs this first: it checks that every tool the tests start or call is
 * installed. As root it installs what is missing with apt; otherwise it stops and names the Debian packages.
 * No protocol is ever skipped silently: a missing server fails the run here, before any test.
 *
 *   deno run -A tests/setup.ts            check, install as root
 *   deno run -A tests/setup.ts --print    print the package list (used by .ci/run and the docs)
 */

/** command → Debian package. */
export const REQUIRED: Record<string, string> = {
  openssl: "openssl",
  zip: "zip",
  python3: "python3",
  tar: "tar",
  gzip: "gzip",
  // Other readers of the multi-member .tgz that pack writes (tests/pack_test.ts), and the benchmark's pigz pipeline.
  bsdtar: "libarchive-tools",
  pigz: "pigz",
  "7z": "p7zip-full",
  sha256sum: "coreutils",
  chattr: "e2fsprogs",
  setsid: "util-linux",
  // Encryption at rest (tests/encrypt_test.ts): the real age tools.
  age: "age",
  "age-keygen": "age",
  // Shell completion: the generated scripts are checked by each shell (tests/completion_test.ts).
  zsh: "zsh",
  fish: "fish",
  "/usr/share/bash-completion/bash_completion": "bash-completion",
  curl: "curl",
  ssh: "openssh-client",
  sftp: "openssh-client",
  "ssh-keygen": "openssh-client",
  sshd: "openssh-server",
  vsftpd: "vsftpd",
  smbd: "samba",
  smbpasswd: "samba-common-bin",
  smbclient: "smbclient",
  // Samba's vfs recycle (the recycle-bin share of tests/transports_test.ts).
  "/usr/lib/x86_64-linux-gnu/samba/vfs/recycle.so": "samba-vfs-modules",
  rclone: "rclone",
  // rclone mount (FUSE): a mount that accepts chown and chmod and ignores them (tests/local_store_test.ts).
  fusermount3: "fuse3",
  rsync: "rsync",
  ps: "procps",
  nginx: "nginx",
  "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so": "libnginx-mod-http-dav-ext",
  apache2: "apache2",
  // Diagrams: docs/diagrams/*.puml are checked (and rendered by `deno task docs`) with PlantUML; dot for the deployment one.
  plantuml: "plantuml",
  dot: "graphviz",
  // Man pages: docs/man/* are checked with groff -ww; the install test reads the installed page with man -l.
  groff: "groff-base",
  man: "man-db",
  htpasswd: "apache2-utils",
  cron: "cron",
  // Real dump tools (tests/dumps_test.ts starts its own servers in temp dirs; no system service is used).
  "mariadb-install-db": "mariadb-server",
  mariadbd: "mariadb-server",
  "mariadb-dump": "mariadb-client",
  "mariadb-admin": "mariadb-client",
  pg_dump: "postgresql-client",
  psql: "postgresql-client",
  "/usr/lib/postgresql/15/bin/initdb": "postgresql",
  "/usr/lib/postgresql/15/bin/postgres": "postgresql",
};

/** Libraries the unpacked FTP servers need (packages, checked with dpkg). */
export const LIBRARIES = ["libhiredis0.14", "libmemcached11", "libmemcachedutil2", "libpcre2-posix3", "libsodium23", "libcap2"];

/**
 * pure-ftpd and proftpd conflict as Debian packages: both are unpacked (apt-get download + dpkg -x) under this
 * directory and run from there by tests/servers/ftpd.ts, never installed or started as services.
 */
export const UNPACKED = "/opt/archivist-test-servers";
const UNPACK: Record<string, string[]> = {
  "pure-ftpd": ["pure-ftpd", "pure-ftpd-common"],
  proftpd: ["proftpd-core", "proftpd-mod-crypto"],
};

function unpackServers(): boolean {
  for (const [name, pkgs] of Object.entries(UNPACK)) {
    const root = `${UNPACKED}/${name}`;
    try {
      Deno.statSync(`${root}/usr/sbin/${name === "proftpd" ? "proftpd" : "pure-ftpd"}`);
      continue;
    } catch { /* not unpacked yet */ }
    const tmp = Deno.makeTempDirSync({ prefix: "archivist-debs-" });
    Deno.chmodSync(tmp, 0o777); // apt's _apt user writes the downloads
    console.error(`tests/setup: unpacking ${pkgs.join(" ")} into ${root}`);
    const dl = new Deno.Command("apt-get", { args: ["download", ...pkgs], cwd: tmp, stdout: "inherit", stderr: "inherit" }).outputSync();
    if (!dl.success) return false;
    Deno.mkdirSync(root, { recursive: true });
    for (const e of Deno.readDirSync(tmp)) {
      if (!run("dpkg", ["-x", `${tmp}/${e.name}`, root])) return false;
    }
    Deno.removeSync(tmp, { recursive: true });
  }
  return true;
}

function has(cmd: string): boolean {
  if (cmd.startsWith("/")) {
    try {
      return Deno.statSync(cmd).isFile;
    } catch {
      return false;
    }
  }
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

function run(cmd: string, args: string[]): boolean {
  const r = new Deno.Command(cmd, { args, stdout: "inherit", stderr: "inherit", env: { DEBIAN_FRONTEND: "noninteractive" } }).outputSync();
  return r.success;
}

if (import.meta.main) {
  const packages = [...new Set(Object.values(REQUIRED))].sort();
  if (Deno.args.includes("--print")) {
    console.log(packages.join(" "));
    Deno.exit(0);
  }
  const missing = Object.entries(REQUIRED).filter(([cmd]) => !has(cmd));
  if (Deno.uid() !== 0) {
    const pkgs = [...new Set(missing.map(([, p]) => p))].sort();
    console.error(
      "tests/setup: the test suite must run as root: vsftpd and smbd switch to a test system user that it creates." +
        (pkgs.length ? `\nIt also needs these Debian packages: sudo apt-get install ${pkgs.join(" ")}` : "") +
        "\nRun: sudo deno task test",
    );
    Deno.exit(1);
  }
  const installed = (pkg: string) =>
    new TextDecoder().decode(
      new Deno.Command("dpkg-query", { args: ["-W", "-f=${Status}", pkg], stdout: "piped", stderr: "null" }).outputSync().stdout,
    ).includes("install ok installed");
  const libs = LIBRARIES.filter((p) => !installed(p));
  for (const l of libs) missing.push([`(library ${l})`, l]);
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, p]) => p))].sort();
    console.error(`tests/setup: installing ${pkgs.join(" ")} (missing: ${missing.map(([c]) => c).join(", ")})`);
    // Packages like mariadb-server and postgresql start their system service on install: the tests start their own
    // instances, so forbid service starts during the install (the standard policy-rc.d 101), then lift it.
    const policy = "/usr/sbin/policy-rc.d";
    let ours = false;
    try {
      Deno.statSync(policy);
    } catch {
      Deno.writeTextFileSync(policy, "#!/bin/sh\n# written by archivist's tests/setup.ts during apt-get install\nexit 101\n", {
        mode: 0o755,
      });
      ours = true;
    }
    let ok = false;
    try {
      ok = run("apt-get", ["update", "-q"]) && run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...pkgs]);
    } finally {
      if (ours) Deno.removeSync(policy);
    }
    if (!ok) {
      console.error(`tests/setup: apt-get failed; install by hand: apt-get install ${pkgs.join(" ")}`);
      Deno.exit(1);
    }
    const still = missing.filter(([cmd]) => !cmd.startsWith("(library") && !has(cmd));
    if (still.length) {
      console.error(`tests/setup: still missing after install: ${still.map(([c]) => c).join(", ")}`);
      Deno.exit(1);
    }
  }
  if (!unpackServers()) {
    console.error(`tests/setup: could not unpack pure-ftpd and proftpd into ${UNPACKED} (apt-get download + dpkg -x)`);
    Deno.exit(1);
  }
}
