import { describe, expect, it, vi } from "vitest";
import type { MachineSummary } from "../../ipc/bindings/MachineSummary";
import { FakeBackend } from "../../ipc/fake";
import { StubScreen } from "./stub-screen";
import { decodeBase64, type SessionStatus, TerminalSession } from "./terminal";

const running: MachineSummary = {
  name: "analysis",
  state: "running",
  image: "Sloop tiny test image",
  vcpus: 1,
  memoryMib: 512,
  sshPort: 2222,
  workDir: null,
  imageCertified: true,
  proxyAttached: false,
  layout: "overlay",
};

function setup(machine: MachineSummary = running) {
  const backend = new FakeBackend({ machines: [machine] });
  const screen = new StubScreen();
  const statuses: SessionStatus[] = [];
  const session = new TerminalSession(backend, { machine: machine.name }, screen, (s) => statuses.push(s));
  return { backend, screen, statuses, session };
}

describe("decodeBase64", () => {
  it("gives the raw bytes, UTF-8 or not", () => {
    expect(Array.from(decodeBase64("aGk="))).toEqual([104, 105]);
    expect(new TextDecoder().decode(decodeBase64("4pyTIGRvbmUNCg=="))).toBe("✓ done\r\n");
    expect(Array.from(decodeBase64("/wA="))).toEqual([255, 0]);
    expect(decodeBase64("")).toHaveLength(0);
  });
});

describe("TerminalSession", () => {
  it("opens with the screen's size, shows output and sends what is typed", async () => {
    const { backend, screen, statuses, session } = setup();
    screen.current = { cols: 120, rows: 30 };
    await session.open();

    expect(backend.terminalOpens).toEqual([{ target: { machine: "analysis" }, size: { cols: 120, rows: 30 } }]);
    expect(statuses).toEqual([{ kind: "connecting" }, { kind: "open", id: 1 }]);
    await vi.waitFor(() => expect(screen.text).toContain("$ "));

    screen.type("uname -a\r");
    await vi.waitFor(() => expect(screen.text).toContain("Linux fake 6.1.0 x86_64\r\n$ "));
    expect(screen.text).toContain("uname -a");
    expect(backend.terminalWrites).toEqual([{ id: 1, data: "uname -a\r" }]);
  });

  it("sends keystrokes in order, those typed during a call together in the next", async () => {
    const { backend, screen, session } = setup();
    await session.open();
    screen.type("e");
    screen.type("c");
    screen.type("h");
    screen.type("o hi\r");
    await vi.waitFor(() => expect(screen.text).toContain("hi\r\n$ "));
    expect(backend.terminalWrites.map((w) => w.data)).toEqual(["e", "cho hi\r"]);
  });

  it("keeps what is typed before the shell is open and sends it once it is", async () => {
    const { backend, screen, session } = setup();
    const opening = session.open();
    screen.type("uname -s\r");
    expect(backend.terminalWrites).toEqual([]);
    await opening;
    await vi.waitFor(() => expect(backend.terminalWrites).toEqual([{ id: 1, data: "uname -s\r" }]));
  });

  it("sends the latest size once, and none that did not change", async () => {
    const { backend, screen, session } = setup();
    await session.open();
    screen.resizeTo(80, 24);
    screen.resizeTo(100, 40);
    screen.resizeTo(132, 43);
    await vi.waitFor(() =>
      expect(backend.terminalResizes.at(-1)?.size).toEqual({ cols: 132, rows: 43 }),
    );
    expect(backend.terminalResizes.map((r) => r.size)).toEqual([
      { cols: 100, rows: 40 },
      { cols: 132, rows: 43 },
    ]);
  });

  it("says when the shell ended, stops listening and lets the backend forget it", async () => {
    const { backend, screen, statuses, session } = setup();
    await session.open();
    backend.endTerminal(1, 130);
    expect(statuses.at(-1)).toEqual({ kind: "closed", status: 130 });
    expect(screen.listening).toBe(0);
    await vi.waitFor(() => expect(backend.terminalCloses).toEqual([1]));

    screen.type("ls\r");
    await session.close();
    expect(backend.terminalWrites).toEqual([]);
    expect(backend.terminalCloses).toEqual([1]);
  });

  it("closes the shell when asked, even before the backend answered", async () => {
    const { backend, screen, statuses, session } = setup();
    const opening = session.open();
    await session.close();
    await opening;
    expect(backend.terminalCloses).toEqual([1]);
    expect(statuses).toEqual([{ kind: "connecting" }]);
    expect(screen.listening).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(screen.text).toBe("");
  });

  it("reports the core's message when the shell cannot be opened", async () => {
    const { screen, statuses, session } = setup({ ...running, state: "stopped" });
    await session.open();
    expect(statuses.at(-1)).toEqual({
      kind: "failed",
      message: "machine analysis is not running; start it first",
    });
    expect(screen.listening).toBe(0);
  });
});
