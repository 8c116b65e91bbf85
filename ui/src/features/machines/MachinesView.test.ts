import { fireEvent, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { demoCatalog, demoProxyStatus, FakeBackend, type FakeOptions } from "../../ipc/fake";
import { demoMachine, renderWith } from "../../test-utils";
import MachinesView from "./MachinesView.svelte";
import { StubScreen } from "./stub-screen";

// jsdom cannot run xterm.js: the terminal is a stub that keeps its text and types on request.
vi.mock("./xterm", async () => {
  const { StubScreen } = await import("./stub-screen");
  return { openScreen: (container: HTMLElement) => StubScreen.open(container) };
});

const demoImage = demoCatalog().images[0]!;
const downloaded: FakeOptions["local"] = {
  [demoImage.sha512]: { kind: "stored", path: "/images/tiny.qcow2" },
};

const machine = demoMachine;

async function card(name = "analysis") {
  await screen.findByTestId("machines-list");
  const element = await waitFor(() => {
    const selector = `[data-testid="machine-card"][data-name="${name}"]`;
    const found = document.querySelector<HTMLElement>(selector);
    if (!found) throw new Error(`no card for ${name}`);
    return found;
  });
  return within(element);
}

async function openDetail(name = "analysis") {
  await userEvent.click((await card(name)).getByTestId("machine-open"));
  return within(await screen.findByTestId("machine-detail"));
}

beforeEach(() => {
  StubScreen.opened = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe("MachinesView", () => {
  it("shows a friendly empty state and no buttons that do nothing", async () => {
    renderWith(MachinesView, new FakeBackend());
    const empty = await screen.findByTestId("machines-empty");
    expect(empty).toHaveTextContent("No machines yet");
    expect(within(empty).queryByRole("button")).toBeNull();
    expect(screen.getByTestId("machine-new")).toBeEnabled();
  });

  it("shows a card per machine", async () => {
    const backend = new FakeBackend({
      machines: [
        machine({
          state: "running",
          image: "Debian 12 analysis base",
          vcpus: 2,
          memoryMib: 2048,
          workDir: "/home/ada/work",
        }),
        machine({ name: "spare", sshPort: 2223, imageCertified: false, layout: "live-cd" }),
      ],
    });
    renderWith(MachinesView, backend);

    const cards = await screen.findAllByTestId("machine-card");
    expect(cards).toHaveLength(2);
    const first = within(cards[0]!);
    expect(first.getByTestId("machine-name")).toHaveTextContent("analysis");
    expect(first.getByTestId("machine-state")).toHaveTextContent("Running");
    expect(first.getByTestId("machine-image")).toHaveTextContent("Debian 12 analysis base");
    expect(first.getByTestId("machine-resources")).toHaveTextContent("2 vCPUs · 2 GiB memory");
    expect(first.getByTestId("machine-ssh")).toHaveTextContent("127.0.0.1:2222");
    expect(first.getByTestId("machine-workdir")).toHaveTextContent("/home/ada/work");
    expect(within(cards[1]!).getByTestId("machine-resources")).toHaveTextContent(
      "1 vCPU · 512 MiB memory",
    );
    expect(first.queryByTestId("machine-image-uncertified")).toBeNull();
    expect(first.queryByTestId("machine-live-cd")).toBeNull();
    expect(within(cards[1]!).getByTestId("machine-live-cd")).toHaveTextContent(
      "Boots from the ISO image",
    );
    expect(within(cards[1]!).getByTestId("machine-image-uncertified")).toHaveTextContent(
      "No longer certified",
    );
    expect(screen.queryByTestId("machines-empty")).toBeNull();

    // The buttons follow the state.
    expect(first.getByTestId("machine-stop")).toBeEnabled();
    expect(first.getByTestId("machine-force-off")).toBeEnabled();
    expect(first.getByTestId("machine-restart")).toBeEnabled();
    expect(first.queryByTestId("machine-start")).toBeNull();
    const second = within(cards[1]!);
    expect(second.getByTestId("machine-start")).toBeEnabled();
    expect(second.queryByTestId("machine-stop")).toBeNull();
    expect(second.getByTestId("machine-open")).toBeEnabled();
    expect(second.getByTestId("machine-delete")).toBeEnabled();
  });

  it("shows the core's error message", async () => {
    const backend = new FakeBackend({
      machinesError: {
        code: "libvirt",
        message: "libvirt at qemu:///system does not answer; start it: sudo libvirtd -d",
      },
    });
    renderWith(MachinesView, backend);
    const error = await screen.findByTestId("machines-error");
    expect(error).toHaveTextContent("does not answer; start it");
  });

  it("creates a machine from a downloaded certified image; it shows up stopped", async () => {
    const backend = new FakeBackend({ local: downloaded, delayMs: 10 });
    renderWith(MachinesView, backend);
    await screen.findByTestId("machines-empty");

    await userEvent.click(screen.getByTestId("machine-new"));
    const form = within(await screen.findByTestId("machine-create-form"));
    const image = await form.findByTestId("machine-create-image");
    expect(image).toHaveValue(demoImage.identifier);
    expect(within(image).getAllByRole("option").map((o) => o.textContent)).toEqual([
      "Sloop tiny test image (version 1)",
    ]);
    expect(form.getByTestId("machine-create-vcpus")).toHaveValue(2);
    expect(form.getByTestId("machine-create-memory")).toHaveValue(2048);
    expect(form.getByTestId("machine-create-disk")).toHaveValue(20);
    expect(form.getByText(/Lower-case letters, digits and dashes/)).toBeInTheDocument();

    await userEvent.type(form.getByTestId("machine-create-name"), "e2e");
    await userEvent.clear(form.getByTestId("machine-create-vcpus"));
    await userEvent.type(form.getByTestId("machine-create-vcpus"), "1");
    await userEvent.clear(form.getByTestId("machine-create-memory"));
    await userEvent.type(form.getByTestId("machine-create-memory"), "256");
    await userEvent.clear(form.getByTestId("machine-create-disk"));
    await userEvent.type(form.getByTestId("machine-create-disk"), "1");
    await userEvent.type(form.getByTestId("machine-create-workdir"), "/home/ada/work");
    await userEvent.click(form.getByTestId("machine-create-submit"));
    expect(form.getByTestId("machine-create-submit")).toHaveTextContent("Creating…");
    expect(form.getByTestId("machine-create-submit")).toBeDisabled();

    const created = await card("e2e");
    expect(created.getByTestId("machine-state")).toHaveTextContent("Stopped");
    expect(created.getByTestId("machine-resources")).toHaveTextContent("1 vCPU · 256 MiB memory");
    expect(created.getByTestId("machine-workdir")).toHaveTextContent("/home/ada/work");
    expect(created.getByTestId("machine-start")).toBeEnabled();
    expect(screen.queryByTestId("machine-create-form")).toBeNull();
    expect(backend.machines).toMatchObject([
      { name: "e2e", state: "stopped", vcpus: 1, memoryMib: 256, workDir: "/home/ada/work" },
    ]);
  });

  it("fills the work folder from the system's folder picker", async () => {
    const backend = new FakeBackend({ local: downloaded, pickedFolder: "/home/ada/thesis" });
    renderWith(MachinesView, backend);
    await screen.findByTestId("machines-empty");
    await userEvent.click(screen.getByTestId("machine-new"));
    const form = within(await screen.findByTestId("machine-create-form"));
    await form.findByTestId("machine-create-image");
    await userEvent.click(form.getByTestId("machine-create-choose-folder"));
    await waitFor(() =>
      expect(form.getByTestId("machine-create-workdir")).toHaveValue("/home/ada/thesis"),
    );
  });

  it("checks the form first, then shows the core's message when it refuses", async () => {
    const backend = new FakeBackend({ local: downloaded, machines: [machine()] });
    renderWith(MachinesView, backend);
    await card();
    await userEvent.click(screen.getByTestId("machine-new"));
    const form = within(await screen.findByTestId("machine-create-form"));
    const name = await form.findByTestId("machine-create-name");

    await userEvent.type(name, "My Machine");
    await userEvent.click(form.getByTestId("machine-create-submit"));
    expect(await form.findByTestId("machine-create-error")).toHaveTextContent(
      "only lower-case letters, digits and dashes",
    );

    await userEvent.clear(name);
    await userEvent.type(name, "analysis");
    await userEvent.click(form.getByTestId("machine-create-submit"));
    await waitFor(() =>
      expect(form.getByTestId("machine-create-error")).toHaveTextContent(
        "a machine named analysis exists already",
      ),
    );
    expect(form.getByTestId("machine-create-error")).toHaveTextContent("Cannot create analysis");
    expect(backend.machines).toHaveLength(1);

    await userEvent.click(form.getByTestId("machine-create-cancel"));
    expect(screen.queryByTestId("machine-create-form")).toBeNull();
    expect(screen.getByTestId("machine-new")).toHaveFocus();
  });

  it("points to the Images view when no certified image is downloaded", async () => {
    const onshowimages = vi.fn();
    renderWith(MachinesView, new FakeBackend(), { onshowimages });
    await screen.findByTestId("machines-empty");
    await userEvent.click(screen.getByTestId("machine-new"));

    const none = await screen.findByTestId("machine-create-no-images");
    expect(none).toHaveTextContent("Download one in the Images view first");
    expect(screen.queryByTestId("machine-create-submit")).toBeNull();
    await userEvent.click(within(none).getByTestId("machine-create-show-images"));
    expect(onshowimages).toHaveBeenCalledOnce();
  });

  it("starts a machine with progress, and ends Running", async () => {
    const backend = new FakeBackend({ machines: [machine()], startStepMs: 20, startHold: true });
    renderWith(MachinesView, backend);
    const c = await card();

    await userEvent.click(c.getByTestId("machine-start"));
    expect(c.getByTestId("machine-start")).toHaveTextContent("Starting…");
    expect(c.getByTestId("machine-start")).toBeDisabled();
    expect(c.getByTestId("machine-delete")).toBeDisabled();
    expect(c.getByTestId("machine-delete")).toHaveTextContent(/^Delete$/);

    // libvirt says running before SSH answers: the card still shows the start under way.
    await waitFor(() =>
      expect(c.getByTestId("machine-progress-stage")).toHaveTextContent("Booting…"),
    );
    expect(c.getByTestId("machine-progress")).toHaveAttribute("aria-valuemax", "3");
    expect(c.getByTestId("machine-progress")).toHaveAttribute("aria-valuenow", "2");
    expect(c.getByTestId("machine-state")).toHaveTextContent("Running");
    expect(c.queryByTestId("machine-stop")).toBeNull();

    backend.releaseStart();
    await waitFor(() => expect(c.getByTestId("machine-stop")).toBeEnabled());
    expect(c.queryByTestId("machine-progress")).toBeNull();
    expect(c.getByTestId("machine-state")).toHaveTextContent("Running");
    expect(backend.actions).toEqual(["start:analysis"]);
  });

  it("stops, forces off and restarts, and shows why an action failed on its card", async () => {
    const backend = new FakeBackend({ machines: [machine({ state: "running" })] });
    renderWith(MachinesView, backend);
    const c = await card();

    await userEvent.click(c.getByTestId("machine-stop"));
    await waitFor(() => expect(c.getByTestId("machine-state")).toHaveTextContent("Stopped"));
    await userEvent.click(c.getByTestId("machine-start"));
    await waitFor(() => expect(c.getByTestId("machine-restart")).toBeEnabled());
    await userEvent.click(c.getByTestId("machine-restart"));
    await waitFor(() => expect(c.getByTestId("machine-force-off")).toBeEnabled());
    await userEvent.click(c.getByTestId("machine-force-off"));
    await waitFor(() => expect(c.getByTestId("machine-state")).toHaveTextContent("Stopped"));
    expect(backend.actions).toEqual([
      "stop:analysis",
      "start:analysis",
      "restart:analysis",
      "forceOff:analysis",
    ]);

    backend.actionError = {
      code: "machine",
      message: "machine analysis's base image /images/tiny.qcow2 is missing",
    };
    await userEvent.click(c.getByTestId("machine-start"));
    const error = await c.findByTestId("machine-error");
    expect(error).toHaveTextContent("Cannot start analysis");
    expect(error).toHaveTextContent("base image /images/tiny.qcow2 is missing");
    expect(c.getByTestId("machine-start")).toBeEnabled();
  });

  it("asks before deleting and says the overlay is deleted too", async () => {
    const backend = new FakeBackend({ machines: [machine()], delayMs: 20 });
    renderWith(MachinesView, backend);
    const c = await card();

    await userEvent.click(c.getByTestId("machine-delete"));
    const question = c.getByTestId("machine-delete-question");
    expect(question).toHaveTextContent("Delete machine analysis?");
    expect(question).toHaveTextContent(
      "Its overlay, with every change you made inside the machine, is deleted too",
    );
    await userEvent.click(c.getByTestId("machine-delete-cancel"));
    expect(backend.actions).toEqual([]);

    await userEvent.click(c.getByTestId("machine-delete"));
    await userEvent.click(c.getByTestId("machine-delete-confirm"));
    expect(c.getByTestId("machine-delete")).toHaveTextContent("Deleting…");
    expect(c.getByTestId("machine-start")).toBeDisabled();
    expect(await screen.findByTestId("machines-empty")).toBeInTheDocument();
    expect(backend.actions).toEqual(["delete:analysis"]);
    expect(backend.machines).toEqual([]);
  });

  it("follows machines events: a state changed elsewhere, a machine made elsewhere", async () => {
    const backend = new FakeBackend({ machines: [machine({ state: "running" })] });
    renderWith(MachinesView, backend);
    const c = await card();
    expect(c.getByTestId("machine-state")).toHaveTextContent("Running");

    backend.setMachineState("analysis", "crashed");
    await waitFor(() => expect(c.getByTestId("machine-state")).toHaveTextContent("Crashed"));
    expect(c.getByTestId("machine-start")).toBeEnabled();

    backend.emit({
      type: "machines",
      machines: [machine({ state: "crashed" }), machine({ name: "from-cli", sshPort: 2223 })],
    });
    expect((await card("from-cli")).getByTestId("machine-state")).toHaveTextContent("Stopped");
  });

  it("attaches and detaches the grid proxy with the card's switch", async () => {
    const backend = new FakeBackend({ machines: [machine({ state: "running" })], delayMs: 20 });
    renderWith(MachinesView, backend);
    const c = await card();

    const toggle = c.getByRole("switch", { name: "Grid proxy" });
    expect(toggle).toBe(c.getByTestId("proxy-switch"));
    expect(toggle).not.toBeChecked();
    expect(toggle.closest("label")).toHaveAttribute(
      "title",
      "Place your grid proxy in this machine at every start and renewal",
    );

    await userEvent.click(toggle);
    // Busy until the core answers; the switch moves only then.
    expect(toggle).toBeDisabled();
    expect(toggle).not.toBeChecked();
    await waitFor(() => expect(c.getByTestId("proxy-switch")).toBeChecked());
    await waitFor(() => expect(c.getByTestId("proxy-switch")).toBeEnabled());
    expect(backend.machines[0]!.proxyAttached).toBe(true);

    await userEvent.click(c.getByTestId("proxy-switch"));
    await waitFor(() => expect(c.getByTestId("proxy-switch")).not.toBeChecked());
    await waitFor(() => expect(c.getByTestId("proxy-switch")).toBeEnabled());
    expect(backend.proxyActions).toEqual(["attach:analysis", "detach:analysis"]);
    expect(backend.machines[0]!.proxyAttached).toBe(false);

    // Attached elsewhere (sloop proxy attach): the switch follows.
    backend.emit({ type: "machines", machines: [machine({ proxyAttached: true })] });
    await waitFor(() => expect(c.getByTestId("proxy-switch")).toBeChecked());
  });

  it("shows on its card why the grid proxy cannot be attached", async () => {
    const proxy = demoProxyStatus();
    proxy.info = null;
    const backend = new FakeBackend({ machines: [machine()], proxy });
    renderWith(MachinesView, backend);
    const c = await card();

    await userEvent.click(c.getByTestId("proxy-switch"));
    const error = await c.findByTestId("machine-error");
    expect(error).toHaveTextContent("Cannot attach the grid proxy to analysis");
    expect(error).toHaveTextContent("no proxy at /tmp/x509up_u1000");
    expect(c.getByTestId("proxy-switch")).not.toBeChecked();
    expect(c.getByTestId("proxy-switch")).toBeEnabled();
    expect(backend.machines[0]!.proxyAttached).toBe(false);
  });

  it("opens a terminal in a running machine: input goes out, output comes in", async () => {
    const backend = new FakeBackend({ machines: [machine({ state: "running" })] });
    renderWith(MachinesView, backend);
    const detail = await openDetail();

    expect(detail.getByTestId("machine-tab-terminal")).toHaveAttribute("aria-selected", "true");
    expect(detail.getByTestId("machine-terminal")).toBeInTheDocument();
    expect(screen.queryByTestId("machines-list")).toBeNull();
    await waitFor(() =>
      expect(detail.getByTestId("machine-terminal-status")).toHaveAttribute("data-status", "open"),
    );
    expect(StubScreen.opened).toHaveLength(1);
    const term = StubScreen.opened[0]!;
    expect(term.container).toBe(detail.getByTestId("machine-terminal"));
    expect(backend.terminalOpens).toEqual([{ target: { machine: "analysis" }, size: { cols: 80, rows: 24 } }]);
    await waitFor(() => expect(term.text).toContain("$ "));

    term.type("uname -a\r");
    await waitFor(() => expect(term.text).toContain("Linux fake 6.1.0 x86_64\r\n$ "));
    expect(backend.terminalWrites).toEqual([{ id: 1, data: "uname -a\r" }]);
    term.resizeTo(100, 30);
    await waitFor(() =>
      expect(backend.terminalResizes).toEqual([{ id: 1, size: { cols: 100, rows: 30 } }]),
    );

    // The shell ends: the pane says so and connects again on request.
    backend.endTerminal(1, 0);
    expect(await detail.findByTestId("machine-terminal-ended")).toHaveTextContent(
      "Session ended (status 0)",
    );
    await userEvent.click(detail.getByTestId("machine-terminal-reconnect"));
    await waitFor(() =>
      expect(detail.getByTestId("machine-terminal-status")).toHaveAttribute("data-status", "open"),
    );
    expect(backend.terminalOpens).toHaveLength(2);
    term.type("exit\r");
    await detail.findByTestId("machine-terminal-ended");
    await userEvent.click(detail.getByTestId("machine-terminal-reconnect"));
    await waitFor(() => expect(backend.terminalOpens).toHaveLength(3));

    // Leaving the detail closes the session and the terminal.
    await userEvent.click(detail.getByTestId("machine-back"));
    expect(await screen.findByTestId("machines-list")).toBeInTheDocument();
    await waitFor(() => expect(backend.terminalCloses).toContain(3));
    expect(term.disposed).toBe(true);
  });

  it("opens no terminal in a stopped machine, and one once it is started", async () => {
    const backend = new FakeBackend({ machines: [machine()], startStepMs: 5 });
    renderWith(MachinesView, backend);
    const detail = await openDetail();

    expect(detail.getByTestId("machine-terminal-hint")).toHaveTextContent(
      "Start it to open a terminal",
    );
    expect(detail.queryByTestId("machine-terminal")).toBeNull();
    expect(StubScreen.opened).toHaveLength(0);

    await userEvent.click(detail.getByTestId("machine-start"));
    expect(await detail.findByTestId("machine-progress-stage")).toBeInTheDocument();
    expect(detail.getByTestId("machine-terminal-hint")).toHaveTextContent(
      "once the machine answers",
    );
    await waitFor(() =>
      expect(detail.getByTestId("machine-terminal-status")).toHaveAttribute("data-status", "open"),
    );
    expect(detail.getByTestId("machine-state")).toHaveTextContent("Running");

    // Stopping ends the session; the pane goes, the hint comes back.
    await userEvent.click(detail.getByTestId("machine-stop"));
    expect(await detail.findByTestId("machine-terminal-hint")).toBeInTheDocument();
    expect(StubScreen.opened[0]!.disposed).toBe(true);
  });

  it("opens the terminal of a machine started meanwhile once its tab is shown", async () => {
    const backend = new FakeBackend({ machines: [machine()], startStepMs: 5 });
    renderWith(MachinesView, backend);
    const detail = await openDetail();
    await userEvent.click(detail.getByTestId("machine-tab-console"));
    await userEvent.click(detail.getByTestId("machine-start"));
    await waitFor(() => expect(detail.getByTestId("machine-stop")).toBeEnabled());
    expect(detail.getByTestId("machine-terminal")).not.toBeVisible();
    expect(StubScreen.opened).toHaveLength(0);
    expect(backend.terminalOpens).toHaveLength(0);

    await userEvent.click(detail.getByTestId("machine-tab-terminal"));
    await waitFor(() =>
      expect(detail.getByTestId("machine-terminal-status")).toHaveAttribute("data-status", "open"),
    );
    expect(StubScreen.opened).toHaveLength(1);
  });

  it("shows the console log, and reads it again on Refresh and every 3 s", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const backend = new FakeBackend({
      machines: [machine({ state: "running" })],
      consoles: { analysis: "[    0.000000] Linux version 6.1.0\r\nsloop-init: seed found\r\n" },
    });
    renderWith(MachinesView, backend);
    const detail = await openDetail();

    await userEvent.click(detail.getByTestId("machine-tab-console"));
    expect(detail.getByTestId("machine-tab-console")).toHaveAttribute("aria-selected", "true");
    const text = await detail.findByTestId("machine-console-text");
    expect(text.textContent).toBe("[    0.000000] Linux version 6.1.0\nsloop-init: seed found\n");
    // The terminal stays open behind its tab.
    expect(detail.getByTestId("machine-terminal")).not.toBeVisible();

    backend.consoles.set("analysis", "sloop-init: seed found\nlogin: ");
    await userEvent.click(detail.getByTestId("machine-console-refresh"));
    await waitFor(() => expect(text.textContent).toBe("sloop-init: seed found\nlogin: "));

    backend.consoles.set("analysis", "sloop-init: done\n");
    await vi.advanceTimersByTimeAsync(3000);
    await waitFor(() => expect(text.textContent).toBe("sloop-init: done\n"));

    // Not while another tab is shown.
    await fireEvent.click(detail.getByTestId("machine-tab-terminal"));
    backend.consoles.set("analysis", "later\n");
    await vi.advanceTimersByTimeAsync(6000);
    expect(text.textContent).toBe("sloop-init: done\n");
  });
});
