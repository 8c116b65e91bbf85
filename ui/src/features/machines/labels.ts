// Words for a machine's state and resources.

import type { Tone } from "../../components/tone";
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
