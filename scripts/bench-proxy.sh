#!/usr/bin/env bash
# Benchmarks the grid proxy, each against the plain tool doing the same job in the same run:
#   1. making it: `sloop proxy init --passphrase-stdin` against `arcproxy -p key=stdin`, from the
#      same passphrase-protected user key (a test CA and user certificate made here with openssl);
#   2. placing it in a running machine (the tiny test image): `sloop proxy attach NAME` against
#      `ssh -F <sloop ssh-config> sloop-NAME 'umask 077; cat > /tmp/x509up_uUID' < proxy`.
# Everything lives in a temporary folder (SLOOP_HOME, X509_USER_{CERT,KEY,PROXY}, X509_CERT_DIR,
# X509_VOMS_DIR): no real credential or machine is touched. The machine is deleted at the end.
# Env: SLOOP_BENCH_ROUNDS (7), SLOOP_BENCH_INIT_ROUNDS (part 1 only; default SLOOP_BENCH_ROUNDS),
# SLOOP_TEST_IMAGE (tiny image). Builds sloop in release mode.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=${SLOOP_BENCH_ROUNDS:-7}
init_rounds=${SLOOP_BENCH_INIT_ROUNDS:-$rounds}

for tool in arcproxy openssl ssh node; do
  if ! command -v "$tool" >/dev/null; then
    case "$tool" in
      arcproxy) echo "bench-proxy: arcproxy is not installed; apt-get install nordugrid-arc-client" >&2 ;;
      ssh) echo "bench-proxy: ssh is not installed; apt-get install openssh-client" >&2 ;;
      *) echo "bench-proxy: $tool is not installed; scripts/install-deps.sh installs it" >&2 ;;
    esac
    exit 1
  fi
done

cargo build -q --release -p sloop-cli
sloop=$here/target/release/sloop
name=bench-proxy

tmp=$(mktemp -d -t sloop-bench-proxy.XXXXXX)
created=
cleanup() {
  if [ -n "$created" ]; then
    SLOOP_HOME=$tmp/home-vm "$sloop" machine delete "$name" --yes >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# JSON field from stdin, with node (the UI's toolchain is installed anyway).
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# A test CA, a user certificate from it and the user's key under a passphrase, as ~/.globus has.
g=$tmp/grid
mkdir -p "$g/certificates" "$g/vomsdir" "$tmp/home-init" "$tmp/home-vm"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -keyout "$g/ca.key" -out "$g/ca.pem" \
  -subj "/DC=org/DC=sloop-bench/CN=Sloop Bench CA" \
  -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
cp "$g/ca.pem" "$g/certificates/$(openssl x509 -in "$g/ca.pem" -noout -hash).0"
openssl req -newkey rsa:2048 -nodes -keyout "$g/plain.key" -out "$g/user.csr" \
  -subj "/DC=org/DC=sloop-bench/CN=Bench User" 2>/dev/null
printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$g/user.ext"
openssl x509 -req -in "$g/user.csr" -CA "$g/ca.pem" -CAkey "$g/ca.key" -CAcreateserial -days 7 \
  -extfile "$g/user.ext" -out "$g/usercert.pem" 2>/dev/null
printf 'bench passphrase\n' >"$g/pass"
openssl pkey -in "$g/plain.key" -aes256 -passout "file:$g/pass" -out "$g/userkey.pem"
rm -f "$g/plain.key"
chmod 400 "$g/userkey.pem"
export X509_USER_CERT=$g/usercert.pem X509_USER_KEY=$g/userkey.pem X509_USER_PROXY=$g/proxy
export X509_CERT_DIR=$g/certificates X509_VOMS_DIR=$g/vomsdir
export SLOOP_HOME
# The certificate starts this second; start after it, as any real one did.
sleep 1

# --- 1. Making a proxy --------------------------------------------------------------------------
SLOOP_HOME=$tmp/home-init
sloop_init() { "$sloop" proxy init --passphrase-stdin --valid 12h <"$g/pass" >/dev/null; }
plain_init() {
  arcproxy -C "$g/usercert.pem" -K "$g/userkey.pem" -P "$g/arcproxy" -S "" \
    -c validityPeriod=12h -p key=stdin <"$g/pass" >/dev/null
}
# Once each, untimed: both work, and both proxies verify against the test CA.
sloop_init
plain_init
"$sloop" proxy info >/dev/null
"$sloop" proxy info --path "$g/arcproxy" >/dev/null

echo "== making a proxy: sloop proxy init vs arcproxy (RSA 2048, 12h, key under a passphrase) =="
echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools:   sloop (release), $(arcproxy --version 2>&1 | head -n 1), $(openssl version | cut -d' ' -f1-2); $init_rounds rounds, alternating order"
init_sloop=()
init_plain=()
for i in $(seq 1 "$init_rounds"); do
  if [ $((i % 2)) -eq 1 ]; then
    t=$(now); sloop_init; s=$(since "$t")
    t=$(now); plain_init; p=$(since "$t"); order="sloop first"
  else
    t=$(now); plain_init; p=$(since "$t")
    t=$(now); sloop_init; s=$(since "$t"); order="plain first"
  fi
  init_sloop+=("$s"); init_plain+=("$p")
  printf 'round %d:  sloop %6.3f s   plain %6.3f s   [%s]\n' "$i" "$s" "$p" "$order"
done
init_ms=$(median "${init_sloop[@]}")
init_mp=$(median "${init_plain[@]}")
printf 'median sloop: %.3f s\nmedian plain: %.3f s\n' "$init_ms" "$init_mp"
awk -v s="$init_ms" -v p="$init_mp" 'BEGIN { printf "ratio sloop/plain = %.3f (Sloop adds %+.1f%%)\n", s / p, (s / p - 1) * 100 }'
echo

# --- 2. Placing the proxy in a running machine --------------------------------------------------
SLOOP_HOME=$tmp/home-vm
image=${SLOOP_TEST_IMAGE:-$(assets/test-image/build.sh | tail -n 1)}
scripts/libvirt-up.sh >/dev/null
uri=$("$sloop" --json doctor --cached | field libvirtUri || true)
# The libvirt domain name is global: never take over a machine someone else made.
if virsh -q -c "$uri" dominfo "sloop-$name" >/dev/null 2>&1; then
  echo "bench-proxy: libvirt already has a domain sloop-$name (not this run's); not touching it" >&2
  exit 1
fi
"$sloop" catalog add --demo --image "$image" >/dev/null
id=$("$sloop" --json image list | field 0.identifier)
created=1
"$sloop" launch "$id" --name "$name" --vcpus 1 --memory 256 --disk 1 >/dev/null
config=$("$sloop" --json ssh-config | field path)
"$sloop" proxy init --passphrase-stdin --valid 12h <"$g/pass" >/dev/null
# The first attach also sends the trust anchors; the rounds re-place the proxy only.
"$sloop" proxy attach "$name" >/dev/null
uid=$("$sloop" shell "$name" -- id -u | tr -d '\r')

sloop_place() { "$sloop" proxy attach "$name" >/dev/null; }
plain_place() {
  ssh -F "$config" -o BatchMode=yes "sloop-$name" "umask 077; cat > /tmp/x509up_u$uid" <"$X509_USER_PROXY"
}
plain_place # warm-up, untimed

echo "== placing the proxy in a running machine: sloop proxy attach vs ssh 'cat > /tmp/x509up_u$uid' =="
echo "machine: $("$sloop" --json doctor --cached | field acceleration || true), libvirt $uri, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "image:   $image ($(du -h "$image" | cut -f1)), 1 vCPU, 256 MiB; $(ssh -V 2>&1 | cut -d, -f1); $rounds rounds, alternating order"
place_sloop=()
place_plain=()
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then
    t=$(now); sloop_place; s=$(since "$t")
    t=$(now); plain_place; p=$(since "$t"); order="sloop first"
  else
    t=$(now); plain_place; p=$(since "$t")
    t=$(now); sloop_place; s=$(since "$t"); order="plain first"
  fi
  place_sloop+=("$s"); place_plain+=("$p")
  printf 'round %d:  sloop %6.3f s   plain %6.3f s   [%s]\n' "$i" "$s" "$p" "$order"
done
place_ms=$(median "${place_sloop[@]}")
place_mp=$(median "${place_plain[@]}")
printf 'median sloop: %.3f s\nmedian plain: %.3f s\n' "$place_ms" "$place_mp"
awk -v s="$place_ms" -v p="$place_mp" 'BEGIN { printf "ratio sloop/plain = %.3f (Sloop adds %+.1f%%)\n", s / p, (s / p - 1) * 100 }'
# The machine holds the proxy, byte for byte.
ssh -F "$config" -o BatchMode=yes "sloop-$name" "cat /tmp/x509up_u$uid" | cmp -s - "$X509_USER_PROXY" ||
  echo "bench-proxy: the machine's /tmp/x509up_u$uid differs from the proxy" >&2
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| | rounds | median Sloop | median plain | ratio |"
echo "|---|---|---|---|---|"
awk -v n="$init_rounds" -v s="$init_ms" -v p="$init_mp" 'BEGIN { printf "| making a proxy | %d | %.3f s | %.3f s | %.2f |\n", n, s, p, s / p }'
awk -v n="$rounds" -v s="$place_ms" -v p="$place_mp" 'BEGIN { printf "| placing it in a running machine | %d | %.3f s | %.3f s | %.2f |\n", n, s, p, s / p }'
