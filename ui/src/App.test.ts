import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import App from "./App.svelte";
import { FakeBackend } from "./ipc/fake";

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
});
