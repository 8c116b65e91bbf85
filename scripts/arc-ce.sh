#!/usr/bin/env bash
# The project's test grid site: a real NorduGrid ARC 6.17 Computing Element (Debian's A-REX, fork
# LRMS, REST API 1.0) on loopback, made and run entirely out of ONE folder. It never touches
# /etc/arc.conf, /etc/grid-security, /run or /var/log/arc. Needs root (A-REX maps grid users to
# the local account nobody) and the Debian packages nordugrid-arc-arex and
# nordugrid-arc-plugins-arcrest (scripts/install-deps.sh installs them). See docs/test-site.md.
#
# Usage: scripts/arc-ce.sh start DIR [--port PORT]   make what DIR lacks, start the CE (no-op if it
#                                                   runs and answers); prints `export` lines last
#        scripts/arc-ce.sh stop DIR                 stop both daemons, kill leftover job processes
#        scripts/arc-ce.sh status DIR               exit 0 when the CE of DIR runs and answers
#        scripts/arc-ce.sh env DIR                  print the `export` lines
#
# PORT defaults to the one DIR was last started on, else 18443. SLOOP_TEST_CE_RTE_SOURCE names
# another runtime environment script to install as ENV/SLOOP-VM (default: the repo's
# assets/site/ENV/SLOOP-VM).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
prog=arc-ce

readonly default_port=18443
readonly ca_dn="/DC=org/DC=sloop-test/CN=Sloop Test Grid CA"
readonly host_dn="/DC=org/DC=sloop-test/CN=localhost"
readonly user_dn="/DC=org/DC=sloop-test/CN=Sloop Test User"
readonly stranger_dn="/DC=org/DC=sloop-test/CN=Sloop Stranger"
readonly days=30                  # CA, certificates and CRL
readonly renew_before=$((2 * 86400))  # make them again when they expire within 2 days
readonly mapped_user=nobody mapped_group=nogroup
readonly rte_name=ENV/SLOOP-VM
# The job daemon reruns the infoprovider (CEinfo.pl) every 10 s instead of 60 s, so REST job
# states (?action=status|info) lag at most 10 s. Unit: 0.1 s.
readonly infoprovider_period=100
readonly arc_share=/usr/share/arc

say() { echo "$prog: $*" >&2; }
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { say "$*"; exit 1; }

usage() {
  sed -n '/^# Usage:/,/^# *scripts.*env DIR/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir_arg=$2
shift 2
port_arg=
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || usage; port_arg=$2; shift 2 ;;
    --port=*) port_arg=${1#--port=}; shift ;;
    *) usage ;;
  esac
done
case "$cmd" in start|stop|status|env) ;; *) usage ;; esac
if [ -n "$port_arg" ]; then
  [ "$cmd" = start ] || usage
  if ! [[ "$port_arg" =~ ^[0-9]+$ ]] || [ "$port_arg" -lt 1024 ] || [ "$port_arg" -gt 65535 ]; then
    die "--port wants a number from 1024 to 65535, not '$port_arg'"
  fi
fi

# DIR as an absolute path. It goes unquoted into arc.conf (where a space separates values) and
# into the `export` lines, so only plain path characters are allowed.
if [ "$cmd" = start ]; then mkdir -p "$dir_arg"; fi
[ -d "$dir_arg" ] || die "no such directory: $dir_arg"
dir=$(cd "$dir_arg" && pwd -P)
[[ "$dir" =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "DIR may only contain letters, digits and ._/+- : $dir"
[ "$dir" != / ] || die "DIR must not be /"

conf=$dir/arc.conf
certs=$dir/certificates
ws_pidfile=$dir/run/arched-arex-ws.pid
jobs_pidfile=$dir/run/arched-arex.pid

configured_port() {
  [ -f "$conf" ] || return 0
  sed -n 's#^wsurl = https://localhost:\([0-9]*\)/arex$#\1#p' "$conf"
}

print_env() {
  local port
  port=$(configured_port)
  [ -n "$port" ] || die "$dir has no CE yet: run $0 start $dir"
  cat <<EOF
export SLOOP_TEST_CE_URL=https://localhost:$port/arex
export SLOOP_TEST_CE_DIR=$dir
export X509_CERT_DIR=$certs
export SLOOP_TEST_CE_USERCERT=$dir/user/usercert.pem
export SLOOP_TEST_CE_USERKEY=$dir/user/userkey.pem
export SLOOP_TEST_CE_STRANGER_CERT=$dir/stranger/usercert.pem
export SLOOP_TEST_CE_STRANGER_KEY=$dir/stranger/userkey.pem
export SLOOP_TEST_CE_HOSTCERT=$dir/host/hostcert.pem
export SLOOP_TEST_CE_HOSTKEY=$dir/host/hostkey.pem
export SLOOP_TEST_CE_CACHE=$dir/cache
export SLOOP_TEST_CE_CA_CERT=$dir/ca/ca.pem
export SLOOP_TEST_CE_CA_KEY=$dir/ca/ca.key
EOF
}

# ---------------------------------------------------------------------------------------------
# Processes

# The arched of DIR named by a pidfile: alive, really arched, and started from DIR's config.
daemon_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  is_our_arched "$pid" && echo "$pid"
}

is_our_arched() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = arched ] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- " $dir/run/"
}

# Every arched started from DIR's config, with or without a pidfile.
our_archeds() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    is_our_arched "$pid" && echo "$pid"
  done
  return 0
}

# Processes the CE left behind: the jobs (they run as the mapped user with HOME and the working
# directory in DIR's session dir; the fork LRMS's cancel kills only its watcher shell) and the
# LRMS/infoprovider helpers of the job daemon (their command line names DIR's runtime config).
leftovers() {
  local p pid uid cwd home
  uid=$(id -u "$mapped_user")
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    if [ "$pid" = "$$" ] || ! alive "$pid"; then continue; fi
    if [ "$(stat -c %u "$p" 2>/dev/null)" = "$uid" ]; then
      cwd=$(readlink "$p/cwd" 2>/dev/null) || cwd=
      home=$(tr '\0' '\n' <"$p/environ" 2>/dev/null | sed -n 's/^HOME=//p') || home=
      case "$cwd/ $home/" in
        "$dir/session/"*|*" $dir/session/"*) echo "$pid"; continue ;;
      esac
    fi
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$dir/run/arched-arex.cfg"; then
      echo "$pid"
    fi
  done
  return 0
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# SIGTERM, wait up to $1 s, then SIGKILL.
terminate() {
  local wait_s=$1 pid left i
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < wait_s * 5; i++)); do
    left=()
    for pid in "$@"; do alive "$pid" && left+=("$pid"); done
    [ ${#left[@]} -gt 0 ] || return 0
    sleep 0.2
  done
  say "still running after ${wait_s} s, killing: ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null || true
}

curl_ce() { # curl_ce PORT PATH [curl args...]
  local port=$1 path=$2
  shift 2
  curl -sS --max-time 5 --cert "$dir/user/usercert.pem" --key "$dir/user/userkey.pem" \
    --capath "$certs" -H 'Accept: application/json' "$@" "https://localhost:$port/arex$path"
}

rest_answers() { [ "$(curl_ce "$1" /rest 2>/dev/null)" = '{"version":"1.0"}' ]; }

# The state the infoprovider published for the REST endpoint (ok, warning, critical, ...).
rest_health() {
  curl_ce "$1" /rest/1.0/info 2>/dev/null | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
svc = doc["Domains"]["AdminDomain"]["Services"]["ComputingService"]
eps = svc["ComputingEndpoint"]
for ep in eps if isinstance(eps, list) else [eps]:
    if ep.get("InterfaceName") == "org.nordugrid.arcrest":
        print(ep.get("HealthState", ""))
' 2>/dev/null
}

running() {
  local port
  port=$(configured_port)
  [ -n "$port" ] && daemon_pid "$ws_pidfile" >/dev/null && daemon_pid "$jobs_pidfile" >/dev/null \
    && rest_answers "$port"
}

stop_ce() {
  local pids
  mapfile -t pids < <({ daemon_pid "$ws_pidfile"; daemon_pid "$jobs_pidfile"; our_archeds; } | sort -u)
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping arched ${pids[*]} (the job daemon takes 5-10 s)"
    terminate 30 "${pids[@]}"
  fi
  # Several rounds: a dying job script may still start a process while the first round runs.
  local _
  for _ in 1 2 3; do
    mapfile -t pids < <(leftovers)
    [ ${#pids[@]} -gt 0 ] || break
    say "killing job and helper processes left behind: ${pids[*]}"
    terminate 5 "${pids[@]}"
  done
  # The start helpers render the arched XML to $TMPDIR/arex.xml.XXXXXX ($TMPDIR = DIR/tmp,
  # [arex] tmpdir) and never remove it; fork job scripts of killed jobs stay there too.
  rm -f "$dir"/tmp/arex.xml.* "$dir"/tmp/fork_job_script.* "$ws_pidfile" "$jobs_pidfile"
}

# ---------------------------------------------------------------------------------------------
# Certificates: a test CA with an empty CRL, installed IGTF-style; host, user and stranger.

write_openssl_conf() {
  cat >"$dir/ca/openssl.cnf" <<EOF
# Made by scripts/arc-ce.sh
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused

[ca_ext]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[host_ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[user_ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,keyEncipherment,dataEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# openssl ca, only to sign the (empty) CRL
[ca]
default_ca = test_ca
[test_ca]
database = $dir/ca/index.txt
crlnumber = $dir/ca/crlnumber
certificate = $dir/ca/ca.pem
private_key = $dir/ca/ca.key
default_md = sha256
default_crl_days = $days
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid
EOF
}

new_key() { (umask 077 && openssl genrsa -traditional -out "$1" 2048 2>/dev/null); }

issue() { # issue DIR/sub/cert.pem key.pem DN extensions
  local cert=$1 key=$2 dn=$3 ext=$4
  new_key "$key"
  openssl req -new -key "$key" -subj "$dn" -config "$dir/ca/openssl.cnf" \
    | openssl x509 -req -CA "$dir/ca/ca.pem" -CAkey "$dir/ca/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days "$days" -sha256 \
        -extfile "$dir/ca/openssl.cnf" -extensions "$ext" -out "$cert" 2>/dev/null
  chmod 0644 "$cert"
  chmod 0400 "$key"
}

make_crl() {
  local hash
  hash=$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash)
  openssl ca -config "$dir/ca/openssl.cnf" -gencrl -out "$dir/ca/crl.pem" 2>/dev/null
  cp "$dir/ca/crl.pem" "$certs/$hash.r0"
  ln -sfn "$hash.r0" "$certs/$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash_old).r0"
}

install_ca() {
  local hash old
  hash=$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash)
  old=$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash_old)
  rm -rf "$certs"
  mkdir -p "$certs"
  cp "$dir/ca/ca.pem" "$certs/$hash.0"
  # Globus EACL: what the CA may sign (A-REX's TLS checks it: PolicyGlobus="true").
  cat >"$certs/$hash.signing_policy" <<EOF
# EACL for the Sloop Test Grid CA, made by scripts/arc-ce.sh
access_id_CA   X509   '$ca_dn'
pos_rights     globus CA:sign
cond_subjects  globus '"/DC=org/DC=sloop-test/*"'
EOF
  cat >"$certs/$hash.namespaces" <<EOF
##############################################################################
#NAMESPACES-VERSION: 1.0
#
# @(#)$hash.namespaces
# CA alias    : Sloop Test Grid CA (made by scripts/arc-ce.sh)
#    subord_of:
#    subjectDN: $ca_dn
#    hash     : $hash
#
TO Issuer "$ca_dn" \\
  PERMIT Subject "/DC=org/DC=sloop-test/.*"
EOF
  local suffix
  for suffix in 0 signing_policy namespaces; do
    ln -sfn "$hash.$suffix" "$certs/$old.$suffix"
  done
}

cert_fresh() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$renew_before" >/dev/null 2>&1; }

leaf_ok() {
  cert_fresh "$1" && [ -s "$2" ] \
    && openssl verify -CApath "$certs" "$1" >/dev/null 2>&1 \
    && [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]
}

crl_fresh() {
  local hash next
  hash=$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash 2>/dev/null) || return 1
  next=$(openssl crl -in "$certs/$hash.r0" -noout -nextupdate 2>/dev/null | sed 's/^nextUpdate=//') || return 1
  [ -n "$next" ] && [ $(($(date -d "$next" +%s) - $(date +%s))) -gt "$renew_before" ]
}

# The test credentials belong to whoever called the script through sudo (tests may run as that
# user), else to root. A-REX wants its host certificate and key owned by root: it gets copies.
hand_over_credentials() {
  chown "${SUDO_UID:-0}:${SUDO_GID:-0}" "$dir/ca" "$dir/ca/ca.key" "$dir/ca/ca.pem" \
    "$dir/host/hostcert.pem" "$dir/host/hostkey.pem" "$dir"/user/*.pem "$dir"/stranger/*.pem
}

arex_credentials() {
  install -m 0400 -o root -g root "$dir/host/hostkey.pem" "$dir/host/arex-hostkey.pem"
  install -m 0644 -o root -g root "$dir/host/hostcert.pem" "$dir/host/arex-hostcert.pem"
}

certs_fresh() {
  cert_fresh "$dir/ca/ca.pem" && cert_fresh "$dir/host/hostcert.pem" && cert_fresh "$dir/user/usercert.pem" \
    && cert_fresh "$dir/stranger/usercert.pem" && crl_fresh
}

make_certificates() {
  mkdir -p "$dir/ca" "$dir/host" "$dir/user" "$dir/stranger"
  chmod 0700 "$dir/ca"
  if cert_fresh "$dir/ca/ca.pem" && [ -s "$dir/ca/ca.key" ] && [ -s "$certs/$(openssl x509 -in "$dir/ca/ca.pem" -noout -subject_hash).0" ] \
    && leaf_ok "$dir/host/hostcert.pem" "$dir/host/hostkey.pem" \
    && leaf_ok "$dir/user/usercert.pem" "$dir/user/userkey.pem" \
    && leaf_ok "$dir/stranger/usercert.pem" "$dir/stranger/userkey.pem"; then
    crl_fresh || { say "signing a new CRL"; make_crl; }
    return 0
  fi
  say "making the test CA and the host, user and stranger certificates ($days days)"
  write_openssl_conf
  : >"$dir/ca/index.txt"
  echo 01 >"$dir/ca/crlnumber"
  new_key "$dir/ca/ca.key"
  chmod 0400 "$dir/ca/ca.key"
  openssl req -x509 -new -key "$dir/ca/ca.key" -subj "$ca_dn" -days "$days" -sha256 \
    -set_serial "0x$(openssl rand -hex 8)" -config "$dir/ca/openssl.cnf" -extensions ca_ext \
    -out "$dir/ca/ca.pem"
  install_ca
  make_crl
  rm -f "$dir"/host/* "$dir"/user/* "$dir"/stranger/*
  issue "$dir/host/hostcert.pem" "$dir/host/hostkey.pem" "$host_dn" host_ext
  issue "$dir/user/usercert.pem" "$dir/user/userkey.pem" "$user_dn" user_ext
  issue "$dir/stranger/usercert.pem" "$dir/stranger/userkey.pem" "$stranger_dn" user_ext
}

# ---------------------------------------------------------------------------------------------
# Configuration

write_arc_conf() {
  local port=$1
  cat >"$conf.new" <<EOF
# A-REX of the Sloop test site, made by scripts/arc-ce.sh: everything lives in $dir.
[common]
hostname = localhost
x509_host_key = $dir/host/arex-hostkey.pem
x509_host_cert = $dir/host/arex-hostcert.pem
x509_cert_dir = $certs

# Only the test user; the stranger (same CA) gets 403.
[authgroup:sloop-users]
subject = $user_dn

[mapping]
map_to_user = sloop-users $mapped_user:$mapped_group

[lrms]
lrms = fork

[arex]
controldir = $dir/control
sessiondir = $dir/session
runtimedir = $dir/rte
tmpdir = $dir/tmp
pidfile = $jobs_pidfile
logfile = $dir/log/arex.log
joblog = $dir/log/arex-jobs.log
helperlog = $dir/log/job.helper.errors
loglevel = 3

[arex/cache]
cachedir = $dir/cache

[arex/ws]
wsurl = https://localhost:$port/arex
pidfile = $ws_pidfile
logfile = $dir/log/ws-interface.log

[arex/ws/jobs]
allowaccess = sloop-users

[infosys]
logfile = $dir/log/infoprovider.log

[infosys/glue2]

[infosys/cluster]

[queue:fork]
EOF
  mv "$conf.new" "$conf"
}

make_dirs() {
  mkdir -p "$dir/control" "$dir/session" "$dir/cache" "$dir/rte/ENV" "$dir/tmp" "$dir/run" "$dir/log"
  chmod 0755 "$dir" "$dir/rte" "$dir/rte/ENV" "$dir/run" "$dir/log" "$dir/control"
  # The mapped user writes job files into the session dir and the fork LRMS job scripts into
  # [arex] tmpdir.
  chmod 1777 "$dir/session" "$dir/tmp"
  runuser -u "$mapped_user" -- test -w "$dir/session" \
    || die "$mapped_user cannot reach $dir/session: every directory above DIR must be searchable by others"
  # A valid dhparam.pem in the control dir, else arc-arex-ws-start runs `openssl dhparam 4096` in
  # the background (minutes of CPU). The RFC 7919 group is instant.
  local dh=$dir/control/dhparam.pem
  if ! openssl dhparam -in "$dh" -check -noout >/dev/null 2>&1; then
    (umask 0177 && openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$dh")
  fi
}

# The site RTE Sloop ships, copied (a restart refreshes it) and enabled as a site admin would.
install_rte() {
  local src=${SLOOP_TEST_CE_RTE_SOURCE:-$here/assets/site/$rte_name} dst=$dir/rte/$rte_name
  if [ ! -f "$src" ]; then
    say "no runtime environment at $src: the CE starts without $rte_name (jobs asking for it fail)"
    rm -f "$dst"
    arcctl -c "$conf" rte disable "$rte_name" >/dev/null 2>&1 || true
    return 0
  fi
  if ! cmp -s "$src" "$dst"; then
    cp "$src" "$dst.new"
    chmod 0644 "$dst.new"
    mv "$dst.new" "$dst"
    say "installed $rte_name from $src"
  fi
  if [ ! -e "$dir/control/rte/enabled/$rte_name" ]; then
    arcctl -c "$conf" rte enable "$rte_name" >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Start

# A clean environment for the daemons, as an init system gives them; their jobs inherit it.
# Only stdin, stdout and stderr are passed on: a daemon holding fd 9 (the lock of DIR) would block
# every later call, and one holding a pipe of the caller would keep the caller waiting for EOF.
run_helper() { # run_helper HELPER ARGS...
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec setsid -w env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      LANG=C.UTF-8 ARC_CONFIG="$conf" "$arc_share/$1" "${@:2}"
  )
}

# The arched XML a helper renders (`-d` makes arched print it and exit), adapted by a sed
# expression. Each helper call takes 1.5-2.5 s (config parser and checker), so the result is kept
# for as long as arc.conf and the helper stay the same.
render() { # render HELPER OUT SED-EXPRESSION CHECK
  local helper=$1 out=$2 expr=$3 check=$4 key
  key=$(cat "$conf" "$arc_share/$helper" | sha256sum)
  key="${key%% *} $expr"
  if [ -s "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then return 0; fi
  rm -f "$out" "$out.key"
  run_helper "$helper" -d >"$out.raw" 2>"$dir/log/$helper.out" \
    || die "$helper -d failed: $(cat "$dir/log/$helper.out" "$out.raw")"
  sed "$expr" "$out.raw" >"$out"
  rm -f "$out.raw"
  grep -qF -- "$check" "$out" || die "could not adapt the XML of $helper (no '$check' in $out)"
  echo "$key" >"$out.key"
}

launch() { # launch HELPER XML PIDFILE
  local helper=$1 xml=$2 pidfile=$3 i
  rm -f "$pidfile"
  # arched daemonizes and writes its pidfile; setsid keeps it out of the caller's process group,
  # and its output goes to DIR/log, not into the caller's pipes. The last -c wins.
  run_helper "$helper" -c "$xml" </dev/null >>"$dir/log/$helper.out" 2>&1 || die "$helper failed: $(tail -n 20 "$dir/log/$helper.out")"
  for ((i = 0; i < 100; i++)); do
    daemon_pid "$pidfile" >/dev/null && return 0
    sleep 0.1
  done
  die "$helper did not start arched (see $dir/log/$helper.out and $dir/log/)"
}

start_ce() {
  local port=$1 t0 i health=
  t0=$(date +%s%N)
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "something else listens on port $port: choose another with --port"
  fi
  make_dirs
  make_certificates
  hand_over_credentials
  arex_credentials
  write_arc_conf "$port"
  install_rte
  # A previous run's GLUE2 document would make /info look healthy before the infoprovider ran.
  rm -f "$dir/control/info.xml"

  # The two arched XMLs, rendered side by side. The HTTPS daemon listens on loopback only; the
  # job daemon reruns the infoprovider every $infoprovider_period tenths of a second.
  local ws_job jobs_job
  render arc-arex-ws-start "$dir/run/arex-ws.xml" \
    "s#<tcp:Listen><tcp:Port>$port</tcp:Port></tcp:Listen>#<tcp:Listen><tcp:Interface>127.0.0.1</tcp:Interface><tcp:Port>$port</tcp:Port></tcp:Listen><tcp:Listen><tcp:Interface>::1</tcp:Interface><tcp:Port>$port</tcp:Port></tcp:Listen>#" \
    "<tcp:Interface>127.0.0.1</tcp:Interface>" &
  ws_job=$!
  render arc-arex-start "$dir/run/arex-jobs.xml" \
    "s#<arex:gmconfig>#<arex:InfoproviderWakeupPeriod>$infoprovider_period</arex:InfoproviderWakeupPeriod><arex:gmconfig>#" \
    "<arex:InfoproviderWakeupPeriod>" &
  jobs_job=$!
  wait "$ws_job" || exit 1
  wait "$jobs_job" || exit 1

  # 1. The HTTPS/REST daemon, first: the job daemon's infoprovider publishes HealthState
  #    critical while nothing listens on the wsurl port.
  launch arc-arex-ws-start "$dir/run/arex-ws.xml" "$ws_pidfile"
  for ((i = 0; i < 150; i++)); do
    rest_answers "$port" && break
    sleep 0.2
  done
  rest_answers "$port" || die "REST does not answer on port $port (see $dir/log/ws-interface.log)"

  # 2. The job daemon (grid-manager, fork LRMS, data staging, infoprovider).
  launch arc-arex-start "$dir/run/arex-jobs.xml" "$jobs_pidfile"
  for ((i = 0; i < 300; i++)); do
    health=$(rest_health "$port") || health=
    case "$health" in ok|warning) break ;; esac
    sleep 0.2
  done
  case "$health" in
    ok|warning) ;;
    *) die "the infoprovider did not publish a healthy REST endpoint (HealthState '${health:-none}'; see $dir/log/infoprovider.log)" ;;
  esac
  rm -f "$dir"/tmp/arex.xml.*
  say "CE up at https://localhost:$port/arex (HealthState $health) in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------------------------------------

if [ "$cmd" = start ] || [ "$cmd" = stop ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root (A-REX maps grid users to the local account $mapped_user): sudo $0 $cmd $dir_arg"
  # One call at a time per DIR (tests running in parallel may all call start).
  exec 9>>"$dir/.lock"
  flock -w 120 9 || die "another $0 call holds $dir/.lock for more than 2 minutes"
fi

case "$cmd" in
  env)
    print_env ;;
  status)
    if running; then say "running, REST answers on port $(configured_port)"; exit 0; fi
    say "not running"; exit 1 ;;
  stop)
    stop_ce
    say "stopped" ;;
  start)
    for tool in arched arcctl openssl curl runuser setsid flock; do
      command -v "$tool" >/dev/null || die "$tool is missing: scripts/install-deps.sh installs the CE's packages"
    done
    if [ ! -x "$arc_share/arc-arex-start" ] || [ ! -x "$arc_share/arc-arex-ws-start" ]; then
      die "A-REX is missing: apt-get install nordugrid-arc-arex nordugrid-arc-plugins-arcrest"
    fi
    # The package's postinst makes ARC's own test CA and a host certificate for `hostname -f`;
    # where that name does not resolve, dpkg leaves the package unconfigured.
    if [ "$(dpkg-query -W -f='${Status}' nordugrid-arc-arex 2>/dev/null)" != "install ok installed" ]; then
      die "nordugrid-arc-arex is not configured: its postinst needs \`hostname -f\` to resolve (add the host name to /etc/hosts, then dpkg --configure -a)"
    fi
    port=${port_arg:-$(configured_port)}
    port=${port:-$default_port}
    if [ "$(configured_port)" = "$port" ] && running && certs_fresh; then
      # Nothing to do but keep the RTE in step with the repo (A-REX reads it at each submission).
      install_rte
      hand_over_credentials
      say "already running at https://localhost:$port/arex"
    else
      stop_ce
      start_ce "$port"
    fi
    print_env ;;
esac
