// Words and rules for sites and runs, as the Grid view and the Run on grid dialog show them. The
// words follow the CLI's (crates/sloop-cli/src/grid.rs).

import type { Tone } from "../../components/tone";
import type { MachineState } from "../../ipc/bindings/MachineState";
import type { MachineSummary } from "../../ipc/bindings/MachineSummary";
import type { Queue } from "../../ipc/bindings/Queue";
import type { RunPhase } from "../../ipc/bindings/RunPhase";
import type { RunView } from "../../ipc/bindings/RunView";
import type { SubmitRun } from "../../ipc/bindings/SubmitRun";

/** The runtime environment a site offers when its admins enabled Sloop's VM jobs. */
export const RTE_NAME = "ENV/SLOOP-VM";

/** How often the runs are asked of their sites while the Grid view is on screen. */
export const REFRESH_MS = 15_000;
/** How often while it is not, as long as a run seen unfinished may end. */
export const BACKGROUND_REFRESH_MS = 60_000;

export function phaseLabel(phase: RunPhase): { label: string; tone: Tone } {
  switch (phase) {
    case "submitting":
      return { label: "Submitting", tone: "info" };
    case "queued":
      return { label: "Queued", tone: "info" };
    case "running":
      return { label: "Running", tone: "ok" };
    case "finished":
      return { label: "Finished", tone: "ok" };
    case "failed":
      return { label: "Failed", tone: "missing" };
    case "killed":
      return { label: "Killed", tone: "warning" };
    case "gone":
      return { label: "Gone", tone: "muted" };
  }
}

/** The run is waiting or running at its site: it may still end by itself. */
export function isUnfinished(run: RunView): boolean {
  return run.phase === "queued" || run.phase === "running";
}

/** What the user can ask of a run that takes a while. */
export type RunAction = "cancel" | "clean" | "fetch" | "fetchChanges" | "resume";

/** What the user can do to a run in its phase. */
export interface RunActions {
  /** Its logs can be read at the site. */
  logs: boolean;
  /** It can be stopped. */
  cancel: boolean;
  /** A shell can be opened in its machine at the site (an interactive run, not ended). */
  shell: boolean;
  /** Its outputs can be brought back. */
  fetch: boolean;
  /** …and its disk changes, as a new machine. */
  fetchChanges: boolean;
  /** Its submit did not end: it can be submitted again. */
  resume: boolean;
  /** It can be removed at its site and here. */
  clean: boolean;
}

export function runActions(run: RunView): RunActions {
  const atSite = run.jobId !== null;
  const ended = run.ended !== null;
  const fetch = atSite && ended && run.phase !== "gone";
  return {
    logs: atSite && run.phase !== "gone",
    cancel: atSite && isUnfinished(run),
    shell: atSite && run.submitted !== null && !ended && run.command === null,
    fetch,
    fetchChanges: fetch && run.keepChanges && run.changedMachine === null,
    resume: run.phase === "submitting",
    clean: true,
  };
}

/** What the Clean button asks first. */
export function cleanQuestion(run: RunView): string {
  return [
    `Remove run ${run.id}?`,
    run.ended === null && run.jobId !== null ? "It is stopped at the site first." : null,
    "Its files at the site and its record here are deleted;",
    run.outputs ? "the outputs fetched are kept." : "outputs not fetched are lost.",
  ]
    .filter((part) => part !== null)
    .join(" ");
}

/** Why `name` cannot name a site (the rules of machine names), or null when it can. */
export function siteNameProblem(name: string): string | null {
  if (name === "") return "Give the site a name.";
  if (name.length > 32) return "A site's name has at most 32 characters.";
  if (!/^[a-z0-9-]+$/.test(name)) {
    return "A site's name has only lower-case letters, digits and dashes.";
  }
  if (name.startsWith("-") || name.endsWith("-")) {
    return "A site's name does not start or end with a dash.";
  }
  return null;
}

/** "ok" is fine, "warning" worth a look, anything else (critical, unknown…) a problem. */
export function healthLabel(health: string): { label: string; tone: Tone } {
  const words = health.trim() || "unknown";
  const label = `${words.charAt(0).toUpperCase()}${words.slice(1)}`;
  switch (words.toLowerCase()) {
    case "ok":
      return { label: "OK", tone: "ok" };
    case "warning":
      return { label, tone: "warning" };
    case "unknown":
      return { label, tone: "muted" };
    default:
      return { label, tone: "missing" };
  }
}

/** 3600 → "1 h", 5400 → "1 h 30 min", 600 → "10 min", 90000 → "1 d 1 h". */
export function durationLabel(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  const parts = [days ? `${days} d` : null, hours ? `${hours} h` : null];
  if (days === 0 && rest) parts.push(`${rest} min`);
  return parts.filter((p) => p !== null).join(" ");
}

/** A queue's limits and load in a few words: "12 free · 3 running · 0 waiting". */
export function queueLoad(queue: Queue): string {
  const n = (value: number | null) => (value === null ? "?" : String(value));
  return `${n(queue.freeSlots)} free · ${n(queue.running)} running · ${n(queue.waiting)} waiting`;
}

/**
 * A wall time the user typed, as the CLI reads one: "90m", "2h", "1d", "45s", "2h30m", "1:30"
 * (hours:minutes), or a bare number of hours. Null when it is not one.
 */
export function parseWalltime(text: string): number | null {
  const value = text.trim().toLowerCase().replace(/\s+/g, "");
  if (value === "") return null;
  const clock = /^(\d+):([0-5]\d)$/.exec(value);
  if (clock) return Number(clock[1]) * 3600 + Number(clock[2]) * 60;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 3600);
  const unit: Record<string, number> = { d: 86_400, h: 3600, m: 60, min: 60, s: 1 };
  const parts = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)(?:m|min))?(?:(\d+)s)?$/.exec(value);
  if (!parts || parts.slice(1).every((p) => p === undefined)) return null;
  const [, d, h, m, s] = parts;
  return (
    Number(d ?? 0) * unit.d! +
    Number(h ?? 0) * unit.h! +
    Number(m ?? 0) * unit.m! +
    Number(s ?? 0) * unit.s!
  );
}

/** Run on grid takes only a stopped machine: why not this one, or null when it can go. */
export function runOnGridProblem(state: MachineState): string | null {
  switch (state) {
    case "stopped":
      return null;
    case "running":
    case "paused":
    case "shuttingDown":
      return "Stop the machine first: a machine is sent to the grid as its disk is when it is off.";
    default:
      return "The machine must be stopped to run on the grid.";
  }
}

/** What the Run on grid dialog holds; numbers are null while their field is empty. */
export interface SubmitFields {
  site: string;
  command: string;
  inputs: string[];
  walltime: string;
  cpus: number | null;
  memoryMib: number | null;
  keepChanges: boolean;
  /** An interactive run's SSH relay, USER@HOST[:PORT]; empty for the site's own (or none). */
  relay: string;
}

/** The dialog's fields at first: a wall time of an hour, the machine's own CPUs and memory. */
export function defaultSubmitFields(machine: MachineSummary, site = ""): SubmitFields {
  return {
    site,
    command: "",
    inputs: [],
    walltime: "1h",
    cpus: machine.vcpus,
    memoryMib: machine.memoryMib,
    keepChanges: false,
    relay: "",
  };
}

/** The request the dialog sends, or the first thing wrong with its fields. */
export function submitRequest(
  machine: string,
  fields: SubmitFields,
): { request: SubmitRun } | { problem: string } {
  if (!fields.site) return { problem: "Choose a site." };
  const walltimeSecs = parseWalltime(fields.walltime);
  if (walltimeSecs === null) {
    return { problem: "Give the wall time like 90m, 2h, 1d or 1:30." };
  }
  if (walltimeSecs < 120) {
    return { problem: "A wall time under 2 minutes leaves no time to boot; ask for more." };
  }
  const whole = (value: number | null, min: number, max: number) =>
    value !== null && Number.isInteger(value) && value >= min && value <= max;
  if (!whole(fields.cpus, 1, 256)) return { problem: "CPUs must be a whole number from 1 to 256." };
  if (!whole(fields.memoryMib, 128, 1 << 20)) {
    return { problem: "Memory must be a whole number of MiB from 128 to 1048576." };
  }
  const names = new Set<string>();
  for (const input of fields.inputs) {
    const name = baseName(input);
    if (name === "output" || name === ".sloop") {
      return { problem: `An input is called ${name}, which the run writes itself; rename it.` };
    }
    if (names.has(name)) return { problem: `Two inputs are both called ${name}; rename one.` };
    names.add(name);
  }
  const command = fields.command.trim();
  const relay = fields.relay.trim();
  if (relay !== "" && command !== "") {
    return { problem: "A relay is for interactive runs; clear the command or the relay." };
  }
  if (relay !== "" && !/^[A-Za-z0-9._][A-Za-z0-9._-]*@[A-Za-z0-9.[\]:-]+$/.test(relay)) {
    return { problem: "Give the relay as user@host or user@host:port." };
  }
  return {
    request: {
      machine,
      site: fields.site,
      command: command === "" ? null : command,
      inputs: [...fields.inputs],
      walltimeSecs,
      cpus: fields.cpus,
      memoryMib: fields.memoryMib,
      keepChanges: fields.keepChanges,
      relay: relay === "" ? null : relay,
    },
  };
}

/** The task a submit of `machine` reports under, and the export it starts with. */
export function submitTask(machine: string): string {
  return `submit:${machine}`;
}

export function submitExportTask(machine: string): string {
  return `export:${machine}`;
}

export function fetchTask(id: string): string {
  return `fetch:${id}`;
}

/** The desktop notification for a run that ended while the app watched it. */
export function endedNotification(run: RunView): { title: string; body: string } {
  const where = `Run ${run.id} of ${run.machine} at ${run.site}`;
  switch (run.phase) {
    case "finished":
      return {
        title: "Grid run finished",
        body:
          run.exitCode !== null && run.exitCode !== 0
            ? `${where} finished; its command exited with status ${run.exitCode}. Fetch its outputs in Sloop's Grid view.`
            : `${where} finished. Fetch its outputs in Sloop's Grid view.`,
      };
    case "failed":
      return {
        title: "Grid run failed",
        body: `${where} failed${run.reason ? `: ${run.reason}` : ""}. Its logs are in Sloop's Grid view.`,
      };
    case "killed":
      return { title: "Grid run killed", body: `${where} was stopped at the site.` };
    default:
      return { title: "Grid run ended", body: `${where} is no longer known at the site.` };
  }
}

/** An RFC 3339 time as the user's locale writes it, short; "—" when there is none. */
export function timeLabel(time: string | null): string {
  if (time === null) return "—";
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return time;
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** The last part of a path: what an input is called under /analysis. */
export function baseName(path: string): string {
  return path.replace(/\/+$/, "").split("/").pop() || path;
}
