/**
 * The shell header of the self-extracting `dist/archivist` (tools/dist.ts writes header + payload).
 *
 * The payload is a gzip'd tar of two files: `deno` (the runtime, DENO_VERSION) and `archivist.js` (the bundle). On every
 * start the header finds its cache directory, checks both files against the sha256 sums written here (in full when
 * their stamp — device, inode, size, mtime, ctime — differs from the one of the last full check), unpacks them
 * when they are missing or damaged (into a temp dir, renamed into place, so two first starts can race), and then
 * `exec`s the runtime on the bundle with the permissions of src/permissions.ts: the same process, so arguments, the
 * standard streams, exit codes and signals pass through unchanged.
 *
 * Plain POSIX sh plus coreutils (tail, sha256sum, mktemp, mv -T), gzip and tar: what a Linux server has.
 */

export interface SfxHeader {
  version: string;
  denoVersion: string;
  denoSha256: string;
  bundleSha256: string;
  /** Deno permission flags (src/permissions.ts). */
  permissions: readonly string[];
  /** The exit code of an unpack/start failure (EXIT.UNPACK). */
  exitCode: number;
}

/** Width of the payload offset field: the header has the same length whatever the offset. */
const OFFSET_WIDTH = 10;

/** The cache key: version + the first 16 hex of the two sums, so that another build never reuses a cache entry. */
export function cacheKey(h: SfxHeader): string {
  return `${h.version}-${h.denoSha256.slice(0, 8)}${h.bundleSha256.slice(0, 8)}`;
}

/** The header text with its payload offset filled in (the offset is the header's own length in bytes). */
export function sfxHeader(h: SfxHeader): string {
  // Padded with trailing blanks (sh ignores them; leading zeros would read as octal).
  const text = (offset: number) => template(h, String(offset).padEnd(OFFSET_WIDTH, " "));
  const length = new TextEncoder().encode(text(0)).length;
  return text(length);
}

function template(h: SfxHeader, offset: string): string {
  for (const p of h.permissions) {
    if (!/^--[a-z0-9-]+(=[A-Za-z0-9_./,:=-]+)?$/.test(p)) throw new Error(`permission flag not shell-safe: ${p}`);
  }
  return `#!/bin/sh
# archivist ${h.version}: self-extracting executable, built by \`deno task dist\` (docs/TECHNICAL.md, "One file to copy").
# After this shell header comes a gzip'd tar holding the Deno ${h.denoVersion} runtime and the archivist bundle. On start
# they are unpacked once into a cache directory ($ARCHIVIST_CACHE; else /var/cache/archivist when it is yours, as
# install.sh makes it for the run user, or when you are root; else \${XDG_CACHE_HOME:-~/.cache}/archivist), checked
# against the sha256 sums below (in full after any change to them; a stat of both otherwise), and the runtime is
# exec'd on the bundle.
# Needs: sh, tail, gzip, tar, sha256sum, stat, mktemp, mv, find.
ARCHIVIST_SFX_OFFSET=${offset}
sfx_key=${cacheKey(h)}
sfx_sums='${h.denoSha256}  deno
${h.bundleSha256}  archivist.js'
sfx_die() {
  echo "archivist: $1" >&2
  [ -n "\${2:-}" ] && echo "  hint: $2" >&2
  exit ${h.exitCode}
}
case $0 in /*) sfx_self=$0 ;; */*) sfx_self=$(cd "\${0%/*}" && pwd)/\${0##*/} ;; *) sfx_self=$(pwd)/$0 ;; esac
if [ -n "\${ARCHIVIST_CACHE:-}" ]; then sfx_base=$ARCHIVIST_CACHE
elif [ -d /var/cache/archivist ] && [ -O /var/cache/archivist ]; then sfx_base=/var/cache/archivist
elif [ "$(id -u)" = 0 ] && [ ! -e /var/cache/archivist ]; then sfx_base=/var/cache/archivist
elif [ -n "\${XDG_CACHE_HOME:-}" ]; then sfx_base=$XDG_CACHE_HOME/archivist
elif [ -n "\${HOME:-}" ]; then sfx_base=$HOME/.cache/archivist
else sfx_die "no cache directory for the runtime: HOME is not set" "set ARCHIVIST_CACHE to a directory of yours (mode 700)"
fi
sfx_dir=$sfx_base/$sfx_key
sfx_ok() { # sfx_ok DIR: both files there, with the sums of this build (reads all 140 MB)
  [ -f "$1/deno" ] && [ -f "$1/archivist.js" ] && (cd "$1" && printf '%s\\n' "$sfx_sums" | sha256sum -c --status -) 2>/dev/null
}
sfx_stamp() { # device, inode, size, mtime and ctime of both files: any write, chmod, touch or replacement changes it
  stat -L -c '%d %i %s %Y %Z' "$1/deno" "$1/archivist.js" 2>/dev/null
}
sfx_seen() { # sfx_seen DIR: the files are as they were when the last full check passed (a stat, no read)
  [ -f "$1/stamp" ] || return 1
  { IFS= read -r sfx_a; IFS= read -r sfx_b; IFS= read -r sfx_k; } < "$1/stamp" || return 1
  [ "$sfx_k" = "$sfx_key" ] && [ "$sfx_a
$sfx_b" = "$(sfx_stamp "$1")" ]
}
sfx_checked() { # sfx_checked DIR: full check, then record the stamp for the next starts (best effort)
  sfx_ok "$1" || return 1
  { sfx_stamp "$1" && echo "$sfx_key"; } > "$1/stamp.$$" 2>/dev/null && mv -f "$1/stamp.$$" "$1/stamp" 2>/dev/null
  return 0
}
sfx_safe() { # the cache directory is a directory of ours that nobody else can write
  case $(ls -ld "$sfx_base" 2>/dev/null) in
    d????w????*|d???????w?*) sfx_die "the cache directory $sfx_base is writable by other users: refusing to run a runtime from it" "chmod 700 $sfx_base, or set ARCHIVIST_CACHE" ;;
    d*) ;;
    *) sfx_die "the cache directory $sfx_base is not a directory" "remove it, or set ARCHIVIST_CACHE" ;;
  esac
  [ -O "$sfx_base" ] || sfx_die "the cache directory $sfx_base belongs to another user: refusing to run a runtime from it" "set ARCHIVIST_CACHE to a directory of yours"
}
[ -e "$sfx_base" ] && sfx_safe
if sfx_seen "$sfx_dir"; then :
elif ! sfx_checked "$sfx_dir"; then
  [ -r "$sfx_self" ] || sfx_die "cannot read my own file $sfx_self to unpack the runtime" "run archivist by its path, with read permission (chmod 755)"
  (umask 077 && mkdir -p "$sfx_base") 2>/dev/null || sfx_die "cannot create the cache directory $sfx_base" "set ARCHIVIST_CACHE to a directory you can write (mode 700, on a filesystem that allows exec)"
  sfx_safe
  sfx_tmp=$(mktemp -d "$sfx_base/.unpack.XXXXXX") || sfx_die "cannot create a directory in $sfx_base" "check its permissions and free space, or set ARCHIVIST_CACHE"
  trap 'rm -rf "$sfx_tmp"; exit 130' INT TERM HUP
  if ! { tail -c +$((ARCHIVIST_SFX_OFFSET + 1)) "$sfx_self" | gzip -dc | tar -xf - -C "$sfx_tmp"; } 2>/dev/null || ! sfx_ok "$sfx_tmp"; then
    rm -rf "$sfx_tmp"
    sfx_die "cannot unpack the runtime from $sfx_self into $sfx_base: the file is damaged or the disk is full" "it needs about 140 MB in $sfx_base (df -h $sfx_base); compare the file with its SHA256SUMS, copy it again"
  fi
  if ! "$sfx_tmp/deno" --version >/dev/null 2>&1; then
    rm -rf "$sfx_tmp"
    sfx_die "the Deno runtime unpacked in $sfx_base cannot run (a filesystem mounted noexec, or not Linux x86_64 with glibc)" "set ARCHIVIST_CACHE to a directory on a filesystem that allows exec"
  fi
  if sfx_ok "$sfx_dir"; then rm -rf "$sfx_tmp" # another first start won the race
  else
    [ -e "$sfx_dir" ] && mv -T "$sfx_dir" "$sfx_tmp.damaged" 2>/dev/null
    mv -T "$sfx_tmp" "$sfx_dir" 2>/dev/null || rm -rf "$sfx_tmp"
    rm -rf "$sfx_tmp.damaged"
    sfx_checked "$sfx_dir" || sfx_die "cannot put the unpacked runtime in place as $sfx_dir" "check the permissions of $sfx_base, or set ARCHIVIST_CACHE"
  fi
  trap - INT TERM HUP
  # Other builds' runtimes and unpacks interrupted long ago (not touched for an hour) are removed.
  find "$sfx_base" -mindepth 1 -maxdepth 1 -type d \\( -name '.unpack.*' -o -name '[0-9]*.[0-9]*-*' \\) ! -name "$sfx_key" -mmin +60 -exec rm -rf {} + 2>/dev/null
fi
ARCHIVIST_PROGRAM=$sfx_self
ARCHIVIST_FORM="self-extracting, runtime in $sfx_dir"
DENO_DIR=$sfx_dir/deno-dir
DENO_NO_UPDATE_CHECK=1
DENO_NO_PROMPT=1
export ARCHIVIST_PROGRAM ARCHIVIST_FORM DENO_DIR DENO_NO_UPDATE_CHECK DENO_NO_PROMPT
exec "$sfx_dir/deno" run ${h.permissions.join(" ")} --quiet --no-config --no-lock "$sfx_dir/archivist.js" "$@"
exit ${h.exitCode}
`;
}
