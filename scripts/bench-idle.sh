#!/usr/bin/env bash
# Benchmarks the app at rest: its CPU time (the app and its WebKit processes) over 60 s with
# three machines defined and one running, the window open as it starts. Compares app binaries
# given as arguments, on the same machines in the same run (give each twice, alternating, to see
# the noise), and prints each figure and its ratio to the first. Without arguments it builds and
# measures this checkout's app. The acceleration probe is run (and cached) first, so that no app
# pays for it inside the measurement.
#
# Usage: scripts/bench-idle.sh [APP ...]
#   APP   an app binary built with `--features custom-protocol` (serves the built UI), e.g. one
#         built from an older commit in a worktree, to compare against this checkout's
#   SLOOP_BENCH_SECONDS (60)  how long each app is measured, after 30 s to settle
#   SLOOP_TEST_IMAGE          the tiny test image (built when not given)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
seconds=${SLOOP_BENCH_SECONDS:-60}
settle=30
if [ $# -eq 0 ]; then
  (cd ui && npm run build --silent)
  cargo build -q -p sloop-app --features custom-protocol
  set -- "$here/target/debug/sloop-app"
fi
cargo build -q -p sloop-cli
sloop=$here/target/debug/sloop
image=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
scripts/libvirt-up.sh >/dev/null

export SLOOP_HOME
SLOOP_HOME=$(mktemp -d -t sloop-bench-idle.XXXXXX)
names=(idle-a idle-b idle-c)
xvfb=
app_sid=
cleanup() {
  if [ -n "$app_sid" ]; then kill -TERM -- "-$app_sid" 2>/dev/null || true; fi
  if [ -n "$xvfb" ]; then kill "$xvfb" 2>/dev/null || true; fi
  for name in "${names[@]}"; do "$sloop" machine delete "$name" --yes >/dev/null 2>&1 || true; done
  rm -rf "$SLOOP_HOME"
}
trap cleanup EXIT
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }

"$sloop" catalog add --demo --image "$image" >/dev/null
id=$("$sloop" --json image list | field 0.identifier)
"$sloop" image pull "$id" >/dev/null
for name in "${names[@]}"; do
  "$sloop" machine create "$name" --image "$id" --vcpus 1 --memory 256 --disk 1 >/dev/null
done
"$sloop" machine start "${names[0]}" >/dev/null
"$sloop" doctor >/dev/null || true

display=
for n in $(seq 90 160); do
  if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then display=$n; break; fi
done
Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
sleep 1

# CPU ticks (user + system) of every process in session $1.
ticks() {
  local total=0 pid stat
  for pid in $(ps -s "$1" -o pid= 2>/dev/null); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    # After the name: state is field 3, utime 14 and stime 15 of the whole line.
    read -r -a f <<<"$stat"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

results=()
for app in "$@"; do
  [ -x "$app" ] || { echo "bench-idle: no app binary at $app" >&2; exit 1; }
  DISPLAY=":$display" setsid "$app" >/dev/null 2>&1 &
  app_sid=$!
  sleep "$settle"
  kill -0 "$app_sid" || { echo "bench-idle: $app ended early" >&2; exit 1; }
  t0=$(ticks "$app_sid")
  sleep "$seconds"
  t1=$(ticks "$app_sid")
  kill -TERM -- "-$app_sid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 -- "-$app_sid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$app_sid" 2>/dev/null || true
  app_sid=
  cpu_ms=$(( (t1 - t0) * 1000 / hz ))
  results+=("$cpu_ms")
  printf 'idle app: %6d ms CPU in %d s (%s%% of one core)  %s\n' "$cpu_ms" "$seconds" \
    "$(awk -v ms="$cpu_ms" -v s="$seconds" 'BEGIN { printf "%.2f", ms / (s * 10) }')" "$app"
done
if [ "${#results[@]}" -gt 1 ]; then
  for i in "${!results[@]}"; do
    awk -v a="${results[$i]}" -v b="${results[0]}" -v n="$((i + 1))" \
      'BEGIN { if (b > 0) printf "app %d / app 1: %.2f\n", n, a / b }'
  done
fi
