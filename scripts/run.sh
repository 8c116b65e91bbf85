#!/usr/bin/env bash
# Installs what is missing, builds the app with its UI embedded, subscribes to the offline demo
# catalog on first start, and opens Sloop's window.
# Usage: scripts/run.sh   (needs a desktop session; headless: xvfb-run scripts/run.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
# The window shows what is missing if libvirt still does not answer; that is not fatal here.
scripts/libvirt-up.sh || echo "run: libvirt does not answer yet; the app's host check says how to fix it" >&2

(cd ui && npm run build --silent)
# custom-protocol: the binary serves the built ui/dist itself, no dev server needed.
cargo build -p sloop-app --features custom-protocol
cargo build -p sloop-cli

# The offline default: a demo catalog built from the tiny test image (rootless, from Debian
# packages, cached), so a newcomer has a certified image to try without any network.
if [ -z "${SLOOP_DEMO_IMAGE:-}" ]; then
  SLOOP_DEMO_IMAGE=$(assets/test-image/build.sh | tail -n 1)
fi
export SLOOP_DEMO_IMAGE
# The same recipe writes the ISO variant (µCernVM style) beside it: the demo lists both.
if [ -z "${SLOOP_DEMO_LIVE_ISO:-}" ] && [ -f "${SLOOP_DEMO_IMAGE%/*}/sloop-test.iso" ]; then
  export SLOOP_DEMO_LIVE_ISO=${SLOOP_DEMO_IMAGE%/*}/sloop-test.iso
fi
target/debug/sloop catalog add --demo || echo "run: the demo catalog could not be set up; the app's Images view says why" >&2

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "run: no display; run it in a desktop session, or headless with: xvfb-run scripts/run.sh" >&2
  exit 1
fi
echo "run: starting Sloop (the CLI is target/debug/sloop)"
exec target/debug/sloop-app
