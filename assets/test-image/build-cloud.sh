#!/usr/bin/env bash
# Builds the "cloud" test image: Debian 12 (bookworm) with the real cloud-init (22.4.2) and
# OpenSSH, installed from Debian packages with debootstrap. It is the slower, fuller sibling of
# the busybox image from build.sh: it proves that the NoCloud seed Sloop writes works with real
# cloud-init.
#
#   build-cloud.sh [OUTDIR]
#
# Writes OUTDIR/sloop-cloud.qcow2 (default OUTDIR: ${SLOOP_DEV_CACHE:-~/.cache/sloop-dev}/images)
# and prints its absolute path as the last line on stdout; everything else goes to stderr.
# A stamp next to the image records a hash of the recipe (this script and cloud/**); when it
# matches, nothing is rebuilt (SLOOP_REBUILD=1 forces a rebuild). Needs root (debootstrap,
# chroot); downloads from SLOOP_DEBIAN_MIRROR (default http://deb.debian.org/debian) and keeps
# the downloaded packages in ${SLOOP_DEV_CACHE:-~/.cache/sloop-dev}/debootstrap-debs.
#
# The image: a 2 GiB MBR disk, BIOS-bootable without GRUB. Partition 1 is a 64 MiB FAT16
# partition with SYSLINUX, Debian's generic kernel (it has 9p) and a small initramfs-tools
# initrd (virtio/ext4 modules); partition 2 is the ext4 root filesystem, label
# sloop-cloud-root, made with mkfs.ext4 -d (no loop devices or mounts). The guest:
#   - looks only for a NoCloud seed (datasource_list: [ NoCloud, None ]): an ISO9660 or vfat
#     volume labelled cidata, attached as a virtio disk or a cdrom;
#   - has no SSH host keys until cloud-init writes them (ssh_keys) or generates them;
#   - gets its network from cloud-init's config rendered for systemd-networkd (DHCP on the
#     first NIC when the seed has no network-config), DNS through systemd-resolved;
#   - powers off on the ACPI power button (systemd-logind), i.e. virsh shutdown works;
#   - has cloud-guest-utils (growpart): an overlay made bigger than 2 GiB grows the root
#     filesystem on first boot;
#   - logs to the serial console (console=ttyS0).
set -euo pipefail
umask 022
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SLOOP_DEV_CACHE:-$HOME/.cache/sloop-dev}
outdir=${1:-$cache/images}
mirror=${SLOOP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
name=sloop-cloud
label=sloop-cloud-root
disk_mib=2048 # virtual size of the image
boot_start_mib=1
boot_mib=64

# --include for debootstrap --variant=minbase (no Recommends are installed).
# python3-cffi-backend: debootstrap does not resolve virtual packages, and python3-cryptography
# (cloud-init -> python3-oauthlib) depends on python3-cffi-backend-api-{min,max}, which only
# python3-cffi-backend provides.
packages=(
  systemd-sysv udev kmod dbus
  linux-image-amd64 initramfs-tools
  openssh-server
  cloud-init python3-cffi-backend cloud-guest-utils
  sudo bash iproute2 systemd-resolved netbase
  openssl ca-certificates e2fsprogs
)

# Kernel module directories that an analysis VM under QEMU never needs (graphics cards, sound,
# wireless, cameras, InfiniBand, ...): about 170 MB of the 400 MB module tree.
prune_modules=(
  sound drivers/media drivers/gpu/drm/amd drivers/gpu/drm/i915 drivers/gpu/drm/nouveau
  drivers/gpu/drm/radeon drivers/net/wireless drivers/infiniband drivers/staging drivers/iio
  drivers/bluetooth drivers/isdn net/bluetooth net/mac80211 net/wireless
)

log() { printf 'build-cloud: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# tool -> Debian package
declare -A tools=(
  [debootstrap]=debootstrap [chroot]=coreutils [sha256sum]=coreutils [flock]=util-linux
  [mkfs.ext4]=e2fsprogs [mkfs.vfat]=dosfstools [mcopy]=mtools [syslinux]=syslinux
  [sfdisk]=fdisk [qemu-img]=qemu-utils
)
for tool in "${!tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "missing tool '$tool' (Debian package ${tools[$tool]}; scripts/install-deps.sh installs it)"
done
mbr_bin=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$mbr_bin" ] || die "missing $mbr_bin (Debian package syslinux-common)"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
image="$outdir/$name.qcow2"
stamp="$image.stamp"

recipe_hash() {
  (cd "$here" && find build-cloud.sh cloud -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -d' ' -f1
}
hash=$(recipe_hash)

up_to_date() {
  [ -z "${SLOOP_REBUILD:-}" ] && [ -f "$image" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]
}
if up_to_date; then
  log "up to date: $image"
  printf '%s\n' "$image"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and chroot); run it as root or through sudo"

# One build at a time per output directory; a build that waited may find the image done.
exec 9>"$outdir/.$name.lock"
flock 9
if up_to_date; then
  log "up to date: $image (built by another process)"
  printf '%s\n' "$image"
  exit 0
fi

# debootstrap mounts /proc, /sys (and may bind /dev) inside the target; a failed or killed run
# can leave them behind. Never delete through a mount point.
remove_tree() {
  local mnt
  awk -v w="$1/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || log "warning: could not unmount $mnt"
  done
  rm -rf --one-file-system "$1"
}
# With the lock held, work directories left by a killed build are stale.
for stale in "$outdir/.$name".??????; do
  [ -d "$stale" ] || continue
  log "removing $stale, left by an interrupted build"
  remove_tree "$stale"
done

work=$(mktemp -d "$outdir/.$name.XXXXXX")
root="$work/root"
cleanup() {
  local rc=$?
  [ -d "$work" ] && remove_tree "$work"
  [ "$rc" -eq 0 ] || log "failed (exit $rc); cleaned up $work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
log "building $image (recipe $hash)"

# --- 1. Debian root filesystem -------------------------------------------------------------
mkdir -p "$cache/debootstrap-debs"
log "debootstrap $suite from $mirror (a few minutes)"
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  --cache-dir="$cache/debootstrap-debs" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (is $mirror reachable?)"
fi
log "debootstrap done after $((SECONDS - start)) s"

kver=
for dir in "$root"/usr/lib/modules/*-amd64; do kver=${dir##*/}; done
[ -n "$kver" ] && [ -f "$root/boot/vmlinuz-$kver" ] || die "no kernel found in the root filesystem"

# --- 2. Configuration ------------------------------------------------------------------------
log "configuring (kernel $kver)"
cp -r --no-preserve=mode,ownership "$here/cloud/rootfs/." "$root/"

cat >"$root/etc/fstab" <<EOF
# <file system>       <mount point> <type> <options>                 <dump> <pass>
LABEL=$label  /             ext4   defaults,errors=remount-ro  0      1
EOF
echo "$name" >"$root/etc/hostname"
cat >"$root/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$name
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# systemd-resolved provides DNS (debootstrap leaves a copy of the build host's resolv.conf).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

in_root() { chroot "$root" "$@" >&2; }
# Network: cloud-init renders for networkd (see cloud/rootfs/etc/cloud/cloud.cfg.d).
in_root systemctl enable --quiet systemd-networkd.service systemd-resolved.service
# Periodic jobs that only cost CPU in a short-lived test VM under emulation.
in_root systemctl disable --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer

for dir in "${prune_modules[@]}"; do rm -rf "$root/usr/lib/modules/$kver/kernel/$dir"; done
in_root depmod -a "$kver"
in_root update-initramfs -u -k "$kver"

# --- 3. Make it generic and small ----------------------------------------------------------------
# Each VM gets its own machine id and host keys on first boot (host keys from the seed's ssh_keys).
rm -f "$root"/etc/ssh/ssh_host_* "$root/var/lib/dbus/machine-id"
: >"$root/etc/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/lintian "$root"/tmp/* "$root"/var/tmp/* "$root"/debootstrap
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$root/usr/share/doc" -type f ! -name copyright -delete
find "$root/usr/share/doc" -type l -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$root/var/log" -type f -delete

# --- 4. Disk image ---------------------------------------------------------------------------
log "making the disk image"
raw="$work/disk.img"
boot_off=$((boot_start_mib * 1024 * 1024))
root_off=$(((boot_start_mib + boot_mib) * 1024 * 1024))
truncate -s "${disk_mib}M" "$raw"
sfdisk --quiet "$raw" <<EOF
label: dos
start=$((boot_off / 512)), size=$((boot_mib * 2048)), type=e, bootable
start=$((root_off / 512)), type=83
EOF
dd if="$mbr_bin" of="$raw" bs=440 count=1 conv=notrunc status=none

# Boot partition: FAT16 with SYSLINUX, the kernel and the initrd.
# (mkfs.vfat warns that the file is bigger than the filesystem: that is the point of --offset.)
if ! out=$(mkfs.vfat -F 16 -n SLOOPBOOT --offset $((boot_off / 512)) -h $((boot_off / 512)) \
  "$raw" $((boot_mib * 1024)) 2>&1); then
  printf '%s\n' "$out" >&2
  die "mkfs.vfat failed"
fi
cat >"$work/syslinux.cfg" <<EOF
DEFAULT sloop
PROMPT 0
TIMEOUT 0
LABEL sloop
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=$label rw console=tty0 console=ttyS0,115200n8
EOF
export MTOOLS_SKIP_CHECK=1
fat="$raw@@$boot_off"
mcopy -i "$fat" "$root/boot/vmlinuz-$kver" ::vmlinuz
mcopy -i "$fat" "$root/boot/initrd.img-$kver" ::initrd.img
mcopy -i "$fat" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --offset "$boot_off" --install "$raw"

# Root partition: ext4 filled from the directory (as root, ownership and modes are kept).
# -T default: below 512 MiB mke2fs would pick 1 KiB blocks; lazy_itable_init=0: the first boot
# does not zero inode tables into the overlay.
root_kib=$(((disk_mib * 1024 * 1024 - root_off) / 1024))
log "root filesystem: $(du -sh --apparent-size "$root" | cut -f1) in a $((root_kib / 1024)) MiB partition"
mkfs.ext4 -q -F -T default -E "lazy_itable_init=0,offset=$root_off" -L "$label" -d "$root" \
  "$raw" "${root_kib}k"
rm -rf --one-file-system "$root"

log "compressing to qcow2"
qemu-img convert -c -O qcow2 "$raw" "$work/$name.qcow2"
mv -f "$work/$name.qcow2" "$image"
printf '%s\n' "$hash" >"$stamp"
log "done after $((SECONDS - start)) s: $(du -h "$image" | cut -f1) ($(qemu-img info --output=json "$image" |
  sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | awk '{printf "%d MiB virtual", $1 / 1048576}'))"
printf '%s\n' "$image"
