import { describe, expect, it } from "vitest";
import { demoRun } from "../../ipc/fake-grid";
import { demoMachine } from "../../test-utils";
import {
  cleanQuestion,
  defaultSubmitFields,
  durationLabel,
  endedNotification,
  healthLabel,
  parseWalltime,
  phaseLabel,
  runActions,
  runOnGridProblem,
  siteNameProblem,
  submitRequest,
} from "./labels";

describe("grid labels", () => {
  it("names each phase in the CLI's words", () => {
    expect(phaseLabel("queued")).toEqual({ label: "Queued", tone: "info" });
    expect(phaseLabel("running")).toEqual({ label: "Running", tone: "ok" });
    expect(phaseLabel("failed")).toEqual({ label: "Failed", tone: "missing" });
    expect(phaseLabel("killed").label).toBe("Killed");
    expect(phaseLabel("gone").label).toBe("Gone");
  });

  it("offers the actions a run's phase allows", () => {
    const only = (actions: ReturnType<typeof runActions>) =>
      Object.entries(actions)
        .filter(([, on]) => on)
        .map(([name]) => name);
    expect(only(runActions(demoRun({ state: "QUEUING" })))).toEqual(["logs", "cancel", "clean"]);
    expect(only(runActions(demoRun({ state: "RUNNING" })))).toEqual(["logs", "cancel", "clean"]);
    expect(only(runActions(demoRun({ state: "FINISHED" })))).toEqual(["logs", "fetch", "clean"]);
    expect(only(runActions(demoRun({ state: "FINISHED", keepChanges: true })))).toEqual([
      "logs",
      "fetch",
      "fetchChanges",
      "clean",
    ]);
    expect(only(runActions(demoRun({ state: "FAILED" })))).toEqual(["logs", "fetch", "clean"]);
    // An interactive run has a shell while it is at the site, up or on its way up.
    expect(only(runActions(demoRun({ state: "RUNNING", command: null })))).toEqual([
      "logs",
      "cancel",
      "shell",
      "clean",
    ]);
    expect(only(runActions(demoRun({ state: "QUEUING", command: null })))).toContain("shell");
    expect(only(runActions(demoRun({ state: "FINISHED", command: null })))).not.toContain("shell");
    expect(only(runActions(demoRun({ state: "GONE" })))).toEqual(["clean"]);
    // A submit that stopped: its record can be submitted again, or removed.
    expect(only(runActions(demoRun({ submitted: null, jobId: null, state: null })))).toEqual([
      "resume",
      "clean",
    ]);
    expect(only(runActions(demoRun({ submitted: null, state: null })))).toEqual([
      "logs",
      "resume",
      "clean",
    ]);
  });

  it("asks before cleaning, saying what is lost", () => {
    expect(cleanQuestion(demoRun({ state: "RUNNING" }))).toBe(
      "Remove run analysis-1a2b3c4d? It is stopped at the site first. Its files at the site and its record here are deleted; outputs not fetched are lost.",
    );
    expect(cleanQuestion(demoRun({ state: "FINISHED", outputs: "/w/runs/x" }))).toContain(
      "the outputs fetched are kept",
    );
  });

  it("reads wall times as the CLI does, and a bare number as hours", () => {
    expect(parseWalltime("1h")).toBe(3600);
    expect(parseWalltime("90m")).toBe(5400);
    expect(parseWalltime("2h30m")).toBe(9000);
    expect(parseWalltime("1d")).toBe(86_400);
    expect(parseWalltime("1:30")).toBe(5400);
    expect(parseWalltime(" 2 ")).toBe(7200);
    expect(parseWalltime("1.5")).toBe(5400);
    expect(parseWalltime("")).toBeNull();
    expect(parseWalltime("soon")).toBeNull();
    expect(parseWalltime("1:75")).toBeNull();
    expect(durationLabel(3600)).toBe("1 h");
    expect(durationLabel(5400)).toBe("1 h 30 min");
    expect(durationLabel(600)).toBe("10 min");
    expect(durationLabel(2 * 86_400)).toBe("2 d");
  });

  it("builds the submit request: defaults that just work, interactive when no command", () => {
    const machine = demoMachine({ vcpus: 2, memoryMib: 2048 });
    const fields = defaultSubmitFields(machine, "test-ce");
    expect(submitRequest("analysis", fields)).toEqual({
      request: {
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
    });
    // An interactive run's relay; refused with a command, or when it is not user@host.
    expect(submitRequest("analysis", { ...fields, relay: " ada@login.example.org:2222 " })).toMatchObject({
      request: { command: null, relay: "ada@login.example.org:2222" },
    });
    expect(submitRequest("analysis", { ...fields, command: "./run.sh", relay: "ada@login" })).toEqual({
      problem: "A relay is for interactive runs; clear the command or the relay.",
    });
    expect(submitRequest("analysis", { ...fields, relay: "login.example.org" })).toEqual({
      problem: "Give the relay as user@host or user@host:port.",
    });
    expect(submitRequest("analysis", { ...fields, command: "  ./run.sh  " })).toMatchObject({
      request: { command: "./run.sh" },
    });
    expect(submitRequest("analysis", { ...fields, command: "   " })).toMatchObject({
      request: { command: null },
    });
  });

  it("finds what is wrong with the dialog before the core does", () => {
    const fields = defaultSubmitFields(demoMachine(), "test-ce");
    const problem = (over: Partial<typeof fields>) => {
      const built = submitRequest("analysis", { ...fields, ...over });
      return "problem" in built ? built.problem : null;
    };
    expect(problem({ site: "" })).toBe("Choose a site.");
    expect(problem({ walltime: "later" })).toContain("like 90m, 2h");
    expect(problem({ walltime: "1m" })).toContain("under 2 minutes");
    expect(problem({ cpus: 0 })).toContain("CPUs");
    expect(problem({ memoryMib: null })).toContain("Memory");
    expect(problem({ inputs: ["/a/data", "/b/data/"] })).toBe(
      "Two inputs are both called data; rename one.",
    );
    expect(problem({ inputs: ["/home/jane/output"] })).toContain("which the run writes itself");
  });

  it("sends only stopped machines, and says why not", () => {
    expect(runOnGridProblem("stopped")).toBeNull();
    expect(runOnGridProblem("running")).toContain("Stop the machine first");
    expect(runOnGridProblem("crashed")).toContain("must be stopped");
  });

  it("names sites by the rules of machine names", () => {
    expect(siteNameProblem("")).toBe("Give the site a name.");
    expect(siteNameProblem("My CE")).toContain("lower-case letters");
    expect(siteNameProblem("-ce")).toContain("dash");
    expect(siteNameProblem("test-ce")).toBeNull();
  });

  it("says how a site is", () => {
    expect(healthLabel("ok")).toEqual({ label: "OK", tone: "ok" });
    expect(healthLabel("warning")).toEqual({ label: "Warning", tone: "warning" });
    expect(healthLabel("critical")).toEqual({ label: "Critical", tone: "missing" });
    expect(healthLabel("")).toEqual({ label: "Unknown", tone: "muted" });
  });

  it("words the notification of a run that ended", () => {
    const finished = demoRun({ state: "FINISHED", exitCode: 0 });
    expect(endedNotification(finished)).toEqual({
      title: "Grid run finished",
      body: "Run analysis-1a2b3c4d of analysis at test-ce finished. Fetch its outputs in Sloop's Grid view.",
    });
    expect(endedNotification({ ...finished, exitCode: 3 }).body).toContain(
      "exited with status 3",
    );
    const failed = demoRun({ state: "FAILED", reason: "the base image's SHA-512 differs" });
    expect(endedNotification(failed)).toEqual({
      title: "Grid run failed",
      body: "Run analysis-1a2b3c4d of analysis at test-ce failed: the base image's SHA-512 differs. Its logs are in Sloop's Grid view.",
    });
  });
});
