import { describe, expect, it } from "vitest";
import type { ImageView } from "../../ipc/bindings/ImageView";
import {
  actionFailure,
  actionLabel,
  consoleText,
  createdMachine,
  createProblem,
  deleteQuestion,
  imageOptionLabel,
  memoryLabel,
  nameProblem,
  powerActions,
  sessionEndedLabel,
  stageText,
  startedMachine,
  startTask,
  stateLabel,
  usableImages,
  vcpuLabel,
} from "./labels";

describe("states and resources", () => {
  it("gives every state words and a tone", () => {
    expect(stateLabel("running")).toEqual({ label: "Running", tone: "ok" });
    expect(stateLabel("stopped")).toEqual({ label: "Stopped", tone: "muted" });
    expect(stateLabel("crashed").tone).toBe("missing");
    expect(stateLabel("undefined").label).toBe("Not in libvirt");
  });

  it("reads memory and vCPUs", () => {
    expect(memoryLabel(512)).toBe("512 MiB");
    expect(memoryLabel(2048)).toBe("2 GiB");
    expect(memoryLabel(1536)).toBe("1.5 GiB");
    expect(vcpuLabel(1)).toBe("1 vCPU");
    expect(vcpuLabel(4)).toBe("4 vCPUs");
  });
});

describe("actions", () => {
  it("offers what the state allows", () => {
    expect(powerActions("stopped")).toEqual(["start"]);
    expect(powerActions("undefined")).toEqual(["start"]);
    expect(powerActions("crashed")).toEqual(["start"]);
    expect(powerActions("running")).toEqual(["stop", "forceOff", "restart"]);
    expect(powerActions("shuttingDown")).toEqual(["forceOff"]);
    expect(powerActions("paused")).toEqual(["forceOff"]);
    expect(powerActions("unknown")).toEqual([]);
  });

  it("names buttons, their busy states and their failures", () => {
    expect(actionLabel("forceOff")).toEqual({ label: "Force off", busy: "Forcing off…" });
    expect(actionLabel("start").busy).toBe("Starting…");
    expect(actionFailure("forceOff", "analysis")).toBe("Cannot force off analysis");
    expect(actionFailure("delete", "analysis")).toBe("Cannot delete analysis");
  });

  it("says the overlay goes with the machine, and that a running one is switched off", () => {
    expect(deleteQuestion("analysis")).toBe(
      "Delete machine analysis? Its overlay, with every change you made inside the machine, is " +
        "deleted too; the work folder on this computer is kept.",
    );
    expect(deleteQuestion("analysis", true)).toMatch(
      /^Delete machine analysis\? It is switched off first\. Its overlay/,
    );
  });

  it("follows starts and creates by their tasks", () => {
    expect(startTask("analysis")).toBe("start:analysis");
    expect(startedMachine("start:analysis")).toBe("analysis");
    expect(startedMachine("pull:abc")).toBeNull();
    expect(createdMachine("create:analysis")).toBe("analysis");
    expect(createdMachine("start:analysis")).toBeNull();
  });

  it("turns stages into words", () => {
    expect(stageText("booting")).toBe("Booting…");
    expect(stageText("making the overlay")).toBe("Making the overlay…");
    expect(stageText(null)).toBe("Starting…");
    expect(stageText("", "restarting")).toBe("Restarting…");
  });

  it("says how a terminal session ended", () => {
    expect(sessionEndedLabel(0)).toBe("Session ended (status 0)");
    expect(sessionEndedLabel(130)).toBe("Session ended (status 130)");
    expect(sessionEndedLabel(null)).toBe("Session ended");
  });
});

describe("the create form", () => {
  const fields = {
    name: "analysis-2",
    image: "id-1",
    vcpus: 2,
    memoryMib: 2048,
    diskGib: 20,
    workDir: "",
  };

  it("takes names as the core does", () => {
    expect(nameProblem("e2e")).toBeNull();
    expect(nameProblem("higgs-2026")).toBeNull();
    expect(nameProblem("a".repeat(32))).toBeNull();
    expect(nameProblem("")).toMatch(/Give the machine a name/);
    expect(nameProblem("a".repeat(33))).toMatch(/at most 32/);
    expect(nameProblem("Analysis")).toMatch(/lower-case letters, digits and dashes/);
    expect(nameProblem("my machine")).toMatch(/lower-case letters/);
    expect(nameProblem("-a")).toMatch(/dash/);
    expect(nameProblem("a-")).toMatch(/dash/);
  });

  it("checks resources within the core's limits", () => {
    expect(createProblem(fields)).toBeNull();
    expect(createProblem({ ...fields, vcpus: 1, memoryMib: 256, diskGib: 1 })).toBeNull();
    expect(createProblem({ ...fields, image: "" })).toBe("Choose an image.");
    expect(createProblem({ ...fields, name: "A" })).toMatch(/lower-case/);
    expect(createProblem({ ...fields, vcpus: null })).toMatch(/vCPUs/);
    expect(createProblem({ ...fields, vcpus: 65 })).toMatch(/vCPUs/);
    expect(createProblem({ ...fields, vcpus: 1.5 })).toMatch(/vCPUs/);
    expect(createProblem({ ...fields, memoryMib: 64 })).toMatch(/Memory/);
    expect(createProblem({ ...fields, diskGib: 0 })).toMatch(/Disk/);
  });

  const image = (over: Partial<ImageView>): ImageView => ({
    catalog: "demo",
    identifier: "id-1",
    title: "Sloop tiny test image",
    version: "1",
    os: "Linux",
    osVersion: "",
    arch: "x86_64",
    format: "QCOW2",
    size: 1,
    sha512: "abc",
    certified: true,
    problem: null,
    local: { kind: "stored", path: "/x" },
    base: { kind: "ready", path: "/x", derived: "as listed (qcow2)" },
    ...over,
  });

  it("offers only certified, downloaded images that are not refused", () => {
    const stored = image({});
    const partial = image({ identifier: "id-2", local: { kind: "partial", bytes: 1 } });
    const uncertified = image({ identifier: "id-3", certified: false });
    const refused = image({
      identifier: "id-4",
      base: { kind: "refused", reason: "it names a backing file (/etc/hostname)" },
    });
    expect(usableImages([stored, partial, uncertified, refused])).toEqual([stored]);
    expect(imageOptionLabel(stored)).toBe("Sloop tiny test image (version 1)");
    expect(imageOptionLabel(image({ version: "" }))).toBe("Sloop tiny test image");
  });
});

describe("consoleText", () => {
  it("makes serial line ends plain and leaves out escape sequences", () => {
    expect(consoleText("one\r\ntwo\rthree\n")).toBe("one\ntwo\nthree\n");
    expect(consoleText("\x1b[1;32mOK\x1b[0m done\x1b]0;title\x07!")).toBe("OK done!");
    expect(consoleText("tab\there\x00\x07")).toBe("tab\there");
    expect(consoleText("sloop-init: ✓ seed")).toBe("sloop-init: ✓ seed");
  });
});
