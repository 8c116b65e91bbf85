import { screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { FakeBackend } from "../../ipc/fake";
import { demoSite, demoSiteInfo } from "../../ipc/fake-grid";
import { renderWith } from "../../test-utils";
import SitesPanel from "./SitesPanel.svelte";

/** The card of site `name`, once it is listed. */
async function card(name: string) {
  await screen.findByTestId("sites-list");
  const element = document.querySelector<HTMLElement>(
    `[data-testid="site-card"][data-name="${name}"]`,
  );
  if (!element) throw new Error(`no card for site ${name}`);
  return within(element);
}

async function add(name: string, url: string) {
  await userEvent.type(screen.getByTestId("site-add-name"), name);
  await userEvent.type(screen.getByTestId("site-add-url"), url);
  await userEvent.click(screen.getByTestId("site-add-submit"));
}

describe("Sites", () => {
  it("adds a site with its name and address; the core's endpoint is shown", async () => {
    const backend = new FakeBackend();
    renderWith(SitesPanel, backend);
    expect(await screen.findByTestId("sites-empty")).toHaveTextContent("No grid sites yet");

    await add("test-ce", "https://ce.example.org");
    const site = await card("test-ce");
    expect(site.getByTestId("site-url")).toHaveTextContent("https://ce.example.org/arex");
    expect(screen.queryByTestId("sites-empty")).toBeNull();
    expect(backend.grid.sites.map((s) => s.name)).toEqual(["test-ce"]);
    // The form is empty again, for the next one.
    expect(screen.getByTestId("site-add-name")).toHaveValue("");
    expect(screen.getByTestId("site-add-url")).toHaveValue("");
  });

  it("checks the name first, then shows the core's refusal", async () => {
    const backend = new FakeBackend({ grid: { sites: [demoSite("test-ce")] } });
    renderWith(SitesPanel, backend);
    await card("test-ce");

    await add("My CE", "https://ce.example.org/arex");
    expect(await screen.findByTestId("site-add-error")).toHaveTextContent(
      "only lower-case letters, digits and dashes",
    );

    await userEvent.clear(screen.getByTestId("site-add-name"));
    await userEvent.clear(screen.getByTestId("site-add-url"));
    await add("other", "http://ce.example.org/arex");
    await waitFor(() =>
      expect(screen.getByTestId("site-add-error")).toHaveTextContent(
        "ARC's REST interface is https only",
      ),
    );

    await userEvent.clear(screen.getByTestId("site-add-name"));
    await userEvent.clear(screen.getByTestId("site-add-url"));
    await add("test-ce", "https://ce2.example.org/arex");
    await waitFor(() =>
      expect(screen.getByTestId("site-add-error")).toHaveTextContent(
        "there is a site named test-ce already",
      ),
    );
    expect(backend.grid.sites).toHaveLength(1);
  });

  it("checks a site: health, who it sees, its queues' free slots, VM jobs", async () => {
    const backend = new FakeBackend({ grid: { sites: [demoSite("test-ce")] } });
    renderWith(SitesPanel, backend);
    const site = await card("test-ce");
    expect(site.queryByTestId("site-info")).toBeNull();

    await userEvent.click(site.getByTestId("site-check"));
    await site.findByTestId("site-info");
    expect(backend.grid.infos).toEqual(["test-ce"]);
    expect(site.getByTestId("site-health")).toHaveTextContent("OK");
    expect(site.getByTestId("site-identity")).toHaveTextContent("Jane Doe");
    expect(site.getByTestId("site-identity")).toHaveTextContent("/DC=org/DC=example/CN=Jane Doe");
    expect(site.getByTestId("site-vm-jobs")).toHaveAttribute("data-offers", "true");
    expect(site.getByTestId("site-vm-jobs")).toHaveTextContent("Yes: it offers ENV/SLOOP-VM");
    const queue = within(site.getByTestId("site-queue"));
    expect(queue.getByTestId("site-queue-load")).toHaveTextContent(
      "12 free · 3 running · 0 waiting",
    );
    expect(site.getByTestId("site-queue")).toHaveTextContent("2 d");
    expect(site.getByTestId("site-queue")).toHaveTextContent("8 GiB");
  });

  it("says when a site does not run VM jobs, and when it cannot be asked", async () => {
    const down = demoSite("down");
    const plain = demoSite("plain");
    const backend = new FakeBackend({
      grid: {
        sites: [plain, down],
        siteInfos: {
          plain: { ...demoSiteInfo(plain), offersVmJobs: false, health: "warning" },
        },
        siteErrors: {
          down: {
            code: "site",
            message:
              "site down (https://down.example.org/arex) does not answer: connection refused; check the address or try later",
          },
        },
      },
    });
    renderWith(SitesPanel, backend);

    const first = await card("plain");
    await userEvent.click(first.getByTestId("site-check"));
    expect(await first.findByTestId("site-vm-jobs")).toHaveAttribute("data-offers", "false");
    expect(first.getByTestId("site-vm-jobs")).toHaveTextContent(
      "No: ENV/SLOOP-VM is not enabled there",
    );
    expect(first.getByTestId("site-health")).toHaveTextContent("Warning");

    const second = await card("down");
    await userEvent.click(second.getByTestId("site-check"));
    const error = await second.findByTestId("site-info-error");
    expect(error).toHaveTextContent("Cannot ask down");
    expect(error).toHaveTextContent("does not answer: connection refused; check the address");
    expect(second.queryByTestId("site-info")).toBeNull();
  });

  it("cannot check a site without a grid proxy, and says how to make one", async () => {
    const backend = new FakeBackend({ grid: { sites: [demoSite("test-ce")] } });
    backend.proxy.info = null;
    renderWith(SitesPanel, backend);
    const site = await card("test-ce");
    await userEvent.click(site.getByTestId("site-check"));
    expect(await site.findByTestId("site-info-error")).toHaveTextContent(
      "no grid proxy at /tmp/x509up_u1000; make one with `sloop proxy init`",
    );
  });

  it("removes a site only once the user confirms", async () => {
    const backend = new FakeBackend({ grid: { sites: [demoSite("test-ce"), demoSite("other")] } });
    renderWith(SitesPanel, backend);
    const site = await card("test-ce");

    await userEvent.click(site.getByTestId("site-remove"));
    expect(site.getByTestId("site-remove-question")).toHaveTextContent(
      "Remove site test-ce? Its runs stay listed until you clean them.",
    );
    await userEvent.click(site.getByTestId("site-remove-cancel"));
    expect(backend.grid.sites).toHaveLength(2);

    await userEvent.click(site.getByTestId("site-remove"));
    await userEvent.click(site.getByTestId("site-remove-confirm"));
    await waitFor(() =>
      expect(document.querySelector('[data-testid="site-card"][data-name="test-ce"]')).toBeNull(),
    );
    expect(backend.grid.sites.map((s) => s.name)).toEqual(["other"]);
  });
});
