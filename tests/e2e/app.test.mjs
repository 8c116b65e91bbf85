// The real app window, driven through WebDriver: every assertion is on what the window shows from
// real core calls (host check, libvirt, the log). Run through ./run.sh, which builds the app,
// starts Xvfb and tauri-driver, and sets the variables read here.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Key, remote } from "webdriverio";

const application = required("SLOOP_E2E_APP");
// The app's SLOOP_HOME: the test looks there to see that a download really reached the store.
const sloopHome = required("SLOOP_HOME");
const artefacts = required("SLOOP_E2E_ARTEFACTS");
const libvirtUri = required("SLOOP_E2E_LIBVIRT_URI");
// The grid user run.sh made: certificate, protected key, test CA; the proxy goes in there too.
const grid = required("SLOOP_E2E_GRID");
const gridPassphrase = required("SLOOP_E2E_GRID_PASSPHRASE");
const driverPort = Number(process.env.SLOOP_E2E_DRIVER_PORT ?? 4444);
// The test grid site, and a signed list (its endorser's CA among the grid anchors) naming the tiny
// image at https://localhost:IMAGE_PORT/tiny.qcow2, which the grid test serves with the CE's host
// certificate: the CE fetches the run's base from there, as a real site fetches it from its list.
const ceUrl = required("SLOOP_E2E_CE_URL");
const gridList = required("SLOOP_E2E_LIST");
const gridImage = required("SLOOP_E2E_IMAGE");
const imagePort = Number(required("SLOOP_E2E_IMAGE_PORT"));
const hostCert = required("SLOOP_E2E_HOST_CERT");
const hostKey = required("SLOOP_E2E_HOST_KEY");

// The first host check boots a test guest (KVM is tried first, with a timeout, then TCG).
const HOST_CHECK_TIMEOUT = 90_000;
const UI_TIMEOUT = 15_000;
// A machine's start resolves once its SSH server answers: ~15 s under TCG, more on a busy host.
const BOOT_TIMEOUT = 180_000;
// A stop asks the guest to shut down (ACPI) and forces it off after a minute.
const STOP_TIMEOUT = 150_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/e2e/run.sh`);
  return value;
}

/** @type {WebdriverIO.Browser} */
let browser;

const byTestId = (id) => browser.$(`[data-testid="${id}"]`);

async function show(view) {
  await (await byTestId(`nav-${view}`)).click();
  await (await byTestId(`view-${view}`)).waitForDisplayed({ timeout: UI_TIMEOUT });
}

async function screenshot(name) {
  // Under Xvfb WebKitGTK presents a static page's new frame lazily: without waiting for two
  // animation frames the picture can show the window as it was before the last change.
  await browser.pause(200);
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await browser.saveScreenshot(path.join(artefacts, `${name}.png`));
}

/** The machine card named `name` (looked up again each time: views replace their elements). */
const machineCard = (name) => browser.$(`[data-testid="machine-card"][data-name="${name}"]`);

/**
 * Waits until the card of machine `name` shows `state` with no action under way; fails at once
 * with the card's error when the action failed.
 */
async function waitForMachine(name, state, timeout, what) {
  let failure = null;
  await browser.waitUntil(
    async () => {
      const found = await browser.execute((machine) => {
        const card = document.querySelector(`[data-testid="machine-card"][data-name="${machine}"]`);
        if (!card) return null;
        return {
          state: card.querySelector('[data-testid="machine-state"]')?.textContent?.trim() ?? "",
          busy: card.getAttribute("data-busy"),
          error: card.querySelector('[data-testid="machine-error"]')?.textContent?.trim() ?? null,
        };
      }, name);
      if (found?.error) failure = found.error;
      return failure !== null || (found?.state === state && found.busy === null);
    },
    { timeout, interval: 500, timeoutMsg: `${what}: machine ${name} did not end ${state}` },
  );
  if (failure) assert.fail(`${what}: ${failure}`);
}

/**
 * Waits until `done()` is true; fails at once with the text of the error banner `errorId` when
 * one shows instead.
 */
async function doneOrRefused(done, errorId, timeout, what) {
  let refused = null;
  await browser.waitUntil(
    async () => {
      const error = await byTestId(errorId);
      if (await error.isExisting()) refused = await error.getText();
      return refused !== null || (await done());
    },
    { timeout, interval: 500, timeoutMsg: `${what} did not end` },
  );
  if (refused !== null) assert.fail(`${what} was refused: ${refused}`);
}

/**
 * Run on grid… from machine `name`'s card, with `command` (none: an interactive run) and 20 min of
 * wall time, a screenshot named `shot` of the filled form when given; the new run's id once the
 * Runs view lists it.
 */
async function submitFromCard(name, command, shot) {
  await show("machines");
  await (await (await machineCard(name)).$('[data-testid="machine-run-on-grid"]')).click();
  await (await byTestId("submit-panel")).waitForDisplayed({ timeout: UI_TIMEOUT });
  if (command) await (await byTestId("submit-command")).setValue(command);
  await (await byTestId("submit-walltime")).setValue("20m");
  if (shot) await screenshot(shot);
  await (await byTestId("submit-submit")).click();
  await doneOrRefused(
    async () => (await byTestId("runs-panel")).isDisplayed(),
    "submit-error",
    180_000,
    `the ${command ? "" : "interactive "}submit of ${name}`,
  );
  const row = await browser.$('[data-testid="run-row"]');
  await row.waitForDisplayed({ timeout: UI_TIMEOUT });
  return row.getAttribute("data-id");
}

/** Clean on run `id`'s row, confirmed; waits until the row is gone. */
async function cleanRun(id) {
  const row = () => browser.$(`[data-testid="run-row"][data-id="${id}"]`);
  await (await (await row()).$('[data-testid="run-clean"]')).click();
  await (await byTestId("run-clean-confirm")).click();
  await browser.waitUntil(async () => !(await (await row()).isExisting()), {
    timeout: 180_000,
    timeoutMsg: `run ${id} stayed in the view after Clean`,
  });
}

/** The rows the in-app terminal shows (xterm.js's DOM renderer), as plain text; the one inside
 * `scope` (a CSS selector) when given. */
function terminalRows(scope = "") {
  return browser.execute(
    (selector) =>
      Array.from(document.querySelectorAll(selector), (row) =>
        (row.textContent ?? "").replace(/\u00a0/g, " ").trimEnd(),
      ),
    `${scope} [data-testid="machine-terminal"] .xterm-rows > div`,
  );
}

/** Types `text` key by key into whatever has the focus, then Enter. */
async function typeLine(text) {
  const keys = browser.action("key");
  for (const char of text) keys.down(char).up(char);
  keys.down(Key.Enter).up(Key.Enter);
  await keys.perform();
}

/** The log view's messages, read in one round trip. */
function logMessages() {
  return browser.execute(() =>
    Array.from(document.querySelectorAll('[data-testid="log-message"]'), (m) => m.textContent ?? ""),
  );
}

/** Seconds the proxy file has left, as openssl reads it on the host. */
function proxySecondsLeft() {
  const out = execFileSync("openssl", ["x509", "-noout", "-enddate", "-in", path.join(grid, "x509up")], {
    encoding: "utf8",
  });
  const end = Date.parse(out.trim().replace(/^notAfter=/, ""));
  return Math.round((end - Date.now()) / 1000);
}

/** The panel's time left in seconds, from its "H h M min" text (minute precision). */
async function panelSecondsLeft() {
  const text = await (await byTestId("proxy-time-left")).getText();
  const hours = /(\d+)\s*h/.exec(text);
  const minutes = /(\d+)\s*min/.exec(text);
  assert.ok(hours || minutes, `the panel's time left reads ${JSON.stringify(text)}`);
  return (hours ? Number(hours[1]) * 3600 : 0) + (minutes ? Number(minutes[1]) * 60 : 0);
}

// The suite's timeout bounds all its tests together: the machine's life alone can take minutes.
describe("the app window", { timeout: 1_500_000 }, () => {
  before(async () => {
    browser = await remote({
      hostname: "127.0.0.1",
      port: driverPort,
      logLevel: "warn",
      connectionRetryTimeout: 120_000,
      capabilities: {
        browserName: "wry",
        "tauri:options": { application },
        // WebKitWebDriver speaks classic WebDriver only: no BiDi session (webSocketUrl).
        "wdio:enforceWebDriverClassic": true,
      },
    });
  });

  after(async () => {
    await browser?.deleteSession();
  });

  it("opens on the host check with the libvirt URI the core reports", async () => {
    assert.equal(await browser.getTitle(), "Sloop");
    await (await byTestId("view-host")).waitForDisplayed({ timeout: UI_TIMEOUT });

    const libvirt = await byTestId("check-libvirt");
    await libvirt.waitForDisplayed({ timeout: HOST_CHECK_TIMEOUT });
    assert.equal(await libvirt.getAttribute("data-status"), "ok");
    assert.equal(await (await libvirt.$('[data-testid="check-status"]')).getText(), "OK");
    const detail = await (await libvirt.$('[data-testid="check-detail"]')).getText();
    assert.match(detail, new RegExp(`^libvirt \\d+\\.\\d+\\.\\d+ at ${escape(libvirtUri)}$`));
    assert.equal(await (await byTestId("host-uri")).getText(), libvirtUri);

    // Every check the core makes is listed, each with a status in words.
    const rows = await browser.$$('[data-testid="host-checks"] > li');
    assert.equal(rows.length, 9);
    for (const row of rows) {
      const status = await (await row.$('[data-testid="check-status"]')).getText();
      assert.ok(["OK", "Warning", "Missing"].includes(status), `status ${status}`);
    }

    // The acceleration row names what guests will run with; TCG is a warning with a fix.
    const acceleration = await byTestId("host-acceleration");
    const accelerationText = await acceleration.getText();
    const accelerationCheck = await byTestId("check-acceleration");
    switch (await acceleration.getAttribute("data-acceleration")) {
      case "tcg":
        assert.equal(accelerationText, "TCG (software emulation)");
        assert.equal(await accelerationCheck.getAttribute("data-status"), "warning");
        assert.ok(await (await accelerationCheck.$('[data-testid="check-fix"]')).isDisplayed());
        break;
      case "kvm":
        assert.equal(accelerationText, "KVM (hardware virtualisation)");
        assert.equal(await accelerationCheck.getAttribute("data-status"), "ok");
        break;
      default:
        assert.fail(`QEMU ran no guest on this host: ${accelerationText}`);
    }
    await screenshot("host");
  });

  it("makes a proxy from the panel, shows its real time left, and follows a renewal by arcproxy", async () => {
    const panel = await byTestId("proxy-panel");
    await panel.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.match(await panel.getText(), /No grid proxy/);

    // Make one: a wrong passphrase is refused in the form, the right one makes the proxy.
    await (await byTestId("proxy-renew")).click();
    const passphrase = await byTestId("proxy-passphrase");
    await passphrase.waitForDisplayed({ timeout: UI_TIMEOUT });
    await passphrase.setValue("not the passphrase");
    await (await byTestId("proxy-submit")).click();
    const error = await byTestId("proxy-error");
    await error.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.match(await error.getText(), /passphrase/);
    assert.equal(fs.existsSync(path.join(grid, "x509up")), false, "no proxy from a wrong passphrase");
    await (await byTestId("proxy-passphrase")).setValue(gridPassphrase);
    await (await byTestId("proxy-submit")).click();
    const identity = await byTestId("proxy-identity");
    await identity.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.match(await identity.getText(), /Sloop Test User/);
    // The file: 0600, and the time the panel shows is the file's own.
    assert.equal(fs.statSync(path.join(grid, "x509up")).mode & 0o777, 0o600);
    assert.ok(Math.abs((await panelSecondsLeft()) - proxySecondsLeft()) <= 120);
    assert.ok(proxySecondsLeft() > 11 * 3600, "the default lifetime is 12 h");
    await screenshot("proxy-panel");

    // Renewed by another grid tool: the panel follows within seconds, with no click.
    execFileSync(
      "arcproxy",
      [
        "-C", path.join(grid, "usercert.pem"), "-K", path.join(grid, "userkey.pem"),
        "-P", path.join(grid, "x509up"), "-T", path.join(grid, "certificates"),
        "-S", "", "-c", "validityPeriod=2h", "-p", "key=stdin",
      ],
      { input: `${gridPassphrase}\n`, stdio: ["pipe", "ignore", "inherit"], timeout: 60_000 },
    );
    await browser.waitUntil(async () => (await panelSecondsLeft()) <= 2 * 3600, {
      timeout: 20_000,
      timeoutMsg: "the panel did not follow the renewal by arcproxy",
    });
    assert.ok(Math.abs((await panelSecondsLeft()) - proxySecondsLeft()) <= 120);

    // Nothing secret reached the log.
    const log = fs.readFileSync(path.join(sloopHome, "logs", "sloop.log"), "utf8");
    assert.equal(log.includes(gridPassphrase), false, "the passphrase is in the log");
    assert.equal(log.includes("PRIVATE KEY"), false, "a key is in the log");
  });

  it("shows the friendly empty state when there are no machines", async () => {
    await show("machines");
    const empty = await byTestId("machines-empty");
    await empty.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.match(await empty.getText(), /No machines yet/);
    assert.equal((await browser.$$('[data-testid="machine-card"]')).length, 0);
    await screenshot("machines");
  });

  it("subscribes to the demo catalog and downloads its certified image into the store", async () => {
    await show("images");
    const addDemo = await byTestId("add-demo-catalog");
    await addDemo.waitForDisplayed({ timeout: UI_TIMEOUT });
    await addDemo.click();

    const card = await browser.$('[data-testid="catalog-card"][data-catalog="demo"]');
    await card.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.equal(await (await card.$('[data-testid="catalog-state"]')).getText(), "Verified");
    assert.equal(
      await (await card.$('[data-testid="catalog-endorser"]')).getText(),
      "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser",
    );
    assert.equal(
      await (await card.$('[data-testid="catalog-ca"]')).getText(),
      "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA",
    );

    const row = await browser.$('[data-testid="image-row"][aria-label="Sloop tiny test image"]');
    await row.waitForDisplayed({ timeout: UI_TIMEOUT });
    assert.ok(await (await row.$('[data-testid="image-certified"]')).isDisplayed());
    assert.match(await (await row.$('[data-testid="image-size"]')).getText(), /^\d+(\.\d)? MB$/);
    await screenshot("images");

    await (await row.$('[data-testid="image-download"]')).click();
    const local = await row.$('[data-testid="image-local-state"]');
    await browser.waitUntil(async () => (await local.isExisting()) && (await local.getText()) === "Downloaded", {
      timeout: 60_000,
      timeoutMsg: "the image did not end as Downloaded",
    });
    // Its runnable base was checked and made at the pull: a qcow2 as listed is its own base.
    const base = await row.$('[data-testid="image-base-state"]');
    await browser.waitUntil(async () => (await base.isExisting()) && (await base.getText()) === "Ready to run", {
      timeout: UI_TIMEOUT,
      timeoutMsg: "the image's runnable base did not show as ready",
    });
    assert.equal(await base.getAttribute("data-tone"), "ok");
    // The core put the verified image (and its provenance) in the read-only store.
    const store = path.join(sloopHome, "data", "images", "store");
    const files = fs.readdirSync(store).sort();
    assert.equal(files.length, 2, `store holds ${files.join(", ")}`);
    assert.match(files[0], /^[0-9a-f]{128}$/);
    assert.equal(fs.statSync(path.join(store, files[0])).mode & 0o777, 0o444);
    await screenshot("images-downloaded");
  });

  const lifecycle =
    "creates a machine from the demo image, starts it, opens a terminal in it, exports it (stopping it), imports the bundle as a second machine with its provenance, deletes both";
  it(lifecycle, { timeout: 900_000 }, async () => {
    // A work folder with a file the machine reads at /analysis (9p in mapped mode, read-write).
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "sloop-e2e-work-"));
    fs.chmodSync(work, 0o755);
    const greeting = `hello from the e2e host, pid ${process.pid}`;
    fs.writeFileSync(path.join(work, "hello.txt"), `${greeting}\n`);
    const bundles = fs.mkdtempSync(path.join(os.tmpdir(), "sloop-e2e-bundles-"));
    let created = false;
    let deleted = false;
    let copied = false;
    try {
      await show("machines");
      await (await byTestId("machine-new")).click();
      await (await byTestId("machine-create-form")).waitForDisplayed({ timeout: UI_TIMEOUT });

      // The demo image downloaded by the images test is offered (certified and downloaded).
      const image = await byTestId("machine-create-image");
      await image.waitForDisplayed({ timeout: UI_TIMEOUT });
      const demo = await browser.execute(() => {
        const options = document.querySelectorAll('[data-testid="machine-create-image"] option');
        const demo = Array.from(options).find((o) => o.textContent.includes("Sloop tiny test image"));
        return demo ? demo.value : null;
      });
      assert.ok(demo, "the create form does not offer the demo image");
      await image.selectByAttribute("value", demo);
      assert.equal(await image.getValue(), demo);

      const fields = [
        ["machine-create-name", "e2e"],
        ["machine-create-vcpus", "1"],
        ["machine-create-memory", "256"],
        ["machine-create-disk", "1"],
        ["machine-create-workdir", work],
      ];
      for (const [id, value] of fields) {
        const input = await byTestId(id);
        await input.setValue(value);
        assert.equal(await input.getValue(), value, id);
      }
      await (await byTestId("machine-create-submit")).click();

      const card = await machineCard("e2e");
      await card.waitForDisplayed({ timeout: 60_000, timeoutMsg: "no card for the new machine e2e" });
      created = true;
      await waitForMachine("e2e", "Stopped", UI_TIMEOUT, "create");
      assert.equal(await (await byTestId("machine-create-form")).isExisting(), false);
      const text = async (id) => (await card.$(`[data-testid="${id}"]`)).getText();
      assert.equal(await text("machine-resources"), "1 vCPU · 256 MiB memory");
      // The core keeps the folder's canonical path.
      assert.equal(await text("machine-workdir"), fs.realpathSync(work));
      assert.match(await text("machine-ssh"), /^127\.0\.0\.1:\d+$/);
      assert.equal(await (await card.$('[data-testid="machine-image-uncertified"]')).isExisting(), false);

      // Start: the card shows the start's progress ("Starting…", "Booting…") until SSH answers.
      await (await card.$('[data-testid="machine-start"]')).click();
      const progress = await browser.waitUntil(
        () =>
          browser.execute(() => {
            const card = document.querySelector('[data-testid="machine-card"][data-name="e2e"]');
            const stage = card?.querySelector('[data-testid="machine-progress-stage"]');
            const error = card?.querySelector('[data-testid="machine-error"]');
            if (stage) return { stage: stage.textContent.trim() };
            return error ? { error: error.textContent.trim() } : false;
          }),
        { timeout: UI_TIMEOUT, timeoutMsg: "the start showed no progress" },
      );
      if (progress.error) assert.fail(`start: ${progress.error}`);
      assert.match(progress.stage, /^(Starting|Preparing|Booting)…$/);
      await waitForMachine("e2e", "Running", BOOT_TIMEOUT, "start");
      assert.ok(await (await card.$('[data-testid="machine-stop"]')).isEnabled());
      await screenshot("machine-running");

      // Closing the window while the machine runs asks first (the window's own close, as the
      // title bar's button does it); Cancel keeps the window and the machine.
      await browser.execute(() =>
        window.__TAURI_INTERNALS__.invoke("plugin:window|close", { label: "main" }),
      );
      const quit = await byTestId("quit-dialog");
      await quit.waitForDisplayed({ timeout: UI_TIMEOUT });
      assert.match(await quit.getText(), /A machine is running\s+e2e/);
      await screenshot("quit-dialog");
      await (await byTestId("quit-stay")).click();
      await quit.waitForDisplayed({ reverse: true, timeout: UI_TIMEOUT });
      await waitForMachine("e2e", "Running", UI_TIMEOUT, "stay running after Cancel");

      // A terminal in the machine: the file shared from the host, and the kernel's name.
      await (await card.$('[data-testid="machine-open"]')).click();
      await (await byTestId("machine-detail")).waitForDisplayed({ timeout: UI_TIMEOUT });
      await (await byTestId("machine-tab-terminal")).click();
      const terminal = await byTestId("machine-terminal");
      await terminal.waitForDisplayed({ timeout: UI_TIMEOUT });
      const status = await byTestId("machine-terminal-status");
      await browser.waitUntil(async () => (await status.getAttribute("data-status")) === "open", {
        timeout: 60_000,
        timeoutMsg: "the terminal did not connect",
      });
      // The shell's prompt first: what is typed before it may be lost in the login.
      await browser.waitUntil(async () => (await terminalRows()).some((row) => row.trim() !== ""), {
        timeout: 30_000,
        timeoutMsg: "the terminal shows no prompt",
      });
      await terminal.click();
      // The click focuses xterm.js's input; make sure, since keys go to whatever has the focus.
      await browser.execute(() =>
        document.querySelector('[data-testid="machine-terminal"] .xterm-helper-textarea')?.focus(),
      );
      await typeLine("cat /analysis/hello.txt; uname -s");
      await browser.waitUntil(
        async () => {
          const rows = (await terminalRows()).map((row) => row.trim());
          return rows.includes(greeting) && rows.includes("Linux");
        },
        {
          timeout: 30_000,
          timeoutMsg: "the terminal did not show the shared file's content and Linux",
        },
      );
      await screenshot("machine-terminal");

      // The grid proxy, attached from the card's switch, is read inside by openssl.
      await (await byTestId("machine-back")).click();
      await (await (await machineCard("e2e")).$('[data-testid="proxy-switch"]')).click();
      await browser.waitUntil(
        async () =>
          (await (await (await machineCard("e2e")).$('[data-testid="proxy-switch"]')).isSelected()) &&
          (await (await machineCard("e2e")).getAttribute("data-busy")) === null,
        { timeout: 60_000, timeoutMsg: "the proxy switch did not turn on" },
      );
      await waitForMachine("e2e", "Running", UI_TIMEOUT, "attach");
      await (await (await machineCard("e2e")).$('[data-testid="machine-open"]')).click();
      await (await byTestId("machine-tab-terminal")).click();
      await (await byTestId("machine-terminal")).waitForDisplayed({ timeout: UI_TIMEOUT });
      await browser.waitUntil(
        async () => (await (await byTestId("machine-terminal-status")).getAttribute("data-status")) === "open",
        { timeout: 60_000, timeoutMsg: "the terminal did not connect again" },
      );
      await browser.waitUntil(async () => (await terminalRows()).some((row) => row.trim() !== ""), {
        timeout: 30_000,
        timeoutMsg: "the terminal shows no prompt again",
      });
      await browser.execute(() =>
        document.querySelector('[data-testid="machine-terminal"] .xterm-helper-textarea')?.focus(),
      );
      await typeLine("openssl x509 -in /tmp/x509up_u1000 -noout -subject");
      await browser.waitUntil(
        async () => (await terminalRows()).some((row) => row.includes("CN = Sloop Test User")),
        { timeout: 30_000, timeoutMsg: "openssl in the machine did not read the attached proxy" },
      );

      // The serial console shows the boot, with the image's contextualisation (sloop-init).
      await (await byTestId("machine-tab-console")).click();
      await browser.waitUntil(
        async () =>
          (
            await browser.execute(
              () => document.querySelector('[data-testid="machine-console-text"]')?.textContent ?? "",
            )
          ).includes("sloop-init"),
        { timeout: 30_000, timeoutMsg: "the console log shows no sloop-init line" },
      );
      assert.ok(await (await byTestId("machine-console-text")).isDisplayed());
      await screenshot("machine-console");

      // Export… while it runs: "Stop and export" shuts it down first, then writes the bundle,
      // signed with the proxy the panel made.
      const bundle = path.join(bundles, "e2e.sloop");
      await (await byTestId("machine-export")).click();
      const exportPath = await byTestId("export-path");
      await exportPath.waitForDisplayed({ timeout: UI_TIMEOUT });
      await browser.waitUntil(async () => (await exportPath.getValue()).endsWith("e2e.sloop"), {
        timeout: UI_TIMEOUT,
        timeoutMsg: "the export dialog proposed no file",
      });
      await exportPath.setValue(bundle);
      await (await byTestId("export-note")).setValue("exported by the e2e test");
      const submit = await byTestId("export-submit");
      assert.equal(await submit.getText(), "Stop and export");
      await submit.click();
      let exportError = null;
      await browser.waitUntil(
        async () => {
          if (await (await byTestId("export-error")).isExisting()) {
            exportError = await (await byTestId("export-error")).getText();
            return true;
          }
          return (await byTestId("export-done")).isExisting();
        },
        { timeout: STOP_TIMEOUT + 60_000, interval: 500, timeoutMsg: "the export did not end" },
      );
      if (exportError) assert.fail(`export: ${exportError}`);
      assert.match(await (await byTestId("export-provenance")).getText(), /changed by .*CN=Sloop Test User/);
      assert.ok(fs.statSync(bundle).size > 0);
      await screenshot("machine-export");
      await (await byTestId("export-close")).click();

      // Import… it as a second machine: checked first, then made; its provenance names the user.
      await (await byTestId("machine-back")).click();
      await waitForMachine("e2e", "Stopped", STOP_TIMEOUT, "stop for the export");
      await (await byTestId("machine-import")).click();
      await (await byTestId("import-file")).setValue(bundle);
      await (await byTestId("import-inspect")).click();
      const seen = await byTestId("import-provenance");
      await seen.waitForDisplayed({ timeout: 60_000 });
      assert.match(await seen.getText(), /changed by .*CN=Sloop Test User/);
      await (await byTestId("import-name")).setValue("e2e-copy");
      await screenshot("machine-import");
      await (await byTestId("import-submit")).click();
      copied = true;
      const copy = browser.$('[data-testid="machine-detail"][data-name="e2e-copy"]');
      await copy.waitForDisplayed({ timeout: 120_000 });
      await (await byTestId("machine-tab-provenance")).click();
      const changedBy = await byTestId("provenance-changed-by");
      await changedBy.waitForDisplayed({ timeout: UI_TIMEOUT });
      assert.match(await changedBy.getText(), /CN=Sloop Test User/);
      assert.match(await (await byTestId("provenance-bundle")).getText(), /e2e\.sloop/);
      assert.match(await (await byTestId("provenance-endorser")).getText(), /Sloop Demo Endorser/);
      await screenshot("machine-provenance");
      await (await byTestId("machine-back")).click();
      await (await (await machineCard("e2e-copy")).$('[data-testid="machine-delete"]')).click();
      await (await byTestId("machine-delete-question")).waitForDisplayed({ timeout: UI_TIMEOUT });
      await (await byTestId("machine-delete-confirm")).click();
      await browser.waitUntil(async () => !(await (await machineCard("e2e-copy")).isExisting()), {
        timeout: 60_000,
        timeoutMsg: "the card of e2e-copy did not go",
      });
      copied = false;

      // Back to the list, stopped by the export; delete it (the question names the overlay).
      await (await machineCard("e2e")).waitForDisplayed({ timeout: UI_TIMEOUT });

      await (await (await machineCard("e2e")).$('[data-testid="machine-delete"]')).click();
      const question = await byTestId("machine-delete-question");
      await question.waitForDisplayed({ timeout: UI_TIMEOUT });
      assert.match(await question.getText(), /overlay/);
      await (await byTestId("machine-delete-confirm")).click();
      await browser.waitUntil(async () => !(await (await machineCard("e2e")).isExisting()), {
        timeout: 60_000,
        timeoutMsg: "the card of e2e did not go",
      });
      deleted = true;
      await (await byTestId("machines-empty")).waitForDisplayed({ timeout: UI_TIMEOUT });
      // The user's file is still on the host.
      assert.equal(fs.readFileSync(path.join(work, "hello.txt"), "utf8"), `${greeting}\n`);
    } finally {
      // Leave no guest running on the host: the app's SLOOP_HOME goes when run.sh ends.
      const left = [...(created && !deleted ? ["sloop-e2e"] : []), ...(copied ? ["sloop-e2e-copy"] : [])];
      for (const domain of left) {
        for (const command of ["destroy", "undefine"]) {
          try {
            execFileSync("virsh", ["-q", "-c", libvirtUri, command, domain], {
              stdio: "ignore",
              timeout: 30_000,
            });
          } catch {
            // Not running, or not defined.
          }
        }
      }
      fs.rmSync(work, { recursive: true, force: true });
      fs.rmSync(bundles, { recursive: true, force: true });
    }
  });

  const gridRun =
    "runs a machine on the grid: adds the site, checks it, submits from the machine's card, follows the run to FINISHED, fetches its output, cleans it";
  it(gridRun, { timeout: 900_000 }, async () => {
    // The base, over HTTPS on loopback: the app downloads it once, the CE fetches it for the run.
    const gets = [];
    const server = https.createServer(
      { cert: fs.readFileSync(hostCert), key: fs.readFileSync(hostKey) },
      (request, response) => {
        // ARC's HTTP client asks in absolute form, and first tries WebDAV (PROPFIND): not here.
        const where = new URL(request.url, "https://localhost").pathname;
        gets.push(`${request.method} ${where}`);
        if (where !== "/tiny.qcow2") {
          response.writeHead(404).end();
          return;
        }
        if (!["GET", "HEAD"].includes(request.method)) {
          response.writeHead(405, { allow: "GET, HEAD" }).end();
          return;
        }
        response.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": fs.statSync(gridImage).size,
        });
        if (request.method === "HEAD") response.end();
        else fs.createReadStream(gridImage).pipe(response);
      },
    );
    await new Promise((resolve) => server.listen(imagePort, "127.0.0.1", resolve));
    let created = false;
    try {
      await runOnGrid();
    } catch (e) {
      await screenshot("grid-failure");
      throw e;
    } finally {
      server.close();
      if (created) {
        try {
          execFileSync("virsh", ["-q", "-c", libvirtUri, "undefine", "sloop-e2e-grid"], { stdio: "ignore" });
        } catch {
          // Not defined.
        }
      }
    }

    async function runOnGrid() {
      // The list, subscribed to from the Images view, is checked against the grid anchors.
      await show("images");
      await (await byTestId("catalog-source-input")).setValue(gridList);
      await (await byTestId("catalog-add")).click();
      const catalog = await browser.$('[data-testid="catalog-card"][data-catalog="grid-test"]');
      await catalog.waitForDisplayed({ timeout: 60_000, timeoutMsg: "no card for the grid test catalog" });
      assert.equal(await (await catalog.$('[data-testid="catalog-state"]')).getText(), "Verified");
      // The same bytes as the demo image: the store may hold them already (it is keyed by SHA-512).
      const row = await browser.$('[data-testid="image-row"][aria-label="Grid test image"]');
      await row.waitForDisplayed({ timeout: UI_TIMEOUT });
      const identifier = await row.getAttribute("data-image");
      if ((await row.getAttribute("data-local")) !== "stored") {
        await (await row.$('[data-testid="image-download"]')).click();
      }
      await browser.waitUntil(async () => (await row.getAttribute("data-local")) === "stored", {
        timeout: 60_000,
        timeoutMsg: "the grid test image did not end in the store",
      });

      await show("machines");
      await (await byTestId("machine-new")).click();
      const image = await byTestId("machine-create-image");
      await image.waitForDisplayed({ timeout: UI_TIMEOUT });
      await image.selectByAttribute("value", identifier);
      for (const [id, value] of [
        ["machine-create-name", "e2e-grid"],
        ["machine-create-vcpus", "1"],
        ["machine-create-memory", "256"],
        ["machine-create-disk", "1"],
      ]) {
        await (await byTestId(id)).setValue(value);
      }
      await (await byTestId("machine-create-submit")).click();
      await doneOrRefused(
        async () => (await machineCard("e2e-grid")).isDisplayed(),
        "machine-create-error",
        60_000,
        "the create of e2e-grid",
      );
      created = true;
      await waitForMachine("e2e-grid", "Stopped", UI_TIMEOUT, "create");

      // The site: added and asked with the user's proxy (the panel made it earlier).
      await show("grid");
      await (await byTestId("grid-tab-sites")).click();
      await (await byTestId("site-add-name")).setValue("test");
      await (await byTestId("site-add-url")).setValue(ceUrl);
      await (await byTestId("site-add-submit")).click();
      const site = await browser.$('[data-testid="site-card"][data-name="test"]');
      await site.waitForDisplayed({ timeout: 60_000, timeoutMsg: "no card for the site test" });
      const offers = await site.$('[data-testid="site-vm-jobs"]');
      if (!(await offers.isExisting())) await (await site.$('[data-testid="site-check"]')).click();
      await offers.waitForDisplayed({ timeout: 60_000, timeoutMsg: "the site's check did not answer" });
      assert.equal(await offers.getAttribute("data-offers"), "true");
      assert.match(await (await site.$('[data-testid="site-identity"]')).getText(), /Sloop Test User/);
      await screenshot("grid-sites");

      // An interactive run (no command): Open shell on its row waits for its machine at the site
      // and logs in; what is typed runs there.
      const shellId = await submitFromCard("e2e-grid", null);
      await (await browser.$(`[data-testid="run-row"][data-id="${shellId}"] [data-testid="run-shell"]`)).click();
      const pane = '[data-testid="run-shell-pane"]';
      await browser.waitUntil(
        async () =>
          (await (await browser.$(`${pane} [data-testid="machine-terminal-status"]`)).getAttribute("data-status")) ===
          "open",
        { timeout: 400_000, interval: 1000, timeoutMsg: `the shell in run ${shellId} did not open` },
      );
      await browser.waitUntil(async () => (await terminalRows(pane)).some((row) => row.trim() !== ""), {
        timeout: 60_000,
        timeoutMsg: "the run's terminal shows no prompt",
      });
      await (await browser.$(`${pane} [data-testid="machine-terminal"]`)).click();
      await browser.execute(
        (selector) => document.querySelector(selector)?.focus(),
        `${pane} [data-testid="machine-terminal"] .xterm-helper-textarea`,
      );
      await typeLine("echo at-the-site-$((6*7)) on $(hostname)");
      await browser.waitUntil(
        async () => (await terminalRows(pane)).some((row) => row.trim() === "at-the-site-42 on e2e-grid"),
        { timeout: 60_000, timeoutMsg: "the run's terminal did not show the command's output" },
      );
      await screenshot("grid-shell");
      await (await byTestId("run-shell-close")).click();
      await cleanRun(shellId);

      // Run on grid, from the machine's card. The command outlives one refresh of the Runs view
      // (every 15 s) so that RUNNING is seen, then leaves a file in /analysis/output.
      const command = 'sleep 40; echo "ran on the grid as $(id -un)" >/analysis/output/e2e.txt';
      const id = await submitFromCard("e2e-grid", command, "grid-submit");
      const runRow = () => browser.$(`[data-testid="run-row"][data-id="${id}"]`);
      const phases = new Set();
      await browser.waitUntil(
        async () => {
          const phase = await (await runRow()).getAttribute("data-phase");
          phases.add(phase);
          if (["failed", "killed", "gone"].includes(phase)) return true;
          return phase === "finished";
        },
        { timeout: 600_000, interval: 1000, timeoutMsg: `run ${id} did not finish` },
      );
      const phase = await (await runRow()).getAttribute("data-phase");
      assert.equal(phase, "finished", `run ${id} ended ${phase}; phases seen: ${[...phases].join(", ")}`);
      assert.ok(phases.has("running"), `the Runs view never showed RUNNING: ${[...phases].join(", ")}`);
      assert.match(await (await (await runRow()).$('[data-testid="run-accel"]')).getText(), /^(KVM|TCG)$/);
      await screenshot("grid-runs");

      // Fetch: the output comes back into the run's folder in Sloop's home.
      await (await (await runRow()).$('[data-testid="run-fetch"]')).click();
      const fetched = await byTestId("run-fetched");
      await fetched.waitForDisplayed({ timeout: 120_000, timeoutMsg: `run ${id}'s outputs did not come back` });
      const dir = await (await fetched.$("code")).getText();
      const output = fs.readFileSync(path.join(dir, "output", "e2e.txt"), "utf8");
      assert.match(output, /^ran on the grid as \S+\n$/);
      await screenshot("grid-fetched");
      // The CE fetched the run's base from the list's address.
      assert.ok(gets.includes("GET /tiny.qcow2"), `requests: ${gets.join(", ")}`);

      // Clean: the run goes from the CE and from the view.
      await cleanRun(id);
    }
  });

  const tutorial =
    "opens a tutorial file: the welcome text beside a terminal with the material at /analysis; Reset to start brings the start back and keeps the old work aside";
  it(tutorial, { timeout: 600_000 }, async () => {
    // A tutorial a trainer could write by hand on the demo catalog (subscribed above): the list
    // and image pinned, the material a plain tar beside the file.
    const course = fs.mkdtempSync(path.join(os.tmpdir(), "sloop-e2e-course-"));
    try {
      fs.mkdirSync(path.join(course, "material"));
      fs.writeFileSync(path.join(course, "material", "hello.C"), "void hello() {}\n");
      const tar = path.join(course, "course-material.tar");
      execFileSync("tar", ["--format=ustar", "-C", path.join(course, "material"), "-cf", tar, "hello.C"]);
      const sha512 = (file) => crypto.createHash("sha512").update(fs.readFileSync(file)).digest("hex");
      // The demo list's pins (crates/sloop-core/src/catalog/demo.rs), and its image: the tiny one.
      const image = sha512(gridImage);
      const imageId = `${image.slice(0, 8)}-${image.slice(8, 12)}-4${image.slice(13, 16)}-8${image.slice(17, 20)}-${image.slice(20, 32)}`;
      const file = path.join(course, "course.sloop-tutorial");
      fs.writeFileSync(
        file,
        [
          "format = 1",
          'name = "e2e-tutorial"',
          'title = "Tiny course"',
          'welcome = """',
          "# Welcome to the tiny course",
          "",
          "Run `cat /analysis/hello.C` in the terminal.",
          '"""',
          'start = "cat /analysis/hello.C"',
          "[machine]",
          "vcpus = 1",
          "memory_mib = 256",
          "disk_gib = 1",
          "[catalog]",
          `source = "${path.join(sloopHome, "data", "demo", "mirror", "sloop-demo.image_list")}"`,
          'identifier = "5100b007-de70-4000-8000-000000000001"',
          'endorser_dn = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser"',
          'endorser_ca = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA"',
          "[image]",
          `identifier = "${imageId}"`,
          `sha512 = "${image}"`,
          `size = ${fs.statSync(gridImage).size}`,
          "[material]",
          'source = "course-material.tar"',
          `sha512 = "${sha512(tar)}"`,
          `size = ${fs.statSync(tar).size}`,
          "",
        ].join("\n"),
      );

      await show("tutorials");
      await (await byTestId("tutorial-location")).setValue(file);
      await (await byTestId("tutorial-open")).click();
      await doneOrRefused(
        async () => (await byTestId("tutorial-title")).isExisting(),
        "tutorial-error",
        BOOT_TIMEOUT,
        "opening the tutorial",
      );
      assert.equal(await (await byTestId("tutorial-title")).getText(), "Tiny course");
      assert.match(await (await byTestId("tutorial-welcome")).getText(), /Welcome to the tiny course/);
      const openTerminal = async (what) => {
        await browser.waitUntil(
          async () => (await (await byTestId("machine-terminal-status")).getAttribute("data-status")) === "open",
          { timeout: 60_000, timeoutMsg: `the tutorial's terminal did not connect ${what}` },
        );
        await browser.waitUntil(async () => (await terminalRows()).some((row) => row.trim() !== ""), {
          timeout: 30_000,
          timeoutMsg: `the tutorial's terminal showed no prompt ${what}`,
        });
        await browser.execute(() =>
          document.querySelector('[data-testid="machine-terminal"] .xterm-helper-textarea')?.focus(),
        );
      };
      const shows = async (line, what) =>
        browser.waitUntil(async () => (await terminalRows()).map((row) => row.trim()).includes(line), {
          timeout: 30_000,
          timeoutMsg: `the tutorial's terminal did not show ${JSON.stringify(line)} ${what}`,
        });
      await openTerminal("after opening");
      await typeLine("cat /analysis/hello.C; echo mine >/analysis/mine.txt; ls /analysis | wc -l");
      await shows("void hello() {}", "(the material)");
      await shows("2", "(the student's file beside it)");
      await screenshot("tutorial");

      await (await byTestId("tutorial-reset")).click();
      await (await byTestId("tutorial-reset-confirm")).click();
      await doneOrRefused(
        async () => (await byTestId("tutorial-set-aside")).isExisting(),
        "tutorial-error",
        BOOT_TIMEOUT,
        "the reset",
      );
      const aside = await (await (await byTestId("tutorial-set-aside")).$("code")).getText();
      assert.equal(fs.readFileSync(path.join(aside, "mine.txt"), "utf8"), "mine\n");
      await openTerminal("after the reset");
      await typeLine("ls /analysis");
      await shows("hello.C", "(the material again, alone)");
      assert.ok(!(await terminalRows()).some((row) => row.includes("mine.txt")), "the student's file is gone from /analysis");
      await screenshot("tutorial-reset");

      await show("machines");
      await (await (await machineCard("e2e-tutorial")).$('[data-testid="machine-delete"]')).click();
      await (await byTestId("machine-delete-confirm")).click();
      await browser.waitUntil(async () => !(await (await machineCard("e2e-tutorial")).isExisting()), {
        timeout: STOP_TIMEOUT,
        timeoutMsg: "the tutorial's machine stayed after Delete",
      });
    } finally {
      fs.rmSync(course, { recursive: true, force: true });
    }
  });

  const live =
    "downloads the demo's live ISO, makes a machine booted from it, whose root is the CD under an overlay on its own disk, and deletes it";
  it(live, { timeout: 600_000 }, async () => {
    let created = false;
    try {
      await show("images");
      const row = await browser.$('[data-testid="image-row"][aria-label="Sloop tiny live ISO"]');
      await row.waitForDisplayed({ timeout: UI_TIMEOUT });
      await (await row.$('[data-testid="image-download"]')).click();
      const base = await row.$('[data-testid="image-base-state"]');
      await browser.waitUntil(async () => (await base.isExisting()) && (await base.getText()) === "Ready to run", {
        timeout: 60_000,
        timeoutMsg: "the ISO's runnable base did not show as ready",
      });
      assert.match(await row.getText(), /booted as a read-only CD/);
      await screenshot("images-live-iso");

      await show("machines");
      await (await byTestId("machine-new")).click();
      await (await byTestId("machine-create-form")).waitForDisplayed({ timeout: UI_TIMEOUT });
      const image = await byTestId("machine-create-image");
      await image.waitForDisplayed({ timeout: UI_TIMEOUT });
      const iso = await browser.execute(() => {
        const options = document.querySelectorAll('[data-testid="machine-create-image"] option');
        const iso = Array.from(options).find((o) => o.textContent.includes("Sloop tiny live ISO"));
        return iso ? iso.value : null;
      });
      assert.ok(iso, "the create form does not offer the live ISO");
      await image.selectByAttribute("value", iso);
      for (const [id, value] of [
        ["machine-create-name", "e2e-live"],
        ["machine-create-vcpus", "1"],
        ["machine-create-memory", "256"],
        ["machine-create-disk", "1"],
      ]) {
        await (await byTestId(id)).setValue(value);
      }
      await (await byTestId("machine-create-submit")).click();
      const card = await machineCard("e2e-live");
      await card.waitForDisplayed({ timeout: 60_000, timeoutMsg: "no card for the new machine e2e-live" });
      created = true;
      await waitForMachine("e2e-live", "Stopped", UI_TIMEOUT, "create");
      assert.match(
        await (await card.$('[data-testid="machine-live-cd"]')).getText(),
        /Boots from the ISO image; its own disk keeps the changes/,
      );

      await (await card.$('[data-testid="machine-start"]')).click();
      await waitForMachine("e2e-live", "Running", BOOT_TIMEOUT, "start");
      await (await card.$('[data-testid="machine-open"]')).click();
      await (await byTestId("machine-detail")).waitForDisplayed({ timeout: UI_TIMEOUT });
      await (await byTestId("machine-tab-terminal")).click();
      await (await byTestId("machine-terminal")).waitForDisplayed({ timeout: UI_TIMEOUT });
      await browser.waitUntil(
        async () => (await (await byTestId("machine-terminal-status")).getAttribute("data-status")) === "open",
        { timeout: 60_000, timeoutMsg: "the live machine's terminal did not connect" },
      );
      await browser.waitUntil(async () => (await terminalRows()).some((row) => row.trim() !== ""), {
        timeout: 30_000,
        timeoutMsg: "the live machine's terminal showed no prompt",
      });
      await browser.execute(() =>
        document.querySelector('[data-testid="machine-terminal"] .xterm-helper-textarea')?.focus(),
      );
      // The root file system: the CD's tree under an overlay kept on the machine's own disk.
      await typeLine("grep -q '^overlay / overlay' /proc/mounts && grep -q ' iso9660 ' /proc/mounts && echo live-root-ok");
      await browser.waitUntil(async () => (await terminalRows()).map((row) => row.trim()).includes("live-root-ok"), {
        timeout: 30_000,
        timeoutMsg: "the live machine's root is not an overlay on the CD",
      });
      await screenshot("machine-live-iso");
      await (await byTestId("machine-back")).click();

      await (await (await machineCard("e2e-live")).$('[data-testid="machine-stop"]')).click();
      await waitForMachine("e2e-live", "Stopped", STOP_TIMEOUT, "stop");
      await (await (await machineCard("e2e-live")).$('[data-testid="machine-delete"]')).click();
      await (await byTestId("machine-delete-confirm")).click();
      await browser.waitUntil(async () => !(await (await machineCard("e2e-live")).isExisting()), {
        timeout: 60_000,
        timeoutMsg: "the card of e2e-live did not go",
      });
      created = false;
    } finally {
      if (created) {
        for (const command of ["destroy", "undefine"]) {
          try {
            execFileSync("virsh", ["-q", "-c", libvirtUri, command, "sloop-e2e-live"], {
              stdio: "ignore",
              timeout: 30_000,
            });
          } catch {
            // Not running, or not defined.
          }
        }
      }
    }
  });

  it("shows the startup line, then live lines as the core writes them", async () => {
    await show("logs");
    await browser.waitUntil(async () => (await logMessages()).some((m) => m.startsWith("Sloop started")), {
      timeout: UI_TIMEOUT,
      timeoutMsg: "no 'Sloop started' line in the log view",
    });
    const before = (await logMessages()).length;

    // A fresh check boots the test guest again; the core logs what it found.
    await show("host");
    const recheck = await byTestId("host-recheck");
    await recheck.click();
    await browser.waitUntil(async () => /Checking/.test(await recheck.getText()), {
      timeout: UI_TIMEOUT,
      timeoutMsg: "the button did not show the check was running",
    });
    assert.equal(await recheck.isEnabled(), false);
    await browser.waitUntil(async () => (await recheck.getText()) === "Check again", {
      timeout: HOST_CHECK_TIMEOUT,
      timeoutMsg: "the fresh host check did not finish",
    });

    await show("logs");
    await browser.waitUntil(async () => (await logMessages()).length > before, {
      timeout: UI_TIMEOUT,
      timeoutMsg: "no live log line arrived during the fresh host check",
    });
    const levels = await browser.execute(() =>
      Array.from(document.querySelectorAll('[data-testid="log-line"]'), (l) => l.dataset.level),
    );
    assert.ok(levels.every((level) => ["error", "warn", "info", "debug", "trace"].includes(level)));
    await screenshot("logs");
  });
});

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
