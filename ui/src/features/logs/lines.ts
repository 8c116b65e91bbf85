// Keeping the log view's lines: history from logRecent, then live lines from events.

import type { LogLine } from "../../ipc/bindings/LogLine";

/** How many lines the view keeps; older ones fall off the top. */
export const MAX_LINES = 1000;

function key(line: LogLine): string {
  return `${line.time}\u0000${line.target}\u0000${line.message}`;
}

/**
 * The history followed by the live lines that arrived while it was being fetched and are not
 * already in it, capped at MAX_LINES.
 */
export function mergeHistory(history: LogLine[], live: LogLine[]): LogLine[] {
  const seen = new Set(history.map(key));
  return cap([...history, ...live.filter((line) => !seen.has(key(line)))]);
}

export function cap(lines: LogLine[]): LogLine[] {
  return lines.length > MAX_LINES ? lines.slice(lines.length - MAX_LINES) : lines;
}

/** "14:03:27", in the user's time zone. */
export function clockTime(rfc3339: string): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleTimeString([], { hour12: false });
}

/** The module that wrote a line, without the core crate's name every core line shares. */
export function shortTarget(target: string): string {
  return target.replace(/^sloop_core::/, "");
}
