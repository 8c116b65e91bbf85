import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import App from "./App.svelte";
import { FakeBackend } from "./ipc/fake";
import { demoMachine } from "./test-utils";

describe("App", () => {
  it("opens on the host check and moves between views", async () => {
    render(App, { props: { backend: new FakeBackend() } });
    expect(screen.getByTestId("view-host")).toBeVisible();
    expect(screen.getByTestId("nav-host")).toHaveAttribute("aria-current", "page");
    // The grid proxy is in the header, above every view.
    expect(await screen.findByTestId("proxy-identity")).toHaveTextContent("Jane Doe");

    const nav = screen.getAllByRole("button").filter((b) => b.dataset.testid?.startsWith("nav-"));
    expect(nav.map((b) => b.dataset.testid)).toEqual([
      "nav-host",
      "nav-images",
      "nav-machines",
      "nav-tutorials",
      "nav-grid",
      "nav-logs",
    ]);

    await userEvent.click(screen.getByTestId("nav-images"));
    expect(await screen.findByTestId("catalog-card")).toBeVisible();
    expect(screen.getByTestId("images-view")).toBeVisible();
    expect(screen.getByTestId("nav-images")).toHaveAttribute("aria-current", "page");

    await userEvent.click(screen.getByTestId("nav-machines"));
    expect(await screen.findByTestId("machines-empty")).toBeVisible();
    expect(screen.getByTestId("view-host")).not.toBeVisible();

    await userEvent.click(screen.getByTestId("nav-logs"));
    expect(screen.getByTestId("view-logs")).toBeVisible();
    expect(screen.getByTestId("proxy-panel")).toBeVisible();
    expect(screen.getByTestId("nav-logs")).toHaveAttribute("aria-current", "page");
  });

  it("opens a tutorial file dropped on the window in the Tutorials view", async () => {
    const file = "/media/usb/course.sloop-tutorial";
    const backend = new FakeBackend({
      tutorialFiles: {
        [file]: { name: "course", title: "Tiny course", welcome: "Hello", start: null, trainer: null },
      },
    });
    render(App, { props: { backend } });
    backend.dropFiles([file]);
    expect(await screen.findByTestId("tutorial-title")).toHaveTextContent("Tiny course");
    expect(screen.getByTestId("view-tutorials")).toBeVisible();
    expect(screen.getByTestId("nav-tutorials")).toHaveAttribute("aria-current", "page");
  });

  it("opens a tutorial file the desktop hands over at once, a link when asked", async () => {
    const file = "/home/ana/Downloads/course.sloop-tutorial";
    const backend = new FakeBackend({
      tutorialFiles: {
        [file]: { name: "course", title: "Tiny course", welcome: "Hello", start: null, trainer: null },
      },
    });
    render(App, { props: { backend } });
    backend.requestOpen([
      { kind: "tutorialLink", location: "https://school.example.org/root.sloop-tutorial" },
    ]);
    expect(await screen.findByTestId("tutorial-linked")).toBeVisible();
    expect(screen.getByTestId("tutorial-location")).toHaveValue(
      "https://school.example.org/root.sloop-tutorial",
    );
    expect(screen.queryByTestId("tutorial-title")).toBeNull();

    backend.requestOpen([{ kind: "tutorial", location: file }]);
    expect(await screen.findByTestId("tutorial-title")).toHaveTextContent("Tiny course");
    expect(screen.queryByTestId("tutorial-linked")).toBeNull();
  });

  it("shows the About line with the version and commit", async () => {
    render(App, { props: { backend: new FakeBackend() } });
    expect(await screen.findByTestId("about")).toHaveTextContent("Sloop 0.1.0 · 0123456789ab");
  });

  it("asks what to do with running machines when the window closes", async () => {
    const backend = new FakeBackend({
      machines: [demoMachine({ name: "ana", state: "running" }), demoMachine({ name: "old" })],
    });
    render(App, { props: { backend } });
    expect(backend.requestClose()).toBe(true);
    const dialog = await screen.findByTestId("quit-dialog");
    expect(dialog).toHaveTextContent("A machine is running");
    expect(dialog).toHaveTextContent("ana");
    expect(dialog).not.toHaveTextContent("old");

    // Cancel: nothing happens to the machine, the window stays.
    await userEvent.click(screen.getByTestId("quit-stay"));
    expect(screen.queryByTestId("quit-dialog")).toBeNull();
    expect(backend.quits).toEqual([]);

    backend.requestClose();
    await userEvent.click(await screen.findByTestId("quit-keep"));
    expect(backend.quits).toEqual([false]);
    expect(backend.machines[0]?.state).toBe("running");

    backend.requestClose();
    await userEvent.click(await screen.findByTestId("quit-stop"));
    expect(backend.quits).toEqual([false, true]);
    expect(backend.machines[0]?.state).toBe("stopped");
  });
});
