import { render, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import App from "../../App.svelte";
import { FakeBackend } from "../../ipc/fake";
import { demoSite, demoSiteInfo } from "../../ipc/fake-grid";
import { demoMachine, renderWith } from "../../test-utils";
import MachinesView from "../machines/MachinesView.svelte";

vi.mock("../machines/xterm", async () => {
  const { StubScreen } = await import("../machines/stub-screen");
  return { openScreen: (container: HTMLElement) => StubScreen.open(container) };
});

const sites = [demoSite("test-ce"), demoSite("other-ce")];

/** The card of machine `name`, once the machines are listed. */
async function card(name = "analysis") {
  await screen.findByTestId("machines-list");
  const element = document.querySelector<HTMLElement>(
    `[data-testid="machine-card"][data-name="${name}"]`,
  );
  if (!element) throw new Error(`no card for machine ${name}`);
  return within(element);
}

/** The window on the Machines view, with the Run on grid dialog open for `name`. */
async function openDialog(backend: FakeBackend, name = "analysis") {
  render(App, { props: { backend } });
  await userEvent.click(screen.getByTestId("nav-machines"));
  await userEvent.click((await card(name)).getByTestId("machine-run-on-grid"));
  return within(await screen.findByTestId("submit-panel"));
}

describe("Run on grid", () => {
  it("is offered for stopped machines only, and says why not otherwise", async () => {
    const backend = new FakeBackend({
      machines: [demoMachine(), demoMachine({ name: "busy", state: "running", sshPort: 2223 })],
      grid: { sites },
    });
    renderWith(MachinesView, backend);

    const stopped = await card();
    expect(stopped.getByTestId("machine-run-on-grid")).toBeEnabled();
    const running = await card("busy");
    const button = running.getByTestId("machine-run-on-grid");
    expect(button).toBeDisabled();
    expect(button).toHaveAttribute("title", expect.stringContaining("Stop the machine first"));
    expect(button.parentElement).toHaveAttribute(
      "title",
      expect.stringContaining("Stop the machine first"),
    );

    // The detail has room to say it in words.
    await userEvent.click(running.getByTestId("machine-open"));
    const detail = within(await screen.findByTestId("machine-detail"));
    expect(detail.getByTestId("machine-run-on-grid")).toBeDisabled();
    expect(detail.getByTestId("run-on-grid-hint")).toHaveTextContent("Stop the machine first");
  });

  it("submits with defaults that just work, as an interactive run, then shows it among the runs", async () => {
    const backend = new FakeBackend({
      machines: [demoMachine({ vcpus: 2, memoryMib: 2048 })],
      grid: { sites },
    });
    const dialog = await openDialog(backend);

    expect(await dialog.findByTestId("submit-site")).toHaveValue("test-ce");
    expect(within(dialog.getByTestId("submit-site")).getAllByRole("option")).toHaveLength(2);
    expect(dialog.getByTestId("submit-command")).toHaveValue("");
    expect(dialog.getByTestId("submit-interactive-hint")).toHaveTextContent(
      "Empty: an interactive run",
    );
    expect(dialog.getByTestId("submit-walltime")).toHaveValue("1h");
    expect(dialog.getByTestId("submit-walltime-hint")).toHaveTextContent("1 h");
    expect(dialog.getByTestId("submit-cpus")).toHaveValue(2);
    expect(dialog.getByTestId("submit-memory")).toHaveValue(2048);
    expect(dialog.getByTestId("submit-keep-changes")).not.toBeChecked();
    expect(dialog.queryByTestId("submit-inputs")).toBeNull();

    await userEvent.click(dialog.getByTestId("submit-submit"));

    // The window moves to the Grid view's runs, the new run marked.
    await waitFor(() => expect(screen.getByTestId("view-grid")).toBeVisible());
    expect(screen.getByTestId("nav-grid")).toHaveAttribute("aria-current", "page");
    expect(screen.getByTestId("grid-tab-runs")).toHaveAttribute("aria-selected", "true");
    expect(backend.grid.submits).toEqual([
      {
        machine: "analysis",
        site: "test-ce",
        command: null,
        inputs: [],
        walltimeSecs: 3600,
        cpus: 2,
        memoryMib: 2048,
        keepChanges: false,
        relay: null,
      },
    ]);
    const id = backend.grid.runs[0]!.id;
    const row = await waitFor(() => {
      const element = document.querySelector<HTMLElement>(
        `[data-testid="run-row"][data-id="${id}"]`,
      );
      expect(element).not.toBeNull();
      return element!;
    });
    expect(row).toHaveAttribute("data-highlighted", "true");
    expect(within(row).getByTestId("run-phase")).toHaveTextContent("Queued");
    expect(within(row).getByTestId("run-command")).toHaveTextContent("interactive");
    expect(screen.queryByTestId("submit-panel")).toBeNull();
  });

  it("sends a command, inputs from the pickers, the wall time, resources and keep changes", async () => {
    const backend = new FakeBackend({
      machines: [demoMachine()],
      grid: { sites, submitHold: true },
      pickedFiles: ["/home/ada/data/a.root", "/home/ada/data/b.root"],
      pickedFolder: "/home/ada/macros",
    });
    const dialog = await openDialog(backend);
    await dialog.findByTestId("submit-site");

    await userEvent.selectOptions(dialog.getByTestId("submit-site"), "other-ce");
    await userEvent.type(dialog.getByTestId("submit-command"), "./analyse.sh a.root");
    expect(dialog.getByTestId("submit-batch-hint")).toHaveTextContent("/analysis/output");
    expect(dialog.queryByTestId("submit-interactive-hint")).toBeNull();

    await userEvent.click(dialog.getByTestId("submit-add-files"));
    await userEvent.click(dialog.getByTestId("submit-add-folder"));
    await waitFor(() => expect(dialog.getAllByTestId("submit-input")).toHaveLength(3));
    expect(dialog.getAllByTestId("submit-input").map((i) => i.dataset.path)).toEqual([
      "/home/ada/data/a.root",
      "/home/ada/data/b.root",
      "/home/ada/macros",
    ]);
    expect(dialog.getAllByTestId("submit-input")[2]).toHaveTextContent("→ /analysis/macros");
    const second = within(dialog.getAllByTestId("submit-input")[1]!);
    await userEvent.click(second.getByTestId("submit-input-remove"));
    expect(dialog.getAllByTestId("submit-input")).toHaveLength(2);

    await userEvent.clear(dialog.getByTestId("submit-walltime"));
    await userEvent.type(dialog.getByTestId("submit-walltime"), "90m");
    expect(dialog.getByTestId("submit-walltime-hint")).toHaveTextContent("1 h 30 min");
    await userEvent.clear(dialog.getByTestId("submit-cpus"));
    await userEvent.type(dialog.getByTestId("submit-cpus"), "4");
    await userEvent.clear(dialog.getByTestId("submit-memory"));
    await userEvent.type(dialog.getByTestId("submit-memory"), "4096");
    await userEvent.click(dialog.getByTestId("submit-keep-changes"));

    await userEvent.click(dialog.getByTestId("submit-submit"));
    // The bundle is made, then uploaded: the progress says which.
    await waitFor(() =>
      expect(dialog.getByTestId("submit-stage")).toHaveTextContent(
        "Uploading to the site · 2.7 MB of 5.4 MB",
      ),
    );
    expect(dialog.getByTestId("submit-progress")).toHaveAttribute("aria-valuemax", "5400000");
    expect(dialog.getByTestId("submit-cancel")).toBeEnabled();
    expect(dialog.getByTestId("submit-command")).toBeDisabled();
    backend.grid.releaseSubmit();

    await waitFor(() => expect(screen.getByTestId("view-grid")).toBeVisible());
    expect(backend.grid.submits).toEqual([
      {
        machine: "analysis",
        site: "other-ce",
        command: "./analyse.sh a.root",
        inputs: ["/home/ada/data/a.root", "/home/ada/macros"],
        walltimeSecs: 5400,
        cpus: 4,
        memoryMib: 4096,
        keepChanges: true,
        relay: null,
      },
    ]);
    expect(backend.grid.runs[0]).toMatchObject({
      site: "other-ce",
      inputs: ["a.root", "macros"],
      keepChanges: true,
      resources: { cpus: 4, memoryMib: 4096, walltimeSecs: 5400 },
    });
  });

  it("points to adding a site when there is none", async () => {
    const backend = new FakeBackend({ machines: [demoMachine()] });
    const dialog = await openDialog(backend);
    expect(await dialog.findByTestId("submit-no-sites")).toHaveTextContent("no grid site yet");
    expect(dialog.queryByTestId("submit-submit")).toBeNull();

    await userEvent.click(dialog.getByTestId("submit-add-site"));
    await waitFor(() => expect(screen.getByTestId("view-grid")).toBeVisible());
    expect(screen.getByTestId("grid-tab-sites")).toHaveAttribute("aria-selected", "true");
    await waitFor(() => expect(screen.getByTestId("site-add-name")).toHaveFocus());
  });

  it("checks the form, then shows the core's refusal and keeps the dialog", async () => {
    const plain = demoSite("plain");
    const backend = new FakeBackend({
      machines: [demoMachine()],
      grid: {
        sites: [plain],
        siteInfos: { plain: { ...demoSiteInfo(plain), offersVmJobs: false } },
      },
    });
    const dialog = await openDialog(backend);
    await dialog.findByTestId("submit-site");

    await userEvent.clear(dialog.getByTestId("submit-walltime"));
    await userEvent.type(dialog.getByTestId("submit-walltime"), "soon");
    await userEvent.click(dialog.getByTestId("submit-submit"));
    expect(await dialog.findByTestId("submit-error")).toHaveTextContent("like 90m, 2h, 1d or 1:30");
    expect(backend.grid.submits).toEqual([]);

    await userEvent.clear(dialog.getByTestId("submit-walltime"));
    await userEvent.type(dialog.getByTestId("submit-walltime"), "2h");
    await userEvent.click(dialog.getByTestId("submit-submit"));
    await waitFor(() =>
      expect(dialog.getByTestId("submit-error")).toHaveTextContent(
        "site plain does not offer ENV/SLOOP-VM; its admins can enable it",
      ),
    );
    expect(dialog.getByTestId("submit-error")).toHaveTextContent("Cannot run analysis on the grid");
    expect(screen.getByTestId("view-machines")).toBeVisible();
    expect(backend.grid.runs).toEqual([]);
  });

  it("stops a submit on request, with nothing to report", async () => {
    const backend = new FakeBackend({
      machines: [demoMachine()],
      grid: { sites, submitHold: true },
    });
    const dialog = await openDialog(backend);
    await dialog.findByTestId("submit-site");
    await userEvent.click(dialog.getByTestId("submit-submit"));
    await waitFor(() =>
      expect(dialog.getByTestId("submit-stage")).toHaveTextContent("Uploading to the site"),
    );
    await userEvent.click(dialog.getByTestId("submit-cancel"));
    expect(await dialog.findByTestId("submit-submit")).toBeEnabled();
    expect(dialog.queryByTestId("submit-error")).toBeNull();
    expect(backend.grid.runs).toEqual([]);
    expect(screen.getByTestId("view-machines")).toBeVisible();
  });
});
