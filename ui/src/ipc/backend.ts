// What the window can ask of Sloop, and hear from it. The Tauri implementation talks to the Rust
// shell; the fake one serves Vitest and running the UI in a plain browser (`npm run dev`).

import { getContext, setContext } from "svelte";
import type { About } from "./bindings/About";
import type { OpenRequest } from "./bindings/OpenRequest";
import type { BundleReport } from "./bindings/BundleReport";
import type { CatalogView } from "./bindings/CatalogView";
import type { CreateMachine } from "./bindings/CreateMachine";
import type { Event } from "./bindings/Event";
import type { Exported } from "./bindings/Exported";
import type { Fetched } from "./bindings/Fetched";
import type { ExportMachine } from "./bindings/ExportMachine";
import type { HostReport } from "./bindings/HostReport";
import type { ImageView } from "./bindings/ImageView";
import type { ImportBundle } from "./bindings/ImportBundle";
import type { Imported } from "./bindings/Imported";
import type { IpcError } from "./bindings/IpcError";
import type { LogLine } from "./bindings/LogLine";
import type { MachineProvenance } from "./bindings/MachineProvenance";
import type { MachineSummary } from "./bindings/MachineSummary";
import type { ProxyInit } from "./bindings/ProxyInit";
import type { ProxyStatus } from "./bindings/ProxyStatus";
import type { RunLogs } from "./bindings/RunLogs";
import type { RunView } from "./bindings/RunView";
import type { Site } from "./bindings/Site";
import type { SiteInfo } from "./bindings/SiteInfo";
import type { SubmitRun } from "./bindings/SubmitRun";
import type { TerminalEvent } from "./bindings/TerminalEvent";
import type { TerminalSize } from "./bindings/TerminalSize";
import type { TerminalTarget } from "./bindings/TerminalTarget";
import type { OpenedTutorial } from "./bindings/OpenedTutorial";
import type { TutorialView } from "./bindings/TutorialView";

export interface Backend {
  /** Runs the host check; `fresh` boots the acceleration test guest again. */
  hostCheck(fresh: boolean): Promise<HostReport>;
  /** Every subscribed catalog, each verified again now. */
  catalogList(): Promise<CatalogView[]>;
  /** Subscribes to the image list at `source` (URL, file or mirror folder); `name` is optional. */
  catalogAdd(source: string, name: string | null): Promise<CatalogView>;
  /** Subscribes to the offline demo catalog, building it first when needed. */
  catalogAddDemo(): Promise<CatalogView>;
  /** Fetches a catalog's list again. */
  catalogRefresh(name: string): Promise<CatalogView>;
  /** Forgets a catalog; downloaded images stay. */
  catalogRemove(name: string): Promise<void>;
  /** Every catalog image with its local state, then stored images no catalog lists. */
  imageList(): Promise<ImageView[]>;
  /**
   * Downloads and verifies an image (resuming a partial download); resolves once it is stored.
   * Meanwhile `progress` events arrive under the task `pull:<identifier>`, then a `finished`
   * one. Rejects with code `cancelled` when imageCancel stopped it.
   */
  imagePull(query: string): Promise<ImageView>;
  /** Stops the pull of `query`, keeping what it downloaded; false when none was running. */
  imageCancel(query: string): Promise<boolean>;
  /** Deletes an image's file (refused while a machine uses it). */
  imageRemove(query: string): Promise<ImageView>;
  /** Every machine with the state libvirt reports. */
  machineList(): Promise<MachineSummary[]>;
  /**
   * Makes a machine from a certified, downloaded image; it is left stopped. Progress events
   * arrive under the task `create:<name>`, then a `finished` one.
   */
  machineCreate(request: CreateMachine): Promise<MachineSummary>;
  /**
   * Starts a machine; resolves once its SSH server answers (15–60 s under software emulation).
   * Meanwhile `progress` events arrive under the task `start:<name>` ("starting", "booting"),
   * then a `finished` one.
   */
  machineStart(name: string): Promise<MachineSummary>;
  /** Asks the machine to shut down; the core forces it off after a minute. */
  machineStop(name: string): Promise<MachineSummary>;
  /** Stops the machine at once, like pulling the power cord. */
  machineForceOff(name: string): Promise<MachineSummary>;
  /** Stops the machine, then starts it again (with `start:<name>` progress). */
  machineRestart(name: string): Promise<MachineSummary>;
  /** Deletes the machine and its overlay: every change made inside it. The work folder stays. */
  machineDelete(name: string): Promise<void>;
  /** The end of the machine's serial console log (its current or last boot). */
  machineConsole(name: string): Promise<string>;
  /** Where an export of machine `name` goes unless the user picks another file. */
  machineExportDefault(name: string): Promise<string>;
  /**
   * Writes a stopped machine's changes into a bundle (stopping it first when `stop`), signed
   * with the user's grid identity unless `signed` is false. Progress events arrive under the task
   * `export:<name>`, then a `finished` one. Rejects with code `cancelled` after
   * machineExportCancel; nothing is kept then.
   */
  machineExport(request: ExportMachine): Promise<Exported>;
  /** Stops the export of machine `name`; false when none was running. */
  machineExportCancel(name: string): Promise<boolean>;
  /** What a bundle file is, who signed it, and whether each of its checks holds. */
  bundleInspect(file: string): Promise<BundleReport>;
  /**
   * Makes a new machine from a bundle (pulling its base when needed; progress under
   * `import:<name>`). Rejects with code `bundleConsent` when the user must agree first (an
   * unsigned bundle, or a signer not imported from before): ask, then call again with
   * `allowUnsigned` or `trustSigner`.
   */
  machineImport(request: ImportBundle): Promise<Imported>;
  /** Stops an import; nothing is kept. */
  machineImportCancel(request: ImportBundle): Promise<boolean>;
  /** Where machine `name` comes from: its certified base and, when imported, who changed it. */
  machineProvenance(name: string): Promise<MachineProvenance>;
  /** The grid sites (ARC CEs) the user added, in the order added. */
  siteList(): Promise<Site[]>;
  /** Adds a site: its name (the rules of machine names) and its REST endpoint (https). */
  siteAdd(name: string, url: string): Promise<Site>;
  /** Removes a site from the list; its runs stay until cleaned. */
  siteRemove(name: string): Promise<Site>;
  /**
   * Asks the site, with the user's proxy, how it is: health, who it sees, queues, and whether
   * it offers Sloop's VM jobs (ENV/SLOOP-VM). Rejects with code `site` when it cannot be asked.
   */
  siteInfo(name: string): Promise<SiteInfo>;
  /**
   * Sends a stopped machine to a site; resolves with the new run once every file is uploaded.
   * Progress events arrive under `export:<machine>` (its bundle), then `submit:<machine>` (the
   * uploads), then a `finished` one. Rejects with code `cancelled` after runSubmitCancel.
   */
  runSubmit(request: SubmitRun): Promise<RunView>;
  /** Stops the submit of `machine`; false when none was running. */
  runSubmitCancel(machine: string): Promise<boolean>;
  /** Every run, newest first; `live` asks the sites for the states of unfinished ones first. */
  runList(live: boolean): Promise<RunView[]>;
  /** One run, asked of its site when it has not ended. */
  runInfo(id: string): Promise<RunView>;
  /** The run's logs so far: the VM job's, the machine's console, the command's output. */
  runLogs(id: string): Promise<RunLogs>;
  /** Asks the site to stop the run. */
  runCancel(id: string): Promise<RunView>;
  /** Removes the run at its site and here; fetched outputs stay. */
  runClean(id: string): Promise<void>;
  /** Submits again a run whose submit did not end (what reached the site is taken back first). */
  runResume(id: string): Promise<RunView>;
  /**
   * Brings an ended run's outputs into `to` (a folder that must not exist; null: the core's
   * default, runs/<id> in the machine's work folder); with `keepChanges`, also its disk
   * changes, as a new machine. Progress under `fetch:<id>`, then a `finished` event.
   */
  runFetch(id: string, to: string | null, keepChanges: boolean): Promise<Fetched>;
  /** Stops the fetch of run `id`; false when none was running. */
  runFetchCancel(id: string): Promise<boolean>;
  /**
   * Places the user's grid proxy in machine `name` at every start and renewal, and now if it
   * runs. Refused when there is no usable proxy.
   */
  machineProxyAttach(name: string): Promise<MachineSummary>;
  /** Stops placing the proxy in machine `name`, and removes it from the machine if it runs. */
  machineProxyDetach(name: string): Promise<MachineSummary>;
  /** The grid proxy (or why there is none), the user's certificate and the keyring. */
  proxyStatus(): Promise<ProxyStatus>;
  /**
   * Makes a new proxy from the user's certificate; resolves with the new status. Rejects with
   * code `passphrase` when the key needs a passphrase that was not given or does not open it,
   * `proxy` for every other failure. Attached running machines get the new proxy (a
   * `proxyPlaced` event says which).
   */
  proxyInit(request: ProxyInit): Promise<ProxyStatus>;
  /** Removes the key's passphrase from the keyring; false when none was remembered. */
  proxyForget(): Promise<boolean>;
  /** Every tutorial opened here. */
  tutorialList(): Promise<TutorialView[]>;
  /**
   * Opens a tutorial file (a path or URL): verifies it and everything it pins, fetches what is
   * missing (the mirror beside the file first), makes the machine with the material at
   * /analysis and starts it; opened before, the same machine again. Progress events (every step,
   * the image's download too) arrive under `tutorial:<name>`, then a `finished` one. Rejects with
   * code `tutorial` when the file or anything it pins is refused, `tutorialVersion` when it is
   * open here from another version of its file (ask, then call again with `replace`: its machine
   * is made anew, the work directory moved aside), `cancelled` after tutorialCancel.
   */
  tutorialOpen(location: string, replace: boolean): Promise<OpenedTutorial>;
  /**
   * Makes tutorial `name`'s machine again from its start (no network needed) and moves the work
   * directory aside; resolves with where it went (`setAside`).
   */
  tutorialReset(name: string): Promise<OpenedTutorial>;
  /** Stops the opening or reset of tutorial `name`; false when none was running. */
  tutorialCancel(name: string): Promise<boolean>;
  /** Asks the user for a tutorial file (`*.sloop-tutorial`); null when cancelled. */
  pickTutorial(title: string): Promise<string | null>;
  /** Asks the user for a folder with the system's folder picker; null when cancelled. */
  pickFolder(title: string): Promise<string | null>;
  /** Asks the user where to save a bundle, starting at `path`; null when cancelled. */
  pickSaveFile(title: string, path: string): Promise<string | null>;
  /** Asks the user for a bundle file to open; null when cancelled. */
  pickBundle(title: string): Promise<string | null>;
  /** Asks the user for one or more files to open; empty when cancelled. */
  pickFiles(title: string): Promise<string[]>;
  /** Shows a desktop notification (nothing when the desktop has no notification service). */
  notify(title: string, body: string): Promise<void>;
  /**
   * Opens a shell in a running machine (here, or an interactive run's at its site) with a
   * terminal of `size`; returns the terminal's id. Its output and its end arrive through
   * `onEvent`. A run's shell first waits (minutes at most) for the run's machine to answer.
   */
  terminalOpen(
    target: TerminalTarget,
    size: TerminalSize,
    onEvent: (event: TerminalEvent) => void,
  ): Promise<number>;
  /** Keystrokes or pasted text for terminal `id`. */
  terminalWrite(id: number, data: string): Promise<void>;
  /** Terminal `id`'s window changed size. */
  terminalResize(id: number, size: TerminalSize): Promise<void>;
  /** Ends terminal `id`'s session. */
  terminalClose(id: number): Promise<void>;
  /** The latest `limit` log lines, oldest first. */
  logRecent(limit: number): Promise<LogLine[]>;
  /** Calls `callback` with the paths of files dropped on the window; returns the unsubscribe. */
  onFileDrop(callback: (paths: string[]) => void): () => void;
  /**
   * Calls `callback` with what the desktop asks the app to open: the files and links of this
   * launch at once, then those of every later launch (which hands them over and ends). Returns
   * the unsubscribe function.
   */
  onOpenRequests(callback: (requests: OpenRequest[]) => void): () => void;
  /**
   * Calls `callback` with the names of the running machines when the user closes the window
   * while machines run; the window then asks and calls `quit`. Returns the unsubscribe.
   */
  onCloseRequested(callback: (running: string[]) => void): () => void;
  /** Quits the app, shutting the running machines down first when `stopMachines`. */
  quit(stopMachines: boolean): Promise<void>;
  /** The app's version and the commit it was built from. */
  about(): Promise<About>;
  /** The window has painted its first frame with the app in it (logged, for startup time). */
  painted(): Promise<void>;
  /** Calls `callback` with every event the core sends; returns the unsubscribe function. */
  onEvent(callback: (event: Event) => void): () => void;
}

const KEY = Symbol("backend");

export function setBackend(backend: Backend): void {
  setContext(KEY, backend);
}

export function getBackend(): Backend {
  const backend = getContext<Backend | undefined>(KEY);
  if (!backend) throw new Error("no Backend in context: call setBackend in the root component");
  return backend;
}

/** The key used for the backend in Svelte's context, for tests that mount one component. */
export const backendContextKey = KEY;

export function isIpcError(error: unknown): error is IpcError {
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    "message" in error &&
    typeof (error as { message: unknown }).message === "string"
  );
}

/** One line for whatever a command rejected with. */
export function errorMessage(error: unknown): string {
  if (isIpcError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Whether a command stopped because the user cancelled it: nothing went wrong. */
export function isCancelled(error: unknown): boolean {
  return isIpcError(error) && error.code === "cancelled";
}
