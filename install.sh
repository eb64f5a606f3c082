#!/usr/bin/env bash
# install.sh: install archivist on this machine (or into --destdir): the program, a mode-600 config,
# its log and state directories, a cron entry (or a systemd timer) and a logrotate snippet.
# Idempotent: running it again changes nothing; an existing config is never overwritten.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: install.sh [options]
  --prefix DIR        install under DIR (default /usr/local): DIR/bin/archivist
  --destdir DIR       stage everything under DIR (packaging, tests); nothing outside DIR is touched
  --schedule "M H * * *"   cron schedule (default "30 2 * * *": 02:30 every night)
  --user USER         run as USER (default root); config, logs and state are owned by it
  --binary FILE       install this prebuilt binary (from `deno task compile`) instead of building
  --no-compile        do not try `deno compile`; install the bundle and a launcher
  --systemd           install a systemd service + timer instead of the cron entry
  --no-verify         do not run `archivist verify` at the end
  --uninstall         remove the program, cron entry, timer and logrotate snippet (keeps config, logs, state)
  --purge             with --uninstall: also remove /etc/archivist, /var/log/archivist, /var/lib/archivist
  -h, --help
EOF
}

PREFIX=/usr/local
DESTDIR=""
SCHEDULE="30 2 * * *"
RUN_USER=root
BINARY=""
NO_COMPILE=${ARCHIVIST_NO_COMPILE:-0}
SYSTEMD=0
VERIFY=1
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --destdir) DESTDIR=$2; shift 2 ;;
    --schedule) SCHEDULE=$2; shift 2 ;;
    --user) RUN_USER=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    --no-compile) NO_COMPILE=1; shift ;;
    --systemd) SYSTEMD=1; shift ;;
    --no-verify) VERIFY=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() { echo "install.sh: $*" >&2; exit 1; }

# The schedule must be five cron fields.
if ! printf '%s\n' "$SCHEDULE" | grep -Eq '^[0-9*/,-]+( +[0-9A-Za-z*/,-]+){4}$'; then
  fail "--schedule must be five cron fields like \"30 2 * * *\", got \"$SCHEDULE\""
fi
id "$RUN_USER" >/dev/null 2>&1 || fail "user $RUN_USER does not exist (create it, or pass --user)"
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then fail "run as root (or use --destdir to stage the files)"; fi

SRC=$(cd "$(dirname "$0")" && pwd)
BIN=$PREFIX/bin/archivist
LIBDIR=$PREFIX/lib/archivist
CONF_DIR=/etc/archivist
CONF=$CONF_DIR/archive.yaml
LOG_DIR=/var/log/archivist
STATE_DIR=/var/lib/archivist
CRON=/etc/cron.d/archivist
LOGROTATE=/etc/logrotate.d/archivist
UNIT_DIR=/etc/systemd/system
R() { printf '%s%s' "$DESTDIR" "$1"; }

changed=0
note() { echo "  $*"; changed=1; }

# put SRC DEST MODE [OWNER]: install a file only when its content or mode differs.
put() {
  local src=$1 dest; dest=$(R "$2")
  mkdir -p "$(dirname "$dest")"
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${3#0}" ]; then return 0; fi
  install -m "$3" "$src" "$dest"
  [ -n "${4:-}" ] && chown "$4" "$dest"
  note "installed $2"
}
# write DEST MODE [OWNER] < content
write() {
  local tmp; tmp=$(mktemp)
  cat > "$tmp"
  put "$tmp" "$@"
  rm -f "$tmp"
}
remove() {
  local p; p=$(R "$1")
  if [ -e "$p" ]; then rm -rf "$p"; note "removed $1"; fi
}
dir() { # dir PATH MODE OWNER
  local p; p=$(R "$1")
  if [ ! -d "$p" ]; then mkdir -p "$p"; note "created $1"; fi
  if [ "$(stat -c %a "$p")" != "${2#0}" ]; then chmod "$2" "$p"; note "mode $2 on $1"; fi
  if [ "$(stat -c %U "$p")" != "$3" ]; then chown "$3:" "$p"; note "owner $3 on $1"; fi
}

if [ "$UNINSTALL" = 1 ]; then
  echo "Uninstalling archivist${DESTDIR:+ from $DESTDIR}:"
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -e "$UNIT_DIR/archivist.timer" ]; then
    systemctl disable --now archivist.timer >/dev/null 2>&1 || true
  fi
  remove "$BIN"; remove "$LIBDIR"; remove "$CRON"; remove "$LOGROTATE"
  remove "$UNIT_DIR/archivist.service"; remove "$UNIT_DIR/archivist.timer"
  if [ "$PURGE" = 1 ]; then
    remove "$CONF_DIR"; remove "$LOG_DIR"; remove "$STATE_DIR"
  else
    echo "  kept $CONF_DIR, $LOG_DIR and $STATE_DIR (use --purge to remove them)"
  fi
  [ "$changed" = 0 ] && echo "  nothing to remove"
  exit 0
fi

echo "Installing archivist${DESTDIR:+ into $DESTDIR}:"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT

# 1. The program: a given binary, a compiled one, or the bundle + a launcher.
MODE=""
if [ -n "$BINARY" ]; then
  [ -x "$BINARY" ] || fail "--binary $BINARY is not an executable file"
  put "$BINARY" "$BIN" 0755
  MODE=binary
else
  command -v deno >/dev/null 2>&1 || fail "deno is not installed: npm install -g deno@2.9.6 (or pass --binary FILE)"
  DENO=$(command -v deno)
  if [ "$NO_COMPILE" != 1 ] && (cd "$SRC" && timeout 300 deno task -q compile >"$BUILD/compile.log" 2>&1) && [ -x "$SRC/dist/archivist" ]; then
    put "$SRC/dist/archivist" "$BIN" 0755
    remove "$LIBDIR"
    MODE=binary
  else
    if [ "$NO_COMPILE" != 1 ]; then
      why=$(sed 's/\x1b\[[0-9;]*m//g' "$BUILD/compile.log" 2>/dev/null | grep -m1 -E '^ +1: ' | sed 's/^ *1: //' | cut -c1-200)
      echo "  deno compile is not possible here (it downloads Deno's runtime: ${why:-see deno task compile}): installing the bundle and a launcher"
    fi
    (cd "$SRC" && deno bundle --quiet --platform deno -o "$BUILD/archivist.js" main.ts) || fail "deno bundle failed"
    put "$BUILD/archivist.js" "$LIBDIR/archivist.js" 0644
    # The permissions are declared once, in src/permissions.ts.
    PERMS=$(cd "$SRC" && deno run --quiet --no-lock --allow-read tools/permissions.ts) || fail "cannot read src/permissions.ts"
    write "$BIN" 0755 <<EOF
#!/bin/sh
# archivist launcher, written by install.sh (deno compile was not available): runs the bundle with Deno, with
# the permissions declared in src/permissions.ts. The bundle is found beside the launcher (../lib/archivist).
here=\$(dirname "\$(readlink -f "\$0")")
ARCHIVIST_PROGRAM=$BIN
export ARCHIVIST_PROGRAM
exec $DENO run $PERMS --quiet --no-config --no-lock "\$here/../lib/archivist/archivist.js" "\$@"
EOF
    MODE=bundle
  fi
fi

# 2. Config: never overwritten; the new example goes beside it.
dir "$CONF_DIR" 0750 "$RUN_USER"
put "$SRC/archive.yaml.example" "$CONF_DIR/archive.yaml.example" 0644
if [ -e "$(R "$CONF")" ]; then
  perm=$(stat -c %a "$(R "$CONF")")
  [ "$perm" != 600 ] && [ "$perm" != 400 ] && echo "  warning: $CONF is mode $perm; archivist refuses inline secrets unless it is 600 (chmod 600 $CONF)"
else
  put "$SRC/archive.yaml.example" "$CONF" 0600 "$RUN_USER:"
  echo "  edit $CONF (source.url, source.entry, destination), then run: archivist verify"
fi

# 3. Directories.
dir "$LOG_DIR" 0750 "$RUN_USER"
dir "$STATE_DIR" 0750 "$RUN_USER"

# 4. Schedule: cron entry, or systemd service + timer.
if [ "$SYSTEMD" = 1 ]; then
  remove "$CRON"
  read -r MIN HOUR _ <<<"$SCHEDULE"
  if [[ "$MIN" =~ ^[0-9]+$ && "$HOUR" =~ ^[0-9]+$ ]]; then CAL=$(printf '*-*-* %02d:%02d:00' "$HOUR" "$MIN"); else CAL="*-*-* 02:30:00"; fi
  write "$UNIT_DIR/archivist.service" 0644 <<EOF
[Unit]
Description=archivist: nightly database dump archive
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User=$RUN_USER
ExecStart=$BIN run --quiet -c $CONF
Nice=10
IOSchedulingClass=idle
EOF
  write "$UNIT_DIR/archivist.timer" 0644 <<EOF
[Unit]
Description=Run archivist every night

[Timer]
OnCalendar=$CAL
# A night missed while the machine was off runs at boot.
Persistent=true
RandomizedDelaySec=15m

[Install]
WantedBy=timers.target
EOF
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload && systemctl enable --now archivist.timer >/dev/null 2>&1 || echo "  warning: could not enable archivist.timer (systemctl enable --now archivist.timer)"
  fi
else
  remove "$UNIT_DIR/archivist.service"; remove "$UNIT_DIR/archivist.timer"
  write "$CRON" 0644 <<EOF
# archivist: nightly database dump archive. Written by install.sh; run it again to change the schedule.
SHELL=/bin/sh
PATH=$PREFIX/bin$([ "$PREFIX" != /usr/local ] && echo ":/usr/local/bin"):/usr/bin:/bin:/usr/sbin:/sbin
$SCHEDULE $RUN_USER $BIN run --quiet -c $CONF >>$LOG_DIR/cron.log 2>&1
EOF
fi

# 5. Log rotation.
write "$LOGROTATE" 0644 <<EOF
$LOG_DIR/*.log {
    weekly
    rotate 12
    compress
    delaycompress
    missingok
    notifempty
    create 0640 $RUN_USER $(id -gn "$RUN_USER")
}
EOF

if [ "$changed" = 0 ]; then echo "  nothing changed (already installed)"; fi
echo "archivist installed as $BIN ($MODE), config $CONF, schedule: $([ "$SYSTEMD" = 1 ] && echo "systemd timer" || echo "$SCHEDULE in $CRON")"

# 6. Check it.
if [ "$VERIFY" = 1 ]; then
  echo
  echo "archivist verify:"
  if [ -z "$DESTDIR" ]; then
    runas=()
    [ "$RUN_USER" != "$(id -un)" ] && command -v runuser >/dev/null 2>&1 && runas=(runuser -u "$RUN_USER" --)
    "${runas[@]}" "$BIN" verify -c "$CONF" || echo "(verify reports problems above: fix the config, then run: archivist verify)"
  elif [ "$MODE" = bundle ]; then
    ARCHIVIST_PROGRAM=$BIN deno run $PERMS --quiet --no-config --no-lock "$(R "$LIBDIR/archivist.js")" verify -c "$(R "$CONF")" || echo "(verify reports problems above: fix the config, then run: archivist verify)"
  else
    "$(R "$BIN")" verify -c "$(R "$CONF")" || echo "(verify reports problems above: fix the config, then run: archivist verify)"
  fi
fi
