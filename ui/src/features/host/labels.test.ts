import { describe, expect, it } from "vitest";
import { memoryLabel } from "../machines/labels";
import { accelerationLabel } from "./labels";

describe("labels", () => {
  it("names software emulation plainly", () => {
    expect(accelerationLabel("tcg")).toBe("TCG (software emulation)");
    expect(accelerationLabel("kvm")).toBe("KVM (hardware virtualisation)");
  });

  it("reads memory in the unit people use", () => {
    expect(memoryLabel(512)).toBe("512 MiB");
    expect(memoryLabel(2048)).toBe("2 GiB");
    expect(memoryLabel(1536)).toBe("1.5 GiB");
  });
});
