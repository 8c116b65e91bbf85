#!/usr/bin/env bash
# Benchmarks the remote debug shell against the project's test site (a real ARC CE on loopback,
# see docs/test-site.md) and a relay (a real OpenSSH server on loopback, its test account made on
# first use: needs root), in one run: `sloop run shell RUN -- true` (ask the site, log in, run)
# and a keystroke's echo, direct and through the relay, each against plain OpenSSH to the same
# place with the same keys (through the relay as `ssh -J` does it). Goal: no slower than OpenSSH.
# The measurement is the ignored test grid::bench_run_shell (crates/sloop-cli/tests/it/grid.rs);
# scripts/bench-grid.sh runs it with the grid benchmark's set-up. Prints the figures only.
set -euo pipefail
exec "$(dirname "$0")/bench-grid.sh" shell
