/** The colours a Badge comes in. */
export type Tone = "ok" | "warning" | "missing" | "muted" | "info";
