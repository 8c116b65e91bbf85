import { fireEvent, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ProxyStatus } from "../../ipc/bindings/ProxyStatus";
import { demoProxyInfo, demoProxyStatus, FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import ProxyPanel from "./ProxyPanel.svelte";

/**
 * The demo status with a proxy of `lifetime` seconds that has `left` seconds left. The half
 * minute on top keeps the shown minutes steady however long the test takes to get there.
 */
function status(left: number, lifetime = 12 * 3600, over: Partial<ProxyStatus> = {}): ProxyStatus {
  const made = new Date(Date.now() - (lifetime - left) * 1000 + 30_000);
  return { ...demoProxyStatus(), info: demoProxyInfo(made, lifetime, "atlas"), ...over };
}

async function panel() {
  const element = await screen.findByTestId("proxy-panel");
  await within(element).findByTestId("proxy-renew");
  return within(element);
}

async function openForm() {
  const p = await panel();
  await userEvent.click(p.getByTestId("proxy-renew"));
  return within(await screen.findByTestId("proxy-form"));
}

afterEach(() => {
  vi.useRealTimers();
});

describe("ProxyPanel", () => {
  it("shows whose proxy it is, its VO and the time left, counting down every second", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const backend = new FakeBackend({ proxy: status(11 * 3600) });
    renderWith(ProxyPanel, backend);
    const p = await panel();

    const identity = p.getByTestId("proxy-identity");
    expect(identity).toHaveTextContent(/^Jane Doe$/);
    expect(identity).toHaveAttribute("title", "/DC=org/DC=example/CN=Jane Doe");
    const vo = p.getByTestId("proxy-vo");
    expect(vo).toHaveTextContent("atlas");
    expect(vo.parentElement).toHaveAttribute(
      "title",
      expect.stringContaining("/atlas/Role=NULL/Capability=NULL"),
    );
    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^11 h left$/);
    const bar = p.getByTestId("proxy-time-bar");
    expect(bar).toHaveAttribute("aria-valuemax", String(12 * 3600));
    expect(Number(bar.getAttribute("aria-valuenow"))).toBeGreaterThan(11 * 3600);
    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "ok");
    expect(p.getByTestId("proxy-renew")).toHaveTextContent("Renew");
    expect(p.getByTestId("proxy-renew")).toHaveClass("secondary");
    expect(p.queryByTestId("proxy-chain")).toBeNull();

    // Counted here from the proxy's end: no asking the backend again.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^10 h 59 min left$/);
    await vi.advanceTimersByTimeAsync(2 * 3600_000);
    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^8 h 59 min left$/);
    expect(Number(bar.getAttribute("aria-valuenow"))).toBeLessThan(9 * 3600);
  });

  it("warns when the proxy nears its end, and says when it has expired", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const backend = new FakeBackend({ proxy: status(30 * 60) });
    renderWith(ProxyPanel, backend);
    const p = await panel();

    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^30 min left$/);
    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "warning");
    expect(p.getByTestId("proxy-renew")).not.toHaveClass("secondary");

    await vi.advanceTimersByTimeAsync(31 * 60_000);
    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^Expired$/);
    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "expired");
    expect(p.getByTestId("proxy-time-bar")).toHaveAttribute("aria-valuenow", "0");
    // Still whose it was, to renew.
    expect(p.getByTestId("proxy-identity")).toHaveTextContent("Jane Doe");
  });

  it("says when the proxy's chain is not trusted here", async () => {
    const proxy = status(11 * 3600);
    proxy.info!.chain = {
      verified: false,
      reason: "unable to get local issuer certificate",
      anchors: "/etc/grid-security/certificates",
    };
    renderWith(ProxyPanel, new FakeBackend({ proxy }));
    const p = await panel();
    expect(p.getByTestId("proxy-chain")).toHaveTextContent(
      "Not trusted here: unable to get local issuer certificate",
    );
  });

  it("renews: a wrong passphrase keeps the form open, the right one makes the proxy", async () => {
    const backend = new FakeBackend({ proxy: status(11 * 3600), delayMs: 20 });
    renderWith(ProxyPanel, backend);
    const form = await openForm();

    expect(form.getByTestId("proxy-lifetime")).toHaveValue("12");
    expect(
      within(form.getByTestId("proxy-lifetime"))
        .getAllByRole("option")
        .map((o) => o.textContent),
    ).toEqual(["12 hours", "24 hours", "48 hours", "96 hours"]);
    expect(form.getByTestId("proxy-lifetime")).toHaveFocus();
    expect(form.getByTestId("proxy-vo-input")).toHaveValue("atlas");
    expect(form.getByTestId("proxy-vo-input")).toHaveAttribute("placeholder", "none");
    const passphrase = form.getByTestId("proxy-passphrase");
    expect(passphrase).toHaveAttribute("type", "password");
    expect(form.getByTestId("proxy-remember").closest("label")).toHaveTextContent(
      "Remember in Secret Service",
    );
    expect(form.queryByTestId("proxy-forget")).toBeNull();
    // The Renew button makes way for the form.
    expect(screen.queryByTestId("proxy-renew")).toBeNull();

    await userEvent.type(passphrase, "wrong");
    await userEvent.click(form.getByTestId("proxy-submit"));
    expect(form.getByTestId("proxy-submit")).toHaveTextContent("Renewing…");
    expect(form.getByTestId("proxy-submit")).toBeDisabled();
    expect(passphrase).toHaveValue("");
    const error = await form.findByTestId("proxy-error");
    expect(error).toHaveTextContent("the passphrase does not open the key");
    expect(screen.getByTestId("proxy-form")).toBeInTheDocument();
    expect(form.getByTestId("proxy-passphrase")).toHaveValue("");
    await waitFor(() => expect(form.getByTestId("proxy-passphrase")).toHaveFocus());

    await userEvent.selectOptions(form.getByTestId("proxy-lifetime"), "24");
    await userEvent.type(form.getByTestId("proxy-passphrase"), "secret");
    await userEvent.click(form.getByTestId("proxy-submit"));
    await waitFor(() => expect(screen.queryByTestId("proxy-form")).toBeNull());

    const p = await panel();
    expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^(1 d|23 h 59 min) left$/);
    expect(p.getByTestId("proxy-vo")).toHaveTextContent("atlas");
    expect(p.getByTestId("proxy-renew")).toHaveFocus();
    expect(backend.proxyInits).toEqual([
      { lifetimeHours: 12, passphrase: true, remember: false, vo: "atlas" },
      { lifetimeHours: 24, passphrase: true, remember: false, vo: "atlas" },
    ]);
    expect(backend.proxy.passphraseRemembered).toBe(false);
    // Nothing on the page holds the passphrase any more.
    expect(document.body.innerHTML).not.toContain("secret");
  });

  it("asks for the passphrase before sending an empty one", async () => {
    const backend = new FakeBackend({ proxy: status(11 * 3600) });
    renderWith(ProxyPanel, backend);
    const form = await openForm();
    await userEvent.click(form.getByTestId("proxy-submit"));
    expect(form.getByTestId("proxy-error")).toHaveTextContent("Type the passphrase of your key.");
    expect(form.getByTestId("proxy-passphrase")).toHaveFocus();
    expect(backend.proxyInits).toEqual([]);
  });

  it("remembers the passphrase in the keyring, renews without it, and forgets it", async () => {
    const backend = new FakeBackend({ proxy: status(11 * 3600) });
    renderWith(ProxyPanel, backend);
    let form = await openForm();
    await userEvent.clear(form.getByTestId("proxy-vo-input"));
    await userEvent.type(form.getByTestId("proxy-passphrase"), "secret");
    await userEvent.click(form.getByTestId("proxy-remember"));
    await userEvent.click(form.getByTestId("proxy-submit"));
    await waitFor(() => expect(screen.queryByTestId("proxy-form")).toBeNull());
    expect(backend.proxy.passphraseRemembered).toBe(true);
    // Renewed without a VO: the proxy has no VOMS attributes now.
    expect(screen.queryByTestId("proxy-vo")).toBeNull();

    form = await openForm();
    expect(form.queryByTestId("proxy-passphrase")).toBeNull();
    expect(form.queryByTestId("proxy-remember")).toBeNull();
    expect(form.getByTestId("proxy-remembered")).toHaveTextContent(
      "Passphrase remembered in Secret Service · Forget",
    );
    await userEvent.click(form.getByTestId("proxy-submit"));
    await waitFor(() => expect(screen.queryByTestId("proxy-form")).toBeNull());

    form = await openForm();
    await userEvent.click(form.getByTestId("proxy-forget"));
    const passphrase = await form.findByTestId("proxy-passphrase");
    await waitFor(() => expect(passphrase).toHaveFocus());
    expect(form.queryByTestId("proxy-remembered")).toBeNull();
    expect(backend.proxy.passphraseRemembered).toBe(false);
    expect(backend.proxyInits).toEqual([
      { lifetimeHours: 12, passphrase: true, remember: true, vo: null },
      { lifetimeHours: 12, passphrase: false, remember: false, vo: null },
    ]);
  });

  it("asks for the passphrase when the remembered one no longer opens the key", async () => {
    const backend = new FakeBackend({
      proxy: status(11 * 3600, 12 * 3600, { passphraseRemembered: true }),
      keyPassphrase: "changed",
      rememberedPassphrase: "secret",
    });
    renderWith(ProxyPanel, backend);
    const form = await openForm();
    expect(form.queryByTestId("proxy-passphrase")).toBeNull();
    await userEvent.click(form.getByTestId("proxy-submit"));
    expect(await form.findByTestId("proxy-error")).toHaveTextContent("does not open the key");
    await userEvent.type(form.getByTestId("proxy-passphrase"), "changed");
    await userEvent.click(form.getByTestId("proxy-submit"));
    await waitFor(() => expect(screen.queryByTestId("proxy-form")).toBeNull());
  });

  it("without a proxy, says so and why, and offers to make one", async () => {
    const proxy = demoProxyStatus();
    proxy.info = null;
    proxy.error = "no proxy at /tmp/x509up_u1000";
    proxy.vomsTool = null;
    const backend = new FakeBackend({ proxy });
    renderWith(ProxyPanel, backend);
    const p = await panel();

    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "none");
    expect(p.getByTestId("proxy-none")).toHaveTextContent("No grid proxy");
    expect(p.getByTestId("proxy-status-error")).toHaveTextContent("no proxy at /tmp/x509up_u1000");
    expect(p.queryByTestId("proxy-identity")).toBeNull();
    expect(p.queryByTestId("proxy-time-left")).toBeNull();
    expect(p.getByTestId("proxy-renew")).toHaveTextContent("Make proxy");

    const form = await openForm();
    expect(form.getByRole("heading")).toHaveTextContent("Make a grid proxy");
    expect(form.getByTestId("proxy-submit")).toHaveTextContent("Make proxy");
    // No VOMS tool on this host: no VO to ask for.
    expect(form.queryByTestId("proxy-vo-input")).toBeNull();
    await userEvent.type(form.getByTestId("proxy-passphrase"), "secret");
    await userEvent.click(form.getByTestId("proxy-submit"));
    await waitFor(() => expect(screen.queryByTestId("proxy-form")).toBeNull());
    expect(screen.getByTestId("proxy-identity")).toHaveTextContent("Jane Doe");
    expect(screen.getByTestId("proxy-time-left")).toHaveTextContent(/^(12 h|11 h 59 min) left$/);
    expect(screen.queryByTestId("proxy-vo")).toBeNull();
    expect(backend.proxyInits).toEqual([
      { lifetimeHours: 12, passphrase: true, remember: false, vo: null },
    ]);
  });

  it("without a certificate, says where it is expected and cannot submit", async () => {
    const proxy = demoProxyStatus();
    proxy.info = null;
    proxy.credentials = {
      certificate: "/home/ada/.globus/usercert.pem",
      key: "/home/ada/.globus/userkey.pem",
      found: false,
      needsPassphrase: false,
    };
    renderWith(ProxyPanel, new FakeBackend({ proxy }));
    const form = await openForm();
    const missing = form.getByTestId("proxy-credentials-missing");
    expect(missing).toHaveTextContent("/home/ada/.globus/usercert.pem");
    expect(missing).toHaveTextContent("/home/ada/.globus/userkey.pem");
    expect(form.getByTestId("proxy-submit")).toBeDisabled();
    expect(form.queryByTestId("proxy-passphrase")).toBeNull();
  });

  it("closes the form on Cancel and on Escape, focus back on Renew", async () => {
    const backend = new FakeBackend({ proxy: status(11 * 3600) });
    renderWith(ProxyPanel, backend);
    let form = await openForm();
    await userEvent.type(form.getByTestId("proxy-passphrase"), "secret");
    await userEvent.click(form.getByTestId("proxy-cancel"));
    expect(screen.queryByTestId("proxy-form")).toBeNull();
    await waitFor(() => expect(screen.getByTestId("proxy-renew")).toHaveFocus());

    // A form opened again starts empty.
    form = await openForm();
    expect(form.getByTestId("proxy-passphrase")).toHaveValue("");
    await fireEvent.keyDown(form.getByTestId("proxy-lifetime"), { key: "Escape" });
    expect(screen.queryByTestId("proxy-form")).toBeNull();
    expect(backend.proxyInits).toEqual([]);
  });

  it("shows the core's message when making the proxy fails otherwise", async () => {
    const backend = new FakeBackend({ proxy: status(11 * 3600) });
    renderWith(ProxyPanel, backend);
    const form = await openForm();
    // voms-proxy-init went away since the window last looked.
    backend.proxy.vomsTool = null;
    await userEvent.type(form.getByTestId("proxy-passphrase"), "secret");
    await userEvent.click(form.getByTestId("proxy-submit"));
    const error = await form.findByTestId("proxy-error");
    expect(error).toHaveTextContent("Cannot renew the proxy");
    expect(error).toHaveTextContent("VOMS attributes need voms-proxy-init or arcproxy");
    expect(screen.getByTestId("proxy-form")).toBeInTheDocument();
  });

  it("follows proxy events and says where a renewal was placed", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const backend = new FakeBackend({ proxy: status(30 * 60) });
    renderWith(ProxyPanel, backend);
    const p = await panel();
    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "warning");

    // Renewed in a terminal with voms-proxy-init: the core's file watch tells the window.
    backend.emit({ type: "proxy", status: status(96 * 3600, 96 * 3600) });
    await waitFor(() =>
      expect(p.getByTestId("proxy-time-left")).toHaveTextContent(/^(4 d|3 d 23 h) left$/),
    );
    expect(screen.getByTestId("proxy-panel")).toHaveAttribute("data-state", "ok");

    backend.emit({
      type: "proxyPlaced",
      placed: [
        { machine: "a", path: "/tmp/x509up_u1000", notAfter: "", anchorsSent: false },
        { machine: "b", path: "/tmp/x509up_u1000", notAfter: "", anchorsSent: true },
      ],
      failed: [],
    });
    expect(await p.findByTestId("proxy-placed")).toHaveTextContent(
      "Renewed proxy placed in 2 machines",
    );
    await vi.advanceTimersByTimeAsync(9000);
    expect(p.queryByTestId("proxy-placed")).toBeNull();

    backend.emit({
      type: "proxyPlaced",
      placed: [{ machine: "a", path: "/tmp/x509up_u1000", notAfter: "", anchorsSent: false }],
      failed: ["b: connection refused"],
    });
    const note = await p.findByTestId("proxy-placed");
    expect(note).toHaveTextContent("Renewed proxy placed in 1 machine.");
    expect(p.getByTestId("proxy-placed-failed")).toHaveTextContent(
      "Not placed in b: connection refused",
    );
    // A failure stays until dismissed.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(p.getByTestId("proxy-placed")).toBeInTheDocument();
    await userEvent.click(p.getByTestId("proxy-placed-dismiss"));
    expect(p.queryByTestId("proxy-placed")).toBeNull();
  });

  it("says when the proxy's status cannot be read", async () => {
    const backend = new FakeBackend({
      proxyStatusError: { code: "config", message: "config file is not valid" },
    });
    renderWith(ProxyPanel, backend);
    expect(await screen.findByTestId("proxy-status-error")).toHaveTextContent(
      "config file is not valid",
    );
    expect(screen.queryByTestId("proxy-renew")).toBeNull();
  });
});
