import { type Backend, errorMessage } from "./backend";
import type { About } from "./bindings/About";
import type { OpenRequest } from "./bindings/OpenRequest";
import type { OpenedTutorial } from "./bindings/OpenedTutorial";
import type { TutorialView } from "./bindings/TutorialView";
import type { BundleReport } from "./bindings/BundleReport";
import type { Exported } from "./bindings/Exported";
import type { ExportMachine } from "./bindings/ExportMachine";
import type { ImportBundle } from "./bindings/ImportBundle";
import type { Imported } from "./bindings/Imported";
import type { MachineProvenance } from "./bindings/MachineProvenance";
import {
  bundleError,
  bundleManifest,
  bundleReport,
  consentError,
  FAKE_USER,
  type FakeBundle,
  importedProvenance,
  localProvenance,
  provenanceLine,
} from "./fake-bundles";
import { FakeGrid, type FakeGridOptions } from "./fake-grid";
import type { Fetched } from "./bindings/Fetched";
import type { RunLogs } from "./bindings/RunLogs";
import type { RunView } from "./bindings/RunView";
import type { Site } from "./bindings/Site";
import type { SiteInfo } from "./bindings/SiteInfo";
import type { SubmitRun } from "./bindings/SubmitRun";
import type { CatalogImage } from "./bindings/CatalogImage";
import type { CatalogView } from "./bindings/CatalogView";
import type { CreateMachine } from "./bindings/CreateMachine";
import type { Event } from "./bindings/Event";
import type { HostReport } from "./bindings/HostReport";
import type { ImageView } from "./bindings/ImageView";
import type { IpcError } from "./bindings/IpcError";
import type { LocalState } from "./bindings/LocalState";
import type { LogLine } from "./bindings/LogLine";
import type { MachineState } from "./bindings/MachineState";
import type { MachineSummary } from "./bindings/MachineSummary";
import type { Placed } from "./bindings/Placed";
import type { ProxyInfo } from "./bindings/ProxyInfo";
import type { ProxyInit } from "./bindings/ProxyInit";
import type { ProxyStatus } from "./bindings/ProxyStatus";
import type { TerminalEvent } from "./bindings/TerminalEvent";
import type { TerminalSize } from "./bindings/TerminalSize";
import type { TerminalTarget } from "./bindings/TerminalTarget";

export interface FakeOptions {
  report?: HostReport;
  /** What the folder picker answers (null: the user cancelled). */
  pickedFolder?: string | null;
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
  /** How long each step of a start takes (preparing, starting, booting); delayMs when not given. */
  startStepMs?: number;
  /** Makes machineStart (and machineRestart) wait at "booting" until releaseStart. */
  startHold?: boolean;
  /** Makes machineCreate reject with this. */
  createError?: IpcError;
  /** Makes the power actions and machineDelete reject with this. */
  actionError?: IpcError;
  /** Serial console text by machine name; started machines get a boot's worth of lines. */
  consoles?: Record<string, string>;
  /** The grid proxy, the user's credentials and the keyring; demoProxyStatus() when not given. */
  proxy?: ProxyStatus;
  /** The passphrase of the user's key, when it has one; "secret" when not given. */
  keyPassphrase?: string;
  /** What the keyring holds when `proxy.passphraseRemembered`; keyPassphrase when not given. */
  rememberedPassphrase?: string;
  /** Makes proxyStatus reject with this. */
  proxyStatusError?: IpcError;
  /** How long each call takes, to see busy states. */
  delayMs?: number;
  /** Bundle files there are, by path. */
  bundles?: Record<string, FakeBundle>;
  /** How long each step of an export or import takes; delayMs when not given. */
  bundleStepMs?: number;
  /** What the save dialog answers (null: the user cancelled). */
  pickedSaveFile?: string | null;
  /** What the open dialog answers for a bundle (null: the user cancelled). */
  pickedBundle?: string | null;
  /** What the open dialog answers for files (empty: the user cancelled). */
  pickedFiles?: string[];
  /** Grid sites and runs; none when not given. */
  grid?: FakeGridOptions;
  /** Tutorial files there are, by path (or URL): what opening each gives. */
  tutorialFiles?: Record<string, FakeTutorial>;
  /** What the open dialog answers for a tutorial (null: the user cancelled). */
  pickedTutorial?: string | null;
}

/** A tutorial file the fake can open. */
export interface FakeTutorial {
  name: string;
  title: string;
  welcome: string;
  start: string | null;
  trainer: string | null;
}

/** A pull in progress: cancelling it wakes it from its current step. */
interface RunningPull {
  cancelled: boolean;
  wake: () => void;
}

/** The fake network's speed, in bytes per second. */
const FAKE_RATE = 4_200_000;

/** A shell the fake terminal runs: it echoes what is typed and answers a few commands. */
interface FakeTerminal {
  name: string;
  onEvent: (event: TerminalEvent) => void;
  /** The line typed so far. */
  line: string;
}

/** The prompt of the fake shell. */
const PROMPT = "$ ";

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
  createError: IpcError | undefined;
  actionError: IpcError | undefined;
  startStepMs: number;
  startHold: boolean;
  /** Serial console text by machine name. */
  consoles: Map<string, string>;
  /** Every power action and delete, as "start:name", "stop:name" and so on, in order. */
  readonly actions: string[] = [];
  /** The grid proxy's status; its times are made current when it is read. */
  proxy: ProxyStatus;
  proxyStatusError: IpcError | undefined;
  /**
   * Every proxyInit request, in order, without the passphrase: `passphrase` says whether one
   * was typed.
   */
  readonly proxyInits: (Omit<ProxyInit, "passphrase"> & { passphrase: boolean })[] = [];
  /** Every machineProxyAttach and machineProxyDetach, as "attach:name" and "detach:name". */
  readonly proxyActions: string[] = [];
  /** Every terminalOpen, terminalWrite, terminalResize and terminalClose call, in order. */
  readonly terminalOpens: { target: TerminalTarget; size: TerminalSize }[] = [];
  readonly terminalWrites: { id: number; data: string }[] = [];
  readonly terminalResizes: { id: number; size: TerminalSize }[] = [];
  readonly terminalCloses: number[] = [];
  private terminals = new Map<number, FakeTerminal>();
  private lastTerminal = 0;
  private heldStarts: (() => void)[] = [];
  private pickedFolder: string | null;
  private keyPassphrase: string;
  /** The fake keyring's one entry. */
  private remembered: string | null;
  private listeners = new Set<(event: Event) => void>();
  /** Every image any catalog listed, by SHA-512: stored images keep their names. */
  private known = new Map<string, CatalogImage>();
  private running = new Map<string, RunningPull>();
  /** Bundle files, by path. */
  readonly bundles: Map<string, FakeBundle>;
  /** Signers the user has imported from (and the user's own identity). */
  readonly knownSigners = new Set<string>([FAKE_USER]);
  /** Where imported machines came from, by name. */
  private imported = new Map<string, MachineProvenance>();
  /** Every export and import request, in order. */
  readonly exports: ExportMachine[] = [];
  readonly imports: ImportBundle[] = [];
  private bundleStepMs: number;
  private bundleCancels = new Set<string>();
  private pickedSaveFile: string | null;
  private pickedBundle: string | null;
  private pickedFiles: string[];
  /** The grid's sites and runs, and what was asked of them. */
  readonly grid: FakeGrid;
  /** Every desktop notification shown, in order. */
  readonly notifications: { title: string; body: string }[] = [];

  private tutorialFiles: Map<string, FakeTutorial>;
  private pickedTutorial: string | null;
  tutorials: TutorialView[] = [];

  constructor(options: FakeOptions = {}) {
    this.tutorialFiles = new Map(Object.entries(options.tutorialFiles ?? {}));
    this.pickedTutorial = options.pickedTutorial ?? null;
    this.pickedFolder = options.pickedFolder ?? null;
    this.report = options.report ?? demoReport();
    this.machines = structuredClone(options.machines ?? []);
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
    this.createError = options.createError;
    this.actionError = options.actionError;
    this.startStepMs = options.startStepMs ?? this.delayMs;
    this.startHold = options.startHold ?? false;
    this.consoles = new Map(Object.entries(options.consoles ?? {}));
    this.proxy = structuredClone(options.proxy ?? demoProxyStatus());
    this.keyPassphrase = options.keyPassphrase ?? "secret";
    this.remembered = this.proxy.passphraseRemembered
      ? (options.rememberedPassphrase ?? this.keyPassphrase)
      : null;
    this.proxyStatusError = options.proxyStatusError;
    this.bundles = new Map(Object.entries(options.bundles ?? {}));
    this.bundleStepMs = options.bundleStepMs ?? this.delayMs;
    this.pickedSaveFile = options.pickedSaveFile ?? null;
    this.pickedBundle = options.pickedBundle ?? null;
    this.pickedFiles = options.pickedFiles ?? [];
    this.grid = new FakeGrid(
      {
        emit: (event) => this.emit(event),
        delay: () => this.delay(),
        machines: () => this.machines,
        addMachine: (machine) => {
          this.machines.push({ ...machine, sshPort: this.freePort() });
          this.emitMachines();
        },
        proxyIdentity: () => {
          const info = this.proxyNow().info;
          return info && info.secondsLeft > 0 ? info.identity : null;
        },
      },
      options.grid,
    );
  }

  siteList(): Promise<Site[]> {
    return this.grid.siteList();
  }

  siteAdd(name: string, url: string): Promise<Site> {
    return this.grid.siteAdd(name, url);
  }

  siteRemove(name: string): Promise<Site> {
    return this.grid.siteRemove(name);
  }

  siteInfo(name: string): Promise<SiteInfo> {
    return this.grid.siteInfo(name);
  }

  runSubmit(request: SubmitRun): Promise<RunView> {
    return this.grid.runSubmit(request);
  }

  runSubmitCancel(machine: string): Promise<boolean> {
    return this.grid.runSubmitCancel(machine);
  }

  runList(live: boolean): Promise<RunView[]> {
    return this.grid.runList(live);
  }

  runInfo(id: string): Promise<RunView> {
    return this.grid.runInfo(id);
  }

  runLogs(id: string): Promise<RunLogs> {
    return this.grid.runLogs(id);
  }

  runCancel(id: string): Promise<RunView> {
    return this.grid.runCancel(id);
  }

  runClean(id: string): Promise<void> {
    return this.grid.runClean(id);
  }

  runResume(id: string): Promise<RunView> {
    return this.grid.runResume(id);
  }

  runFetch(id: string, to: string | null, keepChanges: boolean): Promise<Fetched> {
    return this.grid.runFetch(id, to, keepChanges);
  }

  runFetchCancel(id: string): Promise<boolean> {
    return this.grid.runFetchCancel(id);
  }

  async pickFiles(_title: string): Promise<string[]> {
    await this.delay();
    return [...this.pickedFiles];
  }

  async notify(title: string, body: string): Promise<void> {
    this.notifications.push({ title, body });
  }

  async machineExportDefault(name: string): Promise<string> {
    await this.delay();
    return `/home/jane/Documents/${name}.sloop`;
  }

  async machineExport(request: ExportMachine): Promise<Exported> {
    this.exports.push(structuredClone(request));
    const task = `export:${request.name}`;
    const fail = (error: IpcError): never => {
      this.emit({ type: "finished", task, error: error.message });
      throw error;
    };
    await this.delay();
    const machine = this.machine(request.name);
    if (this.bundles.has(request.output)) {
      fail(bundleError(`${request.output} exists already; choose another file or remove it first`));
    }
    if (request.signed && this.proxy.info === null) {
      fail(
        bundleError(
          "no grid identity to sign the bundle with; make a proxy with `sloop proxy init`, or export without a signature on purpose with --unsigned",
        ),
      );
    }
    if (machine.state === "running" || machine.state === "paused") {
      if (!request.stop) {
        fail(bundleError(`machine ${machine.name} is running; stop it first or export with --stop`));
      }
      this.stop(machine);
    }
    this.bundleCancels.delete(request.name);
    const stages = ["copying the changes", "hashing", "writing the bundle"];
    for (const [done, stage] of stages.entries()) {
      this.emit(steps(task, stage, done, stages.length));
      await new Promise((resolve) => setTimeout(resolve, this.bundleStepMs));
      if (this.bundleCancels.has(request.name)) {
        fail({ code: "cancelled", message: "cancelled; nothing was kept" });
      }
    }
    const signer = request.signed ? FAKE_USER : null;
    const manifest = bundleManifest(machine, request.note);
    this.bundles.set(request.output, { manifest, signer });
    this.emit({ type: "finished", task, error: null });
    return {
      file: request.output,
      bytes: manifest.overlay.size + 3072,
      manifest,
      signedBy: signer,
      provenance: provenanceLine(manifest, signer),
    };
  }

  async machineExportCancel(name: string): Promise<boolean> {
    this.bundleCancels.add(name);
    return true;
  }

  async bundleInspect(file: string): Promise<BundleReport> {
    await this.delay();
    const bundle = this.bundles.get(file);
    if (!bundle) throw bundleError(`cannot read bundle ${file}: No such file or directory`);
    return bundleReport(file, bundle);
  }

  async machineImport(request: ImportBundle): Promise<Imported> {
    this.imports.push(structuredClone(request));
    await this.delay();
    const bundle = this.bundles.get(request.file);
    if (!bundle) throw bundleError(`cannot read bundle ${request.file}: No such file or directory`);
    const name = request.name?.trim() || bundle.manifest.machine;
    const task = `import:${name}`;
    if (!validMachineName(name)) throw machineError(`"${name}" is not a valid machine name`);
    if (this.machines.some((m) => m.name === name)) {
      throw machineError(`a machine named ${name} exists already; choose another name`);
    }
    if (bundle.signer === null && !request.allowUnsigned) {
      throw consentError(
        `bundle ${request.file} is not signed, so nobody vouches for it; import it only if you trust where it came from: --allow-unsigned`,
      );
    }
    if (bundle.signer !== null && !this.knownSigners.has(bundle.signer) && !request.trustSigner) {
      throw consentError(
        `bundle ${request.file} is signed by ${bundle.signer}, from whom you have not imported before; if you trust them, import with --trust-signer`,
      );
    }
    this.bundleCancels.delete(name);
    const stages = ["copying the changes", "checking", "making keys", "defining it in libvirt"];
    for (const [done, stage] of stages.entries()) {
      this.emit(steps(task, stage, done, stages.length));
      await new Promise((resolve) => setTimeout(resolve, this.bundleStepMs));
      if (this.bundleCancels.has(name)) {
        const error: IpcError = { code: "cancelled", message: "cancelled; nothing was kept" };
        this.emit({ type: "finished", task, error: error.message });
        throw error;
      }
    }
    if (bundle.signer !== null) this.knownSigners.add(bundle.signer);
    const machine: MachineSummary = {
      name,
      state: "stopped",
      image: bundle.manifest.base.title,
      vcpus: bundle.manifest.resources.vcpus,
      memoryMib: bundle.manifest.resources.memoryMib,
      sshPort: this.freePort(),
      workDir: request.workDir?.trim() || null,
      imageCertified: true,
      proxyAttached: false,
      layout: "overlay",
    };
    this.machines.push(machine);
    this.imported.set(name, importedProvenance(name, request.file, bundle));
    this.emit({ type: "finished", task, error: null });
    this.emitMachines();
    return {
      machine: structuredClone(machine),
      provenance: provenanceLine(bundle.manifest, bundle.signer),
      signedBy: bundle.signer,
      pulledBase: false,
    };
  }

  async machineImportCancel(request: ImportBundle): Promise<boolean> {
    const bundle = this.bundles.get(request.file);
    const name = request.name?.trim() || bundle?.manifest.machine;
    if (name) this.bundleCancels.add(name);
    return name !== undefined;
  }

  async machineProvenance(name: string): Promise<MachineProvenance> {
    await this.delay();
    const machine = this.machine(name);
    return structuredClone(this.imported.get(name) ?? localProvenance(machine));
  }

  private dropListeners = new Set<(paths: string[]) => void>();

  onFileDrop(callback: (paths: string[]) => void): () => void {
    this.dropListeners.add(callback);
    return () => this.dropListeners.delete(callback);
  }

  private openListeners = new Set<(requests: OpenRequest[]) => void>();
  private closeListeners = new Set<(running: string[]) => void>();
  /** Every quit call's `stopMachines`, in order. */
  readonly quits: boolean[] = [];

  onOpenRequests(callback: (requests: OpenRequest[]) => void): () => void {
    this.openListeners.add(callback);
    return () => this.openListeners.delete(callback);
  }

  /** As if the desktop asked the app to open these (a double-click, a second launch, a link). */
  requestOpen(requests: OpenRequest[]): void {
    for (const listener of this.openListeners) listener(requests);
  }

  onCloseRequested(callback: (running: string[]) => void): () => void {
    this.closeListeners.add(callback);
    return () => this.closeListeners.delete(callback);
  }

  /** As if the user closed the window: asks about the running machines, if any. */
  requestClose(): boolean {
    const running = this.machines.filter((m) => m.state === "running").map((m) => m.name);
    if (running.length === 0) return false;
    for (const listener of this.closeListeners) listener(running);
    return true;
  }

  async quit(stopMachines: boolean): Promise<void> {
    await this.delay();
    this.quits.push(stopMachines);
    if (stopMachines) {
      for (const m of this.machines) if (m.state === "running") m.state = "stopped";
    }
  }

  async about(): Promise<About> {
    await this.delay();
    return { version: "0.1.0", commit: "0123456789ab" };
  }

  async painted(): Promise<void> {}

  /** As if the user dropped files with these paths on the window. */
  dropFiles(paths: string[]): void {
    for (const listener of this.dropListeners) listener(paths);
  }

  async pickSaveFile(_title: string, _path: string): Promise<string | null> {
    await this.delay();
    return this.pickedSaveFile;
  }

  async tutorialList(): Promise<TutorialView[]> {
    await this.delay();
    return structuredClone(this.tutorials);
  }

  async tutorialOpen(location: string, replace: boolean): Promise<OpenedTutorial> {
    await this.delay();
    const file = this.tutorialFiles.get(location);
    if (!file) {
      throw {
        code: "tutorial",
        message: `cannot read tutorial file ${location}: No such file or directory (os error 2)`,
      } satisfies IpcError;
    }
    const task = `tutorial:${file.name}`;
    let view = this.tutorials.find((t) => t.name === file.name);
    let aside: string | null = null;
    if (view && view.title !== file.title) {
      if (!replace) {
        throw {
          code: "tutorialVersion",
          message: `tutorial ${file.name} is open here already from another version of its file; open it with --replace (Open the new version in the app) to make its machine anew from this file: your work directory is moved aside`,
        } satisfies IpcError;
      }
      this.endTerminals(file.name);
      this.machines = this.machines.filter((m) => m.name !== file.name);
      view.title = file.title;
      view.welcome = file.welcome;
      aside = `${view.workDir}-20261207-101500`;
      view.setAside = [aside, ...view.setAside];
    }
    const resumed = view !== undefined && this.machines.some((m) => m.name === file.name);
    if (!view) {
      view = {
        ...file,
        origin: location,
        workDir: `/home/user/.local/share/sloop/tutorials/${file.name}/work`,
        setAside: [],
      };
      this.tutorials.push(view);
    }
    if (!resumed) this.makeTutorialMachine(file.name, task);
    const machine = await this.start(this.machine(file.name));
    this.emit({ type: "finished", task, error: null });
    return { tutorial: structuredClone(view), machine, resumed, setAside: aside };
  }

  async tutorialReset(name: string): Promise<OpenedTutorial> {
    await this.delay();
    const view = this.tutorials.find((t) => t.name === name);
    if (!view) {
      throw {
        code: "tutorial",
        message: `no tutorial named ${name} here; open its file first (sloop tutorial open FILE)`,
      } satisfies IpcError;
    }
    const task = `tutorial:${name}`;
    this.endTerminals(name);
    this.machines = this.machines.filter((m) => m.name !== name);
    const aside = `${view.workDir}-20261207-101500`;
    view.setAside = [aside, ...view.setAside];
    this.makeTutorialMachine(name, task);
    const machine = await this.start(this.machine(name));
    this.emit({ type: "finished", task, error: null });
    return { tutorial: structuredClone(view), machine, resumed: false, setAside: aside };
  }

  async tutorialCancel(_name: string): Promise<boolean> {
    await this.delay();
    return false;
  }

  async pickTutorial(_title: string): Promise<string | null> {
    await this.delay();
    return this.pickedTutorial;
  }

  /** The tutorial's machine, made stopped, with its work directory. */
  private makeTutorialMachine(name: string, task: string): void {
    this.emit(steps(task, "getting the image", 1, 3));
    const view = this.tutorials.find((t) => t.name === name);
    this.machines.push({
      name,
      state: "stopped",
      image: "Sloop demo (tiny)",
      vcpus: 1,
      memoryMib: 512,
      sshPort: this.freePort(),
      workDir: view?.workDir ?? null,
      imageCertified: true,
      proxyAttached: false,
      layout: "overlay",
    });
    this.emitMachines();
  }

  async pickBundle(_title: string): Promise<string | null> {
    await this.delay();
    return this.pickedBundle;
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

  async machineCreate(request: CreateMachine): Promise<MachineSummary> {
    await this.delay();
    const task = `create:${request.name}`;
    try {
      if (this.createError) throw this.createError;
      if (!validMachineName(request.name)) {
        throw machineError(
          `"${request.name}" is not a valid machine name: use 1 to 32 lower-case letters, digits and dashes, not starting or ending with a dash`,
        );
      }
      if (this.machines.some((m) => m.name === request.name)) {
        throw machineError(`a machine named ${request.name} exists already`);
      }
      if (request.vcpus < 1 || request.vcpus > 64) {
        throw machineError("bad resources: vCPUs must be between 1 and 64");
      }
      if (request.memoryMib < 128 || request.memoryMib > 1024 * 1024) {
        throw machineError("bad resources: memory must be between 128 MiB and 1 TiB");
      }
      if (request.diskGib < 1 || request.diskGib > 16 * 1024) {
        throw machineError("bad resources: disk must be between 1 and 16384 GiB");
      }
      const image = this.find(request.image);
      if (!image.certified) {
        throw machineError(`image ${image.title} is not certified: ${image.problem ?? ""}`);
      }
      if (image.local.kind !== "stored") {
        throw machineError(
          `image ${image.title} is not downloaded; download it first: sloop image pull ${image.identifier}`,
        );
      }
      const workDir = request.workDir?.trim() || null;
      if (workDir !== null && !workDir.startsWith("/")) {
        throw machineError(`work directory ${workDir}: No such file or directory (os error 2)`);
      }
      const stages = ["checking", "making keys", "making the overlay", "writing the seed"];
      for (const [done, stage] of stages.entries()) {
        this.emit(steps(task, stage, done, 5));
      }
      const machine: MachineSummary = {
        name: request.name,
        state: "stopped",
        image: image.title,
        vcpus: request.vcpus,
        memoryMib: request.memoryMib,
        sshPort: this.freePort(),
        workDir,
        imageCertified: true,
        proxyAttached: false,
        layout: "overlay",
      };
      this.machines.push(machine);
      this.emit({ type: "finished", task, error: null });
      this.log("info", `machine created machine=${machine.name} image=${image.title}`);
      this.emitMachines();
      return structuredClone(machine);
    } catch (e) {
      this.emit({ type: "finished", task, error: errorMessage(e) });
      throw e;
    }
  }

  async machineStart(name: string): Promise<MachineSummary> {
    this.actions.push(`start:${name}`);
    await this.delay();
    if (this.actionError) throw this.actionError;
    return this.start(this.machine(name));
  }

  async machineStop(name: string): Promise<MachineSummary> {
    this.actions.push(`stop:${name}`);
    await this.delay();
    if (this.actionError) throw this.actionError;
    return this.stop(this.machine(name));
  }

  async machineForceOff(name: string): Promise<MachineSummary> {
    this.actions.push(`forceOff:${name}`);
    await this.delay();
    if (this.actionError) throw this.actionError;
    return this.stop(this.machine(name));
  }

  async machineRestart(name: string): Promise<MachineSummary> {
    this.actions.push(`restart:${name}`);
    await this.delay();
    if (this.actionError) throw this.actionError;
    const machine = this.machine(name);
    this.stop(machine);
    return this.start(machine);
  }

  async machineDelete(name: string): Promise<void> {
    this.actions.push(`delete:${name}`);
    await this.delay();
    if (this.actionError) throw this.actionError;
    this.machine(name);
    this.endTerminals(name);
    this.machines = this.machines.filter((m) => m.name !== name);
    this.consoles.delete(name);
    this.log("info", `machine deleted machine=${name}`);
    this.emitMachines();
  }

  async machineProxyAttach(name: string): Promise<MachineSummary> {
    this.proxyActions.push(`attach:${name}`);
    await this.delay();
    const machine = this.machine(name);
    // As the core: a broken proxy is refused before anything is recorded.
    const info = this.proxyNow().info;
    if (!info) {
      throw proxyError(`no proxy at ${this.proxy.path}; make one with \`sloop proxy init\``);
    }
    if (info.secondsLeft <= 0) {
      throw proxyError(
        `the proxy at ${this.proxy.path} expired at ${info.notAfter}; renew it with \`sloop proxy init\``,
      );
    }
    if (!machine.proxyAttached) {
      machine.proxyAttached = true;
      this.log("info", `proxy attached machine=${name}`);
      this.emitMachines();
    }
    return structuredClone(machine);
  }

  async machineProxyDetach(name: string): Promise<MachineSummary> {
    this.proxyActions.push(`detach:${name}`);
    await this.delay();
    const machine = this.machine(name);
    if (machine.proxyAttached) {
      machine.proxyAttached = false;
      this.log("info", `proxy detached machine=${name}`);
      this.emitMachines();
    }
    return structuredClone(machine);
  }

  async proxyStatus(): Promise<ProxyStatus> {
    await this.delay();
    if (this.proxyStatusError) throw this.proxyStatusError;
    return this.proxyNow();
  }

  async proxyInit(request: ProxyInit): Promise<ProxyStatus> {
    const { passphrase, ...rest } = request;
    this.proxyInits.push({ ...rest, passphrase: passphrase !== null });
    await this.delay();
    const status = this.proxy;
    const { credentials } = status;
    if (!credentials.found) {
      throw proxyError(
        `no user certificate at ${credentials.certificate} with its key at ${credentials.key}`,
      );
    }
    if (credentials.needsPassphrase) {
      const given = passphrase ?? this.remembered;
      if (given === null) {
        throw passphraseError(`the key ${credentials.key} is protected: give its passphrase`);
      }
      if (given !== this.keyPassphrase) {
        throw passphraseError(`the passphrase does not open the key ${credentials.key}`);
      }
    }
    const vo = request.vo?.trim() || null;
    if (vo !== null && status.vomsTool === null) {
      throw proxyError(
        "VOMS attributes need voms-proxy-init or arcproxy; install voms-clients or nordugrid-arc-client",
      );
    }
    const identity = status.info?.identity ?? DEMO_IDENTITY;
    status.info = demoProxyInfo(new Date(), request.lifetimeHours * 3600, vo, identity);
    status.error = null;
    if (request.remember && passphrase !== null) {
      this.remembered = passphrase;
      status.passphraseRemembered = true;
    }
    this.log("info", `proxy made path=${status.path} hours=${request.lifetimeHours}`);
    // As the core's file watch: the new proxy is announced and placed in attached machines.
    this.emit({ type: "proxy", status: this.proxyNow() });
    const placed: Placed[] = this.machines
      .filter((m) => m.proxyAttached && m.state === "running")
      .map((m) => ({
        machine: m.name,
        path: "/tmp/x509up_u1000",
        notAfter: status.info!.notAfter,
        anchorsSent: false,
      }));
    if (placed.length > 0) this.emit({ type: "proxyPlaced", placed, failed: [] });
    return this.proxyNow();
  }

  async proxyForget(): Promise<boolean> {
    await this.delay();
    const was = this.remembered !== null;
    this.remembered = null;
    this.proxy.passphraseRemembered = false;
    return was;
  }

  /** The proxy's status with its time left counted from now. */
  private proxyNow(): ProxyStatus {
    const status = structuredClone(this.proxy);
    const now = Date.now();
    if (status.info) {
      status.info.secondsLeft = secondsUntil(status.info.notAfter, now);
      for (const ac of status.info.voms) ac.secondsLeft = secondsUntil(ac.notAfter, now);
    }
    return status;
  }

  async pickFolder(_title: string): Promise<string | null> {
    await this.delay();
    return this.pickedFolder;
  }

  async machineConsole(name: string): Promise<string> {
    await this.delay();
    this.machine(name);
    return this.consoles.get(name) ?? "";
  }

  async terminalOpen(
    target: TerminalTarget,
    size: TerminalSize,
    onEvent: (event: TerminalEvent) => void,
  ): Promise<number> {
    this.terminalOpens.push({ target: structuredClone(target), size: { ...size } });
    await this.delay();
    let name: string;
    if ("run" in target) {
      name = this.grid.shellable(target.run).id;
    } else {
      name = target.machine;
      const machine = this.machine(name);
      if (machine.state !== "running") {
        throw machineError(`machine ${name} is not running; start it first`);
      }
    }
    const id = ++this.lastTerminal;
    this.terminals.set(id, { name, onEvent, line: "" });
    // As over a Tauri channel: output arrives on its own, not inside this call.
    setTimeout(() => this.output(id, `Welcome to ${name} (fake shell)\r\n${PROMPT}`), 0);
    return id;
  }

  async terminalWrite(id: number, data: string): Promise<void> {
    this.terminalWrites.push({ id, data });
    const terminal = this.terminals.get(id);
    if (!terminal) return;
    for (const char of data) {
      if (!this.terminals.has(id)) return;
      if (char === "\r" || char === "\n") {
        const line = terminal.line;
        terminal.line = "";
        this.output(id, "\r\n");
        this.run(id, line);
      } else if (char === "\x7f" || char === "\b") {
        if (terminal.line) {
          terminal.line = terminal.line.slice(0, -1);
          this.output(id, "\b \b");
        }
      } else if (char === "\x03") {
        terminal.line = "";
        this.output(id, `^C\r\n${PROMPT}`);
      } else if (char === "\x04" && terminal.line === "") {
        this.endTerminal(id, 0);
      } else if (char >= " ") {
        terminal.line += char;
        this.output(id, char);
      }
    }
  }

  async terminalResize(id: number, size: TerminalSize): Promise<void> {
    this.terminalResizes.push({ id, size: { ...size } });
  }

  async terminalClose(id: number): Promise<void> {
    this.terminalCloses.push(id);
    this.terminals.delete(id);
  }

  /** Ends terminal `id`'s shell as if it exited with `status`. */
  endTerminal(id: number, status: number | null): void {
    const terminal = this.terminals.get(id);
    if (!terminal) return;
    this.terminals.delete(id);
    terminal.onEvent({ type: "closed", status });
  }

  /** Lets the starts held at "booting" (startHold) go on. */
  releaseStart(): void {
    this.startHold = false;
    const held = this.heldStarts;
    this.heldStarts = [];
    for (const wake of held) wake();
  }

  /** Changes a machine's state behind the window's back, as virsh or the guest itself would. */
  setMachineState(name: string, state: MachineState): void {
    this.machine(name).state = state;
    if (state !== "running") this.endTerminals(name);
    this.emitMachines();
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
    return { ...image, local: { kind: "absent" }, base: { kind: "absent" } };
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

  /** Sends the machines' list, as the core does whenever it changes. */
  emitMachines(): void {
    this.emit({ type: "machines", machines: structuredClone(this.machines) });
  }

  private machine(name: string): MachineSummary {
    const machine = this.machines.find((m) => m.name === name);
    if (!machine) throw machineError(`no machine named ${name}`);
    return machine;
  }

  private freePort(): number {
    let port = 2222;
    while (this.machines.some((m) => m.sshPort === port)) port += 1;
    return port;
  }

  private async start(machine: MachineSummary): Promise<MachineSummary> {
    const task = `start:${machine.name}`;
    const progress = (stage: string, done: number) => this.emit(steps(task, stage, done, 3));
    const step = () => new Promise((resolve) => setTimeout(resolve, this.startStepMs));
    if (machine.state !== "running") {
      progress("preparing", 0);
      await step();
      progress("starting", 1);
      await step();
      machine.state = "running";
      this.consoles.set(machine.name, bootConsole(machine));
      this.log("info", `machine started machine=${machine.name} port=${machine.sshPort}`);
      // The core's watch sees libvirt's "running" before SSH answers.
      this.emitMachines();
    }
    progress("booting", 2);
    if (this.startHold) await new Promise<void>((resolve) => this.heldStarts.push(resolve));
    await step();
    progress("booting", 3);
    this.emit({ type: "finished", task, error: null });
    return structuredClone(machine);
  }

  private stop(machine: MachineSummary): MachineSummary {
    if (machine.state !== "stopped" && machine.state !== "undefined") {
      machine.state = "stopped";
      this.endTerminals(machine.name);
      const shutdown = "The system is going down NOW!\r\nreboot: Power down\r\n";
      this.consoles.set(machine.name, `${this.consoles.get(machine.name) ?? ""}${shutdown}`);
      this.log("info", `machine stopped machine=${machine.name}`);
      this.emitMachines();
    }
    return structuredClone(machine);
  }

  /** The shells of machine `name` end, as when it stops. */
  private endTerminals(name: string): void {
    for (const [id, terminal] of this.terminals) {
      if (terminal.name === name) this.endTerminal(id, null);
    }
  }

  private output(id: number, text: string): void {
    this.terminals.get(id)?.onEvent({ type: "data", base64: base64(text) });
  }

  /** What the fake shell answers to `line`: each command of a `;` list in turn. */
  private run(id: number, line: string): void {
    const name = this.terminals.get(id)?.name ?? "fake";
    for (const command of line.split(";").map((c) => c.trim())) {
      if (command === "") continue;
      if (command === "exit") {
        this.endTerminal(id, 0);
        return;
      }
      const [program, ...args] = command.split(/\s+/);
      if (command === "uname -a") this.output(id, "Linux fake 6.1.0 x86_64\r\n");
      else if (command === "uname -s" || command === "uname") this.output(id, "Linux\r\n");
      else if (command === "hostname") this.output(id, `${name}\r\n`);
      else if (program === "echo") this.output(id, `${args.join(" ")}\r\n`);
      else this.output(id, `sh: ${program}: not found\r\n`);
    }
    this.output(id, PROMPT);
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

/** A progress event of work counted in steps. */
function steps(task: string, stage: string, done: number, total: number): Event {
  const rest = { unit: "steps", rate: null, etaSeconds: null } as const;
  return { type: "progress", task, stage, done, total, ...rest };
}

function machineError(message: string): IpcError {
  return { code: "machine", message };
}

/** The core's rule for machine names. */
function validMachineName(name: string): boolean {
  return /^[a-z0-9-]{1,32}$/.test(name) && !name.startsWith("-") && !name.endsWith("-");
}

/** Base64 of `text`'s UTF-8 bytes, as the core sends terminal output. */
function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** What a fake machine's serial console shows after a boot. */
function bootConsole(machine: MachineSummary): string {
  return [
    "[    0.000000] Linux version 6.1.0-fake (Debian 6.1.0) #1 SMP PREEMPT_DYNAMIC",
    `[    0.000000] Memory: ${machine.memoryMib * 1024}K available`,
    "[    1.204113] virtio_blk virtio1: [vda] 41943040 512-byte logical blocks",
    "sloop-init: seed found on /dev/vdb",
    `sloop-init: hostname ${machine.name}`,
    "sloop-init: user sloop (uid 1000) with 1 SSH key",
    machine.workDir ? "sloop-init: bootcmd: work directory mounted at /analysis" : null,
    "Starting dropbear sshd: OK",
    "",
    `Welcome to ${machine.name}`,
    "",
  ]
    .filter((line) => line !== null)
    .join("\r\n");
}

function proxyError(message: string): IpcError {
  return { code: "proxy", message };
}

function passphraseError(message: string): IpcError {
  return { code: "passphrase", message };
}

function secondsUntil(time: string, nowMs: number): number {
  return Math.floor((Date.parse(time) - nowMs) / 1000);
}

/** Whose certificate the fake proxies are made from. */
export const DEMO_IDENTITY = "/DC=org/DC=example/CN=Jane Doe";

/**
 * A proxy as the core reads one: made now for `lifetimeSeconds`, with the VOMS attributes of
 * `vo` when given.
 */
export function demoProxyInfo(
  made: Date,
  lifetimeSeconds: number,
  vo: string | null,
  identity = DEMO_IDENTITY,
): ProxyInfo {
  const notBefore = made;
  const notAfter = new Date(made.getTime() + lifetimeSeconds * 1000);
  const secondsLeft = secondsUntil(notAfter.toISOString(), Date.now());
  const issuerHost = vo ? `voms.${vo}.example.org` : "";
  return {
    path: "/tmp/x509up_u1000",
    kind: "rfc3820",
    policy: "impersonation",
    pathLength: null,
    subject: `${identity}/CN=1794829053`,
    issuer: identity,
    identity,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    secondsLeft,
    keyAlgorithm: "RSA",
    keyBits: 2048,
    signatureAlgorithm: "sha256WithRSAEncryption",
    chainLength: 2,
    chain: { verified: true, reason: null, anchors: "/etc/grid-security/certificates" },
    voms: vo
      ? [
          {
            vo,
            fqans: [`/${vo}/Role=NULL/Capability=NULL`, `/${vo}/lcg1/Role=NULL/Capability=NULL`],
            issuer: `/DC=org/DC=example/OU=computers/CN=${issuerHost}`,
            holder: "/DC=org/DC=example/CN=Example Grid CA",
            uri: `${issuerHost}:15001`,
            notBefore: notBefore.toISOString(),
            notAfter: notAfter.toISOString(),
            secondsLeft,
          },
        ]
      : [],
    vomsError: null,
  };
}

/**
 * A user with a grid certificate whose key needs a passphrase (not remembered), and a 12-hour
 * atlas proxy made an hour ago: 11 h left.
 */
export function demoProxyStatus(now = new Date()): ProxyStatus {
  const made = new Date(now.getTime() - 3600 * 1000);
  return {
    path: "/tmp/x509up_u1000",
    info: demoProxyInfo(made, 12 * 3600, "atlas"),
    error: null,
    warningSeconds: 3600,
    credentials: {
      certificate: "/home/ada/.globus/usercert.pem",
      key: "/home/ada/.globus/userkey.pem",
      found: true,
      needsPassphrase: true,
    },
    vomsTool: "voms-proxy-init",
    passphraseRemembered: false,
    keyring: "Secret Service",
  };
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
    format: image.format,
    size: image.size,
    sha512: image.sha512,
    certified: image.certified,
    problem,
    local,
    base:
      local.kind === "stored"
        ? { kind: "ready", path: `${local.path}`, derived: "as listed (qcow2)" }
        : { kind: "absent" },
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
        url: "https://sloop.invalid/demo/sloop-demo.qcow2",
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
      {
        id: "images",
        title: "Images",
        status: "ok",
        detail: "no images stored yet",
        fix: null,
      },
    ],
  };
}
