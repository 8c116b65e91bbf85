#!/usr/bin/env bash
# Runs the app-window E2E test: builds the UI and a debug app binary that serves it (no dev
# server), starts Xvfb and tauri-driver (WebDriver for Tauri, over WebKitWebDriver), runs
# app.test.mjs with `node --test` against a fresh SLOOP_HOME, and saves a screenshot of each view
# to test-artefacts/e2e/. The grid test submits to the test CE (scripts/arc-ce.sh), started here
# when it does not run yet. Stops everything it started, however it ends.
#
# Usage: tests/e2e/run.sh
#   SLOOP_E2E_SKIP_BUILD=1   use the binary already built (after a run with the same sources)
#   SLOOP_LIBVIRT_URI=URI    test against another libvirt (default: qemu:///system as root)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/e2e
artefacts=$root/test-artefacts/e2e
target_dir=${CARGO_TARGET_DIR:-$root/target}
app=$target_dir/debug/sloop-app
mkdir -p "$artefacts"
rm -f "$artefacts"/*.png

say() { echo "e2e: $*" >&2; }
seconds() { date +%s; }

pids=()
test_pid=
sloop_home=
ce_started=
libvirt_uri=
# The test's machines are libvirt domains sloop-e2e*: none outlives a run, also one stopped
# half-way (the next run could not make its machines again).
remove_test_domains() {
  local domain
  for domain in $(virsh -q -c "$libvirt_uri" list --all --name 2>/dev/null | grep '^sloop-e2e'); do
    virsh -q -c "$libvirt_uri" destroy "$domain" >/dev/null 2>&1 || true
    virsh -q -c "$libvirt_uri" undefine "$domain" >/dev/null 2>&1 || true
  done
}
cleanup() {
  local status=$?
  if [ -n "$test_pid" ]; then kill -TERM "$test_pid" 2>/dev/null || true; fi
  # Each helper runs in its own session (setsid): stopping its group also stops what it started
  # (WebKitWebDriver, the app and its WebKit processes).
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [ -n "$libvirt_uri" ]; then remove_test_domains; fi
  if [ -n "$sloop_home" ]; then
    cp "$sloop_home/logs/sloop.log" "$artefacts/sloop.log" 2>/dev/null || true
    rm -rf "$sloop_home"
  fi
  if [ -n "$ce_started" ]; then "$root/scripts/arc-ce.sh" stop "$ce_started" || true; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools: the UI's and the test's npm packages, tauri-driver, the WebKit driver, Xvfb.
if [ ! -d "$root/ui/node_modules" ]; then (cd "$root/ui" && npm ci --no-audit --no-fund --loglevel=error); fi
if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
tauri_driver=$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")
if [ ! -x "$tauri_driver" ]; then
  say "installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked --quiet
fi
native_driver=$(command -v WebKitWebDriver || echo /usr/bin/WebKitWebDriver)
for tool in "$native_driver" Xvfb node; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/install-deps.sh"; exit 1; }
done

if [ "${SLOOP_E2E_SKIP_BUILD:-}" != 1 ]; then
  start=$(seconds)
  (cd "$root/ui" && npm run build --silent)
  say "UI built in $(( $(seconds) - start )) s"
  start=$(seconds)
  # custom-protocol: serve the embedded ui/dist instead of loading the dev server. The grid
  # test's list maker (sloop-test-list) is built in the same run: alone, with fewer features
  # unified, it would build the core and its dependencies a second time.
  cargo build -p sloop-app --features sloop-app/custom-protocol -p sloop-testkit --bins
  say "app built in $(( $(seconds) - start )) s"
fi
[ -x "$app" ] || { say "no app binary at $app"; exit 1; }

# The host check reports on the real libvirt: make sure its daemon answers.
if [ "$(id -u)" -eq 0 ]; then default_uri=qemu:///system; else default_uri=qemu:///session; fi
libvirt_uri=${SLOOP_LIBVIRT_URI:-$default_uri}
"$root/scripts/libvirt-up.sh" "$libvirt_uri"
remove_test_domains

# A display nobody uses.
display=
for n in $(seq 90 160); do
  if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then display=$n; break; fi
done
[ -n "$display" ] || { say "no free X display between :90 and :160"; exit 1; }
setsid Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >"$artefacts/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X$display" ] || { say "Xvfb did not start; see $artefacts/xvfb.log"; exit 1; }
export DISPLAY=":$display"

# Two free TCP ports on loopback: tauri-driver's and WebKitWebDriver's.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
driver_port=$(free_port)
native_port=$(free_port)
while [ "$native_port" = "$driver_port" ]; do native_port=$(free_port); done

# Not WEBKIT_DISABLE_DMABUF_RENDERER or WEBKIT_DISABLE_COMPOSITING_MODE: with either, WebKitGTK
# 2.50 under Xvfb never answers a screenshot request once a scrollable area has gone from the page.
# Frames can lag instead; app.test.mjs waits for two animation frames before each screenshot.

# The demo catalog is built from the tiny test image (the one test.sh built, else build it).
if [ -z "${SLOOP_DEMO_IMAGE:-}" ]; then
  SLOOP_DEMO_IMAGE=${SLOOP_TEST_IMAGE:-$("$root/assets/test-image/build.sh" | tail -n 1)}
fi
export SLOOP_DEMO_IMAGE
# Its ISO variant, which the same recipe writes beside it: the demo lists both.
export SLOOP_DEMO_LIVE_ISO=${SLOOP_DEMO_LIVE_ISO:-${SLOOP_DEMO_IMAGE%/*}/sloop-test.iso}
[ -f "$SLOOP_DEMO_LIVE_ISO" ] || { echo "e2e: no $SLOOP_DEMO_LIVE_ISO (assets/test-image/build.sh writes it)" >&2; exit 1; }

# The app inherits this environment through tauri-driver and WebKitWebDriver.
sloop_home=$(mktemp -d -t sloop-e2e.XXXXXX)

# The test grid site (scripts/arc-ce.sh), shared with the CLI's grid tests: started here unless it
# runs already, and then stopped here too.
ce_dir=${TMPDIR:-/tmp}/sloop-test-ce
if ! "$root/scripts/arc-ce.sh" status "$ce_dir" 2>/dev/null; then
  start=$(seconds)
  "$root/scripts/arc-ce.sh" start "$ce_dir" >/dev/null
  ce_started=$ce_dir
  say "test CE started in $(( $(seconds) - start )) s"
fi
eval "$("$root/scripts/arc-ce.sh" env "$ce_dir")"

# The grid user: the one the test CE admits, with its key protected by a passphrase here; the CE's
# CA is a trust anchor, and so is the CA of the endorser of a signed list naming the tiny image at
# an HTTPS address on loopback (app.test.mjs serves it there, with the CE's host certificate).
# The user's own grid files are not touched.
grid=$sloop_home/grid
mkdir -p "$grid/certificates"
cp -P "$X509_CERT_DIR"/* "$grid/certificates/"
cp "$SLOOP_TEST_CE_USERCERT" "$grid/usercert.pem"
export SLOOP_E2E_GRID_PASSPHRASE="e2e grid passphrase"
openssl pkey -in "$SLOOP_TEST_CE_USERKEY" -aes256 -passout env:SLOOP_E2E_GRID_PASSPHRASE -out "$grid/userkey.pem"
chmod 400 "$grid/userkey.pem"
image_port=$(free_port)
[ -x "$target_dir/debug/sloop-test-list" ] || cargo build -q -p sloop-testkit --bin sloop-test-list
mapfile -t made < <("$target_dir/debug/sloop-test-list" "$SLOOP_DEMO_IMAGE" \
  "https://localhost:$image_port/tiny.qcow2" "$grid/list")
cp -P "${made[1]}"/* "$grid/certificates/"
export X509_CERT_DIR=$grid/certificates X509_USER_CERT=$grid/usercert.pem X509_USER_KEY=$grid/userkey.pem
export X509_USER_PROXY=$grid/x509up X509_VOMS_DIR=$grid/vomsdir
export SLOOP_HOME=$sloop_home
export SLOOP_LIBVIRT_URI=$libvirt_uri

setsid "$tauri_driver" --port "$driver_port" --native-port "$native_port" \
  --native-driver "$native_driver" >"$artefacts/tauri-driver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$driver_port") 2>/dev/null && break
  sleep 0.1
done

say "testing $app on display :$display, SLOOP_HOME=$sloop_home"
start=$(seconds)
SLOOP_E2E_APP=$app SLOOP_E2E_ARTEFACTS=$artefacts SLOOP_E2E_GRID=$grid SLOOP_E2E_LIBVIRT_URI=$libvirt_uri \
  SLOOP_E2E_DRIVER_PORT=$driver_port SLOOP_E2E_CE_URL=$SLOOP_TEST_CE_URL \
  SLOOP_E2E_LIST=${made[0]} SLOOP_E2E_IMAGE=$SLOOP_DEMO_IMAGE SLOOP_E2E_IMAGE_PORT=$image_port \
  SLOOP_E2E_HOST_CERT=$SLOOP_TEST_CE_HOSTCERT SLOOP_E2E_HOST_KEY=$SLOOP_TEST_CE_HOSTKEY \
  node --test --test-reporter=spec "$here/app.test.mjs" &
# In the background so that a signal to this script is handled at once, not after the tests.
test_pid=$!
wait "$test_pid"
test_pid=
say "tests ran in $(( $(seconds) - start )) s; screenshots in ${artefacts#"$root"/}/"
