// Words for catalogs, images and downloads, as the images view shows them.

import type { Tone } from "../../components/tone";
import type { CatalogState } from "../../ipc/bindings/CatalogState";
import type { ImageView } from "../../ipc/bindings/ImageView";
import type { BaseState } from "../../ipc/bindings/BaseState";
import type { LocalState } from "../../ipc/bindings/LocalState";
import type { Progress } from "../../ipc/bindings/Progress";

const UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** Sizes in decimal units, as download managers show them: 22085632 → "22.1 MB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "?";
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  let unit = 0;
  let value = bytes;
  // Move up while the rounded value would read 1000 or more ("1000.0 kB" is "1.0 MB").
  while (unit < UNITS.length - 1 && Number(value.toFixed(value < 100 ? 1 : 0)) >= 1000) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

/** 3100000 → "3.1 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Time left, roughly: "about 6 s left", "about 3 min left", "about 1 h 5 min left". */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `about ${s} s left`;
  const minutes = Math.round(s / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `about ${hours} h left` : `about ${hours} h ${rest} min left`;
}

/** "5.2 MB of 22.1 MB · 4.2 MB/s · about 4 s left", leaving out what is not known yet. */
export function progressText(progress: Progress): string {
  const amount = (n: number) => (progress.unit === "bytes" ? formatBytes(n) : String(n));
  const parts = [
    progress.total === null
      ? `${amount(progress.done)} so far`
      : `${amount(progress.done)} of ${amount(progress.total)}`,
  ];
  if (progress.rate !== null && progress.unit === "bytes") parts.push(formatRate(progress.rate));
  if (progress.etaSeconds !== null) parts.push(formatEta(progress.etaSeconds));
  return parts.join(" · ");
}

/** "Downloading", from the core's "downloading". */
export function stageLabel(stage: string): string {
  return stage ? stage.charAt(0).toUpperCase() + stage.slice(1) : "Working";
}

/** The task a pull of `identifier` reports under, and back. */
export function pullTask(identifier: string): string {
  return `pull:${identifier}`;
}

export function pulledIdentifier(task: string): string | null {
  return task.startsWith("pull:") ? task.slice("pull:".length) : null;
}

/**
 * What names an image to the core. Its identifier; a stored image that no catalog lists and whose
 * provenance is lost has none, and is named by its SHA-512 instead.
 */
export function imageQuery(image: ImageView): string {
  return image.identifier || image.sha512;
}

export function catalogStateLabel(state: CatalogState): { label: string; tone: Tone } {
  switch (state) {
    case "verified":
      return { label: "Verified", tone: "ok" };
    case "expired":
      return { label: "Expired", tone: "warning" };
    case "gone":
      return { label: "No longer published", tone: "warning" };
    case "refused":
      return { label: "Refused", tone: "missing" };
  }
}

/** "Downloaded", "Partly downloaded (5.2 MB of 22.1 MB)", or null when not here at all. */
export function localStateLabel(local: LocalState, size: number): string | null {
  switch (local.kind) {
    case "stored":
      return "Downloaded";
    case "partial":
      return `Partly downloaded (${formatBytes(local.bytes)} of ${formatBytes(size)})`;
    case "absent":
      return null;
  }
}

/**
 * The runnable base made from the certified file: "Ready to run", "Preparing", "Refused",
 * with its tone and, for a ready one, how it was made; null before the file is here.
 */
export function baseStateLabel(
  base: BaseState,
): { label: string; tone: Tone; detail: string | null } | null {
  switch (base.kind) {
    case "ready":
      return { label: "Ready to run", tone: "ok", detail: base.derived };
    case "preparing":
      return { label: "Preparing", tone: "info", detail: null };
    case "unprepared":
      return { label: "Not prepared yet", tone: "muted", detail: null };
    case "refused":
      return { label: "Refused", tone: "missing", detail: base.reason };
    case "absent":
      return null;
  }
}

/** "Linux · Debian 12 · x86_64", leaving out what the list does not say. */
export function platformLabel(image: Pick<ImageView, "os" | "osVersion" | "arch">): string {
  return [image.os, image.osVersion, image.arch].filter((part) => part.trim() !== "").join(" · ");
}

/** "5 Jan 2026", in the user's locale; the text itself when it is not a date. */
export function dateLabel(rfc3339: string): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

/** "5 Jan 2026, 14:03", in the user's locale and time zone. */
export function dateTimeLabel(rfc3339: string): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}
