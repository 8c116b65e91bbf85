import { describe, expect, it } from "vitest";
import {
  attachFailure,
  commonName,
  lifetimeSeconds,
  placedLabel,
  secondsUntil,
  timeLeftLabel,
  urgency,
} from "./labels";

describe("proxy labels", () => {
  it("names the person by the DN's last common name", () => {
    expect(commonName("/DC=org/DC=example/CN=Jane Doe")).toBe("Jane Doe");
    expect(
      commonName("/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=123456/CN=Jane Doe"),
    ).toBe("Jane Doe");
    // A slash inside a value does not split it.
    expect(commonName("/DC=org/DC=example/CN=host/ce.example.org")).toBe("host/ce.example.org");
    expect(commonName("/O=Grid/OU=example")).toBe("/O=Grid/OU=example");
  });

  it("says the time left, rounded down", () => {
    expect(timeLeftLabel(11 * 3600 + 59 * 60 + 59)).toBe("11 h 59 min left");
    expect(timeLeftLabel(11 * 3600)).toBe("11 h left");
    expect(timeLeftLabel(3 * 86_400 + 4 * 3600 + 59)).toBe("3 d 4 h left");
    expect(timeLeftLabel(2 * 86_400)).toBe("2 d left");
    expect(timeLeftLabel(42 * 60 + 5)).toBe("42 min left");
    expect(timeLeftLabel(30)).toBe("30 s left");
    expect(timeLeftLabel(0)).toBe("Expired");
    expect(timeLeftLabel(-120)).toBe("Expired");
  });

  it("counts seconds left and the lifetime from the proxy's times", () => {
    const info = { notBefore: "2026-03-02T00:00:00Z", notAfter: "2026-03-02T12:00:00Z" };
    const now = Date.parse("2026-03-02T01:00:00.900Z");
    expect(secondsUntil(info.notAfter, now)).toBe(10 * 3600 + 59 * 60 + 59);
    expect(lifetimeSeconds(info)).toBe(12 * 3600);
  });

  it("warns below the warning time and calls 0 expired", () => {
    expect(urgency(7200, 3600)).toBe("ok");
    expect(urgency(3600, 3600)).toBe("ok");
    expect(urgency(3599, 3600)).toBe("warning");
    expect(urgency(0, 3600)).toBe("expired");
  });

  it("words placements and attach failures", () => {
    expect(placedLabel(1)).toBe("Renewed proxy placed in 1 machine");
    expect(placedLabel(3)).toBe("Renewed proxy placed in 3 machines");
    expect(attachFailure(true, "a")).toBe("Cannot attach the grid proxy to a");
    expect(attachFailure(false, "a")).toBe("Cannot detach the grid proxy from a");
  });
});
