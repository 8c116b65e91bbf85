import { screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { demoReport, FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import HostPanel from "./HostPanel.svelte";

describe("HostPanel", () => {
  it("lists every check with its status, detail and fix", async () => {
    const backend = new FakeBackend();
    renderWith(HostPanel, backend);

    const checks = await screen.findByTestId("host-checks");
    const rows = within(checks).getAllByRole("listitem");
    expect(rows).toHaveLength(demoReport().checks.length);

    const libvirt = screen.getByTestId("check-libvirt");
    expect(libvirt).toHaveAttribute("data-status", "ok");
    expect(within(libvirt).getByTestId("check-status")).toHaveTextContent("OK");
    expect(within(libvirt).getByTestId("check-detail")).toHaveTextContent(
      "libvirt 9.0.0 at qemu:///system",
    );
    expect(within(libvirt).queryByTestId("check-fix")).toBeNull();

    const proxy = screen.getByTestId("check-proxy");
    expect(within(proxy).getByTestId("check-status")).toHaveTextContent("Warning");
    expect(within(proxy).getByTestId("check-fix")).toHaveTextContent(
      "make one with arcproxy or voms-proxy-init",
    );

    expect(screen.getByTestId("host-uri")).toHaveTextContent("qemu:///system");
    expect(screen.getByTestId("host-acceleration")).toHaveTextContent("TCG (software emulation)");
    expect(screen.getByTestId("host-ready")).toHaveTextContent("Ready to run machines");
    // The first look reuses the cached acceleration answer.
    expect(backend.hostChecks).toEqual([false]);
  });

  it("says what is missing and how to fix it", async () => {
    const report = demoReport();
    report.ready = false;
    report.acceleration = null;
    report.checks[0] = {
      id: "libvirt",
      title: "libvirt",
      status: "missing",
      detail: "qemu:///system: Failed to connect socket",
      fix: "start it: sudo libvirtd -d",
    };
    renderWith(HostPanel, new FakeBackend({ report }));

    const libvirt = await screen.findByTestId("check-libvirt");
    expect(within(libvirt).getByTestId("check-status")).toHaveTextContent("Missing");
    expect(within(libvirt).getByTestId("check-fix")).toHaveTextContent("sudo libvirtd -d");
    expect(screen.getByTestId("host-ready")).toHaveTextContent("Not ready");
    expect(screen.getByTestId("host-acceleration")).toHaveTextContent("None");
  });

  it("checks again for real, busy meanwhile", async () => {
    const backend = new FakeBackend({ delayMs: 30 });
    renderWith(HostPanel, backend);
    const button = screen.getByTestId("host-recheck");
    await screen.findByTestId("host-checks");
    await waitFor(() => expect(button).toBeEnabled());

    backend.report.acceleration = "kvm";
    await userEvent.click(button);
    expect(button).toBeDisabled();
    expect(button).toHaveTextContent("Checking");

    await waitFor(() => expect(button).toBeEnabled());
    expect(button).toHaveTextContent("Check again");
    expect(screen.getByTestId("host-acceleration")).toHaveTextContent(
      "KVM (hardware virtualisation)",
    );
    expect(backend.hostChecks).toEqual([false, true]);
  });
});
