#!/bin/bash
# sloop-vm-job.sh: runs one Sloop machine (a virtual machine) as a grid job.
#
# Sloop uploads this script with every job; the site runs it as the job's executable, as the
# job's mapped (unprivileged) user, in the job's session directory. It needs no root and no
# libvirt: it starts QEMU itself, and QEMU runs as the same user.
#
# Files it expects in the session directory (fixed names; it takes no paths from anyone):
#   base           the certified base image, staged by the CE; may be a symlink into the CE
#                  cache. Opened read-only, never written. A qcow2 disk, or what --base-format,
#                  --base-unpack and --base-window say: the disk Sloop's machine stands on is
#                  read from it exactly as Sloop read it (a compressed file is unpacked into
#                  base.disk here; an OVA's disk is read where it lies in the archive).
#                  With --base-format iso it is an ISO 9660 image the machine boots from as a
#                  read-only CD (µCernVM style).
#   overlay.qcow2  the user's changes to the base (qcow2, regular file). Opened read-only.
#                  With --base-format iso: the machine's own disk (no backing file), which its
#                  guest formatted and keeps its changes on.
#   seed.iso       the cloud-init seed of this run (raw ISO, regular file). Opened read-only.
#   analysis/      the uploaded inputs; shared into the machine (9p tag "work"); the machine
#                  writes its outputs to analysis/output/.
#   sloop-proxy-renewal.pem  (optional, may arrive while the job runs) a renewed proxy of the
#                  user's, uploaded by Sloop; placed in the machine instead of the job's own.
#   sloop-relay.conf, sloop-relay-known-hosts, sloop-relay.key  (--relay only) the user's SSH
#                  relay (user=, host=, port= lines), its host key, and a key made for this run
#                  that the relay accepts for one reverse forward and nothing else.
#
# Arguments (written by Sloop into the job description):
#   --base-sha512 HEX --overlay-sha512 HEX --memory MIB --cpus N --walltime SECONDS
#   [--interactive] [--keep-changes] [--relay]
#   [--base-format qcow2|raw|vmdk|vdi|vpc|vhdx|iso] [--base-unpack gzip|bzip2|xz|zstd]
#   [--base-window OFFSET:LENGTH]   (the disk's bytes inside the base, for an OVA)
#
# Environment (set by the site's ENV/SLOOP-VM runtime environment, all optional):
#   SLOOP_QEMU, SLOOP_QEMU_IMG  the QEMU programs (else found on PATH)
#   SLOOP_ACCEL                 auto (default) | kvm | tcg
#   SLOOP_SSH_BIND              where an interactive machine's SSH listens on the node: 127.0.0.1
#                               (default: this node only) or an IPv4 address, 0.0.0.0 for all
#   X509_USER_PROXY, X509_CERT_DIR, X509_VOMS_DIR, X509_VOMSES: passed into the machine
#                               (read-only share, see step 5)
#
# What it leaves: sloop-status (key=value lines; proxy_until= the end of the proxy the machine
# has, in seconds since 1970, where openssl is on the node), console.log (the machine's serial console),
# qemu.log, monitor.log, changes.qcow2 (--keep-changes), and whatever the machine wrote into
# analysis/, relay.log (--relay). Lines on stdout start with "sloop-job: ", except one: an
# interactive run publishes where its machine's SSH answers, once it answers, as a line
# "SLOOP-ENDPOINT {json}" on stdout and as the file sloop-endpoint.json (also in
# $RUNTIME_FRONTEND_JOB_DIR when the job runs in a node's scratch), removed when the machine
# stops. The JSON: {"v":1,"host":H,"port":P} and, when ssh-keyscan is on the node,
# "hostKey":"SHA256:..." (the key the machine presents; Sloop checks it against the one it made
# for the run). With --relay the job dials out to the relay (ssh -N -R 0:...) and publishes only
# the port the relay allocated on its loopback, with "relayed":true; nothing listens here then
# but on this node's loopback.
#
# Exit status: the command's own status (batch mode, as the machine reported it);
#   64 bad arguments, 65 an image failed a check, 69 QEMU missing or unsuitable, 70 the machine
#   stopped before the command finished, 71 a local file could not be made, 78 bad site setting,
#   124 the time limit was reached, 143 the job was cancelled.

set -u
umask 077
export LC_ALL=C

# ---------------------------------------------------------------------------------------------
# Output and status

phase=starting mode=batch accel='' share_model='' port='' reason='' exit_code='' deadline='' proxy_until=''

say() { printf 'sloop-job: %s %s\n' "$(date +%T)" "$*"; }

# Rewrites sloop-status atomically (a reader never sees half a file).
write_status() {
	{
		echo "phase=$phase"
		echo "mode=$mode"
		[ -n "$accel" ] && echo "accel=$accel"
		[ -n "$share_model" ] && echo "share=$share_model"
		[ -n "$deadline" ] && echo "deadline=$deadline"
		[ -n "$port" ] && echo "port=$port"
		[ -n "$proxy_until" ] && echo "proxy_until=$proxy_until"
		[ -n "$reason" ] && echo "reason=$reason"
		[ -n "$exit_code" ] && echo "exit=$exit_code"
		echo "updated=$(date +%s)"
	} >.sloop-status.new 2>/dev/null && mv -f .sloop-status.new sloop-status 2>/dev/null
}

set_phase() {
	phase=$1
	write_status
	say "phase=$phase${accel:+ accel=$accel}"
}

# fail CODE REASON: records the reason, ends the job (the EXIT trap stops QEMU and cleans up).
fail() {
	exit_code=$1
	shift
	reason=$(printf '%s' "$*" | tr '\n' ' ')
	say "error: $reason"
	phase=failed
	write_status
	exit "$exit_code"
}

usage() {
	fail 64 "$* (usage: sloop-vm-job.sh --base-sha512 HEX --overlay-sha512 HEX --memory MIB --cpus N --walltime SECONDS [--interactive] [--keep-changes] [--relay] [--base-format F] [--base-unpack TOOL] [--base-window OFFSET:LENGTH])"
}

# ---------------------------------------------------------------------------------------------
# Arguments

base_sum='' overlay_sum='' memory='' cpus='' walltime='' interactive=0 keep=0 relay=0
base_format=qcow2 base_unpack='' base_window=
while [ $# -gt 0 ]; do
	case $1 in
	--base-sha512 | --overlay-sha512 | --memory | --cpus | --walltime | --base-format | --base-unpack | --base-window)
		[ $# -ge 2 ] || usage "$1 needs a value"
		case $1 in
		--base-format) base_format=$2 ;;
		--base-unpack) base_unpack=$2 ;;
		--base-window) base_window=$2 ;;
		--base-sha512) base_sum=$2 ;;
		--overlay-sha512) overlay_sum=$2 ;;
		--memory) memory=$2 ;;
		--cpus) cpus=$2 ;;
		--walltime) walltime=$2 ;;
		esac
		shift 2
		;;
	--interactive) interactive=1 mode=interactive && shift ;;
	--keep-changes) keep=1 && shift ;;
	--relay) relay=1 && shift ;;
	*) usage "unknown argument '$(printf '%.40s' "$1" | tr -c 'A-Za-z0-9_.=-' '?')'" ;;
	esac
done

is_sha512() { [ ${#1} -eq 128 ] && case $1 in *[!0-9a-f]*) false ;; esac; }
is_number() { [ -n "$1" ] && [ ${#1} -le 9 ] && case $1 in *[!0-9]*) false ;; esac; }
is_bytes() { [ -n "$1" ] && [ ${#1} -le 15 ] && case $1 in *[!0-9]*) false ;; esac; }

is_sha512 "$base_sum" || usage "--base-sha512 must be 128 lower-case hex digits"
is_sha512 "$overlay_sum" || usage "--overlay-sha512 must be 128 lower-case hex digits"
{ is_number "$memory" && [ "$memory" -ge 128 ]; } || usage "--memory must be a number of MiB, at least 128"
{ is_number "$cpus" && [ "$cpus" -ge 1 ] && [ "$cpus" -le 64 ]; } || usage "--cpus must be 1 to 64"
is_number "$walltime" || usage "--walltime must be a number of seconds"
[ "$relay" = 1 ] && [ "$interactive" = 0 ] && usage "--relay is for --interactive runs"
case $base_format in qcow2 | raw | vmdk | vdi | vpc | vhdx | iso) ;; *) usage "--base-format must be qcow2, raw, vmdk, vdi, vpc, vhdx or iso" ;; esac
[ "$base_format" = iso ] && [ -n "$base_window" ] && usage "--base-window is not for an ISO image"
case $base_unpack in '' | gzip | bzip2 | xz | zstd) ;; *) usage "--base-unpack must be gzip, bzip2, xz or zstd" ;; esac
base_offset='' base_length=''
if [ -n "$base_window" ]; then
	base_offset=${base_window%%:*} base_length=${base_window#*:}
	{ is_bytes "$base_offset" && is_bytes "$base_length"; } || usage "--base-window must be OFFSET:LENGTH in bytes"
fi

# The machine is shut down cleanly this long before the batch system's limit: 10 % of the
# wall time, at least 60 s (a clean power-off may take that long), at most 10 min.
margin=$((walltime / 10))
[ $margin -lt 60 ] && margin=60
[ $margin -gt 600 ] && margin=600
[ $((walltime - margin)) -ge 30 ] || usage "--walltime must be at least $((margin + 30)) s"
started=$(date +%s)
deadline=$((started + walltime - margin))

# ---------------------------------------------------------------------------------------------
# Clean-up: whatever happens, no QEMU of this job outlives this script.

qemu_pid='' reader_pid='' relay_pid='' stopped_cleanly=0

qemu_running() { [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; }

# Stops QEMU at once: SIGTERM (QEMU flushes its disks and exits), SIGKILL after 3 s.
hard_stop() {
	qemu_running || return 0
	kill -TERM "$qemu_pid" 2>/dev/null
	for _ in 1 2 3 4 5 6; do
		qemu_running || return 0
		sleep 0.5
	done
	kill -KILL "$qemu_pid" 2>/dev/null
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	hard_stop
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null
	rm -f sloop-relay.key
	[ -n "$reader_pid" ] && kill "$reader_pid" 2>/dev/null
	exec 3>&- 2>/dev/null
	rm -f monitor.in monitor.out .sloop-status.new sloop-endpoint.json .sloop-endpoint.new
	[ -n "${frontend_endpoint:-}" ] && rm -f "$frontend_endpoint" 2>/dev/null
	rm -rf grid
	if [ "$keep" = 1 ] && [ "$stopped_cleanly" = 1 ] && [ -f run.qcow2 ]; then
		mv -f run.qcow2 changes.qcow2 && say "kept this run's changes in changes.qcow2"
	fi
	rm -f run.qcow2
}
trap cleanup EXIT

# A cancelled job (batch system signal) stops the machine at once.
# shellcheck disable=SC2317 # called by the traps below
on_signal() {
	fail 143 "stopped by signal $1 (job cancelled?)"
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

# ---------------------------------------------------------------------------------------------
# 1. Files and tools

set_phase verifying
session=$PWD

for f in overlay.qcow2 seed.iso; do
	[ -L "$f" ] && fail 65 "$f must be a regular file, not a symlink"
	[ -f "$f" ] || fail 65 "$f is missing from the session directory"
done
{ [ -f base ] && [ -r base ]; } || fail 65 "the base image (file 'base') is missing or unreadable: was it staged?"
[ -L analysis ] && fail 65 "analysis must be a directory, not a symlink"
[ -e analysis ] || mkdir analysis || fail 71 "cannot make analysis/"
[ -d analysis ] || fail 65 "analysis is not a directory"
# Leftovers of an earlier attempt of this job (ARC can restart jobs), and a stale exit status
# that may have come with the inputs: only this run's machine may write one.
rm -rf base.disk run.qcow2 changes.qcow2 monitor.in monitor.out grid sloop-endpoint.json analysis/.sloop/exit-status

qemu=${SLOOP_QEMU:-$(command -v qemu-system-x86_64)}
qemu_img=${SLOOP_QEMU_IMG:-$(command -v qemu-img)}
{ [ -n "$qemu" ] && [ -x "$qemu" ]; } || fail 69 "QEMU (qemu-system-x86_64) not found on this node; the site must install it or set SLOOP_QEMU in ENV/SLOOP-VM"
{ [ -n "$qemu_img" ] && [ -x "$qemu_img" ]; } || fail 69 "qemu-img not found on this node; the site must install it or set SLOOP_QEMU_IMG"
for t in sha512sum timeout mkfifo cmp head tail tr; do
	command -v "$t" >/dev/null || fail 69 "the tool '$t' is missing on this node"
done
relay_user='' relay_host='' relay_sshport=''
if [ "$relay" = 1 ]; then
	command -v ssh >/dev/null || fail 69 "the ssh client is missing on this node: the run's relay cannot be reached"
	for f in sloop-relay.conf sloop-relay-known-hosts sloop-relay.key; do
		{ [ -f "$f" ] && [ ! -L "$f" ]; } || fail 65 "$f is missing (or not a regular file): the relay cannot be used"
	done
	relay_user=$(sed -n 's/^user=\([A-Za-z0-9._][A-Za-z0-9._-]*\)$/\1/p' sloop-relay.conf | head -n 1)
	relay_host=$(sed -n 's/^host=\([A-Za-z0-9.:][A-Za-z0-9.:-]*\)$/\1/p' sloop-relay.conf | head -n 1)
	relay_sshport=$(sed -n 's/^port=\([0-9][0-9]*\)$/\1/p' sloop-relay.conf | head -n 1)
	{ [ -n "$relay_user" ] && [ -n "$relay_host" ] && is_number "$relay_sshport"; } ||
		fail 65 "sloop-relay.conf does not name a relay (user=, host=, port= lines)"
	chmod 600 sloop-relay.key || fail 71 "cannot make sloop-relay.key private"
fi
"$qemu" -machine help 2>/dev/null | grep -q '^pc ' || fail 69 "$qemu has no 'pc' machine type"
"$qemu" -device help 2>/dev/null | grep -q '"virtio-9p-pci"' || fail 69 "$qemu has no 9p support (virtio-9p-pci)"
"$qemu" -netdev help 2>/dev/null | grep -qx 'user' || fail 69 "$qemu has no user-mode networking (-netdev user)"
if [ "$base_format" = iso ]; then
	"$qemu" -device help 2>/dev/null | grep -q '"ide-cd"' || fail 69 "$qemu has no IDE CD-ROM (ide-cd): the machine boots from an ISO image"
fi

# qemu-img runs under a time limit and, where prlimit exists, a memory limit: the overlay is the
# user's file and is read before it is trusted.
limit=
if command -v prlimit >/dev/null; then limit="prlimit --as=$((512 * 1024 * 1024))"; fi
image_info() {
	# shellcheck disable=SC2086 # $limit is empty or a command and its argument
	$limit timeout 30 "$qemu_img" info --output=json -f qcow2 -U "$1" 2>&1
}

# ---------------------------------------------------------------------------------------------
# 2. Checksums, before anything boots

say "checking the SHA-512 of the base image and the overlay"
got=$(sha512sum <base | cut -d' ' -f1) || fail 65 "cannot read the base image"
# (The status line names the first 16 hex digits; this log names all of them.)
if [ "$got" != "$base_sum" ]; then
	say "base image SHA-512: expected $base_sum, got $got"
	fail 65 "the base image's SHA-512 differs from the one the bundle names (expected ${base_sum:0:16}..., got ${got:0:16}...): the file at its URL changed"
fi
got=$(sha512sum <overlay.qcow2 | cut -d' ' -f1) || fail 65 "cannot read overlay.qcow2"
if [ "$got" != "$overlay_sum" ]; then
	say "overlay SHA-512: expected $overlay_sum, got $got"
	fail 65 "overlay.qcow2's SHA-512 differs from the one the bundle names (expected ${overlay_sum:0:16}..., got ${got:0:16}...): the upload is damaged"
fi

# ---------------------------------------------------------------------------------------------
# 3. Image checks (the JSON of qemu-img info; top-level keys are indented by 4 spaces)

info=$(image_info overlay.qcow2) || fail 65 "overlay.qcow2 is not a usable qcow2 image: $info"
overlay_info=$info
printf '%s\n' "$info" | grep -q '^    "format": "qcow2",' || fail 65 "overlay.qcow2 is not a qcow2 image"
printf '%s\n' "$info" | grep -q '"data-file"' && fail 65 "overlay.qcow2 names an external data file: refused"
printf '%s\n' "$info" | grep -q '"encrypted": true' && fail 65 "overlay.qcow2 is encrypted: refused"
printf '%s\n' "$info" | grep -q '"corrupt": true' && fail 65 "overlay.qcow2 is marked corrupt: refused"
size=$(printf '%s\n' "$info" | sed -n 's/^    "virtual-size": \([0-9][0-9]*\),*$/\1/p')
[ -n "$size" ] || fail 65 "cannot read the virtual size of overlay.qcow2"

# The base's disk: the certified file itself, or unpacked from it (a compressed image); inside
# it at a window (an OVA's disk member). QEMU reads it with the format named, never probed.
disk=base
if [ -n "$base_unpack" ]; then
	command -v "$base_unpack" >/dev/null || fail 69 "the tool '$base_unpack' is missing on this node: the base image is $base_unpack-compressed"
	say "unpacking the base image ($base_unpack)"
	"$base_unpack" -dc <base >base.disk || fail 65 "the base image does not unpack with $base_unpack"
	disk=base.disk
fi
if [ "$base_format" = iso ]; then
	# An ISO is a raw image for QEMU; its first volume descriptor (at 32 KiB) says CD001.
	[ "$(tail -c +32770 "$disk" 2>/dev/null | head -c 5 | tr -d '\000')" = CD001 ] || fail 65 "the base image is not an ISO 9660 image"
	# shellcheck disable=SC2086
	info=$($limit timeout 30 "$qemu_img" info --output=json -f raw -U "$disk" 2>&1) || fail 65 "the base image is not a readable ISO image: $info"
	base_nodes="-blockdev driver=file,filename=$disk,node-name=base-file,read-only=on -blockdev driver=raw,file=base-file,node-name=base,read-only=on"
elif [ -n "$base_window" ]; then
	source="json:{\"driver\":\"$base_format\",\"file\":{\"driver\":\"raw\",\"offset\":$base_offset,\"size\":$base_length,\"file\":{\"driver\":\"file\",\"filename\":\"$disk\"}}}"
	# shellcheck disable=SC2086 # $limit is empty or a command and its argument
	info=$($limit timeout 30 "$qemu_img" info --output=json -U "$source" 2>&1) || fail 65 "the base image's disk is not a usable $base_format image: $info"
	base_nodes="-blockdev driver=file,filename=$disk,node-name=base-file,read-only=on -blockdev driver=raw,file=base-file,offset=$base_offset,size=$base_length,node-name=base-window,read-only=on -blockdev driver=$base_format,file=base-window,node-name=base,read-only=on"
else
	# shellcheck disable=SC2086
	info=$($limit timeout 30 "$qemu_img" info --output=json -f "$base_format" -U "$disk" 2>&1) || fail 65 "the base image is not a usable $base_format image: $info"
	base_nodes="-blockdev driver=file,filename=$disk,node-name=base-file,read-only=on -blockdev driver=$base_format,file=base-file,node-name=base,read-only=on"
fi
# (An ISO was read as raw above: its check is the CD001 signature.)
qemu_format=$base_format
[ "$base_format" = iso ] && qemu_format=raw
printf '%s\n' "$info" | grep -q "^    \"format\": \"$qemu_format\"," || fail 65 "the base image is not a $base_format image"
printf '%s\n' "$info" | grep -q '"backing-filename"' && fail 65 "the base image has a backing file of its own: refused"
printf '%s\n' "$info" | grep -q '"data-file"' && fail 65 "the base image names an external data file: refused"
printf '%s\n' "$info" | grep -q '"encrypted": true' && fail 65 "the base image is encrypted: refused"
if [ "$base_format" = vmdk ]; then
	printf '%s\n' "$info" | grep -Eq '"create-type": "(monolithicSparse|streamOptimized)"' ||
		fail 65 "the base image is a VMDK that keeps its data in other files: refused"
fi

# ---------------------------------------------------------------------------------------------
# 4. This run's disk: run.qcow2 holds only this run's writes. Its header names no backing file;
#    the chain base <- overlay.qcow2 <- run.qcow2 is pinned on QEMU's command line below, so no
#    backing name written in any header is ever followed. An ISO base is not in the chain: it is
#    the CD the machine boots from, and overlay.qcow2 stands alone (its node's backing is null).

if [ "$base_format" = iso ]; then
	say "the base is an ISO image: the machine boots from it as a read-only CD"
	# JSON: only that form says "no backing file" (null) rather than naming a node.
	overlay_node='{"driver":"qcow2","file":"ovl-file","backing":null,"node-name":"ovl","read-only":true}'
	printf '%s\n' "$overlay_info" | grep -q '"backing-filename"' &&
		fail 65 "overlay.qcow2 names a backing file, but a machine booted from an ISO has a disk of its own: refused"
	boot_devices="-device ide-cd,drive=base,bootindex=0 -device virtio-blk-pci,drive=run,bootindex=1"
else
	overlay_node=driver=qcow2,file=ovl-file,backing=base,node-name=ovl,read-only=on
	boot_devices="-device virtio-blk-pci,drive=run"
fi

"$qemu_img" create -q -f qcow2 run.qcow2 "$size" >/dev/null || fail 71 "cannot create run.qcow2"

# ---------------------------------------------------------------------------------------------
# 5. The user's proxy, CA certificates, vomsdir and vomses, shared read-only into the machine (tag
#    sloop-grid). The proxy copy is refreshed while the machine runs (a renewed delegation).

mkdir -m 0700 grid || fail 71 "cannot make grid/"
proxy_src=
if [ -n "${X509_USER_PROXY:-}" ] && [ -r "$X509_USER_PROXY" ]; then
	proxy_src=$X509_USER_PROXY
elif [ -r sloop-proxy.pem ]; then
	proxy_src=$session/sloop-proxy.pem
fi

# Copies the proxy if it changed, atomically (temporary name, then rename). Never prints it.
# A renewal Sloop hands the running job (session file sloop-proxy-renewal.pem, a regular file)
# wins over the job's own proxy, which ARC does not renew in a running job.
refresh_proxy() {
	local src=$proxy_src
	if [ -f sloop-proxy-renewal.pem ] && [ ! -L sloop-proxy-renewal.pem ] && [ -s sloop-proxy-renewal.pem ]; then
		src=$session/sloop-proxy-renewal.pem
	fi
	[ -n "$src" ] || return 0
	cmp -s "$src" grid/x509up 2>/dev/null && return 0
	local what="copied for the machine"
	[ -f grid/x509up ] && what="changed (renewed?), copied again"
	if cp "$src" grid/.x509up.new 2>/dev/null && mv -f grid/.x509up.new grid/x509up; then
		say "the user's proxy: $what"
		# Its end (seconds since 1970), for `sloop run info`, where openssl and GNU date are.
		local end
		end=$(openssl x509 -noout -enddate -in grid/x509up 2>/dev/null | sed -n 's/^notAfter=//p')
		proxy_until=$(date -d "$end" +%s 2>/dev/null) || proxy_until=''
		case $proxy_until in '' | *[!0-9]*) proxy_until='' ;; esac
		write_status
	fi
}
refresh_proxy
[ -n "$proxy_src" ] || [ -f grid/x509up ] || say "no proxy found (X509_USER_PROXY, sloop-proxy.pem): the machine gets none"
certs=${X509_CERT_DIR:-/etc/grid-security/certificates}
[ -d "$certs" ] && { cp -RL "$certs" grid/certificates 2>/dev/null || say "some CA certificates could not be copied"; }
vomsdir=${X509_VOMS_DIR:-/etc/grid-security/vomsdir}
[ -d "$vomsdir" ] && { cp -RL "$vomsdir" grid/vomsdir 2>/dev/null || say "some of vomsdir could not be copied"; }
vomses=${X509_VOMSES:-/etc/vomses}
[ -e "$vomses" ] && { cp -RL "$vomses" grid/vomses 2>/dev/null || say "vomses could not be copied"; }

# ---------------------------------------------------------------------------------------------
# 6. QEMU

# The work share keeps the guest's owners and modes in extended attributes (mapped-xattr);
# where the file system has no user xattrs, it falls back to security_model=none.
xattr_probe() {
	: >analysis/.sloop-xattr-probe || return 1
	if command -v setfattr >/dev/null; then
		setfattr -n user.sloop.probe -v 1 analysis/.sloop-xattr-probe 2>/dev/null
	elif command -v python3 >/dev/null; then
		python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.sloop.probe", b"1")' analysis/.sloop-xattr-probe 2>/dev/null
	else
		return 2
	fi
}
xattr_probe
case $? in
0) share_model=mapped-xattr ;;
2) share_model=mapped-xattr && say "cannot check for extended attributes (no setfattr or python3); assuming they work" ;;
*) share_model=none && say "this file system has no user extended attributes: 9p share without owner mapping (security_model=none)" ;;
esac
rm -f analysis/.sloop-xattr-probe

# Acceleration: KVM when this user may open /dev/kvm (site: add the mapped users to group kvm).
case ${SLOOP_ACCEL:-auto} in
auto)
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		accel_args="-accel kvm -accel tcg,tb-size=256 -cpu max"
	else
		accel_args="-accel tcg,tb-size=256"
	fi
	;;
kvm) accel_args="-accel kvm -cpu max" ;;
tcg) accel_args="-accel tcg,tb-size=256" ;;
*) fail 78 "SLOOP_ACCEL must be auto, kvm or tcg (ENV/SLOOP-VM parameter)" ;;
esac

# The QEMU monitor on a FIFO pair: commands go into monitor.in (held open here, read-write, so
# a write never blocks), answers come out of monitor.out and are copied to monitor.log.
mkfifo monitor.in monitor.out || fail 71 "cannot make the monitor FIFOs"
exec 3<>monitor.in
mon() { printf '%s\n' "$*" >&3; }

# QEMU and the monitor reader die with this script even if it is SIGKILLed (parent death signal).
pdeath=
if command -v setpriv >/dev/null && setpriv --pdeathsig KILL true 2>/dev/null; then pdeath="setpriv --pdeathsig KILL"; fi
: >monitor.log
# shellcheck disable=SC2086
$pdeath cat 0<>monitor.out >>monitor.log &
reader_pid=$!

# start_qemu [NETDEV-EXTRA]: starts QEMU in the background; sets qemu_pid.
start_qemu() {
	# shellcheck disable=SC2086 # $pdeath, $accel_args, $base_nodes and $boot_devices are lists of words
	$pdeath "$qemu" -name sloop-job -machine pc $accel_args \
		-m "$memory" -smp "$cpus" -nodefaults -no-user-config -display none -no-reboot \
		$base_nodes \
		-blockdev driver=file,filename=overlay.qcow2,node-name=ovl-file,read-only=on \
		-blockdev "$overlay_node" \
		-blockdev driver=file,filename=run.qcow2,node-name=run-file,discard=unmap \
		-blockdev driver=qcow2,file=run-file,backing=ovl,node-name=run,discard=unmap \
		$boot_devices \
		-blockdev driver=file,filename=seed.iso,node-name=seed-file,read-only=on \
		-blockdev driver=raw,file=seed-file,node-name=seed,read-only=on \
		-device virtio-blk-pci,drive=seed \
		-virtfs "local,path=analysis,mount_tag=work,security_model=$share_model" \
		-virtfs local,path=grid,mount_tag=sloop-grid,security_model=none,readonly=on \
		-netdev "user,id=net0$1" -device virtio-net-pci,netdev=net0,romfile= \
		-object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
		-chardev file,id=serial0,path=console.log -serial chardev:serial0 \
		-chardev pipe,id=mon,path=monitor -mon chardev=mon,mode=readline \
		>qemu.log 2>&1 &
	qemu_pid=$!
	# Up once the monitor has greeted us; or QEMU has already exited (bad option, busy port).
	for _ in $(seq 1 60); do
		grep -q 'monitor - type' monitor.log && return 0
		qemu_running || return 1
		sleep 0.5
	done
	qemu_running
}

# Interactive: the machine's SSH is forwarded to a free port of $ssh_bind on this node.
ssh_bind=${SLOOP_SSH_BIND:-127.0.0.1}
case $ssh_bind in
'' | *[!0-9.]* | *..* | .* | *.) fail 78 "SLOOP_SSH_BIND must be an IPv4 address such as 127.0.0.1 or 0.0.0.0 (ENV/SLOOP-VM parameter)" ;;
esac
probe_addr=$ssh_bind ssh_host=$ssh_bind
[ "$ssh_bind" = 0.0.0.0 ] && probe_addr=127.0.0.1 ssh_host=$(hostname -f 2>/dev/null || hostname)
# A host name goes into JSON: letters, digits, dots and dashes only.
ssh_host=$(printf '%s' "$ssh_host" | tr -cd 'A-Za-z0-9.-')

# True once the machine's SSH server sends its banner (QEMU accepts the connection at once,
# whether or not anything listens in the machine yet).
ssh_answers() {
	local line
	# shellcheck disable=SC2016 # expanded by the inner bash
	line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 4 l <&3 && printf %s "$l"' _ "$probe_addr" "$port" 2>/dev/null) || return 1
	case $line in SSH-2.0-*) return 0 ;; *) return 1 ;; esac
}

# The fingerprint of the machine's host key, when ssh-keyscan can read it (else empty).
fp=''
read_fingerprint() {
	command -v ssh-keyscan >/dev/null && command -v ssh-keygen >/dev/null || return 0
	fp=$(timeout 15 ssh-keyscan -T 5 -t ed25519 -p "$port" "$probe_addr" 2>/dev/null | ssh-keygen -lf - 2>/dev/null | awk 'NR == 1 { print $2 }')
	fp=$(printf '%s' "$fp" | tr -cd 'A-Za-z0-9+/=:')
	case $fp in SHA256:?*) ;; *) fp='' ;; esac
}

# publish_endpoint HOST PORT RELAYED: publishes where the machine's SSH answers (see the header).
published=0 frontend_endpoint=''
publish_endpoint() {
	local json extra=''
	[ "$3" = 1 ] && extra=',"relayed":true'
	json="{\"v\":1,\"host\":\"$1\",\"port\":$2${fp:+,\"hostKey\":\"$fp\"}$extra}"
	echo "SLOOP-ENDPOINT $json"
	printf '%s\n' "$json" >.sloop-endpoint.new && mv -f .sloop-endpoint.new sloop-endpoint.json
	local frontend=${RUNTIME_FRONTEND_JOB_DIR:-}
	if [ -n "$frontend" ] && [ "$frontend" != "$session" ] && [ -d "$frontend" ]; then
		frontend_endpoint=$frontend/sloop-endpoint.json
		printf '%s\n' "$json" >"$frontend_endpoint" 2>/dev/null || frontend_endpoint=''
	fi
	published=1
	if [ "$3" = 1 ]; then
		say "the machine's SSH answers through the relay, at its port $2${fp:+ (host key $fp)}"
	else
		say "the machine's SSH answers at $1:$2${fp:+ (host key $fp)}"
	fi
}

# The relay: ssh dials out and holds a reverse forward from a port the relay picks (on its
# loopback) to the machine's SSH here; the relay's host key must be the one Sloop saw. The
# allocated port is read from ssh's "Allocated port N for remote forward" line.
relay_started=0 relay_port=''
start_relay() {
	relay_port='' relay_started=$(date +%s)
	: >relay.log
	# shellcheck disable=SC2086 # $pdeath is a command and its arguments, or nothing
	$pdeath ssh -F /dev/null -i "$session/sloop-relay.key" -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$session/sloop-relay-known-hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o ExitOnForwardFailure=yes \
		-o ServerAliveInterval=30 -o ServerAliveCountMax=3 -o ConnectTimeout=20 \
		-N -R "0:$probe_addr:$port" -p "$relay_sshport" -l "$relay_user" "$relay_host" </dev/null 2>>relay.log &
	relay_pid=$!
	say "dialling the relay $relay_user@$relay_host:$relay_sshport"
}
relay_running() { [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; }

# Called every 2 s once the machine answers: keeps the relay's forward up and published.
tend_relay() {
	if ! relay_running; then
		if [ -n "$relay_pid" ]; then
			say "the relay connection ended: $(grep -v '^Allocated port' relay.log | tail -n 1 | tr -cd '[:print:]')"
			relay_pid=''
			rm -f sloop-endpoint.json
		fi
		# A refused or lost relay is dialled again, every 30 s at most.
		[ $(($(date +%s) - relay_started)) -ge 30 ] && start_relay
		return 0
	fi
	[ -n "$relay_port" ] && return 0
	relay_port=$(sed -n 's/^Allocated port \([0-9][0-9]*\) for remote forward.*/\1/p' relay.log | tail -n 1)
	[ -n "$relay_port" ] && publish_endpoint 127.0.0.1 "$relay_port" 1
}

set_phase booting
if [ "$interactive" = 1 ]; then
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 40000))
		start_qemu ",hostfwd=tcp:$ssh_bind:$port-:22" && break
		grep -q 'host forwarding' qemu.log || break
		port=
	done
else
	start_qemu ""
fi
qemu_running || fail 69 "QEMU did not start: $(tail -n 3 qemu.log | tr '\n' ' ')"

# Which accelerator is really in use: ask QEMU.
mon info kvm
for _ in $(seq 1 20); do
	grep -aq 'kvm support: ' monitor.log && break
	sleep 0.5
done
case $(grep -ao 'kvm support: [a-z]*' monitor.log | tail -n 1) in
*enabled) accel=kvm ;;
*disabled) accel=tcg ;;
*) accel=unknown ;;
esac
set_phase running
say "QEMU $("$qemu" --version | head -n 1 | sed 's/^QEMU emulator version //'), $cpus vCPU, $memory MiB, accel $accel, work share $share_model; deadline $(date -d "@$deadline" 2>/dev/null || echo "$deadline")"

# ---------------------------------------------------------------------------------------------
# 7. Wait for the machine, checking every 2 s for: the deadline, the CPU-time limit, a cancelled
#    job (our parent process gone, or the session directory gone), a KVM failure, a new proxy.

# stat_of PID: the fields of /proc/PID/stat after the command name (no ps needed): index 1 is
# the parent process, 11 and 12 the CPU time used (user, system) in clock ticks.
stat_of() {
	local s
	read -r s <"/proc/$1/stat" 2>/dev/null || return 1
	read -r -a stat <<<"${s##*) }"
}
ppid_of() { stat_of "$1" && echo "${stat[1]}"; }
# The batch system's job script is our parent; with ARC's GNU time accounting there is a
# "time" process in between, and then the job script is our grandparent.
parent=$(ppid_of $$) grandparent=
[ "$(cat "/proc/$parent/comm" 2>/dev/null)" = time ] && grandparent=$(ppid_of "$parent")
parent_gone() {
	[ "$(ppid_of $$)" != "$parent" ] && return 0
	[ -n "$grandparent" ] && [ "$(ppid_of "$parent")" != "$grandparent" ]
}

# The fork LRMS limits CPU time per process (ulimit -t), not wall time: QEMU spends it up to
# (vCPUs + 1) times faster than the clock. Power off before QEMU would be killed by SIGXCPU.
cpu_limit=$(ulimit -t)
ticks=$(getconf CLK_TCK 2>/dev/null || echo 100)
qemu_cpu_seconds() { stat_of "$qemu_pid" && echo $(((stat[11] + stat[12]) / ticks)); }

cancel() { fail 143 "$1"; }

# With the fork LRMS the job runs on the CE itself, whose cancel kills only the job's first
# process; the CE then marks the job in its control folder (CANCELING, or already in finished/).
# Where that folder is readable (fork LRMS only; never on a batch node), a mark ends the job.
control=$(dirname "${X509_USER_PROXY:-/nonexistent/x}")
cancelled_at_ce() {
	local id=${GRID_GLOBAL_JOBID:-}
	[ -n "$id" ] || return 1
	[ -f "$control/finished/job.$id.status" ] && return 0
	[ "$(cat "$control/processing/job.$id.status" 2>/dev/null)" = CANCELING ]
}

powerdown_at=
power_down() {
	[ -n "$powerdown_at" ] && return 0
	reason=$1
	say "$reason: powering the machine off (ACPI), at most 60 s"
	powerdown_at=$(date +%s)
	set_phase stopping
	mon system_powerdown
}

tick=0
while qemu_running; do
	sleep 2 &
	wait $!
	tick=$((tick + 1))
	now=$(date +%s)
	refresh_proxy
	if [ "$interactive" = 1 ] && [ "$published" = 0 ] && [ -z "$powerdown_at" ] && [ "$relay_started" = 0 ] && ssh_answers; then
		read_fingerprint
		if [ "$relay" = 1 ]; then
			start_relay
		else
			publish_endpoint "$ssh_host" "$port" 0
		fi
	fi
	[ "$relay" = 1 ] && [ "$relay_started" != 0 ] && [ -z "$powerdown_at" ] && tend_relay
	parent_gone && cancel "the job's parent process went away (job cancelled)"
	cancelled_at_ce && cancel "the site cancelled the job"
	[ -d "$session" ] || cancel "the session directory was removed (job cleaned)"
	[ "$now" -ge "$deadline" ] && power_down "walltime reached"
	if is_number "$cpu_limit"; then
		used=$(qemu_cpu_seconds) && [ "$used" -ge $((cpu_limit - (cpus + 1) * margin)) ] &&
			power_down "walltime reached (as CPU time: ulimit -t $cpu_limit, nearly used)"
	fi
	if [ "$accel" = kvm ] && [ $((tick % 10)) -eq 0 ]; then
		mon info status
		grep -aq 'internal-error' monitor.log &&
			fail 70 "KVM stopped the machine (KVM internal error): this node's KVM cannot run it; the site can set SLOOP_ACCEL=tcg"
	fi
	if [ -n "$powerdown_at" ]; then
		[ "$now" -ge $((powerdown_at + 60)) ] && mon quit
		[ "$now" -ge $((powerdown_at + 66)) ] && hard_stop
	fi
done
wait "$qemu_pid"
qemu_rc=$?
qemu_pid=

# ---------------------------------------------------------------------------------------------
# 8. Result

stopped_cleanly=1
[ $qemu_rc -eq 152 ] && reason="QEMU was killed by the CPU-time limit (SIGXCPU)" && stopped_cleanly=0
status_file=analysis/.sloop/exit-status
status=
[ -f "$status_file" ] && read -r status <"$status_file"
if is_number "$status" && [ "$status" -le 255 ]; then
	exit_code=$status
elif [ -n "$powerdown_at" ] || [ $qemu_rc -eq 152 ]; then
	exit_code=124
elif [ "$interactive" = 1 ]; then
	exit_code=0
else
	exit_code=70
	reason="the machine stopped before the command finished (no exit status in $status_file)"
fi
if [ "$exit_code" -ne 0 ] && [ -z "$reason" ]; then reason="the command exited with status $exit_code"; fi
[ -n "$reason" ] && say "$reason"
phase=failed
[ "$exit_code" -eq 0 ] && phase='done'
write_status
say "phase=$phase exit=$exit_code after $(($(date +%s) - started)) s"
exit "$exit_code"
