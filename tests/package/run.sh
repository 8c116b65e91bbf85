#!/usr/bin/env bash
# Installs Sloop's .deb as a user does, in a fresh Debian 12 root made by debootstrap (no build
# tree, no Rust, no Node in it), and checks what the user gets there:
#   - `apt-get install ./sloop_*.deb` pulls every dependency; `sloop --version` names the commit;
#   - as a plain user: `sloop doctor --json` answers, `sloop catalog add --demo` works offline
#     from the image the package carries, `sloop image list` shows it;
#   - the desktop knows Sloop: xdg-mime names Sloop's desktop entry for bundles, tutorial files
#     and sloop:// links; the MIME types are registered; completions and the man page are there;
#   - the installed app starts under Xvfb with a D-Bus session (screenshot); a second launch with
#     a bundle file hands it to the running window and ends (single instance; screenshot);
#   - removing the package leaves the user's machines, images and catalogs untouched.
#
# Usage: tests/package/run.sh [DEB]   (default: builds one with scripts/package.sh)
# Needs root (debootstrap, chroot, mounts). Caches in ${SLOOP_DEV_CACHE:-~/.cache/sloop-dev}/
# package-test/: the minimal root as a tarball and the Debian packages apt downloads, reused by
# content (apt checks each package's hash). Screenshots and logs go to test-artefacts/package/.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
artefacts=$here/test-artefacts/package
cache=${SLOOP_DEV_CACHE:-$HOME/.cache/sloop-dev}/package-test
suite=bookworm
say() { echo "package-test: $*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}

[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot): sudo $0"; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin
command -v debootstrap >/dev/null || { say "debootstrap is missing: run scripts/install-deps.sh"; exit 1; }

deb=${1:-}
if [ -z "$deb" ]; then
  deb=$("$here/scripts/package.sh" | grep '\.deb$' | tail -n 1)
fi
[ -f "$deb" ] || fail "no .deb at $deb"
rpm=${deb%/*}/$(basename "$deb" | sed -E 's/^sloop_([^_]+)_.*\.deb$/sloop-\1-1/').$(uname -m).rpm
mkdir -p "$artefacts" "$cache/archives/partial"
rm -f "$artefacts"/*.png "$artefacts"/*.log

# The .rpm beside it holds the same files (no RPM-based root here to install it in).
if [ -f "$rpm" ] && command -v rpm >/dev/null; then
  listed=$(rpm -qpl "$rpm" 2>/dev/null)
  for file in /usr/bin/sloop /usr/bin/sloop-app /usr/share/applications/Sloop.desktop \
    /usr/share/mime/packages/sloop.xml /usr/share/sloop/demo/sloop-demo.qcow2 /usr/share/sloop/demo/sloop-demo-live.iso /usr/share/man/man1/sloop.1.gz; do
    grep -qx "$file" <<<"$listed" || fail "the .rpm has no $file"
  done
  rpm -qp --requires "$rpm" 2>/dev/null | grep -qx libvirt-daemon-kvm || fail "the .rpm does not require libvirt"
  say "the .rpm holds the same files and requires libvirt and QEMU"
fi

work=$(mktemp -d -t sloop-package.XXXXXX)
root=$work/root
mounts=()
# Every process whose root is the test root ends with it; then the mounts go, newest first.
cleanup() {
  local status=$? pid mount
  for pid in /proc/[0-9]*; do
    if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then kill -KILL "${pid#/proc/}" 2>/dev/null || true; fi
  done
  sleep 0.2
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    mount=${mounts[$i]}
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
  done
  # Only once nothing is mounted below it.
  if ! grep -q " $work/" /proc/mounts; then rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bind() {
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
}

# The fresh Debian 12 root: minbase, made once and kept as a tarball.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
tarball=$cache/root-$suite-minbase.tar
if [ ! -f "$tarball" ]; then
  say "making a fresh $suite root with debootstrap (once; cached)"
  debootstrap --variant=minbase --cache-dir="$cache/archives" "$suite" "$work/new" "$mirror" >"$artefacts/debootstrap.log" 2>&1 ||
    fail "debootstrap failed; see $artefacts/debootstrap.log"
  tar -C "$work/new" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
  rm -rf "$work/new"
fi
mkdir -p "$root"
tar -C "$root" -xf "$tarball"

mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount -t sysfs sys "$root/sys" && mounts+=("$root/sys")
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The same Debian archive as this host's; no daemon starts inside the root.
rm -f "$root/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/" 2>/dev/null ||
  echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
# Keep what apt downloads in the cache for the next run.
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$root/etc/apt/apt.conf.d/01keep"

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
as_user() { chroot --userspec=ana:ana "$root" env -i PATH=/usr/bin:/bin HOME=/home/ana USER=ana LANG=C.UTF-8 "$@"; }

for tool in cargo rustc node npm; do
  if in_root sh -c "command -v $tool" >/dev/null; then fail "the fresh root has $tool"; fi
done

say "installing $(basename "$deb") with apt-get (pulls its dependencies)"
cp "$deb" "$root/tmp/"
start=$SECONDS
in_root apt-get update -qq >"$artefacts/apt.log" 2>&1 || fail "apt-get update failed; see $artefacts/apt.log"
in_root apt-get install -y "/tmp/$(basename "$deb")" >>"$artefacts/apt.log" 2>&1 ||
  fail "apt-get install of the .deb failed; see $artefacts/apt.log"
say "installed in $((SECONDS - start)) s ($(grep -c '^Setting up' "$artefacts/apt.log") packages set up)"

version=$(in_root sloop --version) || fail "sloop --version failed"
say "$version"
[[ $version =~ ^sloop\ [0-9.]+\ \(commit\ [0-9a-f]{7,}\)$ ]] || fail "sloop --version does not name a version and commit: $version"
for tool in sloop-app qemu-img qemu-system-x86_64 genisoimage virsh openssl; do
  in_root sh -c "command -v $tool" >/dev/null || fail "$tool is not installed with the package"
done

# A plain user, with nothing set up.
in_root useradd --create-home --shell /bin/bash ana
doctor=$(as_user sloop doctor --json --cached) || [ $? -eq 1 ] || fail "sloop doctor --json failed"
[[ $doctor == "{"*'"checks"'* ]] || fail "sloop doctor --json printed no report: ${doctor:0:200}"
say "sloop doctor --json answers ($(grep -o '"ready": [a-z]*' <<<"$doctor"))"

as_user sloop catalog add --demo >"$artefacts/demo.log" 2>&1 || fail "sloop catalog add --demo failed: $(tail -n 1 "$artefacts/demo.log")"
images=$(as_user sloop image list) || fail "sloop image list failed"
grep -qi "demo" <<<"$images" || fail "sloop image list does not show the demo image: $images"
grep -q "Sloop tiny live ISO" <<<"$images" || fail "sloop image list does not show the demo's live ISO: $images"
# Something of the user's to keep: the image in the store and a machine made on it (not started:
# libvirt's session daemon for the user defines it; the test root runs no guest).
identifier=$(as_user sloop --json image list | sed -n 's/.*"identifier": "\([^"]*\)".*/\1/p' | head -n 1)
as_user sloop image pull "$identifier" >>"$artefacts/demo.log" 2>&1 || fail "sloop image pull failed: $(tail -n 1 "$artefacts/demo.log")"
as_user sloop machine create kept --image "$identifier" >>"$artefacts/demo.log" 2>&1 ||
  fail "sloop machine create failed: $(tail -n 1 "$artefacts/demo.log")"
say "the demo catalog works offline from the packaged image; its image pulled, a machine made on it"

for type in application/x-sloop-bundle application/x-sloop-tutorial x-scheme-handler/sloop; do
  handler=$(as_user xdg-mime query default "$type")
  [ "$handler" = Sloop.desktop ] || fail "xdg-mime query default $type gives '$handler', not Sloop.desktop"
done
[ -f "$root/usr/share/mime/application/x-sloop-bundle.xml" ] || fail "the bundle MIME type is not registered"
say "xdg-mime names Sloop.desktop for bundles, tutorial files and sloop:// links"
as_user bash -c 'source /usr/share/bash-completion/completions/sloop && complete -p sloop' >/dev/null ||
  fail "the bash completion does not load"
zcat "$root/usr/share/man/man1/sloop.1.gz" | grep -q '^\.TH sloop 1' || fail "no man page for sloop"

# The installed app, under Xvfb and a D-Bus session (single instance needs one). Test tools only,
# installed after the package's own check above.
in_root apt-get install -y --no-install-recommends xvfb x11-apps netpbm dbus-daemon dbus-bin >>"$artefacts/apt.log" 2>&1 ||
  fail "the test's X tools did not install; see $artefacts/apt.log"
printf 'not a real bundle\n' >"$root/home/ana/shared.sloop"
chroot "$root" chown ana:ana /home/ana/shared.sloop
cat >"$root/tmp/app-test.sh" <<'EOF'
#!/bin/bash
# Inside the test root, as the user, in a D-Bus session: start Sloop, screenshot, hand it a file
# from a second launch, screenshot again.
set -u
shot() { xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng >"/tmp/$1.png" 2>/dev/null; }
Xvfb :9 -screen 0 1280x800x24 -nolisten tcp >/tmp/xvfb.log 2>&1 &
for _ in $(seq 1 100); do [ -e /tmp/.X11-unix/X9 ] && break; sleep 0.1; done
export DISPLAY=:9
log=$HOME/.local/state/sloop/logs/sloop.log
start=$(date +%s%N)
sloop-app >/tmp/app.log 2>&1 &
app=$!
for _ in $(seq 1 300); do grep -q "Sloop started" "$log" 2>/dev/null && break; sleep 0.1; done
sleep 4
shot app
echo "first start logged after $(( ($(date +%s%N) - start) / 1000000 )) ms"
timeout 30 sloop-app "$HOME/shared.sloop" >/tmp/second.log 2>&1
echo "second launch exit status $?"
sleep 2
shot handed
kill -0 "$app" && echo "first instance still runs"
grep -c "the desktop asks to open" "$log" | sed 's/^/open requests logged: /'
pgrep -c -u "$(id -u)" -x sloop-app | sed 's/^/sloop-app processes: /'
kill "$app"
wait "$app" 2>/dev/null
# The desktop's dark choice (GTK's dark variant, as a dark desktop sets it): the window follows.
GTK_THEME=Adwaita:dark sloop-app >/tmp/dark-app.log 2>&1 &
app=$!
for _ in $(seq 1 300); do [ "$(grep -c "painted its first frame" "$log")" -ge 2 ] && break; sleep 0.1; done
sleep 2
shot dark
kill "$app"
# One pixel of the header's background (the window is centred on the 1280x800 screen).
pixel() { pngtopnm "/tmp/$1.png" | pnmcut -left 800 -top 60 -width 1 -height 1 | pnmnoraw | tail -n 1; }
echo "header pixel, light: $(pixel app)"
echo "header pixel, dark: $(pixel dark)"
EOF
chmod +x "$root/tmp/app-test.sh"
as_user dbus-run-session -- /tmp/app-test.sh >"$artefacts/app-test.log" 2>&1 || true
cp "$root"/tmp/*.png "$artefacts/" 2>/dev/null || true
cp "$root/tmp/app.log" "$artefacts/app.log" 2>/dev/null || true
cp "$root/home/ana/.local/state/sloop/logs/sloop.log" "$artefacts/sloop.log" 2>/dev/null || true
# What the script saw, without the session bus's and portals' chatter about a bare X server.
grep -v -e '^dbus-daemon' -e 'portal' -e '^$' -e 'Gtk-WARNING' -e 'pw.conf' "$artefacts/app-test.log" >&2 || true
grep -q "second launch exit status 0" "$artefacts/app-test.log" || fail "the second launch did not end at once"
grep -q "first instance still runs" "$artefacts/app-test.log" || fail "the installed app did not keep running"
grep -q "sloop-app processes: 1" "$artefacts/app-test.log" || fail "a second app process stayed"
grep -q "a second launch handed its files and links to this window.*queued=1" "$artefacts/sloop.log" ||
  fail "the running app was not handed the second launch's file"
grep -q "the window opens.*kind=Bundle.*location=/home/ana/shared.sloop" "$artefacts/sloop.log" ||
  fail "the window did not take the bundle file"
# Light is near white, dark near black (each channel's mean, out of 255).
brightness() { grep "header pixel, $1:" "$artefacts/app-test.log" | awk '{ print int(($4 + $5 + $6) / 3) }'; }
light=$(brightness light)
dark=$(brightness dark)
[ "${light:-0}" -gt 200 ] || fail "the light window's header is not light (mean $light of 255)"
[ "${dark:-255}" -lt 60 ] || fail "with the desktop's dark choice the header is not dark (mean $dark of 255)"
say "the window follows the desktop's light (mean $light) or dark (mean $dark) choice (dark.png)"
for shot in app handed dark; do
  [ -s "$artefacts/$shot.png" ] || fail "no screenshot $shot.png"
done
say "the installed app starts (screenshot app.png); a second launch hands its file to it (handed.png)"

# Removing the package keeps what is the user's.
before=$(cd "$root/home/ana" && find .local/share/sloop -type f -print0 | sort -z | xargs -0 sha256sum)
[ -n "$before" ] || fail "the user has no Sloop files to keep"
in_root apt-get remove -y sloop >>"$artefacts/apt.log" 2>&1 || fail "apt-get remove sloop failed"
[ ! -e "$root/usr/bin/sloop" ] || fail "sloop is still installed after apt-get remove"
after=$(cd "$root/home/ana" && find .local/share/sloop -type f -print0 | sort -z | xargs -0 sha256sum)
[ "$before" = "$after" ] || fail "removing the package changed the user's files"
grep -q "machines/kept/" <<<"$after" || fail "the user's machine was not among the files kept"
grep -q "images/" <<<"$after" || fail "the user's image was not among the files kept"
say "removing the package keeps the user's $(wc -l <<<"$after") Sloop files (the image, the machine's overlay)"
say "all checks passed"
