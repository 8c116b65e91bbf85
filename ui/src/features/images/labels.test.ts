import { describe, expect, it } from "vitest";
import type { Progress } from "../../ipc/bindings/Progress";
import {
  baseStateLabel,
  catalogStateLabel,
  dateLabel,
  formatBytes,
  formatEta,
  formatRate,
  imageQuery,
  localStateLabel,
  platformLabel,
  progressText,
  pulledIdentifier,
  pullTask,
  stageLabel,
} from "./labels";

describe("formatBytes", () => {
  it("reads sizes in decimal units with one decimal", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1000)).toBe("1.0 kB");
    expect(formatBytes(22_085_632)).toBe("22.1 MB");
    expect(formatBytes(2_500_000_000)).toBe("2.5 GB");
    expect(formatBytes(123_456_789)).toBe("123 MB");
  });

  it("moves up a unit rather than say 1000", () => {
    expect(formatBytes(999_950)).toBe("1.0 MB");
    expect(formatBytes(999_499)).toBe("999 kB");
  });

  it("does not pretend to know a broken size", () => {
    expect(formatBytes(-1)).toBe("?");
    expect(formatBytes(Number.NaN)).toBe("?");
  });

  it("reads rates per second", () => {
    expect(formatRate(4_200_000)).toBe("4.2 MB/s");
  });
});

describe("formatEta", () => {
  it("says roughly how long is left", () => {
    expect(formatEta(0)).toBe("about 0 s left");
    expect(formatEta(5.2)).toBe("about 6 s left");
    expect(formatEta(59)).toBe("about 59 s left");
    expect(formatEta(90)).toBe("about 2 min left");
    expect(formatEta(3600)).toBe("about 1 h left");
    expect(formatEta(3900)).toBe("about 1 h 5 min left");
  });
});

describe("progressText", () => {
  const progress: Progress = {
    task: "pull:x",
    stage: "downloading",
    done: 5_200_000,
    total: 22_085_632,
    unit: "bytes",
    rate: 4_200_000,
    etaSeconds: 5,
  };

  it("says how much, how fast and how long", () => {
    expect(progressText(progress)).toBe("5.2 MB of 22.1 MB · 4.2 MB/s · about 5 s left");
  });

  it("leaves out what is not known yet", () => {
    expect(progressText({ ...progress, rate: null, etaSeconds: null })).toBe("5.2 MB of 22.1 MB");
    expect(progressText({ ...progress, total: null, rate: null, etaSeconds: null })).toBe(
      "5.2 MB so far",
    );
  });

  it("counts steps as numbers", () => {
    expect(
      progressText({ ...progress, unit: "steps", done: 2, total: 5, rate: 1, etaSeconds: null }),
    ).toBe("2 of 5");
  });
});

describe("labels", () => {
  it("names the pull task both ways", () => {
    expect(pullTask("abc")).toBe("pull:abc");
    expect(pulledIdentifier("pull:abc")).toBe("abc");
    expect(pulledIdentifier("start:m1")).toBeNull();
  });

  it("says where an image's bytes are", () => {
    expect(localStateLabel({ kind: "stored", path: "/x" }, 10)).toBe("Downloaded");
    expect(localStateLabel({ kind: "partial", bytes: 5_200_000 }, 22_085_632)).toBe(
      "Partly downloaded (5.2 MB of 22.1 MB)",
    );
    expect(localStateLabel({ kind: "absent" }, 10)).toBeNull();
  });

  it("gives catalog states words and tones", () => {
    expect(catalogStateLabel("verified")).toEqual({ label: "Verified", tone: "ok" });
    expect(catalogStateLabel("expired").tone).toBe("warning");
    expect(catalogStateLabel("gone").tone).toBe("warning");
    expect(catalogStateLabel("refused")).toEqual({ label: "Refused", tone: "missing" });
  });

  it("joins what the list says about the platform", () => {
    expect(platformLabel({ os: "Linux", osVersion: "Debian 12", arch: "x86_64" })).toBe(
      "Linux · Debian 12 · x86_64",
    );
    expect(platformLabel({ os: "", osVersion: "", arch: "x86_64" })).toBe("x86_64");
  });

  it("names an image by identifier, or by checksum when it has none", () => {
    const image = { identifier: "id-1", sha512: "abc" };
    expect(imageQuery(image as never)).toBe("id-1");
    expect(imageQuery({ ...image, identifier: "" } as never)).toBe("abc");
  });

  it("reads dates, and leaves what is not one alone", () => {
    expect(dateLabel("2026-01-05T09:30:00Z")).toMatch(/2026/);
    expect(dateLabel("soon")).toBe("soon");
    expect(stageLabel("downloading")).toBe("Downloading");
  });
});

describe("baseStateLabel", () => {
  it("says whether the stored file has a runnable base, and why not", () => {
    expect(baseStateLabel({ kind: "absent" })).toBeNull();
    expect(
      baseStateLabel({ kind: "ready", path: "/b", derived: "OVA member a.vmdk, vmdk → qcow2" }),
    ).toEqual({ label: "Ready to run", tone: "ok", detail: "OVA member a.vmdk, vmdk → qcow2" });
    expect(baseStateLabel({ kind: "preparing" })?.label).toBe("Preparing");
    expect(baseStateLabel({ kind: "unprepared" })?.tone).toBe("muted");
    expect(baseStateLabel({ kind: "refused", reason: "it names a backing file (/x)" })).toEqual({
      label: "Refused",
      tone: "missing",
      detail: "it names a backing file (/x)",
    });
  });
});
