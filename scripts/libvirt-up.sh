#!/usr/bin/env bash
# Starts virtlogd and libvirtd when no libvirt daemon answers, as on machines without an init
# system (CI containers). With an init system, use it instead (systemctl start libvirtd).
# Usage: scripts/libvirt-up.sh [URI]   (default: SLOOP_LIBVIRT_URI, else qemu:///system as root)
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then default=qemu:///system; else default=qemu:///session; fi
uri=${1:-${SLOOP_LIBVIRT_URI:-$default}}

# Without udev, /dev/kvm stays root:root 0600. libvirt checks it as its QEMU user, finds KVM
# unusable although its probe enabled KVM, and so probes QEMU again on every lookup: each define
# took about 50 s here. Give it udev's owner and mode (Debian's rule: group kvm, 0660).
if [ "$(id -u)" -eq 0 ] && [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

answers() { timeout 10 virsh -c "$uri" version >/dev/null 2>&1; }
answers && exit 0

case "$uri" in
  qemu:///session)
    # Session daemons are started on demand by libvirt itself; if that failed, say why.
    virsh -c "$uri" version >&2 || true
    echo "libvirt-up: qemu:///session does not answer for $(id -un)" >&2
    exit 1 ;;
  qemu:///system) ;;
  *) echo "libvirt-up: only starts daemons for qemu:///system and qemu:///session, not $uri" >&2; exit 1 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "libvirt-up: starting the system daemons needs root: sudo $0" >&2; exit 1; }
mkdir -p /run/libvirt /var/log/libvirt
# A daemon that was killed may linger as a zombie where nothing reaps it: count live ones only.
alive() { pgrep -x --runstates RSDIT "$1" >/dev/null; }
alive virtlogd || virtlogd -d
alive libvirtd || libvirtd -d
for _ in $(seq 1 100); do answers && { echo "libvirt-up: libvirtd answers at $uri"; exit 0; }; sleep 0.2; done
echo "libvirt-up: libvirtd did not answer at $uri within 20 s; see /var/log/libvirt/libvirtd.log" >&2
exit 1
