// Words and numbers for the grid proxy panel: whose proxy, how long it has left, how urgent.

import type { ProxyInfo } from "../../ipc/bindings/ProxyInfo";

/**
 * The last common name of a oneline DN, which grid certificates put the person's name in:
 * "/DC=org/DC=example/CN=Jane Doe" → "Jane Doe". CERN-style DNs carry several CNs (login, number,
 * name); the last is the name. The whole DN when it has no CN.
 */
export function commonName(dn: string): string {
  // Split before each "/attr=", not at every slash: values such as "host/example.org" keep theirs.
  const parts = dn.split(/\/(?=[A-Za-z][A-Za-z0-9.]*=)/).filter((p) => p !== "");
  for (let i = parts.length - 1; i >= 0; i--) {
    const match = /^CN=(.*)$/i.exec(parts[i]!);
    if (match && match[1]!.trim()) return match[1]!.trim();
  }
  return dn;
}

/** Seconds from `nowMs` until `notAfter` (RFC 3339), floored; negative once it has passed. */
export function secondsUntil(notAfter: string, nowMs: number): number {
  return Math.floor((Date.parse(notAfter) - nowMs) / 1000);
}

/** The proxy's whole lifetime in seconds (at least 1, so that it can divide). */
export function lifetimeSeconds(info: Pick<ProxyInfo, "notBefore" | "notAfter">): number {
  const span = (Date.parse(info.notAfter) - Date.parse(info.notBefore)) / 1000;
  return Math.max(1, Math.round(span));
}

/**
 * "11 h 59 min left", "3 d 4 h left", "42 min left", "30 s left"; "Expired" at 0 and below.
 * Rounded down: the panel never promises more time than there is.
 */
export function timeLeftLabel(secondsLeft: number): string {
  if (secondsLeft <= 0) return "Expired";
  const days = Math.floor(secondsLeft / 86_400);
  const hours = Math.floor((secondsLeft % 86_400) / 3600);
  const minutes = Math.floor((secondsLeft % 3600) / 60);
  if (days > 0) return hours > 0 ? `${days} d ${hours} h left` : `${days} d left`;
  if (hours > 0) return minutes > 0 ? `${hours} h ${minutes} min left` : `${hours} h left`;
  if (minutes > 0) return `${minutes} min left`;
  return `${secondsLeft} s left`;
}

/** How urgent renewing is: the panel's colours follow it. */
export type Urgency = "ok" | "warning" | "expired";

export function urgency(secondsLeft: number, warningSeconds: number): Urgency {
  if (secondsLeft <= 0) return "expired";
  if (secondsLeft < warningSeconds) return "warning";
  return "ok";
}

/** The lifetimes the Renew form offers, in hours; the first is the default. */
export const LIFETIMES = [12, 24, 48, 96] as const;

/** "Renewed proxy placed in 2 machines". */
export function placedLabel(count: number): string {
  return `Renewed proxy placed in ${count} ${count === 1 ? "machine" : "machines"}`;
}

/** The title of a failed attach or detach on a machine's card. */
export function attachFailure(attach: boolean, name: string): string {
  return attach
    ? `Cannot attach the grid proxy to ${name}`
    : `Cannot detach the grid proxy from ${name}`;
}
