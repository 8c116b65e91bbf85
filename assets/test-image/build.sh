#!/usr/bin/env bash
# Builds Sloop's tiny test VM image from Debian packages, without root, chroot, loop devices or
# mounts:
#
#   assets/test-image/build.sh [OUTDIR]
#
# writes OUTDIR/sloop-test.qcow2 (default OUTDIR: ${SLOOP_DEV_CACHE:-~/.cache/sloop-dev}/images)
# and prints its absolute path as the last line of stdout; progress goes to stderr. The same run
# writes the ISO variant OUTDIR/sloop-test.iso (same kernel, initramfs and root files), which boots
# from a read-only CD-ROM and keeps its changes on a blank virtio disk it formats on first boot.
#
# The image (512 MiB virtual, a few tens of MiB on disk): an MBR with SYSLINUX, a FAT boot partition
# (Debian's generic kernel, a busybox initramfs, syslinux.cfg with console=ttyS0) and an ext4 root
# labelled "sloop-root" with busybox, dropbear, the openssl command-line tool and the
# contextualisation script sloop-init, which reads a cloud-init NoCloud seed (a disk labelled
# "cidata"). The ISO variant (volume SLOOP_LIVE): ISOLINUX, the same kernel and initramfs (with
# sloop.live on the command line) and the root file tree as a Rock Ridge directory, /root-fs, which
# the initramfs makes the lower layer of an overlay root. See README.md.
#
# The image and the ISO are rebuilt only when the recipe changes (or either is missing): a SHA-256
# over build.sh, initramfs/ and rootfs/ is kept in OUTDIR/sloop-test.qcow2.stamp
# (SLOOP_TEST_IMAGE_REBUILD=1 forces a rebuild).
# Replacing the image changes the base of any overlay made on it: copy the image (or key it by the
# stamp) before making overlays that must outlive a rebuild.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C
export MTOOLS_SKIP_CHECK=1

disk_mib=512 # virtual size of the image
boot_mib=24  # FAT boot partition, from 1 MiB; the ext4 root takes the rest
arch=x86_64-linux-gnu
# Loaded by the initramfs, to reach the root filesystem.
initramfs_modules=(virtio_pci virtio_blk ext4 crc32c_generic virtio_rng)
# Carried by the root filesystem (with a modules.dep for busybox modprobe): network, shared folder,
# the seed (ISO9660 or vfat on a virtio disk), ACPI power button.
# Loaded by the initramfs in live mode only (sloop.live: the ISO variant): the CD-ROM (IDE on the
# "pc" machine, SATA on q35), its filesystem, the overlay root.
live_modules=(ata_piix ahci sr_mod isofs overlay)
root_modules=("${initramfs_modules[@]}" virtio_net 9p 9pnet_virtio isofs vfat nls_cp437 nls_ascii nls_utf8
	button evdev)

log() { printf 'sloop-test-image: %s\n' "$*" >&2; }
die() {
	printf 'sloop-test-image: error: %s\n' "$*" >&2
	exit 1
}

outdir=${1:-${SLOOP_DEV_CACHE:-$HOME/.cache/sloop-dev}/images}
mkdir -p "$outdir" || die "cannot create the output directory $outdir"
outdir=$(cd "$outdir" && pwd)
image=$outdir/sloop-test.qcow2
stamp=$image.stamp
iso=$outdir/sloop-test.iso

# --- tools --------------------------------------------------------------------------------------
declare -A tool_package=(
	[apt-get]=apt [apt-cache]=apt [dpkg-deb]=dpkg [mkfs.ext4]=e2fsprogs [debugfs]=e2fsprogs
	[mkfs.vfat]=dosfstools [mcopy]=mtools [syslinux]=syslinux [sfdisk]=fdisk [qemu-img]=qemu-utils
	[cpio]=cpio [depmod]=kmod [modprobe]=kmod [gzip]=gzip [sha256sum]=coreutils [flock]=util-linux
	[truncate]=coreutils [dd]=coreutils [awk]=mawk [find]=findutils [genisoimage]=genisoimage
	[touch]=coreutils
)
missing=()
for t in "${!tool_package[@]}"; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t (Debian package ${tool_package[$t]})")
done
[ ${#missing[@]} -eq 0 ] || die "missing host tools: ${missing[*]}; run scripts/install-deps.sh"

# --- cache --------------------------------------------------------------------------------------
recipe_hash() {
	(
		cd "$here"
		{
			echo build.sh
			find initramfs rootfs -type f -o -type l
		} | sort | while IFS= read -r f; do
			if [ -L "$f" ]; then
				printf '%s -> %s\n' "$f" "$(readlink "$f")"
			else
				printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
			fi
		done
	) | sha256sum | cut -d' ' -f1
}
hash=$(recipe_hash)

up_to_date() {
	[ "${SLOOP_TEST_IMAGE_REBUILD:-0}" != 1 ] && [ -f "$image" ] && [ -f "$iso" ] && [ -f "$stamp" ] &&
		[ "$(cat "$stamp")" = "$hash" ]
}

# One build at a time per output directory; whoever waited finds the image built.
exec 9>"$outdir/.sloop-test.lock"
flock 9
if up_to_date; then
	log "up to date (recipe ${hash:0:12}): $image, $iso"
	echo "$image"
	exit 0
fi
SLOOP_TEST_IMAGE_REBUILD=0

start=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sloop-test-image.XXXXXX")
partial=
partial_iso=
cleanup() {
	rm -rf "$tmp"
	[ -z "$partial" ] || rm -f "$partial"
	[ -z "$partial_iso" ] || rm -f "$partial_iso"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
log "building $image (recipe ${hash:0:12}) in $tmp"

# --- Debian packages ----------------------------------------------------------------------------
apt_opts=(-q)
# As root, apt downloads as the _apt user, which cannot write into our private temp directory.
[ "$(id -u)" -ne 0 ] || apt_opts+=(-o APT::Sandbox::User=root)

kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (run apt-get update?)"
kver=${kernel_pkg#linux-image-}
# dropbear's and openssl's libraries (and, for the ISO variant's scratch disk, e2fsprogs'): the
# packages' dependency closure (small: libc6, libssl3...); only the shared objects the binaries
# need end up in the image.
mapfile -t lib_pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances dropbear-bin openssl e2fsprogs | grep -E '^[a-z0-9][a-z0-9+.-]*$' | sort -u)
[ ${#lib_pkgs[@]} -gt 2 ] || die "cannot resolve the dependencies of dropbear-bin, openssl and e2fsprogs (run apt-get update?)"
pkgs=("$kernel_pkg" busybox-static syslinux-common isolinux "${lib_pkgs[@]}")

mkdir -p "$tmp/debs" "$tmp/pkg" "$tmp/kernel"
log "downloading ${#pkgs[@]} packages: ${pkgs[*]}"
(cd "$tmp/debs" && apt-get download "${apt_opts[@]}" "${pkgs[@]}") >&2 ||
	die "apt-get download failed (network? apt-get update?)"
: >"$tmp/versions"
for deb in "$tmp"/debs/*.deb; do
	name=$(dpkg-deb -f "$deb" Package)
	printf '%s %s\n' "$name" "$(dpkg-deb -f "$deb" Version)" >>"$tmp/versions"
	if [ "$name" = "$kernel_pkg" ]; then
		dpkg-deb -x "$deb" "$tmp/kernel"
	else
		dpkg-deb -x "$deb" "$tmp/pkg"
	fi
done
pkg=$tmp/pkg
kernel=$tmp/kernel
[ -f "$kernel/boot/vmlinuz-$kver" ] || die "$kernel_pkg has no /boot/vmlinuz-$kver"
[ -x "$pkg/bin/busybox" ] || die "busybox-static has no /bin/busybox"
[ -f "$pkg/usr/lib/syslinux/mbr/mbr.bin" ] || die "syslinux-common has no mbr.bin"
[ -f "$pkg/usr/lib/syslinux/modules/bios/ldlinux.c32" ] || die "syslinux-common has no modules/bios/ldlinux.c32"
[ -f "$pkg/usr/lib/ISOLINUX/isolinux.bin" ] || die "isolinux has no /usr/lib/ISOLINUX/isolinux.bin"
[ -x "$pkg/usr/bin/openssl" ] || die "openssl has no /usr/bin/openssl"
[ -f "$pkg/etc/ssl/openssl.cnf" ] || die "openssl has no /etc/ssl/openssl.cnf"
mke2fs=$pkg/sbin/mke2fs
[ -x "$mke2fs" ] || mke2fs=$pkg/usr/sbin/mke2fs
[ -x "$mke2fs" ] || die "e2fsprogs has no /sbin/mke2fs"

# --- kernel modules -----------------------------------------------------------------------------
depmod -b "$kernel" "$kver"
# Module files (absolute paths) for the given modules and everything they depend on, in load order.
module_closure() {
	local m
	for m in "$@"; do
		modprobe -d "$kernel" -S "$kver" --show-depends "$m" ||
			die "module $m not found in $kernel_pkg"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# --- initramfs ----------------------------------------------------------------------------------
log "initramfs: busybox + ${initramfs_modules[*]}, in live mode + ${live_modules[*]} (with dependencies)"
initrd=$tmp/initrd
mkdir -p "$initrd"/{bin,dev,proc,sys,newroot,modules}
cp "$pkg/bin/busybox" "$initrd/bin/busybox"
for applet in sh mount umount insmod findfs switch_root usleep sleep poweroff grep mkdir cat head renice \
	dd tr wc sync; do
	ln -s busybox "$initrd/bin/$applet"
done
install -m 0755 "$here/initramfs/init" "$initrd/init"
module_closure "${initramfs_modules[@]}" >"$tmp/initramfs.modules"
while IFS= read -r ko; do
	cp "$ko" "$initrd/modules/"
	basename "$ko" >>"$initrd/modules/order"
done <"$tmp/initramfs.modules"
# Live mode's extra modules (those not loaded already), in load order.
module_closure "${live_modules[@]}" >"$tmp/live.modules"
: >"$initrd/modules/live.order"
while IFS= read -r ko; do
	grep -qxF "$ko" "$tmp/initramfs.modules" && continue
	cp "$ko" "$initrd/modules/"
	basename "$ko" >>"$initrd/modules/live.order"
done <"$tmp/live.modules"
(cd "$initrd" && find . | sort | cpio --quiet -o -H newc -R 0:0) | gzip -9n >"$tmp/initrd.img"

# --- root filesystem ----------------------------------------------------------------------------
log "root filesystem: busybox, dropbear, openssl, sloop-init, ${#root_modules[@]} modules (with dependencies)"
root=$tmp/root
mkdir -p "$root"/usr/{bin,sbin,lib/$arch,lib64} "$root"/{dev,proc,sys,run,tmp,root,home,mnt,etc/profile.d} \
	"$root"/var/{lib,log,tmp}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

# The recipe's own files, with the modes they need whatever the checkout did to them (before the
# busybox links, which must not replace them).
cp -R "$here/rootfs/." "$root/"
find "$here/rootfs" -mindepth 1 -type d | while IFS= read -r d; do chmod 0755 "$root/${d#"$here/rootfs/"}"; done
find "$here/rootfs" -mindepth 1 -type f | while IFS= read -r f; do chmod 0644 "$root/${f#"$here/rootfs/"}"; done
chmod 0755 "$root/etc/init.d/rcS" "$root/etc/init.d/rcK" "$root/etc/acpi/PWRF/00000080" \
	"$root/etc/udhcpc/default.script" "$root/usr/bin/bash" "$root/usr/bin/mountpoint" \
	"$root/usr/sbin/sloop-init"
chmod 0700 "$root/root"
cp "$pkg/bin/busybox" "$root/usr/bin/busybox"
"$root/usr/bin/busybox" --list-full >"$tmp/applets" || die "cannot run busybox from busybox-static"
while IFS= read -r a; do
	case "$a" in */*) ;; *) continue ;; esac
	a=${a#usr/}
	case "$a" in bin/*) target=busybox ;; *) target=../bin/busybox ;; esac
	[ -e "$root/usr/$a" ] || [ -L "$root/usr/$a" ] || ln -s "$target" "$root/usr/$a"
done <"$tmp/applets"

cp -L "$pkg/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
cp -L "$pkg/usr/bin/dropbearkey" "$pkg/usr/bin/dropbearconvert" "$root/usr/bin/"

# The openssl command-line tool (to inspect certificates and proxies in the guest) with its
# configuration where it looks for it (OPENSSLDIR /usr/lib/ssl, links into /etc/ssl as in Debian).
# No CA bundle, engines, legacy provider, c_rehash or CA.pl: the default provider is built in.
cp -L "$pkg/usr/bin/openssl" "$root/usr/bin/openssl"
mkdir -p "$root/etc/ssl/certs" "$root/etc/ssl/private" "$root/usr/lib/ssl"
chmod 0700 "$root/etc/ssl/private"
cp "$pkg/etc/ssl/openssl.cnf" "$root/etc/ssl/openssl.cnf"
for l in openssl.cnf certs private; do
	ln -s "/etc/ssl/$l" "$root/usr/lib/ssl/$l"
done

# Shared objects the dropbear and openssl binaries need, resolved with the packages' own dynamic
# loader so that nothing comes from the host.
ldso=$pkg/lib/$arch/ld-linux-x86-64.so.2
[ -x "$ldso" ] || die "libc6 has no lib/$arch/ld-linux-x86-64.so.2"
cp -L "$ldso" "$root/usr/lib/$arch/ld-linux-x86-64.so.2"
ln -s ../lib/$arch/ld-linux-x86-64.so.2 "$root/usr/lib64/ld-linux-x86-64.so.2"
for bin in "$root/usr/sbin/dropbear" "$root/usr/bin/dropbearkey" "$root/usr/bin/dropbearconvert" \
	"$root/usr/bin/openssl"; do
	"$ldso" --inhibit-cache --library-path "$pkg/lib/$arch:$pkg/usr/lib/$arch" --list "$bin" >"$tmp/ldd" ||
		die "cannot list the libraries of ${bin#"$root"}: $(cat "$tmp/ldd")"
	while read -r soname arrow path _; do
		[ "$arrow" = "=>" ] || continue
		case "$soname" in */*) continue ;; esac # the dynamic loader itself
		case "$path" in
		"$pkg"/*) cp -L "$path" "$root/usr/lib/$arch/$soname" ;;
		*) die "${bin#"$root"} needs $soname, which no downloaded package provides (found: $path)" ;;
		esac
	done <"$tmp/ldd"
done

moddir=$root/usr/lib/modules/$kver
mkdir -p "$moddir"
cp "$kernel/lib/modules/$kver"/modules.{builtin,builtin.modinfo,order} "$moddir/"
module_closure "${root_modules[@]}" >"$tmp/root.modules"
while IFS= read -r ko; do
	rel=${ko#"$kernel/lib/modules/$kver/"}
	mkdir -p "$moddir/$(dirname "$rel")"
	cp "$ko" "$moddir/$rel"
done <"$tmp/root.modules"
depmod -b "$root" "$kver"

printf 'BUILD_ID=%s\n' "${hash:0:12}" >>"$root/etc/os-release"
{
	echo "# Debian packages this image was built from (sloop-test recipe ${hash:0:12})"
	sort "$tmp/versions"
} >"$root/etc/sloop-test-image"
: >"$root/etc/resolv.conf"
echo "LABEL=sloop-root / ext4 rw,noatime 0 1" >"$root/etc/fstab"

root_mib=$((disk_mib - 1 - boot_mib))
truncate -s "${root_mib}M" "$tmp/root.img"
mkfs.ext4 -q -F -T default -E lazy_itable_init=0,lazy_journal_init=0 -L sloop-root \
	-U 5100b007-0000-4000-8000-000000000002 -d "$root" "$tmp/root.img" >&2 ||
	die "mkfs.ext4 -d failed (e2fsprogs >= 1.43 needed)"
if [ "$(id -u)" -ne 0 ]; then
	# Not root: the files carry our uid. Give them to root inside the filesystem.
	(cd "$root" && find . | sed 's|^\.||; s|^$|/|') | while IFS= read -r f; do
		printf 'set_inode_field "%s" uid 0\nset_inode_field "%s" gid 0\n' "$f" "$f"
	done >"$tmp/debugfs.cmds"
	debugfs -w -f "$tmp/debugfs.cmds" "$tmp/root.img" >/dev/null 2>"$tmp/debugfs.err" ||
		die "debugfs failed: $(head -n 5 "$tmp/debugfs.err")"
fi

# --- boot partition -----------------------------------------------------------------------------
# Kernel command line: cryptomgr.notests skips the crypto self-tests (~0.5 s under TCG). Not
# acpi=noirq (or pci=noacpi): it would save ~0.2 s per PCI device on the "pc" machine (ACPI PCI
# interrupt links are slow there; "q35" does not need them) but breaks the ACPI power button on q35.
log "boot partition: SYSLINUX, vmlinuz-$kver, initramfs ($(du -k "$tmp/initrd.img" | cut -f1) KiB)"
cat >"$tmp/syslinux.cfg" <<'EOF'
DEFAULT sloop
PROMPT 0
TIMEOUT 0
LABEL sloop
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0 quiet cryptomgr.notests
EOF
truncate -s "${boot_mib}M" "$tmp/boot.img"
# -h: the partition starts at sector 2048 (the boot sector needs it to find ldlinux.sys).
mkfs.vfat -F 16 -n SLOOPBOOT -i 5100b007 -h 2048 "$tmp/boot.img" >/dev/null ||
	die "mkfs.vfat failed"
syslinux --install "$tmp/boot.img" || die "syslinux --install failed"
mcopy -i "$tmp/boot.img" "$kernel/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$tmp/boot.img" "$tmp/initrd.img" ::/initrd.img
mcopy -i "$tmp/boot.img" "$tmp/syslinux.cfg" ::/syslinux.cfg

# --- disk ---------------------------------------------------------------------------------------
log "disk: MBR, boot ${boot_mib} MiB, root ${root_mib} MiB, qcow2"
truncate -s "${disk_mib}M" "$tmp/disk.img"
sfdisk -q --no-reread --no-tell-kernel "$tmp/disk.img" >/dev/null <<EOF || die "sfdisk failed"
label: dos
label-id: 0x5100b007
start=2048, size=$((boot_mib * 2048)), type=e, bootable
start=$(((1 + boot_mib) * 2048)), type=83
EOF
dd if="$pkg/usr/lib/syslinux/mbr/mbr.bin" of="$tmp/disk.img" bs=440 count=1 conv=notrunc status=none
dd if="$tmp/boot.img" of="$tmp/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$tmp/root.img" of="$tmp/disk.img" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none

partial=$outdir/.sloop-test.qcow2.partial.$$
qemu-img convert -f raw -O qcow2 "$tmp/disk.img" "$partial" || die "qemu-img convert failed"

# --- ISO variant --------------------------------------------------------------------------------
# The same kernel and initramfs (live mode: sloop.live) and the same root tree, as the plain Rock
# Ridge directory /root-fs (files owned by 0:0, modes kept): the initramfs mounts it as the lower
# layer of an overlay root whose upper layer is on the scratch disk. /tools: e2fsprogs' mke2fs with
# its libraries and dynamic loader, with which the initramfs makes the blank scratch disk a
# journalled ext4 in a fraction of a second (lazy inode table and journal initialisation; busybox
# mke2fs only makes ext2, without a journal, and writes every inode table).
log "ISO: ISOLINUX, vmlinuz-$kver, initramfs, /root-fs ($(du -sk "$root" | cut -f1) KiB)"
isodir=$tmp/iso
mkdir -p "$isodir/isolinux"
cp "$pkg/usr/lib/ISOLINUX/isolinux.bin" "$pkg/usr/lib/syslinux/modules/bios/ldlinux.c32" "$isodir/isolinux/"
cp "$kernel/boot/vmlinuz-$kver" "$isodir/vmlinuz"
cp "$tmp/initrd.img" "$isodir/initrd.img"
mkdir -p "$isodir/tools"
cp -L "$ldso" "$mke2fs" "$isodir/tools/"
"$ldso" --inhibit-cache --library-path "$pkg/lib/$arch:$pkg/usr/lib/$arch" --list "$mke2fs" >"$tmp/ldd" ||
	die "cannot list the libraries of mke2fs: $(cat "$tmp/ldd")"
while read -r soname arrow path _; do
	[ "$arrow" = "=>" ] || continue
	case "$soname" in */*) continue ;; esac
	case "$path" in
	"$pkg"/*) cp -L "$path" "$isodir/tools/$soname" ;;
	*) die "mke2fs needs $soname, which no downloaded package provides (found: $path)" ;;
	esac
done <"$tmp/ldd"
sed 's/^\(  APPEND .*\)$/\1 sloop.live/' "$tmp/syslinux.cfg" >"$isodir/isolinux/isolinux.cfg"
grep -q '^  APPEND .* sloop\.live$' "$isodir/isolinux/isolinux.cfg" || die "cannot make isolinux.cfg"
# Reproducible where cheap: fixed file times (the root tree is no longer needed for the disk).
epoch=${SOURCE_DATE_EPOCH:-1704067200} # 2024-01-01
find "$isodir" "$root" -exec touch -h -d "@$epoch" {} +
partial_iso=$outdir/.sloop-test.iso.partial.$$
# -D: no deep-directory relocation (the module tree is deeper than ISO9660's 8 levels; Linux reads
# Rock Ridge either way).
genisoimage -quiet -input-charset utf-8 -o "$partial_iso" -V SLOOP_LIVE -A "Sloop test image ${hash:0:12}" \
	-R -uid 0 -gid 0 -D -graft-points \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
	"$isodir" "root-fs/=$root" || die "genisoimage failed"

rm -f "$stamp"
mv -f "$partial" "$image"
partial=
mv -f "$partial_iso" "$iso"
partial_iso=
echo "$hash" >"$stamp.new"
mv -f "$stamp.new" "$stamp"

log "built in $((SECONDS - start)) s: $image ($(du -k "$image" | cut -f1) KiB on disk, ${disk_mib} MiB virtual; kernel $kver)"
log "ISO variant: $iso ($(du -k "$iso" | cut -f1) KiB)"
echo "$image"
