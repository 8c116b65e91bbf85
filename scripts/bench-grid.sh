#!/usr/bin/env bash
# Benchmarks Run on grid against the project's test site (a real ARC CE on loopback, see
# docs/test-site.md), in one run:
#   bytes: what `sloop run submit` uploads for a machine of the tiny base with about 50 MB of
#     changes, against the whole disk flattened and compressed (a full-image upload) and against
#     the bundle's overlay plus seed and job script (goal: within 1.05x);
#   time: `run submit` to FINISHED with the command's output, against a plain `arcsub` of a job
#     running the same command without a VM plus the same machine's local boot (goal: <= 1.2x).
# The measurement is the ignored test grid::bench_grid (crates/sloop-cli/tests/it/grid.rs), which
# shares the grid tests' fixtures (HTTPS server for the base, signed list, CE user). It starts the
# test CE when needed; this script stops it at the end. Prints the figures only.
# `scripts/bench-grid.sh shell` runs the remote debug shell's benchmark instead (bench-shell.sh).
set -euo pipefail
case ${1:-grid} in
grid) label=bench-grid test=grid::bench_grid ;;
shell) label=bench-shell test=grid::bench_run_shell ;;
*) echo "usage: scripts/bench-grid.sh [grid|shell]" >&2 && exit 64 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/libvirt-up.sh >/dev/null
SLOOP_TEST_IMAGE=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
export SLOOP_TEST_IMAGE
log=$(mktemp)
trap 'rm -f "$log"; scripts/arc-ce.sh stop "${TMPDIR:-/tmp}/sloop-test-ce" >/dev/null 2>&1 || true' EXIT
if ! cargo test -q -p sloop-cli --test it "$test" -- --ignored --exact --nocapture >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "$label: the measurement failed" >&2
  exit 1
fi
grep -E "^($label| +[a-z])" "$log"
