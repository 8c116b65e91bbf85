import { render, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { FakeBackend } from "../../ipc/fake";
import { bundleManifest, FAKE_USER } from "../../ipc/fake-bundles";
import { demoMachine, renderWith } from "../../test-utils";
import App from "../../App.svelte";
import MachinesView from "./MachinesView.svelte";

vi.mock("./xterm", async () => {
  const { StubScreen } = await import("./stub-screen");
  return { openScreen: (container: HTMLElement) => StubScreen.open(container) };
});

const machine = demoMachine;

async function openDetail(name = "analysis") {
  await screen.findByTestId("machines-list");
  const card = document.querySelector<HTMLElement>(
    `[data-testid="machine-card"][data-name="${name}"]`,
  );
  await userEvent.click(within(card!).getByTestId("machine-open"));
  return within(await screen.findByTestId("machine-detail"));
}

describe("Export and import", () => {
  it("exports a running machine with Stop and export, signed, and says where", async () => {
    const backend = new FakeBackend({ machines: [machine({ state: "running" })] });
    renderWith(MachinesView, backend);
    const detail = await openDetail();
    await userEvent.click(detail.getByTestId("machine-export"));
    const panel = within(await screen.findByTestId("export-panel"));
    await waitFor(() =>
      expect(panel.getByTestId("export-path")).toHaveValue("/home/jane/Documents/analysis.sloop"),
    );
    expect(panel.getByTestId("export-stop-hint")).toHaveTextContent("shut down first");
    await userEvent.type(panel.getByTestId("export-note"), "ROOT installed");
    expect(panel.getByTestId("export-submit")).toHaveTextContent("Stop and export");
    await userEvent.click(panel.getByTestId("export-submit"));
    const done = await panel.findByTestId("export-done");
    expect(done).toHaveTextContent("/home/jane/Documents/analysis.sloop");
    expect(panel.getByTestId("export-provenance")).toHaveTextContent(`changed by ${FAKE_USER}`);
    expect(backend.exports).toEqual([
      {
        name: "analysis",
        output: "/home/jane/Documents/analysis.sloop",
        note: "ROOT installed",
        signed: true,
        stop: true,
      },
    ]);
    expect(backend.machines[0]!.state).toBe("stopped");
  });

  it("shows why an export failed, and writes nothing", async () => {
    const backend = new FakeBackend({
      machines: [machine()],
      bundles: { "/tmp/taken.sloop": { manifest: bundleManifest(machine(), ""), signer: null } },
    });
    renderWith(MachinesView, backend);
    const detail = await openDetail();
    await userEvent.click(detail.getByTestId("machine-export"));
    const panel = within(await screen.findByTestId("export-panel"));
    const path = panel.getByTestId("export-path");
    await waitFor(() => expect(path).not.toHaveValue(""));
    await userEvent.clear(path);
    await userEvent.type(path, "/tmp/taken.sloop");
    await userEvent.click(panel.getByTestId("export-submit"));
    expect(await panel.findByTestId("export-error")).toHaveTextContent("exists already");
  });

  it("shows where a machine comes from", async () => {
    const backend = new FakeBackend({ machines: [machine()] });
    renderWith(MachinesView, backend);
    const detail = await openDetail();
    await userEvent.click(detail.getByTestId("machine-tab-provenance"));
    expect(await detail.findByTestId("provenance-endorser")).toHaveTextContent(
      "Sloop Demo Endorser",
    );
    expect(detail.getByTestId("provenance-changed-by")).toHaveTextContent("on this computer");
  });

  it("checks a bundle, asks before trusting a new signer, imports, shows the provenance", async () => {
    const stranger = "/DC=org/DC=example/CN=John Smith";
    const backend = new FakeBackend({
      bundles: {
        "/share/course.sloop": {
          manifest: bundleManifest(machine({ name: "course" }), "day 1"),
          signer: stranger,
        },
      },
    });
    renderWith(MachinesView, backend);
    await userEvent.click(await screen.findByTestId("machine-import"));
    const panel = within(await screen.findByTestId("import-panel"));
    await userEvent.type(panel.getByTestId("import-file"), "/share/course.sloop");
    await userEvent.click(panel.getByTestId("import-inspect"));
    expect(await panel.findByTestId("import-provenance")).toHaveTextContent(
      `changed by ${stranger}`,
    );
    expect(panel.getByTestId("import-name")).toHaveValue("course");
    await userEvent.click(panel.getByTestId("import-submit"));
    const consent = await panel.findByTestId("import-consent");
    expect(consent).toHaveTextContent(stranger);
    expect(backend.machines).toEqual([]);
    await userEvent.click(panel.getByTestId("import-consent-yes"));
    const detail = within(await screen.findByTestId("machine-detail"));
    expect(backend.imports.map((r) => r.trustSigner)).toEqual([false, true]);
    await userEvent.click(detail.getByTestId("machine-tab-provenance"));
    expect(await detail.findByTestId("provenance-changed-by")).toHaveTextContent(stranger);
    expect(detail.getByTestId("provenance-bundle")).toHaveTextContent("course.sloop");
  });

  it("says why a file is not a bundle it can read", async () => {
    const backend = new FakeBackend();
    renderWith(MachinesView, backend);
    await userEvent.click(await screen.findByTestId("machine-import"));
    const panel = within(await screen.findByTestId("import-panel"));
    await userEvent.type(panel.getByTestId("import-file"), "/nowhere.sloop");
    await userEvent.click(panel.getByTestId("import-inspect"));
    expect(await panel.findByTestId("import-error")).toHaveTextContent("cannot read bundle");
    expect(panel.getByTestId("import-submit")).toBeDisabled();
  });

  it("opens the import panel with a bundle dropped on the window", async () => {
    const backend = new FakeBackend({
      bundles: {
        "/home/jane/m.sloop": { manifest: bundleManifest(machine({ name: "m" }), ""), signer: null },
      },
    });
    render(App, { props: { backend } });
    backend.dropFiles(["/home/jane/notes.txt", "/home/jane/m.sloop"]);
    const panel = within(await screen.findByTestId("import-panel"));
    expect(panel.getByTestId("import-file")).toHaveValue("/home/jane/m.sloop");
    expect(await panel.findByTestId("import-provenance")).toHaveTextContent("not signed");
  });
});
