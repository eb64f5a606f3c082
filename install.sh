#!/usr/bin/env bash
# install.sh: install archivist on this machine (or into --destdir): the program, a mode-600 config,
# its log, state and work directories, a cron entry (or a systemd timer) and a logrotate snippet.
# Idempotent: running it again changes nothing; an existing config is never overwritten. The options of the last
# install are remembered in /etc/archivist/install.conf, so that a plain ./install.sh upgrade keeps them.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install.sh [options]
  --prefix DIR        install under DIR (default /usr/local): DIR/bin/archivist
  --destdir DIR       stage everything under DIR (packaging, tests): nothing outside DIR is touched or read
                      (no systemctl, no final verify)
  --schedule "M H DOM MON DOW"   cron schedule (default "30 2 * * *": 02:30 every night); each field is checked
                      against its range (a line that would never fire is refused); with --systemd it is
                      translated to OnCalendar= when that can be done exactly, and refused otherwise
  --user USER         run as USER (default root); config, logs, state and work files belong to it; re-running
                      with another --user moves every file of the previous user to the new one
  --binary FILE       install this file (dist/archivist from `deno task dist`: compiled or self-extracting)
                      instead of building it here
  --no-compile        do not try `deno compile`: build the self-extracting file
  --systemd           a systemd service + timer instead of the cron entry (needs systemd running)
  --cron              back from --systemd to the cron entry
  --no-verify         do not run `archivist verify` at the end
  --uninstall         remove the program, man pages, bash completion, cron entry, timer and logrotate snippet (keeps config,
                      logs, state)
  --purge             with --uninstall: also remove /etc/archivist, /var/log/archivist, /var/lib/archivist and
                      /var/tmp/archivist
  --print-calendar "M H DOM MON DOW"   print the systemd OnCalendar= of a cron schedule, and exit
  -h, --help

A plain re-run keeps the options of the last install (/etc/archivist/install.conf); options given now win.
Exit status: 0 installed (and verify not CRITICAL); 1 a problem, said above; 2 bad options.
USAGE
}

PREFIX=/usr/local
PREFIX_SET=0
DESTDIR=""
SCHEDULE=""
RUN_USER=""
BINARY=""
NO_COMPILE=${ARCHIVIST_NO_COMPILE:-0}
SYSTEMD=""
VERIFY=1
UNINSTALL=0
PURGE=0
PRINT_CAL=""
bad_option() { echo "install.sh: $*" >&2; echo "Try 'install.sh --help'." >&2; exit 2; }
# value OPTION ARGS...: the value given to OPTION, or exit 2 when there is none (the next word is an option, or none).
value() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [[ $2 == --* ]]; then bad_option "$1 needs a value"; fi
  printf '%s' "$2"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$(value "$@"); PREFIX_SET=1; shift 2 ;;
    --destdir) DESTDIR=$(value "$@"); shift 2 ;;
    --schedule) SCHEDULE=$(value "$@"); shift 2 ;;
    --user) RUN_USER=$(value "$@"); shift 2 ;;
    --binary) BINARY=$(value "$@"); shift 2 ;;
    --no-compile) NO_COMPILE=1; shift ;;
    --systemd) SYSTEMD=1; shift ;;
    --cron) SYSTEMD=0; shift ;;
    --no-verify) VERIFY=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --print-calendar) PRINT_CAL=$(value "$@"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

# ---- cron schedule → systemd OnCalendar=, exactly or not at all ----

# cron_field FIELD WIDTH FIRST: a minute, hour, day-of-month or month field as a systemd calendar component.
# Numbers, lists, ranges, */N and A/N translate exactly; anything else (a range with a step) is refused.
cron_field() {
  local f=$1 w=$2 first=$3 out="" part p
  if [ "$f" = "*" ]; then echo "*"; return 0; fi
  IFS=, read -ra parts <<<"$f"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^\*/([0-9]+)$ ]]; then p="$(printf "%0${w}d" "$first")/$((10#${BASH_REMATCH[1]}))"
    elif [[ $part =~ ^([0-9]+)/([0-9]+)$ ]]; then p="$(printf "%0${w}d" $((10#${BASH_REMATCH[1]})))/$((10#${BASH_REMATCH[2]}))"
    elif [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
      p="$(printf "%0${w}d" $((10#${BASH_REMATCH[1]})))..$(printf "%0${w}d" $((10#${BASH_REMATCH[2]})))"
    elif [[ $part =~ ^[0-9]+$ ]]; then p=$(printf "%0${w}d" $((10#$part)))
    else return 1; fi
    out="${out:+$out,}$p"
  done
  echo "$out"
}
# cron_dow FIELD: the day-of-week field as systemd weekday names (ranges expanded: cron's 0-2 is Sun,Mon,Tue).
cron_dow() {
  local f=${1,,} out="" part a b i
  local names=(Sun Mon Tue Wed Thu Fri Sat Sun)
  if [ "$f" = "*" ]; then echo ""; return 0; fi
  f=$(sed -e 's/sun/0/g; s/mon/1/g; s/tue/2/g; s/wed/3/g; s/thu/4/g; s/fri/5/g; s/sat/6/g' <<<"$f")
  IFS=, read -ra parts <<<"$f"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^([0-7])-([0-7])$ ]]; then a=${BASH_REMATCH[1]}; b=${BASH_REMATCH[2]}
    elif [[ $part =~ ^[0-7]$ ]]; then a=$part; b=$part
    else return 1; fi
    [ "$a" -le "$b" ] || return 1
    for ((i = a; i <= b; i++)); do out="${out:+$out,}${names[$i]}"; done
  done
  echo "$out"
}
# oncalendar "M H DOM MON DOW": the exact OnCalendar= of a cron schedule, or the reason on stderr and status 1.
oncalendar() {
  local m h dom mon dow extra cm ch cdom cmon cw cal
  read -r m h dom mon dow extra <<<"$1"
  if [ -z "${dow:-}" ] || [ -n "${extra:-}" ]; then echo "\"$1\" is not five cron fields" >&2; return 1; fi
  if [ "$dom" != "*" ] && [ "$dow" != "*" ]; then
    echo "\"$1\": cron runs when the day of month OR the weekday matches, systemd only when both do: no exact OnCalendar=" >&2
    return 1
  fi
  if ! { cm=$(cron_field "$m" 2 0) && ch=$(cron_field "$h" 2 0) && cdom=$(cron_field "$dom" 2 1) \
    && cmon=$(cron_field "$mon" 2 1) && cw=$(cron_dow "$dow"); }; then
    echo "\"$1\": a field has a form OnCalendar= cannot express exactly (a range with a step, a weekday step)" >&2
    return 1
  fi
  cal="${cw:+$cw }*-${cmon}-${cdom} ${ch}:${cm}:00"
  if command -v systemd-analyze >/dev/null 2>&1 && ! systemd-analyze calendar "$cal" >/dev/null 2>&1; then
    echo "\"$1\": systemd-analyze does not accept \"$cal\"" >&2
    return 1
  fi
  echo "$cal"
}
if [ -n "$PRINT_CAL" ]; then oncalendar "$PRINT_CAL" || exit 1; exit 0; fi

fail() { echo "install.sh: $*" >&2; exit 1; }
R() { printf '%s%s' "$DESTDIR" "$1"; }

# ---- the options of the last install; what is given now wins ----
CONF_DIR=/etc/archivist
INSTALL_CONF=$CONF_DIR/install.conf
PREV_USER=""
if [ -f "$(R "$INSTALL_CONF")" ]; then
  LAST_PREFIX="" LAST_SCHEDULE="" LAST_RUN_USER="" LAST_SYSTEMD=""
  while IFS='=' read -r k v; do
    v=${v#\"}; v=${v%\"}
    case "$k" in
      PREFIX) LAST_PREFIX=$v ;; SCHEDULE) LAST_SCHEDULE=$v ;; RUN_USER) LAST_RUN_USER=$v ;; SYSTEMD) LAST_SYSTEMD=$v ;;
    esac
  done <"$(R "$INSTALL_CONF")"
  PREV_USER=$LAST_RUN_USER
  [ "$PREFIX_SET" = 1 ] || PREFIX=${LAST_PREFIX:-$PREFIX}
  SCHEDULE=${SCHEDULE:-$LAST_SCHEDULE}
  RUN_USER=${RUN_USER:-$LAST_RUN_USER}
  SYSTEMD=${SYSTEMD:-$LAST_SYSTEMD}
elif [ -d "$(R /var/lib/archivist)" ]; then
  PREV_USER=$(stat -c %U "$(R /var/lib/archivist)") # installed before install.conf existed
fi
SCHEDULE=${SCHEDULE:-"30 2 * * *"}
RUN_USER=${RUN_USER:-root}
SYSTEMD=${SYSTEMD:-0}

# The schedule must be five cron fields, each within its range: a line that never fires is refused (exit 2).
cron_range() { # cron_range FIELD NAME MIN MAX [NAMES]: the problem with one field, or nothing
  local f=${1,,} name=$2 min=$3 max=$4 names=${5:-} part base step a b i=0 n
  if [ -n "$names" ]; then
    for n in $names; do f=${f//$n/$((i + min))}; i=$((i + 1)); done
  fi
  IFS=, read -ra parts <<<"$f"
  [ "${#parts[@]}" -gt 0 ] && [[ $f != *, ]] || { echo "the $name field \"$1\" is empty"; return; }
  for part in "${parts[@]}"; do
    base=${part%%/*} step=""
    [[ $part == */* ]] && step=${part#*/}
    if [ -n "$step" ] && ! [[ $step =~ ^[0-9]+$ && $((10#$step)) -ge 1 ]]; then echo "the $name field \"$1\": step \"/$step\" is not a number of 1 or more"; return; fi
    if [ "$base" = "*" ]; then continue; fi
    if [[ $base =~ ^([0-9]+)-([0-9]+)$ ]]; then a=$((10#${BASH_REMATCH[1]})) b=$((10#${BASH_REMATCH[2]}))
    elif [[ $base =~ ^[0-9]+$ ]]; then a=$((10#$base)) b=$a
    else echo "the $name field \"$1\": \"$part\" is not a number, a range or */N"; return; fi
    if [ "$a" -gt "$b" ]; then echo "the $name field \"$1\": the range $base runs backwards"; return; fi
    if [ "$a" -lt "$min" ] || [ "$b" -gt "$max" ]; then echo "the $name field \"$1\": $base is outside $min-$max"; return; fi
  done
}
check_schedule() {
  local m h dom mon dow extra why
  read -r m h dom mon dow extra <<<"$1"
  if [ -z "${dow:-}" ] || [ -n "${extra:-}" ]; then echo "must be five cron fields like \"30 2 * * *\""; return; fi
  for why in "$(cron_range "$m" minute 0 59)" "$(cron_range "$h" hour 0 23)" "$(cron_range "$dom" day-of-month 1 31)" \
    "$(cron_range "$mon" month 1 12 "jan feb mar apr may jun jul aug sep oct nov dec")" \
    "$(cron_range "$dow" day-of-week 0 7 "sun mon tue wed thu fri sat")"; do
    if [ -n "$why" ]; then echo "$why"; return; fi
  done
  # A day that February never has, in February only: the line would never fire.
  if [[ ${mon,,} =~ ^(2|feb)$ ]] && [[ $dom =~ ^[0-9,]+$ ]] && ! tr ',' '\n' <<<"$dom" | awk '$1 < 30 { f = 1 } END { exit !f }'; then
    echo "day $dom of February never comes"
  fi
}
why=$(check_schedule "$SCHEDULE")
[ -z "$why" ] || bad_option "--schedule \"$SCHEDULE\": $why (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
id "$RUN_USER" >/dev/null 2>&1 || fail "user $RUN_USER does not exist (create it, or pass --user)"
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then fail "run as root (or use --destdir to stage the files)"; fi

SRC=$(cd "$(dirname "$0")" && pwd)
BIN=$PREFIX/bin/archivist
LIBDIR=$PREFIX/lib/archivist
MAN1=$PREFIX/share/man/man1/archivist.1
MAN5=$PREFIX/share/man/man5/archive.yaml.5
# bash-completion loads /usr/share/bash-completion/completions/<command> on first use (generated: archivist completion bash).
COMPLETION=/usr/share/bash-completion/completions/archivist
CONF=$CONF_DIR/archive.yaml
LOG_DIR=/var/log/archivist
STATE_DIR=/var/lib/archivist
WORK_DIR=/var/tmp/archivist
CACHE_DIR=/var/cache/archivist
CRON=/etc/cron.d/archivist
LOGROTATE=/etc/logrotate.d/archivist
UNIT_DIR=/etc/systemd/system
WANTS=$UNIT_DIR/timers.target.wants/archivist.timer
# Does systemd run as the init system (the test sd_booted() uses)? Not asked under --destdir (the target machine
# is unknown), unless ARCHIVIST_INSTALL_PROBE_INIT=1 (tests: this machine's answer, still without systemctl).
PROBE=0
SYSTEMD_UP=0
if [ -z "$DESTDIR" ] || [ "${ARCHIVIST_INSTALL_PROBE_INIT:-0}" = 1 ]; then
  PROBE=1
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then SYSTEMD_UP=1; fi
fi
# systemctl itself only for a real install.
SYSTEMCTL=0
if [ -z "$DESTDIR" ] && [ "$SYSTEMD_UP" = 1 ]; then SYSTEMCTL=1; fi
STATUS=0

changed=0
note() { echo "  $*"; changed=1; }

# put SRC DEST MODE [OWNER]: install a file only when its content, mode or owner differs.
put() {
  local src=$1 dest; dest=$(R "$2")
  mkdir -p "$(dirname "$dest")"
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${3#0}" ] \
    && { [ -z "${4:-}" ] || [ "$(stat -c %U "$dest")" = "${4%:}" ]; }; then return 0; fi
  install -m "$3" "$src" "$dest"
  if [ -n "${4:-}" ]; then chown "$4" "$dest"; fi
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
  if [ -e "$p" ] || [ -L "$p" ]; then rm -rf "$p"; note "removed $1"; fi
}
dir() { # dir PATH MODE OWNER
  local p; p=$(R "$1")
  if [ ! -d "$p" ]; then mkdir -p "$p"; note "created $1"; fi
  if [ "$(stat -c %a "$p")" != "${2#0}" ]; then chmod "$2" "$p"; note "mode $2 on $1"; fi
  if [ "$(stat -c %U "$p")" != "$3" ]; then chown "$3:" "$p"; note "owner $3 on $1"; fi
}
# Stop and disable the timer (when systemd runs), and remove its enablement link whatever happens.
disable_timer() {
  if [ "$SYSTEMCTL" = 1 ] && [ -e "$UNIT_DIR/archivist.timer" ]; then
    systemctl disable --now archivist.timer >/dev/null 2>&1 && note "disabled archivist.timer"
  fi
  remove "$WANTS"
}

if [ "$UNINSTALL" = 1 ]; then
  echo "Uninstalling archivist${DESTDIR:+ from $DESTDIR}:"
  disable_timer
  remove "$BIN"; remove "$LIBDIR"; remove "$CACHE_DIR"; remove "$MAN1"; remove "$MAN5"; remove "$COMPLETION"; remove "$CRON"; remove "$LOGROTATE"
  remove "$UNIT_DIR/archivist.service"; remove "$UNIT_DIR/archivist.timer"
  if [ "$SYSTEMCTL" = 1 ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
  if [ "$PURGE" = 1 ]; then
    remove "$CONF_DIR"; remove "$LOG_DIR"; remove "$STATE_DIR"; remove "$WORK_DIR"
  else
    remove "$INSTALL_CONF"
    echo "  kept $CONF_DIR, $LOG_DIR, $STATE_DIR and $WORK_DIR (use --purge to remove them)"
  fi
  if [ "$changed" = 0 ]; then echo "  nothing to remove"; fi
  exit 0
fi

# With --systemd, the schedule must translate exactly (checked before anything is changed).
if [ "$SYSTEMD" = 1 ]; then
  CAL=$(oncalendar "$SCHEDULE") || fail "--systemd: cannot use --schedule \"$SCHEDULE\" (see above); pick a schedule systemd can express, or use cron"
fi

echo "Installing archivist${DESTDIR:+ into $DESTDIR}:"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT

# 1. The program: one file, given (--binary) or built by `deno task dist`: compiled by deno compile when it can
# fetch its runtime, else self-extracting (Deno's runtime + the bundle behind a sh header; docs/TECHNICAL.md).
form_of() { if [ "$(head -c 2 "$1")" = "#!" ]; then echo self-extracting; else echo compiled; fi; }
if [ -n "$BINARY" ]; then
  [ -f "$BINARY" ] && [ -x "$BINARY" ] || fail "--binary $BINARY is not an executable file (build it with: deno task dist)"
  put "$BINARY" "$BIN" 0755
  MODE=$(form_of "$BINARY")
else
  command -v deno >/dev/null 2>&1 || fail "deno is not installed: npm install -g deno@2.9.6, or pass --binary FILE (dist/archivist built elsewhere by: deno task dist)"
  DIST_ARGS=""
  [ "$NO_COMPILE" = 1 ] && DIST_ARGS=--no-compile
  # shellcheck disable=SC2086
  if ! (cd "$SRC" && deno task -q dist $DIST_ARGS) >"$BUILD/dist.log" 2>&1; then
    sed 's/^/  /' "$BUILD/dist.log" >&2
    fail "deno task dist could not build archivist (see above)"
  fi
  sed -n '1s/^[^:]*: /  built: /p' "$BUILD/dist.log"
  put "$SRC/dist/archivist" "$BIN" 0755
  MODE=$(form_of "$SRC/dist/archivist")
fi
remove "$LIBDIR" # the bundle of the bundle + launcher installs before 0.2.0
# The self-extracting file unpacks its runtime here (it uses this directory when it belongs to the user running it).
dir "$CACHE_DIR" 0700 "$RUN_USER"

# 1b. Man pages (generated from the same declarations as --help: man archivist, man archive.yaml).
put "$SRC/docs/man/archivist.1" "$MAN1" 0644
put "$SRC/docs/man/archive.yaml.5" "$MAN5" 0644
put "$SRC/docs/completion/archivist.bash" "$COMPLETION" 0644

# 2. Config: never overwritten; the new example goes beside it.
dir "$CONF_DIR" 0750 "$RUN_USER"
put "$SRC/archive.yaml.example" "$CONF_DIR/archive.yaml.example" 0644
put "$SRC/archive.schema.json" "$CONF_DIR/archive.schema.json" 0644 # editors check archive.yaml against it
if [ -e "$(R "$CONF")" ]; then
  perm=$(stat -c %a "$(R "$CONF")")
  if [ "$perm" != 600 ] && [ "$perm" != 400 ]; then
    echo "  warning: $CONF is mode $perm; archivist refuses inline secrets unless it is 600 (chmod 600 $CONF)"
  fi
else
  put "$SRC/archive.yaml.example" "$CONF" 0600 "$RUN_USER:"
  echo "  edit $CONF (source.url, source.entry, destination), then run: archivist verify"
fi

# 3. Directories.
dir "$LOG_DIR" 0750 "$RUN_USER"
dir "$STATE_DIR" 0750 "$RUN_USER"
dir "$WORK_DIR" 0750 "$RUN_USER"

# 3b. Another run user than last time: every file of the previous one in archivist's directories moves to the new
# one (config, key and password files, state, catalogue, history, lock, logs, work files), or cron would fail
# before archivist even starts.
if [ -n "$PREV_USER" ] && [ "$PREV_USER" != "$RUN_USER" ]; then
  for d in "$CONF_DIR" "$STATE_DIR" "$LOG_DIR" "$WORK_DIR" "$CACHE_DIR"; do
    n=$(find "$(R "$d")" -user "$PREV_USER" 2>/dev/null | wc -l)
    if [ "$n" -gt 0 ]; then
      find "$(R "$d")" -user "$PREV_USER" -exec chown -h "$RUN_USER:$(id -gn "$RUN_USER")" {} +
      note "owner $RUN_USER on $n file(s) in $d (were $PREV_USER's)"
    fi
  done
fi

# 4. Schedule: cron entry, or systemd service + timer. Without a running systemd, cron stays.
# The lines an admin added to the cron file (a weekly `archivist check`, another config's night) are kept; only what
# install.sh writes itself (its comment, SHELL, PATH, the night of this config) is replaced.
OWN_LINES=""
if [ -f "$(R "$CRON")" ]; then
  OWN_LINES=$(grep -v -e '^# archivist: nightly database dump archive' -e '^# Kept by install.sh' -e '^SHELL=' -e '^PATH=' \
    -e " run --quiet -c $CONF >>" "$(R "$CRON")" | sed '/^[[:space:]]*$/d' || true)
fi
if [ "$SYSTEMD" = 1 ] && [ "$PROBE" = 1 ] && [ "$SYSTEMD_UP" = 0 ]; then
  echo "  systemd is not running on this machine (PID 1 is $(ps -p 1 -o comm= 2>/dev/null || echo unknown)): keeping the cron entry instead of a timer" >&2
  SYSTEMD=0
  STATUS=1
fi
if [ "$SYSTEMD" = 1 ]; then
  if [ -n "$OWN_LINES" ]; then
    printf '# Kept by install.sh: your own lines (the night itself runs from archivist.timer)\nSHELL=/bin/sh\n%s\n' "$OWN_LINES" | write "$CRON" 0644
  else
    remove "$CRON"
  fi
  # The sandbox the config needs (`archivist unit`): every path it writes and the capabilities it uses, so that what
  # cron runs, the unit runs. Run as the run user (the config belongs to it); the cache stays inside --destdir.
  runas=()
  if [ "$RUN_USER" != "$(id -un)" ] && command -v runuser >/dev/null 2>&1; then runas=(runuser -u "$RUN_USER" --); fi
  if ! SANDBOX=$(ARCHIVIST_CACHE="$(R "$CACHE_DIR")" "${runas[@]}" "$(R "$BIN")" unit -q -c "$(R "$CONF")" --user "$RUN_USER" 2>"$BUILD/unit.err"); then
    sed 's/^/  /' "$BUILD/unit.err" >&2
    echo "  could not derive the service's sandbox from $CONF (above): it allows archivist's own directories only; fix the config and re-run install.sh" >&2
    SANDBOX="ReadWritePaths=-$STATE_DIR -$WORK_DIR -$LOG_DIR -$CACHE_DIR
CapabilityBoundingSet=
PrivateTmp=yes"
    STATUS=1
  fi
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
# Hardening. The paths archivist writes and the capabilities it uses come from the config (archivist unit): after
# adding a local destination or destination.owner, re-run install.sh; archivist verify says when the unit would block.
ProtectSystem=strict
ProtectHome=read-only
$SANDBOX
PrivateDevices=yes
# Not NoNewPrivileges=yes: Postfix's and Exim's sendmail need their setgid/setuid helper, and mail.transport:
# sendmail is the default. With mail.transport: smtp (or no mail), add NoNewPrivileges=yes with systemctl edit.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
UMask=0027
EOF
  write "$UNIT_DIR/archivist.timer" 0644 <<EOF
[Unit]
Description=Run archivist ($SCHEDULE in cron terms)

[Timer]
OnCalendar=$CAL
# A night missed while the machine was off runs at boot.
Persistent=true
RandomizedDelaySec=15m

[Install]
WantedBy=timers.target
EOF
  if [ "$SYSTEMCTL" = 1 ]; then
    if systemctl daemon-reload && systemctl enable --now archivist.timer >/dev/null 2>&1; then
      note "enabled archivist.timer"
    else
      echo "  could not enable archivist.timer: restoring the cron entry (systemctl status archivist.timer)" >&2
      SYSTEMD=0
      STATUS=1
    fi
  fi
fi
if [ "$SYSTEMD" = 0 ]; then
  disable_timer
  remove "$UNIT_DIR/archivist.service"; remove "$UNIT_DIR/archivist.timer"
  write "$CRON" 0644 <<EOF
# archivist: nightly database dump archive. Written by install.sh; run it again to change the schedule.
SHELL=/bin/sh
PATH=$PREFIX/bin$([ "$PREFIX" != /usr/local ] && echo ":/usr/local/bin"):/usr/bin:/bin:/usr/sbin:/sbin
$SCHEDULE $RUN_USER $BIN run --quiet -c $CONF >>$LOG_DIR/cron.log 2>&1
${OWN_LINES:+# Kept by install.sh: your own lines (e.g. a weekly check: 0 4 * * 0 $RUN_USER $BIN check --quiet -c $CONF)
$OWN_LINES}
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

# 6. Remember these options for the next plain ./install.sh.
write "$INSTALL_CONF" 0644 <<EOF
# The options of the last install.sh run (kept by a plain re-run; options given on the command line win).
PREFIX="$PREFIX"
SCHEDULE="$SCHEDULE"
RUN_USER="$RUN_USER"
SYSTEMD="$SYSTEMD"
EOF

if [ "$changed" = 0 ]; then echo "  nothing changed (already installed)"; fi
echo "archivist installed as $BIN ($MODE), config $CONF, run as $RUN_USER, schedule: $([ "$SYSTEMD" = 1 ] && echo "systemd timer (OnCalendar=$CAL)" || echo "$SCHEDULE in $CRON")"

# 7. Check it, as the run user. Not under --destdir: the config's paths point outside DIR.
if [ "$VERIFY" = 1 ] && [ -n "$DESTDIR" ]; then
  echo "(archivist verify not run: with --destdir the config's paths point outside $DESTDIR)"
elif [ "$VERIFY" = 1 ]; then
  echo
  echo "archivist verify:"
  runas=()
  if [ "$RUN_USER" != "$(id -un)" ] && command -v runuser >/dev/null 2>&1; then runas=(runuser -u "$RUN_USER" --); fi
  vcode=0
  "${runas[@]}" "$BIN" verify -c "$CONF" || vcode=$?
  if [ "$vcode" -ge 2 ]; then
    if cmp -s "$CONF" "$SRC/archive.yaml.example"; then
      echo "(the config is still the example: edit $CONF, then run: archivist verify)"
    else
      echo "install.sh: archivist is installed, but verify is CRITICAL (above): fix that before the first night" >&2
      STATUS=1
    fi
  fi
fi
exit "$STATUS"
