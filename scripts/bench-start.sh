#!/usr/bin/env bash
# Benchmarks "start a stopped machine, run a command over SSH": `sloop machine start` (which
# waits for the pinned host key) + `sloop shell -- true`, against plain `virsh start` plus an
# ssh retry loop on the same machine. Env: SLOOP_BENCH_ROUNDS (3), SLOOP_TEST_IMAGE (tiny image).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=${SLOOP_BENCH_ROUNDS:-3}
cargo build -q -p sloop-cli
sloop=$here/target/debug/sloop
image=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
scripts/libvirt-up.sh >/dev/null

export SLOOP_HOME
SLOOP_HOME=$(mktemp -d -t sloop-bench-start.XXXXXX)
name=bench
cleanup() {
  "$sloop" machine delete "$name" --yes >/dev/null 2>&1 || true
  rm -rf "$SLOOP_HOME"
}
trap cleanup EXIT
now() { date +%s.%N; }
# JSON field from stdin, with node (the UI's toolchain is installed anyway).
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }
"$sloop" catalog add --demo --image "$image" >/dev/null
id=$("$sloop" --json image list | field 0.identifier)
"$sloop" image pull "$id" >/dev/null
"$sloop" machine create "$name" --image "$id" --vcpus 1 --memory 256 --disk 1 >/dev/null
# First boot runs the guest's first-boot work; warm it up once with each route's start.
"$sloop" machine start "$name" >/dev/null
"$sloop" machine stop "$name" >/dev/null
config=$("$sloop" --json ssh-config | field path)
uri=$("$sloop" --json doctor --cached | field libvirtUri || true)

sloop_round() {
  local t0 t1
  t0=$(now)
  "$sloop" machine start "$name" >/dev/null
  "$sloop" shell "$name" -- true
  t1=$(now)
  "$sloop" machine stop "$name" >/dev/null
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
plain_round() {
  local t0 t1
  t0=$(now)
  virsh -q -c "$uri" start "sloop-$name" >/dev/null
  until ssh -F "$config" -o BatchMode=yes -o ConnectTimeout=2 "sloop-$name" true 2>/dev/null; do
    sleep 0.1
  done
  t1=$(now)
  "$sloop" machine stop "$name" >/dev/null
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

echo "== start to a command over SSH: sloop vs virsh start + ssh retry loop =="
echo "machine: nproc $(nproc), $("$sloop" --json doctor --cached | field acceleration || true), libvirt $uri"
echo "image:   $image ($(du -h "$image" | cut -f1)), 1 vCPU, 256 MiB; $rounds rounds, alternating order"
sloop_times=()
plain_times=()
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then
    s=$(sloop_round); p=$(plain_round); order="sloop first"
  else
    p=$(plain_round); s=$(sloop_round); order="plain first"
  fi
  sloop_times+=("$s"); plain_times+=("$p")
  printf 'round %d:  sloop %6.2f s   plain %6.2f s   [%s]\n' "$i" "$s" "$p" "$order"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms=$(median "${sloop_times[@]}")
mp=$(median "${plain_times[@]}")
printf 'median sloop: %.2f s\nmedian plain: %.2f s\n' "$ms" "$mp"
awk -v s="$ms" -v p="$mp" 'BEGIN { printf "ratio sloop/plain = %.3f (Sloop adds %+.1f%%)\n", s / p, (s / p - 1) * 100 }'
