#!/usr/bin/env bash
# Builds Sloop's installable packages, a .deb and an .rpm, each holding the app, the `sloop` CLI
# on PATH, the desktop entry and icons, the file types (.sloop bundles, .sloop-tutorial files)
# and the sloop:// URL handler, shell completions (bash, zsh, fish), the man page and the offline
# demo image, with the run-time dependencies a user needs. See docs/packaging.md.
#
# Usage: scripts/package.sh [--release] [OUTDIR]
#   --release   an optimised build (about 10 minutes on 2 cores); default: the debug build the
#               tests use
#   OUTDIR      where the packages go (default: target/package/out); the last lines of stdout
#               are their paths
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

profile=debug
if [ "${1:-}" = --release ]; then profile=release; shift; fi
out=$(realpath -m "${1:-target/package/out}")
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
work=$target_dir/package/$profile
say() { echo "package: $*" >&2; }

for tool in cargo npm gzip; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/install-deps.sh"; exit 1; }
done
[ -x ui/node_modules/.bin/tauri ] || (cd ui && npm ci --no-audit --no-fund --loglevel=error)

rm -rf "$work"
mkdir -p "$work/completions" "$out"

# The CLI, and what is generated from its definition: completions and the man page.
cargo_profile=()
[ "$profile" = release ] && cargo_profile=(--release)
say "building the sloop CLI ($profile)"
cargo build -q -p sloop-cli "${cargo_profile[@]}"
sloop=$target_dir/$profile/sloop
"$sloop" completions bash >"$work/completions/sloop"
"$sloop" completions zsh >"$work/completions/_sloop"
"$sloop" completions fish >"$work/completions/sloop.fish"
"$sloop" manpage | gzip -9n >"$work/sloop.1.gz"

# The offline demo: the tiny test image (built from Debian packages, cached by its recipe).
say "building the demo image (cached when its recipe is unchanged)"
demo=$(assets/test-image/build.sh | tail -n 1)
[ -f "$demo" ] || { say "the test-image recipe printed no image"; exit 1; }
demo_live=${demo%/*}/sloop-test.iso
[ -f "$demo_live" ] || { say "the test-image recipe wrote no ISO variant beside $demo"; exit 1; }

# What the package needs at run time. The bundler adds WebKitGTK and GTK itself, not the other
# libraries the binaries link (readelf -d): those are listed here, with the tools Sloop runs.
case $(dpkg --print-architecture 2>/dev/null || uname -m) in
  arm64 | aarch64) qemu_deb=qemu-system-arm qemu_rpm=qemu-system-aarch64-core ;;
  *) qemu_deb=qemu-system-x86 qemu_rpm=qemu-system-x86-core ;;
esac
files=$(
  cat <<EOF
{
  "/usr/bin/sloop": "$sloop",
  "/usr/share/man/man1/sloop.1.gz": "$work/sloop.1.gz",
  "/usr/share/bash-completion/completions/sloop": "$work/completions/sloop",
  "/usr/share/zsh/vendor-completions/_sloop": "$work/completions/_sloop",
  "/usr/share/fish/vendor_completions.d/sloop.fish": "$work/completions/sloop.fish",
  "/usr/share/mime/packages/sloop.xml": "$here/assets/package/sloop-mime.xml",
  "/usr/share/sloop/demo/sloop-demo.qcow2": "$demo",
  "/usr/share/sloop/demo/sloop-demo-live.iso": "$demo_live"
}
EOF
)
# Fedora and EL read zsh completions from site-functions.
files_rpm=${files//zsh\/vendor-completions/zsh\/site-functions}
cat >"$work/tauri.package.json" <<EOF
{
  "bundle": {
    "targets": ["deb", "rpm"],
    "linux": {
      "deb": {
        "section": "misc",
        "depends": [
          "libc6", "libgcc-s1", "libssl3", "libvirt0", "libdbus-1-3", "libglib2.0-0",
          "libsoup-3.0-0", "libjavascriptcoregtk-4.1-0", "libcairo2", "libgdk-pixbuf-2.0-0",
          "libvirt-daemon-system", "$qemu_deb", "qemu-utils", "genisoimage | xorriso", "openssl",
          "xz-utils"
        ],
        "recommends": [
          "bzip2", "zstd",
          "nordugrid-arc-client", "voms-clients", "igtf-policy-classic", "fetch-crl",
          "openssh-client", "xdg-utils", "desktop-file-utils", "shared-mime-info"
        ],
        "desktopTemplate": "$here/assets/package/sloop.desktop",
        "files": $files
      },
      "rpm": {
        "depends": [
          "openssl-libs", "libvirt-libs", "dbus-libs", "libvirt-daemon-kvm", "$qemu_rpm",
          "qemu-img", "(genisoimage or xorriso)", "openssl", "xz"
        ],
        "recommends": [
          "bzip2", "zstd",
          "nordugrid-arc-client", "voms-clients-cpp", "fetch-crl", "openssh-clients",
          "xdg-utils", "desktop-file-utils", "shared-mime-info"
        ],
        "desktopTemplate": "$here/assets/package/sloop.desktop",
        "files": $files_rpm
      }
    }
  }
}
EOF

say "building the app and its packages ($profile)"
tauri_profile=(--debug)
[ "$profile" = release ] && tauri_profile=()
ui/node_modules/.bin/tauri build "${tauri_profile[@]}" --bundles deb,rpm --config "$work/tauri.package.json" >&2

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
bundle=$target_dir/$profile/bundle
deb=$(find "$bundle/deb" -maxdepth 1 -name "*_${version}_*.deb" | head -n 1)
rpm=$(find "$bundle/rpm" -maxdepth 1 -name "*-${version}-*.rpm" | head -n 1)
if [ ! -f "$deb" ] || [ ! -f "$rpm" ]; then
  say "the bundler wrote no .deb or .rpm under $bundle"
  exit 1
fi
# Debian's own naming (the package is `sloop`), whatever the bundler called the files.
cp "$deb" "$out/sloop_${version}_$(dpkg --print-architecture 2>/dev/null || echo amd64).deb"
cp "$rpm" "$out/sloop-${version}-1.$(uname -m).rpm"
say "done: $(du -h "$out"/sloop_"$version"_*.deb | cut -f1) .deb, $(du -h "$out"/sloop-"$version"-1.*.rpm | cut -f1) .rpm"
ls -1 "$out"/sloop_"$version"_*.deb "$out"/sloop-"$version"-1.*.rpm
