#!/usr/bin/env bash
# Benchmarks Sloop's packages: the .deb's size and installed size, and the packaged app's start
# to its first painted frame and its memory at rest (the app and its WebKit processes), for the
# release package against the debug one, in the same run. Each app runs from its package's files
# (dpkg-deb -x, as installed), under Xvfb in a D-Bus session, with a fresh SLOOP_HOME: one cold
# start (the page cache dropped first, as root) and SLOOP_BENCH_STARTS (5) warm ones.
#
# First paint is what the app logs when the window has painted its first frame with the UI in it
# (two animation frames after the UI mounted), measured from the moment the app was launched.
# Memory is summed over the app's process tree 20 s after that frame: PSS (shared pages split
# between processes) and RSS.
#
# Usage: scripts/bench-package.sh [DEBUG_DEB RELEASE_DEB]   (default: builds both, the release
#        one takes about 10 minutes on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
starts=${SLOOP_BENCH_STARTS:-5}
say() { echo "bench-package: $*" >&2; }
for tool in Xvfb dbus-run-session dpkg-deb; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/install-deps.sh"; exit 1; }
done

if [ $# -eq 2 ]; then
  debs=("$1" "$2")
else
  say "building the debug and the release packages"
  debs=("$(scripts/package.sh target/package/bench-debug | grep '\.deb$')"
    "$(scripts/package.sh --release target/package/bench-release | grep '\.deb$')")
fi
labels=(debug release)

work=$(mktemp -d -t sloop-bench-package.XXXXXX)
xvfb=
app_sid=
cleanup() {
  if [ -n "$app_sid" ]; then kill -KILL -- "-$app_sid" 2>/dev/null || true; fi
  if [ -n "$xvfb" ]; then kill "$xvfb" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

display=
for n in $(seq 90 160); do
  if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then display=$n; break; fi
done
Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
sleep 1

# Sums a /proc/PID/smaps_rollup field (kB) over every process of session $1.
memory_kb() {
  local total=0 pid kb
  for pid in $(ps -s "$1" -o pid= 2>/dev/null); do
    kb=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# Starts the app at $1 with a fresh home; prints "MS PSS_KB RSS_KB" (memory only when $2 is 1).
run_app() {
  local app=$1 with_memory=$2 home launched line stamp painted ms pss=0 rss=0
  home=$(mktemp -d -p "$work" home.XXXXXX)
  launched=$(date +%s.%N)
  SLOOP_HOME=$home DISPLAY=":$display" setsid dbus-run-session -- "$app" >/dev/null 2>&1 &
  app_sid=$!
  line=
  for _ in $(seq 1 600); do
    line=$(grep -m 1 "the window painted its first frame" "$home/logs/sloop.log" 2>/dev/null) && break
    sleep 0.05
  done
  [ -n "$line" ] || { say "$app logged no first frame in 30 s"; exit 1; }
  stamp=${line%% *}
  painted=$(date -d "$stamp" +%s.%N)
  ms=$(awk -v a="$launched" -v b="$painted" 'BEGIN { printf "%d", (b - a) * 1000 }')
  if [ "$with_memory" = 1 ]; then
    sleep 20
    pss=$(memory_kb "$app_sid" Pss)
    rss=$(memory_kb "$app_sid" Rss)
  fi
  kill -TERM -- "-$app_sid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 -- "-$app_sid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$app_sid" 2>/dev/null || true
  app_sid=
  echo "$ms $pss $rss"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

printf '%-8s %10s %12s %10s %10s %12s %12s\n' build "deb (MB)" "installed" "cold (ms)" "warm (ms)" "PSS (MB)" "RSS (MB)"
for i in "${!debs[@]}"; do
  deb=${debs[$i]}
  root=$work/${labels[$i]}
  dpkg-deb -x "$deb" "$root"
  app=$root/usr/bin/sloop-app
  deb_mb=$(awk -v b="$(stat -c %s "$deb")" 'BEGIN { printf "%.1f", b / 1048576 }')
  installed_mb=$(awk -v k="$(dpkg-deb -f "$deb" Installed-Size)" 'BEGIN { printf "%.1f", k / 1024 }')
  cold=-
  if [ "$(id -u)" -eq 0 ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
    read -r cold _ _ < <(run_app "$app" 0)
  fi
  warm=()
  memory=
  for n in $(seq 1 "$starts"); do
    if [ "$n" -eq 1 ]; then
      read -r ms pss rss < <(run_app "$app" 1)
      memory="$pss $rss"
    else
      read -r ms _ _ < <(run_app "$app" 0)
    fi
    warm+=("$ms")
  done
  read -r pss rss <<<"$memory"
  printf '%-8s %10s %12s %10s %10s %12s %12s\n' "${labels[$i]}" "$deb_mb" "$installed_mb MB" "$cold" \
    "$(printf '%s\n' "${warm[@]}" | median)" \
    "$(awk -v k="$pss" 'BEGIN { printf "%.0f", k / 1024 }')" "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')"
done
