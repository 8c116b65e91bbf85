import type { Backend } from "./backend";
import type { Event } from "./bindings/Event";
import type { HostReport } from "./bindings/HostReport";
import type { IpcError } from "./bindings/IpcError";
import type { LogLine } from "./bindings/LogLine";
import type { MachineSummary } from "./bindings/MachineSummary";

export interface FakeOptions {
  report?: HostReport;
  machines?: MachineSummary[];
  /** Makes machineList reject with this. */
  machinesError?: IpcError;
  logs?: LogLine[];
  /** How long each call takes, to see busy states. */
  delayMs?: number;
}

/** An in-memory Backend: for Vitest, and for running the UI in a plain browser. */
export class FakeBackend implements Backend {
  report: HostReport;
  machines: MachineSummary[];
  machinesError: IpcError | undefined;
  logs: LogLine[];
  delayMs: number;
  /** The `fresh` argument of every hostCheck call, in order. */
  readonly hostChecks: boolean[] = [];
  private listeners = new Set<(event: Event) => void>();

  constructor(options: FakeOptions = {}) {
    this.report = options.report ?? demoReport();
    this.machines = options.machines ?? [];
    this.machinesError = options.machinesError;
    this.logs = options.logs ?? [];
    this.delayMs = options.delayMs ?? 0;
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
