import { Channel, invoke } from "@tauri-apps/api/core";
import { open, save } from "@tauri-apps/plugin-dialog";
import { listen } from "@tauri-apps/api/event";
import { getCurrentWebview } from "@tauri-apps/api/webview";
import type { About } from "./bindings/About";
import type { OpenRequest } from "./bindings/OpenRequest";
import type { Backend } from "./backend";
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

/** The Tauri event every core event arrives on (src-tauri/src/events.rs). */
export const EVENT = "sloop://event";
/** The desktop asked the app to open files or links: take them with open_requests_take. */
const OPEN_REQUESTED = "sloop://open-requested";
/** The window is being closed while machines run; the payload names them. */
const CLOSE_REQUESTED = "sloop://close-requested";

/** Talks to the Rust shell (src-tauri/src/commands/). */
export class TauriBackend implements Backend {
  hostCheck(fresh: boolean): Promise<HostReport> {
    return invoke("host_check", { fresh });
  }

  catalogList(): Promise<CatalogView[]> {
    return invoke("catalog_list");
  }

  catalogAdd(source: string, name: string | null): Promise<CatalogView> {
    return invoke("catalog_add", { source, name });
  }

  catalogAddDemo(): Promise<CatalogView> {
    return invoke("catalog_add_demo");
  }

  catalogRefresh(name: string): Promise<CatalogView> {
    return invoke("catalog_refresh", { name });
  }

  catalogRemove(name: string): Promise<void> {
    return invoke("catalog_remove", { name });
  }

  imageList(): Promise<ImageView[]> {
    return invoke("image_list");
  }

  imagePull(query: string): Promise<ImageView> {
    return invoke("image_pull", { query });
  }

  imageCancel(query: string): Promise<boolean> {
    return invoke("image_cancel", { query });
  }

  imageRemove(query: string): Promise<ImageView> {
    return invoke("image_remove", { query });
  }

  machineList(): Promise<MachineSummary[]> {
    return invoke("machine_list");
  }

  machineCreate(request: CreateMachine): Promise<MachineSummary> {
    return invoke("machine_create", { request });
  }

  machineStart(name: string): Promise<MachineSummary> {
    return invoke("machine_start", { name });
  }

  machineStop(name: string): Promise<MachineSummary> {
    return invoke("machine_stop", { name });
  }

  machineForceOff(name: string): Promise<MachineSummary> {
    return invoke("machine_force_off", { name });
  }

  machineRestart(name: string): Promise<MachineSummary> {
    return invoke("machine_restart", { name });
  }

  machineDelete(name: string): Promise<void> {
    return invoke("machine_delete", { name });
  }

  machineConsole(name: string): Promise<string> {
    return invoke("machine_console", { name });
  }

  machineExportDefault(name: string): Promise<string> {
    return invoke("machine_export_default", { name });
  }

  machineExport(request: ExportMachine): Promise<Exported> {
    return invoke("machine_export", { request });
  }

  machineExportCancel(name: string): Promise<boolean> {
    return invoke("machine_export_cancel", { name });
  }

  bundleInspect(file: string): Promise<BundleReport> {
    return invoke("bundle_inspect", { file });
  }

  machineImport(request: ImportBundle): Promise<Imported> {
    return invoke("machine_import", { request });
  }

  machineImportCancel(request: ImportBundle): Promise<boolean> {
    return invoke("machine_import_cancel", { request });
  }

  machineProvenance(name: string): Promise<MachineProvenance> {
    return invoke("machine_provenance", { name });
  }

  siteList(): Promise<Site[]> {
    return invoke("site_list");
  }

  siteAdd(name: string, url: string): Promise<Site> {
    return invoke("site_add", { name, url });
  }

  siteRemove(name: string): Promise<Site> {
    return invoke("site_remove", { name });
  }

  siteInfo(name: string): Promise<SiteInfo> {
    return invoke("site_info", { name });
  }

  runSubmit(request: SubmitRun): Promise<RunView> {
    return invoke("run_submit", { request });
  }

  runSubmitCancel(machine: string): Promise<boolean> {
    return invoke("run_submit_cancel", { machine });
  }

  runList(live: boolean): Promise<RunView[]> {
    return invoke("run_list", { live });
  }

  runInfo(id: string): Promise<RunView> {
    return invoke("run_info", { id });
  }

  runLogs(id: string): Promise<RunLogs> {
    return invoke("run_logs", { id });
  }

  runCancel(id: string): Promise<RunView> {
    return invoke("run_cancel", { id });
  }

  runClean(id: string): Promise<void> {
    return invoke("run_clean", { id });
  }

  runResume(id: string): Promise<RunView> {
    return invoke("run_resume", { id });
  }

  runFetch(id: string, to: string | null, keepChanges: boolean): Promise<Fetched> {
    return invoke("run_fetch", { id, to, keepChanges });
  }

  runFetchCancel(id: string): Promise<boolean> {
    return invoke("run_fetch_cancel", { id });
  }

  machineProxyAttach(name: string): Promise<MachineSummary> {
    return invoke("machine_proxy_attach", { name });
  }

  machineProxyDetach(name: string): Promise<MachineSummary> {
    return invoke("machine_proxy_detach", { name });
  }

  proxyStatus(): Promise<ProxyStatus> {
    return invoke("proxy_status");
  }

  proxyInit(request: ProxyInit): Promise<ProxyStatus> {
    return invoke("proxy_init", { request });
  }

  proxyForget(): Promise<boolean> {
    return invoke("proxy_forget");
  }

  async pickFolder(title: string): Promise<string | null> {
    const chosen = await open({ directory: true, multiple: false, title });
    return typeof chosen === "string" ? chosen : null;
  }

  async pickSaveFile(title: string, path: string): Promise<string | null> {
    const chosen = await save({
      title,
      defaultPath: path,
      filters: [{ name: "Sloop bundle", extensions: ["sloop"] }],
    });
    return typeof chosen === "string" ? chosen : null;
  }

  tutorialList(): Promise<TutorialView[]> {
    return invoke("tutorial_list");
  }

  tutorialOpen(location: string, replace: boolean): Promise<OpenedTutorial> {
    return invoke("tutorial_open", { location, replace });
  }

  tutorialReset(name: string): Promise<OpenedTutorial> {
    return invoke("tutorial_reset", { name });
  }

  tutorialCancel(name: string): Promise<boolean> {
    return invoke("tutorial_cancel", { name });
  }

  async pickTutorial(title: string): Promise<string | null> {
    const chosen = await open({
      multiple: false,
      title,
      filters: [{ name: "Sloop tutorial", extensions: ["sloop-tutorial"] }],
    });
    return typeof chosen === "string" ? chosen : null;
  }

  async pickBundle(title: string): Promise<string | null> {
    const chosen = await open({
      multiple: false,
      title,
      filters: [{ name: "Sloop bundle", extensions: ["sloop"] }],
    });
    return typeof chosen === "string" ? chosen : null;
  }

  async pickFiles(title: string): Promise<string[]> {
    const chosen = await open({ multiple: true, title });
    if (chosen === null) return [];
    return Array.isArray(chosen) ? chosen : [chosen];
  }

  notify(title: string, body: string): Promise<void> {
    return invoke("desktop_notify", { title, body });
  }

  terminalOpen(
    target: TerminalTarget,
    size: TerminalSize,
    onEvent: (event: TerminalEvent) => void,
  ): Promise<number> {
    const channel = new Channel<TerminalEvent>();
    channel.onmessage = onEvent;
    return invoke("terminal_open", { target, size, output: channel });
  }

  terminalWrite(id: number, data: string): Promise<void> {
    return invoke("terminal_write", { id, data });
  }

  terminalResize(id: number, size: TerminalSize): Promise<void> {
    return invoke("terminal_resize", { id, size });
  }

  terminalClose(id: number): Promise<void> {
    return invoke("terminal_close", { id });
  }

  logRecent(limit: number): Promise<LogLine[]> {
    return invoke("log_recent", { limit });
  }

  onFileDrop(callback: (paths: string[]) => void): () => void {
    const unlisten = getCurrentWebview().onDragDropEvent((event) => {
      if (event.payload.type === "drop") callback(event.payload.paths);
    });
    return () => {
      void unlisten.then((stop) => stop());
    };
  }

  onOpenRequests(callback: (requests: OpenRequest[]) => void): () => void {
    const take = () =>
      void invoke<OpenRequest[]>("open_requests_take").then((requests) => {
        if (requests.length > 0) callback(requests);
      });
    const unlisten = listen(OPEN_REQUESTED, take);
    // What this launch was asked to open, queued before the window listened.
    take();
    return () => {
      void unlisten.then((stop) => stop());
    };
  }

  onCloseRequested(callback: (running: string[]) => void): () => void {
    const unlisten = listen<string[]>(CLOSE_REQUESTED, (message) => callback(message.payload));
    return () => {
      void unlisten.then((stop) => stop());
    };
  }

  quit(stopMachines: boolean): Promise<void> {
    return invoke("app_quit", { stopMachines });
  }

  about(): Promise<About> {
    return invoke("app_about");
  }

  painted(): Promise<void> {
    return invoke("app_painted");
  }

  onEvent(callback: (event: Event) => void): () => void {
    const unlisten = listen<Event>(EVENT, (message) => callback(message.payload));
    return () => {
      void unlisten.then((stop) => stop());
    };
  }
}
