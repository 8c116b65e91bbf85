// What the window can ask of Sloop, and hear from it. The Tauri implementation talks to the Rust
// shell; the fake one serves Vitest and running the UI in a plain browser (`npm run dev`).

import { getContext, setContext } from "svelte";
import type { Event } from "./bindings/Event";
import type { HostReport } from "./bindings/HostReport";
import type { IpcError } from "./bindings/IpcError";
import type { LogLine } from "./bindings/LogLine";
import type { MachineSummary } from "./bindings/MachineSummary";

export interface Backend {
  /** Runs the host check; `fresh` boots the acceleration test guest again. */
  hostCheck(fresh: boolean): Promise<HostReport>;
  /** Every machine with the state libvirt reports. */
  machineList(): Promise<MachineSummary[]>;
  /** The latest `limit` log lines, oldest first. */
  logRecent(limit: number): Promise<LogLine[]>;
  /** Calls `callback` with every event the core sends; returns the unsubscribe function. */
  onEvent(callback: (event: Event) => void): () => void;
}

const KEY = Symbol("backend");

export function setBackend(backend: Backend): void {
  setContext(KEY, backend);
}

export function getBackend(): Backend {
  const backend = getContext<Backend | undefined>(KEY);
  if (!backend) throw new Error("no Backend in context: call setBackend in the root component");
  return backend;
}

/** The key used for the backend in Svelte's context, for tests that mount one component. */
export const backendContextKey = KEY;

function isIpcError(error: unknown): error is IpcError {
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    "message" in error &&
    typeof (error as { message: unknown }).message === "string"
  );
}

/** One line for whatever a command rejected with. */
export function errorMessage(error: unknown): string {
  if (isIpcError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
