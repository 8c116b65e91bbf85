import { screen, waitFor } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import type { LogLine } from "../../ipc/bindings/LogLine";
import { FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import { mergeHistory } from "./lines";
import LogView from "./LogView.svelte";

const started: LogLine = {
  time: "2026-01-01T10:00:00Z",
  level: "info",
  target: "sloop_app",
  message: "Sloop started version=0.1.0",
};

describe("LogView", () => {
  it("shows recent lines, then appends live ones with their level", async () => {
    const backend = new FakeBackend({ logs: [started] });
    renderWith(LogView, backend);

    await waitFor(() => expect(screen.getAllByTestId("log-line")).toHaveLength(1));
    expect(screen.getByTestId("log-message")).toHaveTextContent("Sloop started");

    backend.log("warn", "KVM is not usable; using TCG", "sloop_core::host");
    backend.log("error", "libvirt at qemu:///system does not answer", "sloop_core::libvirt");

    await waitFor(() => expect(screen.getAllByTestId("log-line")).toHaveLength(3));
    const lines = screen.getAllByTestId("log-line");
    expect(lines[1]).toHaveAttribute("data-level", "warn");
    expect(lines[1]).toHaveTextContent("KVM is not usable; using TCG");
    expect(lines[2]).toHaveAttribute("data-level", "error");
  });

  it("ignores events other than log lines", async () => {
    const backend = new FakeBackend({ logs: [started] });
    renderWith(LogView, backend);
    await waitFor(() => expect(screen.getAllByTestId("log-line")).toHaveLength(1));
    backend.emit({ type: "finished", task: "start:m1", error: null });
    backend.log("info", "after");
    await waitFor(() => expect(screen.getAllByTestId("log-line")).toHaveLength(2));
  });
});

describe("mergeHistory", () => {
  it("drops live lines the history already has", () => {
    const live: LogLine = { ...started, message: "live", time: "2026-01-01T10:00:01Z" };
    expect(mergeHistory([started], [started, live])).toEqual([started, live]);
  });
});
