import { screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeBackend } from "../../ipc/fake";
import { demoRun, demoSite } from "../../ipc/fake-grid";
import { demoMachine, renderWith } from "../../test-utils";
import { StubScreen } from "../machines/stub-screen";
import RunsPanel from "./RunsPanel.svelte";

// jsdom cannot run xterm.js: the terminal is a stub that keeps its text and types on request.
vi.mock("../machines/xterm", async () => {
  const { StubScreen } = await import("../machines/stub-screen");
  return { openScreen: (container: HTMLElement) => StubScreen.open(container) };
});

const QUEUED = "analysis-00000001";
const RUNNING = "analysis-00000002";
const FINISHED = "analysis-00000003";
const FAILED = "analysis-00000004";
const INTERACTIVE = "analysis-00000005";

/** A run of each kind, made an hour apart (the queued one is the newest). */
function runs() {
  const at = (hoursAgo: number) => new Date(Date.UTC(2026, 2, 2, 12 - hoursAgo)).toISOString();
  return [
    demoRun({ id: FINISHED, state: "FINISHED", exitCode: 0, accel: "kvm", keepChanges: true, created: at(3) }),
    demoRun({ id: QUEUED, state: "QUEUING", created: at(0) }),
    demoRun({ id: RUNNING, state: "RUNNING", accel: "tcg", created: at(1) }),
    demoRun({
      id: FAILED,
      state: "FAILED",
      accel: "kvm",
      reason: "the machine did not power off before its wall time",
      created: at(4),
    }),
    demoRun({ id: INTERACTIVE, state: "RUNNING", command: null, accel: "kvm", created: at(2) }),
  ];
}

function backendWith(over: ConstructorParameters<typeof FakeBackend>[0] = {}) {
  return new FakeBackend({
    machines: [demoMachine({ workDir: "/home/ada/work" })],
    grid: { sites: [demoSite()], runs: runs() },
    ...over,
  });
}

/** The row of run `id`. */
function row(id: string) {
  const element = document.querySelector<HTMLElement>(`[data-testid="run-row"][data-id="${id}"]`);
  if (!element) throw new Error(`no row for run ${id}`);
  return within(element);
}

/** Waits until `count` lists were asked for and the last one is on screen. */
async function listed(backend: FakeBackend, count: number) {
  await waitFor(() => expect(backend.grid.lists).toHaveLength(count));
  await waitFor(() => expect(screen.getByTestId("runs-panel")).toHaveAttribute("aria-busy", "false"));
}

afterEach(() => {
  vi.useRealTimers();
});

describe("Runs", () => {
  it("lists the runs newest first, asked live of their sites, with what each phase allows", async () => {
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");
    await waitFor(() => expect(backend.grid.lists).toEqual([false, true]));

    const ids = screen.getAllByTestId("run-row").map((r) => r.dataset.id);
    expect(ids).toEqual([QUEUED, RUNNING, INTERACTIVE, FINISHED, FAILED]);

    const queued = row(QUEUED);
    expect(queued.getByTestId("run-phase")).toHaveTextContent("Queued");
    expect(queued.getByTestId("run-machine")).toHaveTextContent("analysis");
    expect(queued.getByTestId("run-site")).toHaveTextContent("test-ce");
    expect(queued.getByTestId("run-accel")).toHaveTextContent("—");
    expect(queued.getByTestId("run-command")).toHaveTextContent("./analyse.sh");
    expect(queued.queryByTestId("run-ended")).toBeNull();
    expect(queued.getByTestId("run-logs")).toBeEnabled();
    expect(queued.getByTestId("run-cancel")).toBeEnabled();
    expect(queued.queryByTestId("run-fetch")).toBeNull();
    expect(queued.getByTestId("run-clean")).toBeEnabled();

    const running = row(RUNNING);
    expect(running.getByTestId("run-phase")).toHaveTextContent("Running");
    expect(running.getByTestId("run-accel")).toHaveTextContent("TCG");
    expect(running.getByTestId("run-cancel")).toBeEnabled();
    expect(running.queryByTestId("run-fetch")).toBeNull();
    expect(row(INTERACTIVE).getByTestId("run-command")).toHaveTextContent("interactive");
    expect(row(INTERACTIVE).getByTestId("run-shell")).toHaveTextContent("Open shell");
    expect(running.queryByTestId("run-shell")).toBeNull();

    const finished = row(FINISHED);
    expect(finished.getByTestId("run-phase")).toHaveTextContent("Finished");
    expect(finished.getByTestId("run-exit")).toHaveTextContent("exit 0");
    expect(finished.getByTestId("run-ended")).toBeInTheDocument();
    expect(finished.queryByTestId("run-cancel")).toBeNull();
    expect(finished.getByTestId("run-fetch")).toHaveTextContent("Fetch outputs");
    expect(finished.getByTestId("run-fetch-changes")).toHaveTextContent("Fetch with changes");

    const failed = row(FAILED);
    expect(failed.getByTestId("run-phase")).toHaveTextContent("Failed");
    expect(failed.getByTestId("run-reason")).toHaveTextContent(
      "the machine did not power off before its wall time",
    );
    expect(failed.getByTestId("run-fetch")).toBeEnabled();
    expect(failed.queryByTestId("run-fetch-changes")).toBeNull();
    expect(failed.queryByTestId("run-cancel")).toBeNull();
  });

  it("opens a shell in an interactive run's machine at its site, and ends it on Close", async () => {
    StubScreen.opened = [];
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");
    await userEvent.click(row(INTERACTIVE).getByTestId("run-shell"));
    const pane = within(await screen.findByTestId("run-shell-pane"));
    await waitFor(() =>
      expect(pane.getByTestId("machine-terminal-status")).toHaveAttribute("data-status", "open"),
    );
    expect(backend.terminalOpens).toEqual([
      { target: { run: INTERACTIVE }, size: { cols: 80, rows: 24 } },
    ]);
    const term = StubScreen.opened[0]!;
    await waitFor(() => expect(term.text).toContain("$ "));
    term.type("uname -a\r");
    await waitFor(() => expect(term.text).toContain("Linux fake"));
    expect(row(INTERACTIVE).getByTestId("run-shell")).toHaveTextContent("Hide shell");

    await userEvent.click(pane.getByTestId("run-shell-close"));
    await waitFor(() => expect(backend.terminalCloses).toEqual([1]));
    expect(screen.queryByTestId("run-shell-pane")).toBeNull();
  });

  it("says why a run's shell cannot open", async () => {
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true });
    await listed(backend, 2);
    // The run ended after the list was shown.
    backend.grid.runs.find((r) => r.id === INTERACTIVE)!.ended = "2026-03-02T13:00:00Z";
    await userEvent.click(row(INTERACTIVE).getByTestId("run-shell"));
    const pane = within(await screen.findByTestId("run-shell-pane"));
    expect(await pane.findByTestId("machine-terminal-error")).toHaveTextContent(
      `run ${INTERACTIVE} has ended`,
    );
  });

  it("says there are no runs yet, and points to the sites", async () => {
    const onshowsites = vi.fn();
    renderWith(RunsPanel, new FakeBackend(), { active: true, onshowsites });
    expect(await screen.findByTestId("runs-empty")).toHaveTextContent("Run on grid…");
    await userEvent.click(screen.getByTestId("runs-show-sites"));
    expect(onshowsites).toHaveBeenCalledOnce();
  });

  it("shows a run's logs in panes: the VM job's, the console, the command's output", async () => {
    const backend = backendWith({
      grid: {
        runs: runs(),
        runLogs: {
          [RUNNING]: {
            run: RUNNING,
            job: "sloop-vm-job: booting under tcg\n",
            console: "\u001b[32mWelcome\u001b[0m to analysis\r\n",
            command: "processing 100 events\n",
          },
        },
      },
    });
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");

    await userEvent.click(row(RUNNING).getByTestId("run-logs"));
    const pane = within(await screen.findByTestId("run-logs-pane"));
    expect(await pane.findByTestId("run-log-job")).toHaveTextContent("booting under tcg");
    expect(pane.getByTestId("run-log-console")).toHaveTextContent(/^Welcome to analysis$/);
    expect(pane.getByTestId("run-log-command")).toHaveTextContent("processing 100 events");
    expect(row(RUNNING).getByTestId("run-logs")).toHaveAttribute("aria-pressed", "true");

    // An interactive run has no command output to show.
    await userEvent.click(row(INTERACTIVE).getByTestId("run-logs"));
    const other = within(await screen.findByTestId("run-logs-pane"));
    await waitFor(() =>
      expect(screen.getByTestId("run-logs-pane")).toHaveAttribute("data-id", INTERACTIVE),
    );
    expect(await other.findByTestId("run-log-command")).toHaveTextContent(
      "Interactive run: there is no command.",
    );

    await userEvent.click(other.getByTestId("run-logs-close"));
    expect(screen.queryByTestId("run-logs-pane")).toBeNull();
  });

  it("cancels a running run: it ends killed, with no notification for what the user did", async () => {
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true });
    await listed(backend, 2);

    await userEvent.click(row(RUNNING).getByTestId("run-cancel"));
    await waitFor(() => expect(row(RUNNING).getByTestId("run-phase")).toHaveTextContent("Killed"));
    expect(backend.grid.actions).toEqual([`cancel:${RUNNING}`]);
    expect(row(RUNNING).queryByTestId("run-cancel")).toBeNull();
    expect(row(RUNNING).getByTestId("run-fetch")).toBeEnabled();

    await userEvent.click(screen.getByTestId("runs-refresh"));
    await waitFor(() => expect(backend.grid.lists).toEqual([false, true, true]));
    expect(backend.notifications).toEqual([]);
  });

  it("fetches an ended run's outputs and says where they went; again into another folder", async () => {
    const backend = backendWith({ pickedFolder: "/home/ada/elsewhere" });
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");

    await userEvent.click(row(FINISHED).getByTestId("run-fetch"));
    expect(await row(FINISHED).findByTestId("run-fetched")).toHaveTextContent(
      `Fetched 4 files (2.1 MB) into /home/ada/work/runs/${FINISHED}`,
    );
    expect(backend.grid.actions).toEqual([`fetch:${FINISHED}`]);
    expect(row(FINISHED).queryByTestId("run-fetch")).toBeNull();

    // Again: into a new folder in the one the user picks.
    await userEvent.click(row(FINISHED).getByTestId("run-fetch-again"));
    await waitFor(() =>
      expect(row(FINISHED).getByTestId("run-fetched")).toHaveTextContent(
        `into /home/ada/elsewhere/${FINISHED}`,
      ),
    );

    // The changes too, now that the usual folder is taken: the picker again, and the core's
    // refusal of a folder that exists, in its words.
    await userEvent.click(row(FINISHED).getByTestId("run-fetch-changes"));
    expect(await row(FINISHED).findByTestId("run-error")).toHaveTextContent(
      `/home/ada/elsewhere/${FINISHED} exists already`,
    );
    expect(row(FINISHED).getByTestId("run-error")).toHaveTextContent(
      `Cannot fetch run ${FINISHED}`,
    );
    expect(backend.grid.actions).toEqual([
      `fetch:${FINISHED}`,
      `fetch:${FINISHED}`,
      `fetchChanges:${FINISHED}`,
    ]);
    expect(backend.machines).toHaveLength(1);
  });

  it("fetches a run's changes as a new machine and names it", async () => {
    const onshowmachines = vi.fn();
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true, onshowmachines });
    await screen.findByTestId("runs-table");

    await userEvent.click(row(FINISHED).getByTestId("run-fetch-changes"));
    expect(await row(FINISHED).findByTestId("run-changed-machine")).toHaveTextContent(
      "The run's changes are in the new machine analysis-from-00000003.",
    );
    expect(await row(FINISHED).findByTestId("run-fetched")).toHaveTextContent(
      `into /home/ada/work/runs/${FINISHED}`,
    );
    expect(row(FINISHED).queryByTestId("run-fetch-changes")).toBeNull();
    expect(backend.grid.actions).toEqual([`fetchChanges:${FINISHED}`]);
    expect(backend.machines.map((m) => m.name)).toEqual(["analysis", "analysis-from-00000003"]);
    await userEvent.click(row(FINISHED).getByTestId("run-show-machines"));
    expect(onshowmachines).toHaveBeenCalledOnce();
  });

  it("shows a fetch's progress and stops it on request", async () => {
    const backend = backendWith({ grid: { runs: runs(), stepMs: 400 } });
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");

    await userEvent.click(row(FAILED).getByTestId("run-fetch"));
    expect(await row(FAILED).findByTestId("run-fetch-stage")).toHaveTextContent(
      "Downloading the outputs",
    );
    await userEvent.click(row(FAILED).getByTestId("run-fetch-stop"));
    await waitFor(() => expect(row(FAILED).getByTestId("run-fetch")).toBeEnabled());
    expect(row(FAILED).queryByTestId("run-error")).toBeNull();
    expect(row(FAILED).queryByTestId("run-fetched")).toBeNull();
  });

  it("cleans a run only once the user confirms", async () => {
    const backend = backendWith();
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");

    await userEvent.click(row(FAILED).getByTestId("run-clean"));
    expect(row(FAILED).getByTestId("run-clean-question")).toHaveTextContent(
      `Remove run ${FAILED}? Its files at the site and its record here are deleted; outputs not fetched are lost.`,
    );
    await userEvent.click(row(FAILED).getByTestId("run-clean-confirm"));
    await waitFor(() =>
      expect(document.querySelector(`[data-testid="run-row"][data-id="${FAILED}"]`)).toBeNull(),
    );
    expect(backend.grid.actions).toEqual([`clean:${FAILED}`]);
    expect(backend.grid.runs.map((r) => r.id)).not.toContain(FAILED);
  });

  it("submits again a run whose submit did not end; a whole one has no such button", async () => {
    const STOPPED = "analysis-00000006";
    const backend = backendWith();
    backend.grid.runs.unshift(demoRun({ id: STOPPED, submitted: null, state: null }));
    renderWith(RunsPanel, backend, { active: true });
    await screen.findByTestId("runs-table");

    expect(row(RUNNING).queryByTestId("run-resume")).toBeNull();
    expect(row(STOPPED).getByTestId("run-phase")).toHaveTextContent("Submitting");
    await userEvent.click(row(STOPPED).getByTestId("run-resume"));
    await waitFor(() => expect(row(STOPPED).getByTestId("run-phase")).toHaveTextContent("Queued"));
    expect(row(STOPPED).queryByTestId("run-resume")).toBeNull();
    expect(backend.grid.actions).toEqual([`resume:${STOPPED}`]);
  });

  it("asks the sites every 15 s while shown and notifies when a run it saw running ends", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const backend = backendWith();
    const view = renderWith(RunsPanel, backend, { active: true });
    await listed(backend, 2);

    backend.grid.setRunState(RUNNING, "FINISHED", { exitCode: 0 });
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(() => expect(row(RUNNING).getByTestId("run-phase")).toHaveTextContent("Finished"));
    expect(backend.grid.lists).toEqual([false, true, true]);
    expect(backend.notifications).toEqual([
      {
        title: "Grid run finished",
        body: `Run ${RUNNING} of analysis at test-ce finished. Fetch its outputs in Sloop's Grid view.`,
      },
    ]);

    // Out of sight, once a minute while a run may still end.
    await view.rerender({ active: false });
    backend.grid.setRunState(QUEUED, "FAILED", { reason: "the site's cache cannot fetch the base" });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(backend.grid.lists).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(45_000);
    await waitFor(() => expect(backend.grid.lists).toHaveLength(4));
    await waitFor(() => expect(backend.notifications).toHaveLength(2));
    expect(backend.notifications[1]).toEqual({
      title: "Grid run failed",
      body: `Run ${QUEUED} of analysis at test-ce failed: the site's cache cannot fetch the base. Its logs are in Sloop's Grid view.`,
    });

    // A run ended long ago, never seen running here, is no news.
    expect(backend.notifications.map((n) => n.body).join()).not.toContain(FINISHED);
  });
});
