import { render, screen } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import type { ImageView } from "../../ipc/bindings/ImageView";
import ImageRow from "./ImageRow.svelte";

const stored = (over: Partial<ImageView>): ImageView => ({
  catalog: "vo",
  identifier: "id-1",
  title: "CernVM 5",
  version: "5.1",
  os: "Linux",
  osVersion: "AlmaLinux 9",
  arch: "x86_64",
  format: "OVA",
  size: 1_000_000,
  sha512: "ab".repeat(64),
  certified: true,
  problem: null,
  local: { kind: "stored", path: "/store/ab" },
  base: { kind: "unprepared" },
  ...over,
});

function show(image: ImageView) {
  render(ImageRow, {
    props: { image, onpull: () => {}, oncancel: () => {}, onremove: () => {} },
  });
}

describe("ImageRow", () => {
  it("says how the runnable base was made from the certified file", () => {
    show(
      stored({
        base: {
          kind: "ready",
          path: "/bases/ab.qcow2",
          derived: "OVA member cernvm-disk001.vmdk, vmdk → qcow2",
        },
      }),
    );
    expect(screen.getByTestId("image-certified")).toHaveTextContent("Certified");
    expect(screen.getByTestId("image-base-state")).toHaveTextContent("Ready to run");
    expect(screen.getByTestId("image-base-derived")).toHaveTextContent(
      "Runnable base: OVA member cernvm-disk001.vmdk, vmdk → qcow2",
    );
  });

  it("shows a refused image with the reason, and a qcow2 as listed without a note", () => {
    show(
      stored({
        base: { kind: "refused", reason: "it names a backing file (/etc/hostname)" },
      }),
    );
    expect(screen.getByTestId("image-base-state")).toHaveTextContent("Refused");
    expect(screen.getByTestId("image-base-state")).toHaveAttribute("data-tone", "missing");
    expect(screen.getByTestId("image-base-refused")).toHaveTextContent(
      "Not run: it names a backing file (/etc/hostname)",
    );
  });

  it("keeps quiet about a base that is its own certified file", () => {
    show(stored({ base: { kind: "ready", path: "/store/ab", derived: "as listed (qcow2)" } }));
    expect(screen.getByTestId("image-base-state")).toHaveTextContent("Ready to run");
    expect(screen.queryByTestId("image-base-derived")).toBeNull();
    expect(screen.queryByTestId("image-base-refused")).toBeNull();
  });
});
