#!/usr/bin/env bash
# Runs every check and test Sloop has, on a fresh Debian 12 machine too: installs what is
# missing, starts libvirt where no init system does, then gates (format, lints, types), unit
# tests, real-VM integration tests, UI tests, the end-to-end test of the real app window, and the
# .deb installed in a fresh Debian root.
# Prints how long each step took. Usage: scripts/test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

steps=() times=()
step() {
  local name=$1; shift
  echo "==> $name"
  local t0=$SECONDS status=0
  "$@" || status=$?
  steps+=("$name"); times+=($((SECONDS - t0)))
  if [ "$status" -ne 0 ]; then
    echo "==> FAILED: $name (exit status $status)"
    exit "$status"
  fi
}
# Builds (or takes from the cache) a test image and exports its path in variable $1.
image() {
  local path outdir=${SLOOP_DEV_CACHE:-$HOME/.cache/sloop-dev}/images runner=()
  # debootstrap needs root: a developer with sudo builds that one image through it, into
  # their own cache.
  if [ "$2" = build-cloud.sh ] && [ "$(id -u)" -ne 0 ]; then runner=(sudo); fi
  path=$("${runner[@]}" assets/test-image/"$2" "$outdir" | tail -n 1) || return 1
  [ -f "$path" ] || { echo "$2 printed no image path" >&2; return 1; }
  export "$1=$path"
}
summary() {
  local total=0 t
  for t in "${times[@]}"; do total=$((total + t)); done
  echo "==> step times (total ${total} s)"
  for i in "${!steps[@]}"; do
    printf '  %-34s %5d s  %3d%%\n' "${steps[$i]}" "${times[$i]}" $(( total > 0 ? 100 * times[$i] / total : 0 ))
  done
}
# The grid tests start the test CE (scripts/arc-ce.sh) once and share it; stop it at the end.
test_ce=${TMPDIR:-/tmp}/sloop-test-ce
finish() {
  summary
  if [ -f "$test_ce/arc.conf" ]; then scripts/arc-ce.sh stop "$test_ce" >/dev/null 2>&1 || true; fi
}
trap finish EXIT

step "install dependencies"        scripts/install-deps.sh
step "start libvirt"               scripts/libvirt-up.sh
step "cargo fmt --check"           cargo fmt --all --check
step "core is GUI-free"            scripts/check-core-gui-free.sh
step "UI lint, types, tests, build" bash -c 'cd ui && npm run lint && npm run check && npm run test && npm run build'
step "cargo clippy"                cargo clippy --workspace --all-targets --locked -- -D warnings
step "no unused dependencies"      cargo machete
step "dependency licences, sources" cargo deny --offline --log-level error check bans licenses sources
step "site scripts (shellcheck)"   shellcheck assets/site/sloop-vm-job.sh assets/site/ENV/SLOOP-VM scripts/arc-ce.sh
step "test image scripts (shellcheck)" shellcheck assets/test-image/build.sh assets/test-image/boot-smoke.sh \
  assets/test-image/initramfs/init assets/test-image/rootfs/etc/init.d/rcS \
  assets/test-image/rootfs/etc/init.d/rcK assets/test-image/rootfs/usr/sbin/sloop-init
step "guest seed reader (awk)"      assets/test-image/test-yaml.sh
step "build test image (tiny)"     image SLOOP_TEST_IMAGE build.sh
step "build test image (cloud-init)" image SLOOP_TEST_CLOUD_IMAGE build-cloud.sh
step "cargo test (unit + real VMs)" cargo test --workspace --locked -- --nocapture
step "TS bindings match Rust types" scripts/check-bindings.sh
step "E2E: real app window"         tests/e2e/run.sh
# The .deb, built as the user, installed in a fresh Debian root (debootstrap and chroot need root:
# a developer with sudo runs that part through it).
package_test() {
  local deb runner=()
  deb=$(scripts/package.sh | grep '\.deb$' | tail -n 1) || return 1
  [ "$(id -u)" -eq 0 ] || runner=(sudo)
  "${runner[@]}" tests/package/run.sh "$deb"
}
step "package: .deb in a fresh Debian" package_test
