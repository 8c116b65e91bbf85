#!/usr/bin/env bash
# Installs everything Sloop needs to build, run and test on Debian 12, and nothing twice:
# Debian packages (missing ones only), the UI's npm packages, and tauri-driver for the E2E tests.
# Safe to run again; runs as root or through sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# Build: Rust -sys crates, Tauri/WebKitGTK. Run: libvirt, QEMU, ISO tool.
# Tests: Xvfb + WebKitWebDriver, the test-image recipe's tools, debootstrap for the cloud-init
# image and the package test (rpm to list the .rpm's files), OpenSSH's client for the boot smoke
# tests; the grid tools that proxies are checked against (arcproxy, voms-proxy-fake,
# voms-proxy-info); GNOME Keyring for the Secret Service passphrase test; the test grid site of
# scripts/arc-ce.sh: ARC's CE (A-REX) and the REST plugin of ARC's client tools.
packages=(
  build-essential pkg-config curl file ca-certificates openssl libssl-dev libdbus-1-dev openssh-client
  libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils genisoimage
  libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev librsvg2-dev libxdo-dev
  xvfb xauth webkit2gtk-driver
  busybox-static dropbear-bin syslinux syslinux-common mtools dosfstools fdisk e2fsprogs cpio xz-utils kmod zstd
  debootstrap shellcheck openssh-server rpm
  nordugrid-arc-client voms-clients gnome-keyring dbus-bin
  nordugrid-arc-arex nordugrid-arc-plugins-arcrest
)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
  # No init system on CI: keep package scripts from trying to start daemons.
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  # QEMU's packages must share one version: machines may come with a newer qemu-utils from
  # backports, which blocks Debian's qemu-system-x86. Align it with the emulator's version.
  pins=()
  if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
    qemu_version=$(apt-cache policy qemu-system-x86 | awk '/Candidate/ {print $2}')
    pins=("qemu-utils=$qemu_version" --allow-downgrades)
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" "${pins[@]}" >/dev/null
fi

# The test-image recipes fetch guest packages with apt-get download, which needs package lists.
if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
  "${sudo[@]}" apt-get update -qq
fi

command -v node >/dev/null && command -v npm >/dev/null || {
  "${sudo[@]}" apt-get install -y -qq nodejs npm >/dev/null
}

# The UI's packages, and the E2E test's (WebdriverIO), each from its lock file.
for dir in "$here/ui" "$here/tests/e2e"; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "install-deps: installing npm packages in ${dir#"$here"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

if ! command -v tauri-driver >/dev/null && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "install-deps: installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked --quiet
fi

# The dependency gates of the test command: unused dependencies, licences, sources, bans.
if ! command -v cargo-machete >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo-machete" ]; then
  echo "install-deps: installing cargo-machete"
  cargo install cargo-machete --version '^0.9' --locked --quiet
fi
if ! command -v cargo-deny >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo-deny" ]; then
  echo "install-deps: installing cargo-deny (a few minutes, once)"
  cargo install cargo-deny --version '^0.20' --locked --quiet
fi
