import { screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import TutorialsView from "./TutorialsView.svelte";

// jsdom cannot run xterm.js: the terminal is a stub that keeps its text and types on request.
vi.mock("../machines/xterm", async () => {
  const { StubScreen } = await import("../machines/stub-screen");
  return { openScreen: (container: HTMLElement) => StubScreen.open(container) };
});

const FILE = "/media/usb/course/course.sloop-tutorial";

function backend() {
  return new FakeBackend({
    tutorialFiles: {
      [FILE]: {
        name: "course",
        title: "Tiny course",
        welcome: "# Welcome\n\nRun `cat hello.C`. <b>not bold</b>",
        start: "cat /analysis/hello.C",
        trainer: "/DC=org/CN=Jane Trainer",
      },
    },
  });
}

async function open(location: string) {
  await userEvent.type(screen.getByTestId("tutorial-location"), location);
  await userEvent.click(screen.getByTestId("tutorial-open"));
}

describe("Tutorials", () => {
  it("opens a tutorial file: the welcome text beside a terminal in its machine", async () => {
    const fake = backend();
    renderWith(TutorialsView, fake, { active: true });
    expect(await screen.findByTestId("tutorials-empty")).toHaveTextContent("No tutorials yet");

    await open(FILE);
    expect(await screen.findByTestId("tutorial-title")).toHaveTextContent("Tiny course");
    const welcome = screen.getByTestId("tutorial-welcome");
    expect(welcome.querySelector("h2")).toHaveTextContent("Welcome");
    expect(welcome.querySelector("code")).toHaveTextContent("cat hello.C");
    // Markup in the file is text, never HTML.
    expect(welcome.querySelector("b")).toBeNull();
    expect(welcome).toHaveTextContent("<b>not bold</b>");
    expect(screen.getByTestId("tutorial-start")).toHaveTextContent("cat /analysis/hello.C");
    await waitFor(() => expect(fake.terminalOpens).toEqual([expect.objectContaining({ target: { machine: "course" } })]));
    expect(fake.machines.map((m) => [m.name, m.state])).toEqual([["course", "running"]]);

    // Opening it again is the same machine.
    await open(FILE);
    await waitFor(() => expect(screen.getByTestId("tutorial-open")).toHaveTextContent("Open tutorial"));
    expect(fake.machines).toHaveLength(1);
  });

  it("resets to the start after asking, and says where the old work went", async () => {
    const fake = backend();
    renderWith(TutorialsView, fake, { active: true });
    await open(FILE);
    await screen.findByTestId("tutorial-title");

    await userEvent.click(screen.getByTestId("tutorial-reset"));
    await userEvent.click(screen.getByTestId("tutorial-reset-confirm"));
    expect(await screen.findByTestId("tutorial-set-aside")).toHaveTextContent(
      "/home/user/.local/share/sloop/tutorials/course/work-20261207-101500",
    );
    expect(fake.machines.map((m) => [m.name, m.state])).toEqual([["course", "running"]]);
  });

  it("shows the core's refusal in one line", async () => {
    renderWith(TutorialsView, backend(), { active: true });
    await open("/nowhere.sloop-tutorial");
    expect(await screen.findByTestId("tutorial-error")).toHaveTextContent(
      "cannot read tutorial file /nowhere.sloop-tutorial: No such file or directory",
    );
  });

  it("asks before taking another version of a tutorial opened here, then opens it anew", async () => {
    const fake = backend();
    const second = "/media/usb/course-v2/course.sloop-tutorial";
    renderWith(TutorialsView, fake, { active: true });
    await open(FILE);
    await screen.findByTestId("tutorial-title");
    await waitFor(() => expect(screen.getByTestId("tutorial-open")).toHaveTextContent("Open tutorial"));
    // The trainer's new version of the same tutorial.
    (fake as unknown as { tutorialFiles: Map<string, unknown> }).tutorialFiles.set(second, {
      name: "course",
      title: "Tiny course, day 2",
      welcome: "Day 2",
      start: null,
      trainer: null,
    });
    await open(second);
    expect(await screen.findByTestId("tutorial-error")).toHaveTextContent("another version of its file");
    await userEvent.click(screen.getByTestId("tutorial-replace"));
    await userEvent.click(screen.getByTestId("tutorial-replace-confirm"));
    await waitFor(() => expect(screen.getByTestId("tutorial-title")).toHaveTextContent("Tiny course, day 2"));
    expect(screen.getByTestId("tutorial-set-aside")).toHaveTextContent("work-20261207-101500");
    expect(fake.machines.map((m) => [m.name, m.state])).toEqual([["course", "running"]]);
  });
});
