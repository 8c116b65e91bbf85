import { screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { demoCatalog, FakeBackend } from "../../ipc/fake";
import { renderWith } from "../../test-utils";
import ImagesView from "./ImagesView.svelte";

const demo = demoCatalog();
const demoImage = demo.images[0]!;
const ENDORSER = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser";

async function imageRow() {
  return within(await screen.findByTestId("image-row"));
}

describe("ImagesView", () => {
  it("explains catalogs when there are none and adds the demo one", async () => {
    const backend = new FakeBackend({ catalogs: [] });
    renderWith(ImagesView, backend);

    const empty = await screen.findByTestId("catalogs-empty");
    expect(empty).toHaveTextContent("No catalogs yet");
    expect(empty).toHaveTextContent("signed by an endorser");
    expect(screen.getByLabelText("Image list")).toBeInTheDocument();
    expect(screen.queryByTestId("image-row")).toBeNull();

    await userEvent.click(screen.getByTestId("add-demo-catalog"));

    const card = await screen.findByTestId("catalog-card");
    expect(card).toHaveAttribute("data-catalog", "demo");
    const c = within(card);
    expect(c.getByTestId("catalog-state")).toHaveTextContent("Verified");
    expect(c.getByTestId("catalog-state")).toHaveAttribute("data-tone", "ok");
    expect(c.getByTestId("catalog-endorser")).toHaveTextContent(ENDORSER);
    expect(c.getByTestId("catalog-ca")).toHaveTextContent(
      "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA",
    );
    expect(c.getByTestId("catalog-validity")).toHaveTextContent(/^from .+ until .+$/);
    expect(screen.queryByTestId("catalogs-empty")).toBeNull();

    const row = await screen.findByTestId("image-row");
    expect(row).toHaveAttribute("data-image", demoImage.identifier);
  });

  it("shows a certified image with its facts and no local state", async () => {
    renderWith(ImagesView, new FakeBackend());
    const row = await imageRow();
    expect(row.getByTestId("image-title")).toHaveTextContent("Sloop tiny test image");
    expect(row.getByTestId("image-certified")).toHaveTextContent("Certified");
    expect(row.getByTestId("image-size")).toHaveTextContent("22.1 MB");
    expect(row.getByTestId("image-platform")).toHaveTextContent(
      "Linux · Debian 12 kernel, busybox userland · x86_64",
    );
    expect(row.queryByTestId("image-local-state")).toBeNull();
    expect(row.getByTestId("image-download")).toHaveTextContent("Download");
    expect(row.queryByTestId("image-remove")).toBeNull();
  });

  it("downloads with progress and ends as Downloaded", async () => {
    const backend = new FakeBackend({ pullStepMs: 25 });
    renderWith(ImagesView, backend);
    const row = await imageRow();

    await userEvent.click(row.getByTestId("image-download"));

    const bar = await row.findByTestId("image-progress");
    expect(bar).toHaveAttribute("role", "progressbar");
    await waitFor(() => expect(bar).toHaveAttribute("aria-valuemax", String(demoImage.size)));
    await waitFor(() => expect(Number(bar.getAttribute("aria-valuenow"))).toBeGreaterThan(0));
    expect(row.getByTestId("image-progress-text")).toHaveTextContent(
      /MB of 22\.1 MB · 4\.2 MB\/s · about \d+ s left/,
    );
    expect(row.getByTestId("image-cancel")).toBeEnabled();
    expect(row.queryByTestId("image-download")).toBeNull();

    await waitFor(() =>
      expect(row.getByTestId("image-local-state")).toHaveTextContent("Downloaded"),
    );
    expect(row.queryByTestId("image-progress")).toBeNull();
    expect(row.queryByTestId("image-download")).toBeNull();
    expect(row.getByTestId("image-remove")).toBeInTheDocument();
    expect(screen.queryByRole("alert")).toBeNull();
    expect(backend.pulls).toEqual([demoImage.identifier]);
  });

  it("shows a cancelled download as paused, not as an error, and offers to resume", async () => {
    const backend = new FakeBackend({ pullHoldAfter: 1 });
    renderWith(ImagesView, backend);
    const row = await imageRow();

    await userEvent.click(row.getByTestId("image-download"));
    const bar = await row.findByTestId("image-progress");
    await waitFor(() => expect(Number(bar.getAttribute("aria-valuenow"))).toBeGreaterThan(0));
    await userEvent.click(row.getByTestId("image-cancel"));

    expect(await row.findByTestId("image-note")).toHaveTextContent(
      "Download paused; the part downloaded so far is kept",
    );
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.queryByTestId("image-error")).toBeNull();
    expect(backend.cancels).toEqual([demoImage.identifier]);
    await waitFor(() =>
      expect(row.getByTestId("image-local-state")).toHaveTextContent(
        "Partly downloaded (5.5 MB of 22.1 MB)",
      ),
    );
    expect(row.getByTestId("image-download")).toHaveTextContent("Resume");
  });

  it("resumes a partial download", async () => {
    const backend = new FakeBackend({
      local: { [demoImage.sha512]: { kind: "partial", bytes: 11_000_000 } },
    });
    renderWith(ImagesView, backend);
    const row = await imageRow();
    expect(row.getByTestId("image-local-state")).toHaveTextContent("Partly downloaded");
    await userEvent.click(row.getByTestId("image-download"));
    await waitFor(() =>
      expect(row.getByTestId("image-local-state")).toHaveTextContent("Downloaded"),
    );
  });

  it("shows why a download failed", async () => {
    const backend = new FakeBackend({
      pullError: {
        code: "image",
        message: "the download broke off after 5.5 MB: connection reset by peer",
      },
    });
    renderWith(ImagesView, backend);
    const row = await imageRow();
    await userEvent.click(row.getByTestId("image-download"));
    expect(await row.findByTestId("image-error")).toHaveTextContent("connection reset by peer");
    await waitFor(() => expect(row.getByTestId("image-download")).toHaveTextContent("Resume"));
  });

  it("shows the core's words when it refuses a list", async () => {
    const message =
      "image list from https://images.example.org/atlas.image_list refused: the list expired on 2025-12-31; the publisher has not renewed it";
    const backend = new FakeBackend({
      catalogs: [],
      catalogAddError: { code: "catalog", message },
    });
    renderWith(ImagesView, backend);
    await screen.findByTestId("catalogs-empty");

    await userEvent.type(
      screen.getByLabelText("Image list"),
      "https://images.example.org/atlas.image_list",
    );
    await userEvent.click(screen.getByRole("button", { name: "Add" }));

    expect(await screen.findByTestId("catalog-add-error")).toHaveTextContent(message);
    expect(screen.queryByTestId("catalog-card")).toBeNull();
  });

  it("adds a catalog from its address, with an optional name", async () => {
    const backend = new FakeBackend({ catalogs: [], delayMs: 20 });
    renderWith(ImagesView, backend);
    await screen.findByTestId("catalogs-empty");

    await userEvent.type(screen.getByLabelText("Image list"), "/srv/mirror/lab.image_list");
    await userEvent.type(screen.getByLabelText(/Name/), "lab");
    const add = screen.getByRole("button", { name: "Add" });
    await userEvent.click(add);
    expect(screen.getByTestId("catalog-add")).toBeDisabled();
    expect(screen.getByTestId("catalog-add")).toHaveTextContent("Adding");

    const card = await screen.findByTestId("catalog-card");
    expect(card).toHaveAttribute("data-catalog", "lab");
    expect(within(card).getByTestId("catalog-source")).toHaveTextContent(
      "/srv/mirror/lab.image_list",
    );
  });

  it("shows a catalog that is no longer good, and its images as not certified", async () => {
    const expired = demoCatalog();
    expired.state = "expired";
    expired.problem = "the list expired on 2025-12-31; the publisher has not renewed it";
    expired.vo = "atlas";
    expired.dropped = ["image 'old' has no checksum"];
    expired.images = expired.images.map((i) => ({ ...i, certified: false }));
    renderWith(ImagesView, new FakeBackend({ catalogs: [expired] }));

    const card = within(await screen.findByTestId("catalog-card"));
    expect(card.getByTestId("catalog-state")).toHaveTextContent("Expired");
    expect(card.getByTestId("catalog-state")).toHaveAttribute("data-tone", "warning");
    expect(card.getByTestId("catalog-problem")).toHaveTextContent("the list expired on");
    expect(card.getByTestId("catalog-vo")).toHaveTextContent("atlas");
    expect(card.getByTestId("catalog-dropped")).toHaveTextContent("image 'old' has no checksum");

    const row = await imageRow();
    expect(row.queryByTestId("image-certified")).toBeNull();
    expect(row.getByTestId("image-not-certified")).toHaveTextContent("Not certified");
    expect(row.getByTestId("image-problem")).toHaveTextContent("the list expired on");
    expect(row.queryByTestId("image-download")).toBeNull();
  });

  it("asks before removing a catalog and says downloaded images stay", async () => {
    const backend = new FakeBackend();
    renderWith(ImagesView, backend);
    const card = within(await screen.findByTestId("catalog-card"));

    await userEvent.click(card.getByTestId("catalog-remove"));
    expect(card.getByTestId("catalog-remove-question")).toHaveTextContent(
      "Downloaded images are kept",
    );
    await userEvent.click(card.getByTestId("catalog-remove-cancel"));
    expect(card.getByTestId("catalog-remove")).toHaveFocus();
    expect(backend.catalogs).toHaveLength(1);

    await userEvent.click(card.getByTestId("catalog-remove"));
    await userEvent.click(card.getByTestId("catalog-remove-confirm"));
    expect(await screen.findByTestId("catalogs-empty")).toBeInTheDocument();
    expect(backend.catalogs).toHaveLength(0);
  });

  it("refreshes a catalog", async () => {
    const backend = new FakeBackend();
    backend.catalogs[0]!.checked = null;
    renderWith(ImagesView, backend);
    const card = within(await screen.findByTestId("catalog-card"));
    expect(card.getByTestId("catalog-checked")).toHaveTextContent("Never");
    await userEvent.click(card.getByTestId("catalog-refresh"));
    await waitFor(() => expect(card.getByTestId("catalog-checked")).not.toHaveTextContent("Never"));
  });

  it("asks before removing an image and shows why the core refused", async () => {
    const backend = new FakeBackend({
      local: { [demoImage.sha512]: { kind: "stored", path: "/images/tiny.qcow2" } },
      machines: [
        {
          name: "analysis",
          state: "stopped",
          image: demoImage.title,
          vcpus: 1,
          memoryMib: 512,
          sshPort: 2222,
          workDir: null,
          imageCertified: true,
          proxyAttached: false,
          layout: "overlay",
        },
      ],
    });
    renderWith(ImagesView, backend);
    const row = await imageRow();
    expect(row.getByTestId("image-local-state")).toHaveTextContent("Downloaded");

    await userEvent.click(row.getByTestId("image-remove"));
    await userEvent.click(row.getByTestId("image-remove-confirm"));
    expect(await row.findByTestId("image-error")).toHaveTextContent(
      "is used by machine analysis; delete the machine first",
    );
    expect(row.getByTestId("image-local-state")).toHaveTextContent("Downloaded");

    backend.machines = [];
    await userEvent.click(row.getByTestId("image-remove"));
    await userEvent.click(row.getByTestId("image-remove-confirm"));
    await waitFor(() => expect(row.queryByTestId("image-local-state")).toBeNull());
    expect(row.queryByTestId("image-error")).toBeNull();
    expect(row.getByTestId("image-download")).toHaveTextContent("Download");
  });
});
