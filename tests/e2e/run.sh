#!/usr/bin/env bash
# Runs the app-window E2E test: builds the UI and a debug app binary that serves it (no dev
# server), starts Xvfb and tauri-driver (WebDriver for Tauri, over WebKitWebDriver), runs
# app.test.mjs with `node --test` against a fresh SLOOP_HOME, and saves a screenshot of each view
# to test-artefacts/e2e/. Stops everything it started, however it ends.
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
  if [ -n "$sloop_home" ]; then
    cp "$sloop_home/logs/sloop.log" "$artefacts/sloop.log" 2>/dev/null || true
    rm -rf "$sloop_home"
  fi
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
  # custom-protocol: serve the embedded ui/dist instead of loading the dev server.
  cargo build -p sloop-app --features custom-protocol
  say "app built in $(( $(seconds) - start )) s"
fi
[ -x "$app" ] || { say "no app binary at $app"; exit 1; }

# The host check reports on the real libvirt: make sure its daemon answers.
if [ "$(id -u)" -eq 0 ]; then default_uri=qemu:///system; else default_uri=qemu:///session; fi
libvirt_uri=${SLOOP_LIBVIRT_URI:-$default_uri}
"$root/scripts/libvirt-up.sh" "$libvirt_uri"

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

# The app inherits this environment through tauri-driver and WebKitWebDriver.
sloop_home=$(mktemp -d -t sloop-e2e.XXXXXX)

# A grid user made here: a test CA as the only trust anchor, the user's certificate and a
# passphrase-protected key, and where the proxy goes. The user's own grid files are not touched.
grid=$sloop_home/grid
mkdir -p "$grid/certificates"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/DC=invalid/DC=sloop/O=E2E Grid/CN=E2E Grid CA" \
  -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$grid/ca.key" -out "$grid/ca.pem" 2>/dev/null
cp "$grid/ca.pem" "$grid/certificates/$(openssl x509 -noout -hash -in "$grid/ca.pem").0"
openssl req -newkey rsa:2048 -nodes -subj "/DC=invalid/DC=sloop/O=E2E Grid/CN=Erin Tester" \
  -keyout "$grid/user.key" -out "$grid/user.csr" 2>/dev/null
openssl x509 -req -in "$grid/user.csr" -CA "$grid/ca.pem" -CAkey "$grid/ca.key" -set_serial 7 -days 10 \
  -extfile <(printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') \
  -out "$grid/usercert.pem" 2>/dev/null
export SLOOP_E2E_GRID_PASSPHRASE="e2e grid passphrase"
openssl pkey -in "$grid/user.key" -aes256 -passout env:SLOOP_E2E_GRID_PASSPHRASE -out "$grid/userkey.pem"
chmod 400 "$grid/userkey.pem"
rm -f "$grid/ca.key" "$grid/user.key" "$grid/user.csr"
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
  SLOOP_E2E_DRIVER_PORT=$driver_port \
  node --test --test-reporter=spec "$here/app.test.mjs" &
# In the background so that a signal to this script is handled at once, not after the tests.
test_pid=$!
wait "$test_pid"
test_pid=
say "tests ran in $(( $(seconds) - start )) s; screenshots in ${artefacts#"$root"/}/"
