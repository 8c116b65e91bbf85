#!/usr/bin/env bash
# Benchmarks Sloop's verified image pull against `curl -o FILE URL && sha512sum FILE` from the same
# loopback HTTPS server. Env: SLOOP_BENCH_BYTES (default 1073741824), SLOOP_BENCH_ROUNDS (3),
# SLOOP_BENCH_DIR (default /var/tmp; must be disk-backed, not tmpfs). Builds in release mode.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

for tool in curl sha512sum; do
  if ! command -v "$tool" >/dev/null; then
    case "$tool" in
      curl) echo "bench-pull: curl is not installed; apt-get install curl" >&2 ;;
      *) echo "bench-pull: $tool is not installed; apt-get install coreutils" >&2 ;;
    esac
    exit 1
  fi
done

# The SLOOP_BENCH_* variables reach the bench through the environment; extra arguments go to cargo.
export SLOOP_BENCH_BYTES SLOOP_BENCH_ROUNDS SLOOP_BENCH_DIR
cd "$here"
exec cargo bench -p sloop-core --bench pull "$@"
