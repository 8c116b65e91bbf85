// Words for a machine's state, resources and actions, and the create form's rules.

import type { Tone } from "../../components/tone";
import type { ImageView } from "../../ipc/bindings/ImageView";
import type { MachineState } from "../../ipc/bindings/MachineState";

export function stateLabel(state: MachineState): { label: string; tone: Tone } {
  switch (state) {
    case "running":
      return { label: "Running", tone: "ok" };
    case "stopped":
      return { label: "Stopped", tone: "muted" };
    case "paused":
      return { label: "Paused", tone: "warning" };
    case "shuttingDown":
      return { label: "Shutting down", tone: "warning" };
    case "crashed":
      return { label: "Crashed", tone: "missing" };
    case "undefined":
      return { label: "Not in libvirt", tone: "warning" };
    case "unknown":
      return { label: "Unknown", tone: "muted" };
  }
}

/** 512 → "512 MiB", 2048 → "2 GiB", 1536 → "1.5 GiB". */
export function memoryLabel(mib: number): string {
  if (mib < 1024) return `${mib} MiB`;
  const gib = mib / 1024;
  return `${Number.isInteger(gib) ? gib : gib.toFixed(1)} GiB`;
}

export function vcpuLabel(vcpus: number): string {
  return vcpus === 1 ? "1 vCPU" : `${vcpus} vCPUs`;
}

/** What the user can do to a machine's power. */
export type PowerAction = "start" | "stop" | "forceOff" | "restart";

/** Everything the user can ask of a machine that takes a while. */
export type MachineAction = PowerAction | "delete";

/** The power actions that make sense in `state`, in the order the buttons show them. */
export function powerActions(state: MachineState): PowerAction[] {
  switch (state) {
    case "stopped":
    case "undefined":
    case "crashed":
      return ["start"];
    case "running":
      return ["stop", "forceOff", "restart"];
    case "paused":
    case "shuttingDown":
      return ["forceOff"];
    case "unknown":
      return [];
  }
}

/** The words of an action's button: what it does, and what it says while it runs. */
export function actionLabel(action: MachineAction): { label: string; busy: string } {
  switch (action) {
    case "start":
      return { label: "Start", busy: "Starting…" };
    case "stop":
      return { label: "Stop", busy: "Stopping…" };
    case "forceOff":
      return { label: "Force off", busy: "Forcing off…" };
    case "restart":
      return { label: "Restart", busy: "Restarting…" };
    case "delete":
      return { label: "Delete", busy: "Deleting…" };
  }
}

/** The title of what went wrong: "Cannot start analysis". */
export function actionFailure(action: MachineAction, name: string): string {
  const verb = { start: "start", stop: "stop", forceOff: "force off", restart: "restart" };
  return action === "delete" ? `Cannot delete ${name}` : `Cannot ${verb[action]} ${name}`;
}

/** What the delete button asks first: the overlay, the user's changes inside, goes too. */
export function deleteQuestion(name: string, running = false): string {
  return [
    `Delete machine ${name}?`,
    running ? "It is switched off first." : null,
    "Its overlay, with every change you made inside the machine, is deleted too;",
    "the work folder on this computer is kept.",
  ]
    .filter((part) => part !== null)
    .join(" ");
}

/** The tasks a machine's start and create report under, and back. */
export function startTask(name: string): string {
  return `start:${name}`;
}

export function startedMachine(task: string): string | null {
  return task.startsWith("start:") ? task.slice("start:".length) : null;
}

export function createdMachine(task: string): string | null {
  return task.startsWith("create:") ? task.slice("create:".length) : null;
}

/** "Booting…" from the core's "booting"; "Starting…" before the first word. */
export function stageText(stage: string | null | undefined, fallback = "Starting"): string {
  const words = stage?.trim() || fallback;
  return `${words.charAt(0).toUpperCase()}${words.slice(1)}…`;
}

/** Why `name` cannot name a machine (the core's rule), or null when it can. */
export function nameProblem(name: string): string | null {
  if (name === "") return "Give the machine a name.";
  if (name.length > 32) return "A machine's name has at most 32 characters.";
  if (!/^[a-z0-9-]+$/.test(name)) {
    return "A machine's name has only lower-case letters, digits and dashes.";
  }
  if (name.startsWith("-") || name.endsWith("-")) {
    return "A machine's name does not start or end with a dash.";
  }
  return null;
}

/** What the create form holds; numbers are null while their field is empty. */
export interface CreateFields {
  name: string;
  image: string;
  vcpus: number | null;
  memoryMib: number | null;
  diskGib: number | null;
  workDir: string;
}

/** The first thing wrong with the create form, in the core's limits, or null. */
export function createProblem(fields: CreateFields): string | null {
  if (!fields.image) return "Choose an image.";
  const name = nameProblem(fields.name);
  if (name) return name;
  const within = (value: number | null, min: number, max: number) =>
    value !== null && Number.isInteger(value) && value >= min && value <= max;
  if (!within(fields.vcpus, 1, 64)) return "vCPUs must be a whole number from 1 to 64.";
  if (!within(fields.memoryMib, 128, 1024 * 1024)) {
    return "Memory must be a whole number of MiB from 128 to 1048576.";
  }
  if (!within(fields.diskGib, 1, 16 * 1024)) {
    return "Disk must be a whole number of GiB from 1 to 16384.";
  }
  return null;
}

/** The images a machine can be made from: certified, downloaded, and not refused to run. */
export function usableImages(images: ImageView[]): ImageView[] {
  return images.filter(
    (image) =>
      image.certified && image.local.kind === "stored" && image.base.kind !== "refused",
  );
}

/** "Sloop tiny test image (version 1)". */
export function imageOptionLabel(image: ImageView): string {
  return image.version ? `${image.title} (version ${image.version})` : image.title;
}

/** "Session ended (status 0)", or without a status when the shell gave none. */
export function sessionEndedLabel(status: number | null): string {
  return status === null ? "Session ended" : `Session ended (status ${status})`;
}

/**
 * A serial console's bytes as plain text: line ends made "\n", terminal escape sequences and
 * other control characters (but tabs) left out.
 */
export function consoleText(raw: string): string {
  return (
    raw
      .replace(/\r\n?/g, "\n")
      // CSI (colours, cursor moves) and OSC (titles) sequences, then lone escapes.
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-_]?/g, "")
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")
  );
}
