import { type Backend, errorMessage } from "./backend";
import type { CatalogImage } from "./bindings/CatalogImage";
import type { CatalogView } from "./bindings/CatalogView";
import type { Event } from "./bindings/Event";
import type { HostReport } from "./bindings/HostReport";
import type { ImageView } from "./bindings/ImageView";
import type { IpcError } from "./bindings/IpcError";
import type { LocalState } from "./bindings/LocalState";
import type { LogLine } from "./bindings/LogLine";
import type { MachineSummary } from "./bindings/MachineSummary";

export interface FakeOptions {
  report?: HostReport;
  machines?: MachineSummary[];
  /** Makes machineList reject with this. */
  machinesError?: IpcError;
  logs?: LogLine[];
  /** Subscribed catalogs; the demo catalog when not given. */
  catalogs?: CatalogView[];
  /** Where images' bytes are, by SHA-512; absent when not given. */
  local?: Record<string, LocalState>;
  /** Makes catalogAdd and catalogAddDemo reject with this. */
  catalogAddError?: IpcError;
  /** Makes imagePull reject with this after its first step, keeping the part downloaded. */
  pullError?: IpcError;
  /** How many steps a download takes, each with a progress event. */
  pullSteps?: number;
  /** How long each step of a download takes; delayMs when not given. */
  pullStepMs?: number;
  /** Makes a download stop after this many steps and wait there until imageCancel. */
  pullHoldAfter?: number;
  /** How long each call takes, to see busy states. */
  delayMs?: number;
}

/** A pull in progress: cancelling it wakes it from its current step. */
interface RunningPull {
  cancelled: boolean;
  wake: () => void;
}

/** The fake network's speed, in bytes per second. */
const FAKE_RATE = 4_200_000;

/** An in-memory Backend: for Vitest, and for running the UI in a plain browser. */
export class FakeBackend implements Backend {
  report: HostReport;
  machines: MachineSummary[];
  machinesError: IpcError | undefined;
  logs: LogLine[];
  catalogs: CatalogView[];
  /** Where images' bytes are, by SHA-512 (absent when missing). */
  local: Map<string, LocalState>;
  catalogAddError: IpcError | undefined;
  pullError: IpcError | undefined;
  pullSteps: number;
  pullStepMs: number;
  pullHoldAfter: number | undefined;
  delayMs: number;
  /** The `fresh` argument of every hostCheck call, in order. */
  readonly hostChecks: boolean[] = [];
  /** The query of every imagePull and imageCancel call, in order. */
  readonly pulls: string[] = [];
  readonly cancels: string[] = [];
  private listeners = new Set<(event: Event) => void>();
  /** Every image any catalog listed, by SHA-512: stored images keep their names. */
  private known = new Map<string, CatalogImage>();
  private running = new Map<string, RunningPull>();

  constructor(options: FakeOptions = {}) {
    this.report = options.report ?? demoReport();
    this.machines = options.machines ?? [];
    this.machinesError = options.machinesError;
    this.logs = options.logs ?? [];
    this.catalogs = options.catalogs ?? [demoCatalog()];
    this.local = new Map(Object.entries(options.local ?? {}));
    this.catalogAddError = options.catalogAddError;
    this.pullError = options.pullError;
    this.delayMs = options.delayMs ?? 0;
    this.pullSteps = options.pullSteps ?? 4;
    this.pullStepMs = options.pullStepMs ?? this.delayMs;
    this.pullHoldAfter = options.pullHoldAfter;
  }

  async hostCheck(fresh: boolean): Promise<HostReport> {
    this.hostChecks.push(fresh);
    await this.delay();
    return structuredClone(this.report);
  }

  async machineList(): Promise<MachineSummary[]> {
    await this.delay();
    if (this.machinesError) throw this.machinesError;
    return structuredClone(this.machines);
  }

  async catalogList(): Promise<CatalogView[]> {
    await this.delay();
    return structuredClone(this.catalogs);
  }

  async catalogAdd(source: string, name: string | null): Promise<CatalogView> {
    await this.delay();
    if (this.catalogAddError) throw this.catalogAddError;
    const catalog = demoCatalog();
    catalog.name = name || nameFromSource(source);
    catalog.source = source;
    catalog.title = `Images from ${source}`;
    catalog.images = [];
    return this.subscribe(catalog);
  }

  async catalogAddDemo(): Promise<CatalogView> {
    await this.delay();
    if (this.catalogAddError) throw this.catalogAddError;
    const existing = this.catalogs.find((c) => c.name === "demo");
    if (existing) return structuredClone(existing);
    return this.subscribe(demoCatalog());
  }

  async catalogRefresh(name: string): Promise<CatalogView> {
    await this.delay();
    const catalog = this.catalogs.find((c) => c.name === name);
    if (!catalog) throw catalogError(`no catalog named "${name}"`);
    catalog.checked = new Date().toISOString();
    return structuredClone(catalog);
  }

  async catalogRemove(name: string): Promise<void> {
    await this.delay();
    if (!this.catalogs.some((c) => c.name === name)) {
      throw catalogError(`no catalog named "${name}"`);
    }
    this.catalogs = this.catalogs.filter((c) => c.name !== name);
  }

  async imageList(): Promise<ImageView[]> {
    await this.delay();
    return this.images();
  }

  async imagePull(query: string): Promise<ImageView> {
    this.pulls.push(query);
    await this.delay();
    // As in the core: the task is named after the query, the progress after the identifier.
    const task = `pull:${query}`;
    if (this.running.has(task)) throw { code: "busy", message: `${task} is already running` };
    const run: RunningPull = { cancelled: false, wake: () => {} };
    this.running.set(task, run);
    try {
      const image = this.find(query);
      if (!image.certified) {
        throw imageError(`image ${image.title} is not certified: ${image.problem ?? ""}`);
      }
      if (image.local.kind !== "stored") await this.download(image, run);
      this.emit({ type: "finished", task, error: null });
      return this.find(query);
    } catch (e) {
      this.emit({ type: "finished", task, error: errorMessage(e) });
      throw e;
    } finally {
      this.running.delete(task);
    }
  }

  async imageCancel(query: string): Promise<boolean> {
    this.cancels.push(query);
    const run = this.running.get(`pull:${query}`);
    if (!run) return false;
    run.cancelled = true;
    run.wake();
    return true;
  }

  async imageRemove(query: string): Promise<ImageView> {
    await this.delay();
    const image = this.find(query);
    const machine = this.machines.find((m) => m.image === image.title);
    if (machine) {
      throw imageError(
        `image ${image.title} is used by machine ${machine.name}; delete the machine first`,
      );
    }
    this.local.delete(image.sha512);
    return { ...image, local: { kind: "absent" } };
  }

  async logRecent(limit: number): Promise<LogLine[]> {
    await this.delay();
    return this.logs.slice(-limit);
  }

  onEvent(callback: (event: Event) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** Sends `event` to every listener, as the core would. */
  emit(event: Event): void {
    if (event.type === "log") {
      const { type: _type, ...line } = event;
      this.logs.push(line);
    }
    for (const listener of this.listeners) listener(event);
  }

  /** Logs a line: keeps it for logRecent and sends it to listeners. */
  log(level: LogLine["level"], message: string, target = "sloop_core"): LogLine {
    const line: LogLine = { time: new Date().toISOString(), level, target, message };
    this.emit({ type: "log", ...line });
    return line;
  }

  private delay(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.delayMs));
  }

  private subscribe(catalog: CatalogView): CatalogView {
    if (this.catalogs.some((c) => c.name === catalog.name)) {
      throw catalogError(`a catalog named "${catalog.name}" exists already; choose another name`);
    }
    this.catalogs.push(catalog);
    return structuredClone(catalog);
  }

  /** What image_list answers: every catalog's images, then stored images none lists. */
  private images(): ImageView[] {
    const out: ImageView[] = [];
    for (const catalog of this.catalogs) {
      for (const image of catalog.images) {
        this.known.set(image.sha512, image);
        const problem = image.certified
          ? null
          : (catalog.problem ?? `catalog ${catalog.name} is not verified`);
        out.push(imageView(image, problem, this.localState(image.sha512)));
      }
    }
    for (const [sha512, local] of this.local) {
      const image = this.known.get(sha512);
      if (local.kind !== "stored" || !image || out.some((i) => i.sha512 === sha512)) continue;
      out.push({
        ...imageView(image, "no subscribed catalog lists this image any more", local),
        catalog: null,
        certified: false,
      });
    }
    return out;
  }

  private localState(sha512: string): LocalState {
    return structuredClone(this.local.get(sha512) ?? { kind: "absent" });
  }

  private find(query: string): ImageView {
    const image = this.images().find(
      (i) => i.identifier === query || i.sha512 === query || i.title === query,
    );
    if (!image) throw imageError(`no image matches "${query}"`);
    return image;
  }

  /** Sends the progress of a download in steps, resuming a partial one, until done or cancelled. */
  private async download(image: ImageView, run: RunningPull): Promise<void> {
    const task = `pull:${image.identifier}`;
    const size = image.size;
    let done = image.local.kind === "partial" ? image.local.bytes : 0;
    const stage = done > 0 ? "resuming" : "downloading";
    const step = Math.ceil((size - done) / Math.max(1, this.pullSteps));
    const progress = (rate: number | null) =>
      this.emit({
        type: "progress",
        task,
        stage,
        done,
        total: size,
        unit: "bytes",
        rate,
        etaSeconds: rate ? Math.ceil((size - done) / rate) : null,
      });
    const keep = () => this.local.set(image.sha512, { kind: "partial", bytes: done });

    progress(null);
    for (let i = 0; i < this.pullSteps && done < size; i++) {
      const hold = i === this.pullHoldAfter;
      await new Promise<void>((resolve) => {
        if (run.cancelled) return resolve();
        const timer = hold ? undefined : setTimeout(resolve, this.pullStepMs);
        run.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (run.cancelled) {
        keep();
        throw {
          code: "cancelled",
          message: `pull cancelled; the ${done} bytes downloaded so far are kept and the next pull resumes from there`,
        } satisfies IpcError;
      }
      done = Math.min(size, done + step);
      if (this.pullError) {
        keep();
        throw this.pullError;
      }
      progress(FAKE_RATE);
    }
    this.local.set(image.sha512, {
      kind: "stored",
      path: `/home/ada/.local/share/sloop/images/${image.sha512.slice(0, 32)}.qcow2`,
    });
  }
}

function catalogError(message: string): IpcError {
  return { code: "catalog", message };
}

function imageError(message: string): IpcError {
  return { code: "image", message };
}

/** A name for a catalog from where its list is: the file's or folder's name. */
function nameFromSource(source: string): string {
  const last = source.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? "";
  const name = last
    .replace(/\.image_?list$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return name || "catalog";
}

function imageView(image: CatalogImage, problem: string | null, local: LocalState): ImageView {
  return {
    catalog: image.catalog,
    identifier: image.identifier,
    title: image.title,
    version: image.version,
    os: image.os,
    osVersion: image.osVersion,
    arch: image.arch,
    size: image.size,
    sha512: image.sha512,
    certified: image.certified,
    problem,
    local,
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The offline demo catalog as the core builds it: one tiny image, signed by a demo endorser. */
export function demoCatalog(now = new Date()): CatalogView {
  const created = new Date(now.getTime() - 2 * DAY_MS);
  const expires = new Date(created.getTime() + 365 * DAY_MS);
  const mirror = "/home/ada/.local/share/sloop/demo/mirror";
  return {
    name: "demo",
    source: mirror,
    title: "Sloop demo",
    description:
      "Sloop's offline demo catalog: the project's tiny test image, endorsed by a demo endorser trusted for this catalog only.",
    identifier: "5100b007-de70-4000-8000-000000000001",
    vo: null,
    endorser: {
      dn: "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser",
      ca: "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA",
      email: "demo@sloop.invalid",
      creator: "Sloop",
    },
    created: created.toISOString(),
    expires: expires.toISOString(),
    state: "verified",
    problem: null,
    checked: now.toISOString(),
    images: [
      {
        catalog: "demo",
        identifier: "9c4e1f0a-52b7-4d3e-8f61-0a9b8c7d6e5f",
        title: "Sloop tiny test image",
        description:
          "A tiny Linux (busybox, dropbear SSH) that boots in seconds, even without KVM.",
        version: "1",
        os: "Linux",
        osVersion: "Debian 12 kernel, busybox userland",
        arch: "x86_64",
        format: "QCOW2",
        size: 22_085_632,
        sha512:
          "9c4e1f0a52b7d3e0f61a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f60",
        certified: true,
        location: `${mirror}/sloop-demo.qcow2`,
      },
    ],
    dropped: [],
  };
}

/** A host like a CI container's: libvirt answers, KVM does not run guests, no grid proxy. */
export function demoReport(): HostReport {
  return {
    libvirtUri: "qemu:///system",
    acceleration: "tcg",
    workShare: "9p",
    ready: true,
    checks: [
      {
        id: "libvirt",
        title: "libvirt",
        status: "ok",
        detail: "libvirt 9.0.0 at qemu:///system",
        fix: null,
      },
      {
        id: "emulator",
        title: "QEMU emulator",
        status: "ok",
        detail: "/usr/bin/qemu-system-x86_64",
        fix: null,
      },
      {
        id: "acceleration",
        title: "Acceleration",
        status: "warning",
        detail:
          "KVM is present but a test guest did not run; machines run under TCG (software emulation, slower)",
        fix: "check that your user may use /dev/kvm (sudo adduser $USER kvm) and that the host CPU's virtualisation works",
      },
      {
        id: "diskTool",
        title: "Disk tool (qemu-img)",
        status: "ok",
        detail: "/usr/bin/qemu-img",
        fix: null,
      },
      {
        id: "isoTool",
        title: "Seed tool (ISO 9660)",
        status: "ok",
        detail: "/usr/bin/genisoimage",
        fix: null,
      },
      {
        id: "workShare",
        title: "Work directory sharing",
        status: "ok",
        detail: "9p (QEMU virtio-9p; no virtiofsd on this host)",
        fix: null,
      },
      {
        id: "proxy",
        title: "Grid proxy",
        status: "warning",
        detail:
          "no proxy at /tmp/x509up_u1000; grid services will not be reachable from machines",
        fix: "make one with arcproxy or voms-proxy-init",
      },
      {
        id: "trustAnchors",
        title: "Grid trust anchors",
        status: "warning",
        detail: "no CA certificates (<hash>.0) in /etc/grid-security/certificates",
        fix: "install your grid's IGTF CA bundle there, or set X509_CERT_DIR",
      },
    ],
  };
}
