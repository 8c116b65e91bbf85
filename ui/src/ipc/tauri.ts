import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { Backend } from "./backend";
import type { Event } from "./bindings/Event";
import type { HostReport } from "./bindings/HostReport";
import type { LogLine } from "./bindings/LogLine";
import type { MachineSummary } from "./bindings/MachineSummary";

/** The Tauri event every core event arrives on (src-tauri/src/events.rs). */
export const EVENT = "sloop://event";

/** Talks to the Rust shell (src-tauri/src/commands/). */
export class TauriBackend implements Backend {
  hostCheck(fresh: boolean): Promise<HostReport> {
    return invoke("host_check", { fresh });
  }

  machineList(): Promise<MachineSummary[]> {
    return invoke("machine_list");
  }

  logRecent(limit: number): Promise<LogLine[]> {
    return invoke("log_recent", { limit });
  }

  onEvent(callback: (event: Event) => void): () => void {
    const unlisten = listen<Event>(EVENT, (message) => callback(message.payload));
    return () => {
      void unlisten.then((stop) => stop());
    };
  }
}
