// What the images view keeps about each image beside what the core reports.

import type { Progress } from "../../ipc/bindings/Progress";

/** A pull the window is following: started here, or heard of through its progress events. */
export interface PullState {
  /** The latest progress event; null until the first one arrives. */
  progress: Progress | null;
  /** Cancel was asked for and the pull has not stopped yet. */
  cancelling: boolean;
}

/** What the last action on an image left to say. */
export type ImageNote =
  | { kind: "paused" }
  | { kind: "error"; title: string; message: string };
