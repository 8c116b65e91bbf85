#!/usr/bin/env bash
# Benchmarks a classroom from one tutorial mirror: SLOOP_BENCH_STUDENTS (20) fresh Sloop homes
# open the same tutorial (verify, import, create; two of them boot to a shell: two cores cannot
# boot twenty under emulation), against plain imports of the full image from the same folder
# (cp, then sha512sum of the copy), in the same run. Prints the time per student to a created
# machine and to a shell, and the bytes one student reads from the mirror (strace).
# The test behind it: bench_tutorial_classroom in crates/sloop-cli/tests/it/tutorial.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v strace >/dev/null || { echo "bench-tutorial: strace is not installed; apt-get install strace" >&2; exit 1; }
scripts/libvirt-up.sh >/dev/null
SLOOP_TEST_IMAGE=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
export SLOOP_TEST_IMAGE
cargo test -q -p sloop-cli --test it bench_tutorial_classroom -- --ignored --nocapture 2>&1 | grep '^bench-tutorial:'
