#!/usr/bin/env bash
# Boots the Sloop test image with plain QEMU (TCG) the way Sloop will, and checks it end to end:
#
#   assets/test-image/boot-smoke.sh [IMAGE]
#   assets/test-image/boot-smoke.sh --live [ISO]
#
# (IMAGE and ISO default to what build.sh builds or has cached.) It makes a qcow2 overlay on the image and
# a NoCloud seed ISO in the format Sloop writes (seed-example/) with a fresh client key and host
# key, boots with user networking (SSH forwarded from 127.0.0.1), a 9p share (tag "work") and the
# seed as a read-only virtio disk, then:
#   - logs in as "sloop" with OpenSSH, StrictHostKeyChecking=yes and a known_hosts holding only the
#     seed's host key, runs a few commands and touches /analysis/from-guest (checked on the host);
#   - checks write_files, hostname, bootcmd and runcmd, writes a file under /home/sloop;
#   - checks the openssl tool as the user (version, OPENSSLDIR, a host-made certificate) and that
#     login shells read /etc/profile.d/*.sh then ~/.profile (dropbear's interactive session and
#     sh -l) while a command given to ssh runs in a plain "$SHELL -c";
#   - powers off through the QEMU monitor (ACPI system_powerdown) and checks that QEMU exits;
#   - boots the same overlay again: the file in /home/sloop must survive and runcmd must not run
#     again (bootcmd must);
# and prints timings (QEMU start to first SSH command, ACPI power-off). Exit status 0 on success.
# SLOOP_SMOKE_KEEP=1 keeps the work directory (serial logs, keys, seed, overlay);
# SLOOP_SMOKE_MACHINE=pc boots QEMU's default machine instead of q35.
#
# --live (or SLOOP_SMOKE_LIVE=1) checks the ISO variant the same way, attached as Sloop's libvirt
# domain does (machine "pc", the ISO as a read-only IDE CD-ROM hdc, boot from the CD): instead of
# the overlay, the first virtio disk is a blank 20 GiB qcow2 scratch disk, which the first boot
# must format (its time is printed) and the second must reuse. Then it boots once more with a
# disk holding a partition table as the first virtio disk: the initramfs must refuse to format it
# (FATAL on the console, power off) and leave it untouched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=$PATH:/usr/sbin:/sbin
ssh_deadline=${SLOOP_SMOKE_SSH_TIMEOUT:-90} # seconds from QEMU start to give up on SSH
# q35 boots faster than QEMU's default "pc" under TCG (no ACPI PCI interrupt links to set up).
live=${SLOOP_SMOKE_LIVE:-0}
if [ "${1:-}" = --live ]; then
	live=1
	shift
fi
if [ "$live" = 1 ]; then
	# As Sloop's libvirt domain: machine "pc", the CD on IDE.
	machine=${SLOOP_SMOKE_MACHINE:-pc}
else
	machine=${SLOOP_SMOKE_MACHINE:-q35}
fi
poweroff_deadline=10

log() { printf 'boot-smoke: %s\n' "$*" >&2; }
fail() {
	printf 'boot-smoke: FAIL: %s\n' "$*" >&2
	if [ -n "${serial:-}" ] && [ -f "$serial" ]; then
		printf 'boot-smoke: last lines of the serial console (%s):\n' "$serial" >&2
		tail -n 40 "$serial" | sed 's/^/    /' >&2
	fi
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

for t in qemu-system-x86_64 qemu-img genisoimage ssh ssh-keygen base64 awk sha256sum openssl sfdisk dumpe2fs e2fsck; do
	command -v "$t" >/dev/null 2>&1 || fail "missing tool $t; run scripts/install-deps.sh"
done

if [ $# -ge 1 ]; then
	image=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
	image=$("$here/build.sh" | tail -n 1)
	[ "$live" != 1 ] || image=${image%.qcow2}.iso
fi
[ -f "$image" ] || fail "no image at $image"

work=$(mktemp -d "${TMPDIR:-/tmp}/sloop-smoke.XXXXXX")
qemu_pid=
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || :
		wait "$qemu_pid" 2>/dev/null || :
	fi
	if [ "${SLOOP_SMOKE_KEEP:-0}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

base_sum=$(sha256sum "$image" | cut -d' ' -f1)

# --- seed ---------------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C sloop-client@smoke -f "$work/client"
ssh-keygen -q -t ed25519 -N '' -C root@smoke -f "$work/host"
instance_id="sloop-smoke-$(date +%s)-$$"
machine_b64=$(printf 'name=smoke\n' | base64 -w0)
# JSON-style double-quoted YAML string, as Sloop writes them.
q() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
mkdir -p "$work/seed" "$work/share"
# bootcmd and runcmd: Sloop's own items, verbatim from seed-example/ (bootcmd mounts the 9p share
# and hands it to uid 1000), plus one each that counts its runs.
section() { awk -v k="$1:" '$0 == k { on = 1; next } on && /^[^ ]/ { exit } on { print }' "$here/seed-example/user-data"; }
bootcmd_items=$(section bootcmd)
runcmd_items=$(section runcmd)
if [ -z "$bootcmd_items" ] || [ -z "$runcmd_items" ]; then
	fail "no bootcmd/runcmd in seed-example/user-data"
fi
cat >"$work/seed/meta-data" <<EOF
instance-id: $(q "$instance_id")
local-hostname: "smoke"
EOF
{
	cat <<EOF
#cloud-config
# Written by Sloop for machine "smoke"; Sloop rewrites it when the machine changes.
hostname: "smoke"
ssh_pwauth: false
disable_root: true
users:
  - name: "sloop"
    uid: 1000
    gecos: $(q 'Sloop "smoke" user')
    shell: "/bin/bash"
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: true
    ssh_authorized_keys:
      - $(q "$(cat "$work/client.pub")")
ssh_deletekeys: true
ssh_keys:
  ed25519_private: |
EOF
	sed 's/^/    /' "$work/host"
	cat <<EOF
  ed25519_public: $(q "$(cat "$work/host.pub")")
write_files:
  - path: "/etc/sloop/machine"
    owner: "root:root"
    permissions: "0644"
    encoding: "b64"
    content: $(q "$machine_b64")
  - path: "/etc/sloop/escapes"
    owner: "sloop:sloop"
    permissions: "0640"
    content: $(q 'say "hi" \ back\slash')
  - path: "/etc/profile.d/smoke.sh"
    permissions: "0644"
    content: $(q 'export SMOKE_ORDER=profile.d')
bootcmd:
$bootcmd_items
  - "echo boot >> /var/lib/smoke-bootcmd-runs"
runcmd:
$runcmd_items
  - "echo run >> /var/lib/smoke-runcmd-runs"
EOF
} >"$work/seed/user-data"
genisoimage -quiet -volid cidata -joliet -rock -o "$work/seed.iso" "$work/seed/user-data" "$work/seed/meta-data"
printf '[127.0.0.1]:%s %s\n' PORT "$(cut -d' ' -f1,2 "$work/host.pub")" >"$work/known_hosts.in"

if [ "$live" = 1 ]; then
	# The scratch disk: blank, as Sloop creates it.
	qemu-img create -q -f qcow2 "$work/overlay.qcow2" 20G
	cd_drive=(-drive "file=$image,format=raw,if=ide,index=2,media=cdrom,readonly=on" -boot d)
else
	qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$work/overlay.qcow2"
	cd_drive=()
fi

# --- QEMU ---------------------------------------------------------------------------------------
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return
		}
	done
	fail "no free TCP port"
}

boot() { # N: starts QEMU, waits for SSH; sets qemu_pid, port, serial, t_start, t_ssh
	local n=$1
	port=$(free_port)
	serial=$work/serial.$n.log
	rm -f "$work/monitor.in" "$work/monitor.out"
	mkfifo "$work/monitor.in" "$work/monitor.out"
	sed "s/PORT/$port/" "$work/known_hosts.in" >"$work/known_hosts"
	t_start=$(now)
	qemu-system-x86_64 -machine "$machine" -accel tcg -m 512 -display none -no-reboot \
		-drive "file=$work/overlay.qcow2,format=qcow2,if=virtio" \
		-drive "file=$work/seed.iso,format=raw,if=virtio,readonly=on" \
		"${cd_drive[@]}" \
		-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
		-device virtio-net-pci,netdev=n0,romfile= \
		-virtfs "local,path=$work/share,mount_tag=work,security_model=mapped-xattr" \
		-serial "file:$serial" \
		-monitor "pipe:$work/monitor" \
		>"$work/qemu.$n.log" 2>&1 &
	qemu_pid=$!
	# Keep the monitor's output drained.
	cat "$work/monitor.out" >/dev/null &
	log "boot $n: QEMU pid $qemu_pid, SSH on 127.0.0.1:$port"
	t_ready=
	while :; do
		kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited during boot $n: $(cat "$work/qemu.$n.log")"
		# QEMU accepts connections before the guest listens; a short timeout per attempt.
		if timeout 5 ssh "${ssh_opts[@]}" -p "$port" sloop@127.0.0.1 true 2>"$work/ssh.err"; then
			break
		fi
		if [ -z "$t_ready" ] && grep -q '^sloop-init: ready' "$serial" 2>/dev/null; then
			t_ready=$(now)
			log "boot $n: guest printed 'sloop-init: ready' by $(elapsed "$t_start" "$t_ready") s"
		fi
		if [ "$(elapsed "$t_start" "$(now)" | cut -d. -f1)" -ge "$ssh_deadline" ]; then
			fail "no SSH login within $ssh_deadline s on boot $n (last ssh error: $(tail -n 1 "$work/ssh.err"))"
		fi
		sleep 0.2
	done
	t_ssh=$(now)
	log "boot $n: first SSH command after $(elapsed "$t_start" "$t_ssh") s"
}

guest() { ssh "${ssh_opts[@]}" -p "$port" sloop@127.0.0.1 "$@"; }

poweroff_acpi() { # N
	local t0 t
	t0=$(now)
	echo system_powerdown >"$work/monitor.in"
	while kill -0 "$qemu_pid" 2>/dev/null; do
		t=$(elapsed "$t0" "$(now)")
		if [ "${t%.*}" -ge "$poweroff_deadline" ]; then
			fail "QEMU still running $poweroff_deadline s after ACPI system_powerdown (boot $1)"
		fi
		sleep 0.1
	done
	wait "$qemu_pid" 2>/dev/null || :
	qemu_pid=
	t_off=$(elapsed "$t0" "$(now)")
	log "boot $1: ACPI power-off took $t_off s"
}

ssh_opts=(-i "$work/client" -o IdentitiesOnly=yes -o BatchMode=yes
	-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts"
	-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=2 -o LogLevel=ERROR)

# --- first boot ---------------------------------------------------------------------------------
boot 1
ssh1=$(elapsed "$t_start" "$t_ssh")
out=$(guest 'uname -a; id; hostname; cat /etc/sloop/machine; touch /analysis/from-guest') ||
	fail "SSH command failed"
printf '%s\n' "$out" | sed 's/^/    guest: /' >&2
grep -q 'uid=1000(sloop) gid=1000(sloop)' <<<"$out" || fail "not logged in as sloop (uid 1000)"
grep -qx smoke <<<"$out" || fail "hostname is not smoke"
grep -qx 'name=smoke' <<<"$out" || fail "/etc/sloop/machine (write_files, b64) is wrong"
[ -e "$work/share/from-guest" ] || fail "/analysis/from-guest did not appear in the shared folder"
log "9p share: /analysis/from-guest appeared on the host"

# shellcheck disable=SC2016 # the guest's shell expands these
checks=$(guest 'cat /etc/sloop/escapes; echo; stat -c "%a %U" /etc/sloop/escapes;
	cat /var/lib/smoke-runcmd-runs /var/lib/smoke-bootcmd-runs | tr "\n" " "; echo;
	test -e /var/lib/sloop-first-boot-done && echo runcmd-done;
	getent passwd sloop 2>/dev/null || grep ^sloop: /etc/passwd;
	stat -c "%a %U" /home/sloop /home/sloop/.ssh /home/sloop/.ssh/authorized_keys | tr "\n" " "; echo;
	echo "$SHELL $0"; grep ^ID= /etc/os-release; echo "analysis owner $(stat -c %u /analysis)";
	echo persistent > /home/sloop/persist.txt') || fail "SSH checks failed"
printf '%s\n' "$checks" | sed 's/^/    guest: /' >&2
grep -qxF 'say "hi" \ back\slash' <<<"$checks" || fail "write_files plain content with escapes is wrong"
grep -qx '640 sloop' <<<"$checks" || fail "write_files owner/permissions not applied"
grep -qx 'run boot ' <<<"$checks" || fail "runcmd/bootcmd did not run exactly once on the first boot"
grep -qx runcmd-done <<<"$checks" || fail "runcmd marker missing"
grep -qxF 'sloop:*:1000:1000:Sloop "smoke" user:/home/sloop:/bin/bash' <<<"$checks" ||
	fail "passwd entry for sloop is wrong"
grep -qx '755 sloop 700 sloop 600 sloop ' <<<"$checks" || fail "home/.ssh modes or owners are wrong"
grep -qx 'ID=sloop-test' <<<"$checks" || fail "/etc/os-release has no ID=sloop-test"
grep -qx 'analysis owner 1000' <<<"$checks" || fail "/analysis is not owned by uid 1000 (bootcmd's chown)"
grep -q 'sloop-init: ready' "$serial" || fail "no 'sloop-init: ready' on the serial console"
if [ "$live" = 1 ]; then
	grep -q '^sloop-init: initramfs: formatting the blank scratch disk /dev/vda (20480 MiB)' "$serial" ||
		fail "the first live boot did not format the blank scratch disk /dev/vda"
	format_time=$(sed -n 's/^sloop-init: initramfs: scratch disk formatted in \([0-9.]*\) s.*/\1/p' "$serial")
	[ -n "$format_time" ] || fail "no format time on the console"
	log "live: 20 GiB scratch disk formatted in $format_time s (guest time)"
	grep 'sloop-init: initramfs: CD ' "$serial" | sed 's/^/    /' >&2
	mounts=$(guest 'cat /proc/mounts') || fail "cannot read /proc/mounts"
	printf '%s\n' "$mounts" | grep -E ' / | /run/sloop-live/' | sed 's/^/    guest: /' >&2
	grep -q '^overlay / overlay rw,.*lowerdir=/live/cd/root-fs,upperdir=/live/scratch/upper' <<<"$mounts" ||
		fail "the live root is not the overlay of the CD and the scratch disk"
	grep -q '^/dev/vda /run/sloop-live/scratch ext4 rw' <<<"$mounts" || fail "the scratch disk is not on /run/sloop-live/scratch"
	grep -q ' /run/sloop-live/cd iso9660 ro' <<<"$mounts" || fail "the CD is not on /run/sloop-live/cd"
fi

# openssl as the user, on a certificate made on the host.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sloop-smoke -keyout "$work/cert.key" \
	-out "$work/cert.pem" 2>/dev/null || fail "cannot make a test certificate on the host"
guest 'cat > /tmp/cert.pem' <"$work/cert.pem" || fail "cannot copy the certificate into the guest"
want_end=$(openssl x509 -in "$work/cert.pem" -noout -enddate)
ossl=$(guest 'id -un; openssl version; openssl version -d; openssl x509 -in /tmp/cert.pem -noout -subject -enddate' 2>&1) ||
	fail "openssl in the guest failed: $ossl"
printf '%s\n' "$ossl" | sed 's/^/    guest: /' >&2
grep -q '^OpenSSL 3' <<<"$ossl" || fail "openssl version: $ossl"
grep -qx 'OPENSSLDIR: "/usr/lib/ssl"' <<<"$ossl" || fail "unexpected OPENSSLDIR"
grep -qx 'subject=CN = sloop-smoke' <<<"$ossl" || fail "openssl x509 -subject in the guest is wrong"
grep -qxF "$want_end" <<<"$ossl" || fail "openssl x509 -enddate in the guest differs from the host's ($want_end)"
[ "$(grep -c . <<<"$ossl")" -eq 5 ] || fail "openssl printed more than expected (warnings?)"

# Profiles: /etc/profile.d/smoke.sh (write_files) then ~/.profile, in login shells only.
# shellcheck disable=SC2016 # the guest's shell expands these
guest 'echo "export SMOKE_ORDER=\"\$SMOKE_ORDER,home\"" >> ~/.profile' || fail "cannot append to ~/.profile"
# shellcheck disable=SC2016 # the guest's shell expands these
prof=$(guest 'echo "ssh-command: [$SMOKE_ORDER] $(tr "\0" " " </proc/$$/cmdline)"; sh -lc '\''echo "sh-l: [$SMOKE_ORDER]"'\''') ||
	fail "profile checks failed"
# No command: dropbear starts the user's shell as for an interactive session (here fed on stdin).
# shellcheck disable=SC2016,SC2028 # the guest's shell expands these
session=$(echo 'echo "session: [$SMOKE_ORDER] $(tr "\0" " " </proc/$$/cmdline)"' |
	ssh "${ssh_opts[@]}" -T -p "$port" sloop@127.0.0.1 2>&1) || fail "session without a command failed: $session"
prof=$prof$'\n'$session
printf '%s\n' "$prof" | sed 's/^/    guest: /' >&2
grep -qx 'ssh-command: \[\] /bin/ash -c .*' <<<"$prof" || fail "a command over ssh does not run as a plain \$SHELL -c"
grep -qx 'sh-l: \[profile.d,home\]' <<<"$prof" || fail "sh -l does not read /etc/profile.d/*.sh then ~/.profile"
grep -qx 'session: \[profile.d,home\] /bin/ash -l ' <<<"$prof" ||
	fail "dropbear's session shell is not a login shell reading /etc/profile.d/*.sh then ~/.profile"
poweroff_acpi 1
off1=$t_off
grep -q 'sloop-init: shutting down' "$serial" || fail "the guest did not run its shutdown script"

# --- second boot (same overlay and seed) ---------------------------------------------------------
boot 2
ssh2=$(elapsed "$t_start" "$t_ssh")
again=$(guest 'cat /home/sloop/persist.txt; cat /var/lib/smoke-runcmd-runs /var/lib/smoke-bootcmd-runs | tr "\n" " "; echo;
	grep -q "^work /analysis 9p " /proc/mounts && echo share-mounted') || fail "SSH after reboot failed"
printf '%s\n' "$again" | sed 's/^/    guest: /' >&2
grep -qx persistent <<<"$again" || fail "/home/sloop/persist.txt did not survive the reboot"
grep -qx 'run boot boot ' <<<"$again" || fail "after the reboot runcmd must not run again and bootcmd must"
grep -qx share-mounted <<<"$again" || fail "/analysis not mounted on the second boot"
grep -q 'already set up' "$serial" || fail "sloop-init did not recognise the instance on the second boot"
if [ "$live" = 1 ]; then
	! grep -q 'formatting' "$serial" || fail "the second live boot formatted the scratch disk again"
	grep -q '^sloop-init: initramfs: scratch disk /dev/vda (sloop-scratch) mounted' "$serial" ||
		fail "the second live boot did not mount the scratch disk"
fi
poweroff_acpi 2
off2=$t_off

if [ "$live" = 1 ]; then
	# The power-off must leave the scratch disk's filesystem clean and consistent.
	qemu-img convert -O raw "$work/overlay.qcow2" "$work/scratch.raw"
	state=$(dumpe2fs -h "$work/scratch.raw" 2>/dev/null | sed -n 's/^Filesystem state: *//p')
	[ "$state" = clean ] || fail "the scratch disk's filesystem is not clean after the power-off ($state)"
	e2fsck -fn "$work/scratch.raw" >"$work/e2fsck.log" 2>&1 ||
		fail "e2fsck found errors on the scratch disk: $(tail -n 5 "$work/e2fsck.log")"
	log "live: scratch disk clean after the power-off: $(tail -n 1 "$work/e2fsck.log")"
	rm -f "$work/scratch.raw"
fi

[ "$(sha256sum "$image" | cut -d' ' -f1)" = "$base_sum" ] || fail "the base image changed"

log "serial console of boot 2:"
grep 'sloop-init:' "$serial" | sed 's/^/    /' >&2

if [ "$live" = 1 ]; then
	# A first virtio disk that is not blank (here: an MBR partition table) must never be formatted.
	truncate -s 64M "$work/data.img"
	printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$work/data.img" >/dev/null || fail "sfdisk failed"
	qemu-img create -q -f qcow2 -F raw -b "$work/data.img" "$work/data.qcow2" 20G
	serial=$work/serial.3.log
	t0=$(now)
	timeout 120 qemu-system-x86_64 -machine "$machine" -accel tcg -m 512 -display none -no-reboot \
		-drive "file=$work/data.qcow2,format=qcow2,if=virtio" \
		-drive "file=$work/seed.iso,format=raw,if=virtio,readonly=on" \
		"${cd_drive[@]}" -net none -serial "file:$serial" >"$work/qemu.3.log" 2>&1 ||
		fail "QEMU did not power off by itself with a non-blank disk (exit $?)"
	grep -q '^sloop-init: FATAL: /dev/vda is not blank' "$serial" || fail "no FATAL for a non-blank /dev/vda"
	# (compare: the 20 GiB overlay must read as the 64 MiB image followed by zeros)
	qemu-img compare -q -f raw -F qcow2 "$work/data.img" "$work/data.qcow2" || fail "the non-blank disk was written to"
	log "live: a non-blank first virtio disk is refused and left untouched ($(elapsed "$t0" "$(now)") s):"
	grep 'FATAL' "$serial" | sed 's/^/    /' >&2
fi

log "OK: image $image ($(du -k "$image" | cut -f1) KiB)"
[ "$live" != 1 ] || log "OK: scratch disk formatted in $format_time s on the first boot; $(du -k "$work/overlay.qcow2" | cut -f1) KiB on the host after two boots"
log "OK: QEMU start to first SSH command: boot 1 ${ssh1} s, boot 2 ${ssh2} s (TCG, machine $machine)"
log "OK: ACPI power-off: boot 1 ${off1} s, boot 2 ${off2} s"
