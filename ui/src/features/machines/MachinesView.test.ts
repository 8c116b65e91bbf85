import { screen, within } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import { FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import MachinesView from "./MachinesView.svelte";

describe("MachinesView", () => {
  it("shows a friendly empty state and no buttons that do nothing", async () => {
    renderWith(MachinesView, new FakeBackend());
    const empty = await screen.findByTestId("machines-empty");
    expect(empty).toHaveTextContent("No machines yet");
    expect(within(empty).queryByRole("button")).toBeNull();
  });

  it("shows a card per machine", async () => {
    const backend = new FakeBackend({
      machines: [
        {
          name: "analysis",
          state: "running",
          image: "Debian 12 analysis base",
          vcpus: 2,
          memoryMib: 2048,
          sshPort: 2222,
          workDir: "/home/ada/work",
          imageCertified: true,
        },
        {
          name: "spare",
          state: "stopped",
          image: "Sloop test image",
          vcpus: 1,
          memoryMib: 512,
          sshPort: 2223,
          workDir: null,
          imageCertified: false,
        },
      ],
    });
    renderWith(MachinesView, backend);

    const cards = await screen.findAllByTestId("machine-card");
    expect(cards).toHaveLength(2);
    const first = within(cards[0]!);
    expect(first.getByTestId("machine-name")).toHaveTextContent("analysis");
    expect(first.getByTestId("machine-state")).toHaveTextContent("Running");
    expect(first.getByTestId("machine-image")).toHaveTextContent("Debian 12 analysis base");
    expect(first.getByTestId("machine-resources")).toHaveTextContent("2 vCPUs · 2 GiB memory");
    expect(first.getByTestId("machine-ssh")).toHaveTextContent("127.0.0.1:2222");
    expect(within(cards[1]!).getByTestId("machine-resources")).toHaveTextContent(
      "1 vCPU · 512 MiB memory",
    );
    expect(first.queryByTestId("machine-image-uncertified")).toBeNull();
    expect(within(cards[1]!).getByTestId("machine-image-uncertified")).toHaveTextContent(
      "No longer certified",
    );
    expect(screen.queryByTestId("machines-empty")).toBeNull();
  });

  it("shows the core's error message", async () => {
    const backend = new FakeBackend({
      machinesError: {
        code: "libvirt",
        message: "libvirt at qemu:///system does not answer; start it: sudo libvirtd -d",
      },
    });
    renderWith(MachinesView, backend);
    const error = await screen.findByTestId("machines-error");
    expect(error).toHaveTextContent("does not answer; start it");
  });
});
