#!/usr/bin/env bash
# Checks the guest's YAML reader (rootfs/usr/lib/sloop-init/yaml.awk) on the host with busybox awk,
# the awk the guest runs, without booting anything:
#
#   assets/test-image/test-yaml.sh
#
# Needs busybox (Debian package busybox-static, see scripts/install-deps.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
parser=$here/rootfs/usr/lib/sloop-init/yaml.awk
command -v busybox >/dev/null || {
	echo "test-yaml: busybox not found (Debian package busybox-static)" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# parse FILE: flattens FILE into $tmp/out (fresh); returns awk's status.
parse() {
	rm -rf "$tmp/out"
	mkdir "$tmp/out"
	busybox awk -v out="$tmp/out" -f "$parser" "$1" 2>"$tmp/err"
}

# expect KEY VALUE: the flattened scalar KEY must be exactly VALUE.
expect() {
	local got
	if [ ! -f "$tmp/out/$1" ]; then
		echo "FAIL: $case_name: $1 missing" >&2
		failures=$((failures + 1))
		return
	fi
	got=$(cat "$tmp/out/$1"; echo x)
	got=${got%x}
	if [ "$got" != "$2" ]; then
		printf 'FAIL: %s: %s is [%s], expected [%s]\n' "$case_name" "$1" "$got" "$2" >&2
		failures=$((failures + 1))
	fi
}

case_name=seed-example/user-data
parse "$here/seed-example/user-data" || {
	echo "FAIL: $case_name does not parse: $(cat "$tmp/err")" >&2
	failures=$((failures + 1))
}
expect hostname demo
expect users.# 1
expect users.0.name sloop
expect users.0.shell /bin/bash
expect users.0.ssh_authorized_keys.# 1
expect users.0.ssh_authorized_keys.0 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ0dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleQ sloop-client@demo"
expect users.0.uid 1000
expect ssh_keys.ed25519_private "-----BEGIN OPENSSH PRIVATE KEY-----
(an OpenSSH-format ed25519 private key, as \`ssh-keygen -t ed25519 -N ''\` writes it)
-----END OPENSSH PRIVATE KEY-----
"
expect write_files.0.path /etc/sloop/machine
expect write_files.0.permissions 0644
expect write_files.0.content bmFtZT1kZW1vCg==
expect users.0.uid 1000
# The example's bootcmd, as written: the one double-quoted item, unescaped.
expect bootcmd.0 "$(sed -n '/^bootcmd:/{n;s/^  - "\(.*\)"$/\1/;s/\\"/"/g;s/\\\\/\\/g;p}' "$here/seed-example/user-data")"
expect runcmd.0 "touch /var/lib/sloop-first-boot-done"

case_name=seed-example/meta-data
parse "$here/seed-example/meta-data" || {
	echo "FAIL: $case_name does not parse: $(cat "$tmp/err")" >&2
	failures=$((failures + 1))
}
expect instance-id sloop-demo-5f0c2a9e
expect local-hostname demo

case_name=scalars
cat >"$tmp/in" <<'EOF'
#cloud-config
a: "q \"x\" \\ back\\slash \u00e9 \t# not a comment" # a comment
b: 'it''s'
c: plain value # a comment
d: "colon: inside"
list:
- compact
-   "two: 2"
nested:
  deep:
    deeper: "v"
items:
  - name: one
    keys:
    - "k1"
    - "k2"
  - name: two
block: |
  line 1

  line 3
strip: |-
  no newline
after: 1
EOF
parse "$tmp/in" || {
	echo "FAIL: $case_name does not parse: $(cat "$tmp/err")" >&2
	failures=$((failures + 1))
}
expect a "q \"x\" \\ back\\slash é 	# not a comment"
expect b "it's"
expect c "plain value"
expect d "colon: inside"
expect list.# 2
expect list.0 compact
expect list.1 "two: 2"
expect nested.deep.deeper v
expect items.# 2
expect items.0.keys.1 k2
expect items.1.name two
expect block "line 1

line 3
"
expect strip "no newline"
expect after 1

# Documents the reader must refuse as a whole (the guest then ignores the seed).
bad=0
while IFS= read -r doc; do
	printf '%b\n' "$doc" >"$tmp/in"
	case_name="refuses [$doc]"
	if parse "$tmp/in"; then
		echo "FAIL: $case_name: parsed" >&2
		failures=$((failures + 1))
	fi
	bad=$((bad + 1))
done <<'EOF'
a: "unterminated
a: [1, 2]
a: &anchor 1
  - orphan item
a: "x" trailing
just text
a:\n\tb: tab
EOF

if [ "$failures" -ne 0 ]; then
	echo "test-yaml: $failures failure(s)" >&2
	exit 1
fi
echo "test-yaml: OK (seed-example, scalars, $bad refused documents)" >&2
