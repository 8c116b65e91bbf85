// The real app window, driven through WebDriver: every assertion is on what the window shows from
// real core calls (host check, libvirt, the log). Run through ./run.sh, which builds the app,
// starts Xvfb and tauri-driver, and sets the variables read here.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { remote } from "webdriverio";

const application = required("SLOOP_E2E_APP");
// The app's SLOOP_HOME: the test looks there to see that a download really reached the store.
const sloopHome = required("SLOOP_HOME");
const artefacts = required("SLOOP_E2E_ARTEFACTS");
const libvirtUri = required("SLOOP_E2E_LIBVIRT_URI");
const driverPort = Number(process.env.SLOOP_E2E_DRIVER_PORT ?? 4444);

// The first host check boots a test guest (KVM is tried first, with a timeout, then TCG).
const HOST_CHECK_TIMEOUT = 90_000;
const UI_TIMEOUT = 15_000;

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

/** The log view's messages, read in one round trip. */
function logMessages() {
  return browser.execute(() =>
    Array.from(document.querySelectorAll('[data-testid="log-message"]'), (m) => m.textContent ?? ""),
  );
}

describe("the app window", { timeout: 240_000 }, () => {
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
    assert.equal(rows.length, 8);
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

    const row = await browser.$('[data-testid="image-row"]');
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
    // The core put the verified image (and its provenance) in the read-only store.
    const store = path.join(sloopHome, "data", "images", "store");
    const files = fs.readdirSync(store).sort();
    assert.equal(files.length, 2, `store holds ${files.join(", ")}`);
    assert.match(files[0], /^[0-9a-f]{128}$/);
    assert.equal(fs.statSync(path.join(store, files[0])).mode & 0o777, 0o444);
    await screenshot("images-downloaded");
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
