#!/usr/bin/env bash
# Benchmarks preparing a runnable base from a 1 GiB raw .xz and a 1 GiB OVA against the plain
# commands (xz -d then qemu-img convert; tar -x then qemu-img convert), same run, and reports
# each route's peak extra disk space. Env: SLOOP_BENCH_BYTES (default 1073741824),
# SLOOP_BENCH_ROUNDS (3), SLOOP_BENCH_DIR (default /var/tmp; disk-backed). Builds in release mode.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

for tool in xz tar qemu-img; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-base: $tool is not installed; run scripts/install-deps.sh" >&2
    exit 1
  fi
done

export SLOOP_BENCH_BYTES SLOOP_BENCH_ROUNDS SLOOP_BENCH_DIR
cd "$here"
exec cargo bench -p sloop-core --bench base "$@"
