#!/usr/bin/env bash
# Benchmarks `sloop machine export` on machines of the demo base with about 50 MB and 500 MB of
# changes (half random, half compressible text), against, in the same run:
#   (a) the whole disk flattened and compressed: qemu-img convert -c -O qcow2 <overlay> (what a
#       full-image upload sends);
#   (b) the changes alone, compressed: qemu-img convert -c -O qcow2 -B <base> <overlay> (zlib,
#       qcow2's default);
#   (b') the same with -o compression_type=zstd, the compression Sloop uses: the same algorithm,
#       so what remains is Sloop's own cost (hashing, the tar, fsync).
# Prints the bytes of each and the export's time against (b)'s, and the ratios.
# Env: SLOOP_BENCH_ROUNDS (3), SLOOP_BENCH_SIZES_MB ("50 500"), SLOOP_TEST_IMAGE (tiny image),
# SLOOP_BENCH_DIR (default /var/tmp; disk-backed). No machine boots: the changes are written
# into the stopped machine's overlay with qemu-io.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=${SLOOP_BENCH_ROUNDS:-3}
sizes=${SLOOP_BENCH_SIZES_MB:-50 500}
for tool in qemu-img qemu-io; do
  command -v "$tool" >/dev/null || { echo "bench-bundle: $tool is not installed; apt-get install qemu-utils" >&2; exit 1; }
done
cargo build -q -p sloop-cli
sloop=$here/target/debug/sloop
image=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
scripts/libvirt-up.sh >/dev/null

export SLOOP_HOME
work=$(mktemp -d "${SLOOP_BENCH_DIR:-/var/tmp}/sloop-bench-bundle.XXXXXX")
SLOOP_HOME=$work/home
machines=()
cleanup() {
  for m in "${machines[@]}"; do "$sloop" machine delete "$m" --yes >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

"$sloop" catalog add --demo --image "$image" >/dev/null
id=$("$sloop" --json image list | field 0.identifier)
"$sloop" image pull "$id" >/dev/null
base=$("$sloop" --json image list | field 0.local.path)

echo "sloop machine export vs qemu-img, $rounds rounds each, medians; $(qemu-img --version | head -n 1)"
for size in $sizes; do
  name=bench-$size
  machines+=("$name")
  "$sloop" machine create "$name" --image "$id" --vcpus 1 --memory 256 --disk 2 >/dev/null
  overlay=$SLOOP_HOME/data/machines/$name/overlay.qcow2
  half=$((size / 2))
  head -c "${half}M" /dev/urandom >"$work/random"
  # yes ends by SIGPIPE once head has enough: not a failure.
  { yes "2026-12-06 03:00:00 event=4711 run=analysis detector=tracker status=ok energy=13.6TeV" || true; } |
    head -c "${half}M" >"$work/text"
  qemu-io -c "write -s $work/random 520M ${half}M" -c "write -s $work/text $((520 + half))M ${half}M" \
    "$overlay" >/dev/null
  rm -f "$work/random" "$work/text"

  export_times=() b_times=() z_times=() bundle_bytes=0 a_bytes=0 b_bytes=0 z_bytes=0
  for _ in $(seq "$rounds"); do
    rm -f "$work/$name.sloop" "$work/b.qcow2" "$work/a.qcow2" "$work/z.qcow2"
    t0=$(now)
    "$sloop" machine export "$name" -o "$work/$name.sloop" --unsigned >/dev/null 2>&1
    t1=$(now)
    qemu-img convert -c -O qcow2 -B "$base" -F qcow2 "$overlay" "$work/b.qcow2"
    t2=$(now)
    qemu-img convert -c -O qcow2 -o compression_type=zstd -B "$base" -F qcow2 "$overlay" "$work/z.qcow2"
    t3=$(now)
    z_times+=("$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')")
    z_bytes=$(stat -c %s "$work/z.qcow2")
    export_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    b_times+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')")
    bundle_bytes=$(stat -c %s "$work/$name.sloop")
    b_bytes=$(stat -c %s "$work/b.qcow2")
  done
  qemu-img convert -c -O qcow2 "$overlay" "$work/a.qcow2"
  a_bytes=$(stat -c %s "$work/a.qcow2")
  te=$(printf '%s\n' "${export_times[@]}" | median)
  tb=$(printf '%s\n' "${b_times[@]}" | median)
  tz=$(printf '%s\n' "${z_times[@]}" | median)
  echo "== $size MB of changes =="
  echo "  bundle (sloop machine export)        $(mb "$bundle_bytes")  in $(printf '%.2f' "$te") s"
  echo "  (b) changes alone, qemu-img -c -B    $(mb "$b_bytes")  in $(printf '%.2f' "$tb") s"
  echo "  (b') the same, zstd                  $(mb "$z_bytes")  in $(printf '%.2f' "$tz") s"
  echo "  (a) whole disk, qemu-img -c          $(mb "$a_bytes")"
  echo "  bytes: bundle/(b) = $(ratio "$bundle_bytes" "$b_bytes"), bundle/(a) = $(ratio "$bundle_bytes" "$a_bytes");" \
    "time: export/(b) = $(ratio "$te" "$tb"), export/(b') = $(ratio "$te" "$tz")"
  rm -f "$work/$name.sloop" "$work/b.qcow2" "$work/a.qcow2" "$work/z.qcow2"
  "$sloop" machine delete "$name" --yes >/dev/null
done
