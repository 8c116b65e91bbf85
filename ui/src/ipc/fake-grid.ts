// The fake backend's grid: sites and runs kept in memory, with the core's rules and words
// (crates/sloop-core/src/site, run, facade/grid.rs). A run's state at its "site" is what a test
// sets with setRunState, or, for the browser demo (`advance`), one step further at each live
// list.
import type { Event } from "./bindings/Event";
import type { Fetched } from "./bindings/Fetched";
import type { IpcError } from "./bindings/IpcError";
import type { MachineSummary } from "./bindings/MachineSummary";
import type { RunLogs } from "./bindings/RunLogs";
import type { RunPhase } from "./bindings/RunPhase";
import type { RunView } from "./bindings/RunView";
import type { Site } from "./bindings/Site";
import type { SiteInfo } from "./bindings/SiteInfo";
import type { SubmitRun } from "./bindings/SubmitRun";

/** The runtime environment a site offers when its admins enabled Sloop's VM jobs. */
export const RTE_NAME = "ENV/SLOOP-VM";
/** The wall time the core asks for when the user says nothing: an hour. */
export const DEFAULT_WALLTIME_SECS = 3600;
/** Where the fake user's proxy is. */
const PROXY_PATH = "/tmp/x509up_u1000";
/** Where the fake keeps runs' folders. */
const RUNS_DIR = "/home/ada/.local/share/sloop/runs";
/** The size of a fake machine's changes, as uploaded. */
const OVERLAY_BYTES = 3_400_000;
/** The size of each fake input file. */
const INPUT_BYTES = 1_000_000;

export interface FakeGridOptions {
  /** The sites added. */
  sites?: Site[];
  /** What siteInfo answers by site name; demoSiteInfo when not given. */
  siteInfos?: Record<string, SiteInfo>;
  /** Makes siteInfo (and a submit to that site) reject with this, by site name. */
  siteErrors?: Record<string, IpcError>;
  /** Runs there are, in any order (listed newest first). */
  runs?: RunView[];
  /** What runLogs answers by run id; a few made-up lines when not given. */
  runLogs?: Record<string, RunLogs>;
  /** How long each step of a submit or fetch takes. */
  stepMs?: number;
  /** Makes a submit wait once its uploads began, until releaseSubmit. */
  submitHold?: boolean;
  /** Moves every unfinished run one state further at each live list (the browser demo). */
  advance?: boolean;
}

/** What the grid needs of the rest of the fake backend. */
export interface GridHost {
  emit(event: Event): void;
  delay(): Promise<void>;
  machines(): MachineSummary[];
  /** A new machine made from a run's changes, as an import makes one. */
  addMachine(machine: MachineSummary): void;
  /** The identity of the user's usable proxy; null when there is none. */
  proxyIdentity(): string | null;
}

export function siteError(message: string): IpcError {
  return { code: "site", message };
}

export function runError(message: string): IpcError {
  return { code: "run", message };
}

/** A site as the core records one. */
export function demoSite(name = "test-ce", url = `https://${name}.example.org/arex`): Site {
  return { name, url, added: "2026-03-02T09:15:00Z" };
}

/** A healthy site that offers ENV/SLOOP-VM, as it answers `identity`. */
export function demoSiteInfo(site: Site, identity = "/DC=org/DC=example/CN=Jane Doe"): SiteInfo {
  return {
    site: structuredClone(site),
    restVersions: ["1.0"],
    health: "ok",
    healthInfo: null,
    queues: [
      {
        name: "grid",
        state: "production",
        freeSlots: 12,
        running: 3,
        waiting: 0,
        maxWallTime: 2 * 86_400,
        maxMemoryMib: 8192,
      },
    ],
    offersVmJobs: true,
    runtimeEnvironments: [RTE_NAME, "ENV/PROXY"],
    identity,
  };
}

/** Where a run is from its CE state, as the core says (RunRecord::phase). */
export function phaseOf(state: string | null, submitted: string | null): RunPhase {
  if (submitted === null) return "submitting";
  switch (state) {
    case null:
      return "queued";
    case "RUNNING":
    case "EXITINGLRMS":
    case "EXECUTED":
    case "FINISHING":
    case "KILLING":
      return "running";
    case "FINISHED":
      return "finished";
    case "FAILED":
      return "failed";
    case "KILLED":
      return "killed";
    case "WIPED":
    case "GONE":
      return "gone";
    default:
      return "queued";
  }
}

const FINAL_STATES = ["FINISHED", "FAILED", "KILLED", "WIPED", "GONE"];

/**
 * A batch run of machine "analysis" at "test-ce", queued at the site; `over` changes any field
 * (give `state` and the phase follows unless `phase` is given too).
 */
export function demoRun(over: Partial<RunView> = {}): RunView {
  const created = "2026-03-02T10:00:00Z";
  const run: RunView = {
    phase: "queued",
    id: "analysis-1a2b3c4d",
    machine: "analysis",
    user: "sloop",
    site: "test-ce",
    siteUrl: "https://test-ce.example.org/arex",
    jobId: "f1e2d3c4b5a6978812345678",
    delegationId: "d3l3g4t10n",
    command: "./analyse.sh",
    inputs: [],
    keepChanges: false,
    resources: { cpus: 1, memoryMib: 512, walltimeSecs: DEFAULT_WALLTIME_SECS },
    baseSha512: "ab".repeat(64),
    baseUrl: "https://images.example.org/sloop-demo.qcow2",
    overlaySha512: "cd".repeat(64),
    hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake",
    created,
    submitted: created,
    state: "QUEUING",
    stateAt: created,
    ended: null,
    exitCode: null,
    reason: null,
    accel: null,
    outputs: null,
    changedMachine: null,
    proxyUntil: null,
    ...over,
  };
  if (over.phase === undefined) run.phase = phaseOf(run.state, run.submitted);
  if (over.ended === undefined && run.state !== null && FINAL_STATES.includes(run.state)) {
    run.ended = run.stateAt ?? created;
  }
  return run;
}

/** A site's name follows the rules of machine names. */
function validSiteName(name: string): boolean {
  return /^[a-z0-9-]{1,32}$/.test(name) && !name.startsWith("-") && !name.endsWith("-");
}

/** The endpoint `text` names, as the core's parse_endpoint reads it (`/arex` when no path). */
function parseEndpoint(text: string): string {
  const invalid = (reason: string) =>
    siteError(
      `"${text}" is not an ARC CE endpoint: give its https address, e.g. https://ce.example.org/arex (${reason})`,
    );
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid("relative URL without a base");
  }
  if (url.protocol !== "https:") throw invalid("ARC's REST interface is https only");
  let path = url.pathname.replace(/\/+$/, "") || "/arex";
  const rest = path.indexOf("/rest");
  if (rest >= 0) path = path.slice(0, rest);
  return `https://${url.host}${path}`;
}

function progress(task: string, stage: string, done: number, total: number | null): Event {
  return { type: "progress", task, stage, done, total, unit: "bytes", rate: null, etaSeconds: null };
}

function steps(task: string, stage: string, done: number, total: number): Event {
  return { type: "progress", task, stage, done, total, unit: "steps", rate: null, etaSeconds: null };
}

const cancelled = (): IpcError => ({ code: "cancelled", message: "cancelled" });

/** The fake's sites and runs. */
export class FakeGrid {
  sites: Site[];
  runs: RunView[];
  siteInfos: Map<string, SiteInfo>;
  siteErrors: Map<string, IpcError>;
  logs: Map<string, RunLogs>;
  /** Every submit request, in order. */
  readonly submits: SubmitRun[] = [];
  /** The `live` argument of every runList call, in order. */
  readonly lists: boolean[] = [];
  /** Every run action, as "cancel:<id>", "clean:<id>", "fetch:<id>" or "fetchChanges:<id>". */
  readonly actions: string[] = [];
  /** Every siteInfo call's site, in order. */
  readonly infos: string[] = [];
  private stepMs: number;
  private submitHold: boolean;
  private advance: boolean;
  private held: (() => void)[] = [];
  private cancels = new Set<string>();
  /** Folders fetched into: a second fetch there is refused, as by the core. */
  private fetchedDirs = new Set<string>();
  private made = 0;

  constructor(
    private host: GridHost,
    options: FakeGridOptions = {},
  ) {
    this.sites = structuredClone(options.sites ?? []);
    this.runs = structuredClone(options.runs ?? []);
    this.siteInfos = new Map(Object.entries(structuredClone(options.siteInfos ?? {})));
    this.siteErrors = new Map(Object.entries(options.siteErrors ?? {}));
    this.logs = new Map(Object.entries(structuredClone(options.runLogs ?? {})));
    this.stepMs = options.stepMs ?? 0;
    this.submitHold = options.submitHold ?? false;
    this.advance = options.advance ?? false;
  }

  async siteList(): Promise<Site[]> {
    await this.host.delay();
    return structuredClone(this.sites);
  }

  async siteAdd(name: string, url: string): Promise<Site> {
    await this.host.delay();
    if (!validSiteName(name)) {
      throw siteError(
        `"${name}" is not a valid site name: use 1 to 32 lower-case letters, digits and '-', starting with a letter or digit`,
      );
    }
    const endpoint = parseEndpoint(url.trim());
    if (this.sites.some((s) => s.name === name)) {
      throw siteError(
        `there is a site named ${name} already; remove it first or choose another name`,
      );
    }
    const site: Site = { name, url: endpoint, added: new Date().toISOString() };
    this.sites.push(site);
    return structuredClone(site);
  }

  async siteRemove(name: string): Promise<Site> {
    await this.host.delay();
    const site = this.site(name);
    this.sites = this.sites.filter((s) => s.name !== name);
    return structuredClone(site);
  }

  async siteInfo(name: string): Promise<SiteInfo> {
    this.infos.push(name);
    await this.host.delay();
    return this.info(this.site(name));
  }

  async runSubmit(request: SubmitRun): Promise<RunView> {
    this.submits.push(structuredClone(request));
    await this.host.delay();
    const task = `submit:${request.machine}`;
    const fail = (error: IpcError): never => {
      this.host.emit({ type: "finished", task, error: error.message });
      throw error;
    };
    const machine = this.host.machines().find((m) => m.name === request.machine);
    if (!machine) return fail({ code: "machine", message: `no machine named ${request.machine}` });
    const site = this.sites.find((s) => s.name === request.site);
    if (!site) return fail(this.unknownSite(request.site));
    if (request.command !== null && request.command.trim() === "") {
      fail(runError("the command is empty; give one, or none for an interactive run"));
    }
    const walltimeSecs = request.walltimeSecs ?? DEFAULT_WALLTIME_SECS;
    if (walltimeSecs < 120) {
      fail(runError("a wall time under 2 minutes leaves no time to boot; ask for more"));
    }
    const memoryMib = request.memoryMib ?? machine.memoryMib;
    if (memoryMib < 128 || memoryMib > 1 << 20) {
      fail(
        runError(`${memoryMib} MiB of memory is not possible; give between 128 MiB and 1 TiB`),
      );
    }
    let info: SiteInfo;
    try {
      info = this.info(site);
    } catch (e) {
      return fail(e as IpcError);
    }
    if (!info.offersVmJobs) {
      fail(
        siteError(
          `site ${site.name} does not offer ${RTE_NAME}; its admins can enable it: docs/site-admins.md (\`sloop site rte\` prints the script)`,
        ),
      );
    }
    if (machine.state !== "stopped" && machine.state !== "undefined") {
      fail(runError(`machine ${machine.name} is running; stop it first or export with --stop`));
    }
    this.cancels.delete(request.machine);
    const step = async () => {
      await new Promise((resolve) => setTimeout(resolve, this.stepMs));
      if (this.cancels.has(request.machine)) fail(cancelled());
    };

    // The bundle first, under the export's own task, as the core makes it.
    const exportTask = `export:${request.machine}`;
    const stages = ["copying the changes", "hashing", "writing the bundle"];
    for (const [done, stage] of stages.entries()) {
      this.host.emit(steps(exportTask, stage, done, stages.length));
      await step();
    }
    this.host.emit({ type: "finished", task: exportTask, error: null });

    const total = OVERLAY_BYTES + request.inputs.length * INPUT_BYTES;
    this.host.emit(progress(task, "uploading to the site", 0, total));
    await step();
    this.host.emit(progress(task, "uploading to the site", Math.round(total / 2), total));
    if (this.submitHold) await new Promise<void>((resolve) => this.held.push(resolve));
    await step();
    this.host.emit(progress(task, "uploading to the site", total, total));

    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    this.made += 1;
    const suffix = (0x5100b000 + this.made).toString(16).padStart(8, "0");
    const run = demoRun({
      id: `${request.machine}-${suffix}`,
      machine: request.machine,
      site: site.name,
      siteUrl: site.url,
      jobId: `${suffix}job${this.made}`,
      command: request.command,
      inputs: request.inputs.map((p) => p.replace(/\/+$/, "").split("/").pop() ?? p),
      keepChanges: request.keepChanges,
      resources: {
        cpus: Math.max(1, request.cpus ?? machine.vcpus),
        memoryMib,
        walltimeSecs,
      },
      created: now,
      submitted: now,
      state: "ACCEPTED",
      stateAt: now,
    });
    this.runs.unshift(run);
    this.host.emit({ type: "finished", task, error: null });
    return structuredClone(run);
  }

  async runSubmitCancel(machine: string): Promise<boolean> {
    this.cancels.add(machine);
    this.releaseSubmit();
    return true;
  }

  /** Lets the submits held at their uploads (submitHold) go on. */
  releaseSubmit(): void {
    this.submitHold = false;
    const held = this.held;
    this.held = [];
    for (const wake of held) wake();
  }

  async runList(live: boolean): Promise<RunView[]> {
    this.lists.push(live);
    await this.host.delay();
    if (live && this.advance) {
      for (const run of this.runs) {
        if (run.ended !== null || run.submitted === null) continue;
        this.setRunState(run.id, run.state === "RUNNING" ? "FINISHED" : "RUNNING", {
          accel: "kvm",
          exitCode: run.state === "RUNNING" && run.command !== null ? 0 : null,
        });
      }
    }
    return structuredClone(
      [...this.runs].sort((a, b) => Date.parse(b.created) - Date.parse(a.created)),
    );
  }

  async runInfo(id: string): Promise<RunView> {
    await this.host.delay();
    return structuredClone(this.run(id));
  }

  async runLogs(id: string): Promise<RunLogs> {
    await this.host.delay();
    const run = this.run(id);
    const given = this.logs.get(id);
    if (given) return structuredClone(given);
    if (run.jobId === null) return { run: id, job: null, console: null, command: null };
    const started = run.phase !== "queued" && run.phase !== "submitting";
    return {
      run: id,
      job: [
        `sloop-vm-job: run ${id}`,
        "sloop-vm-job: base SHA-512 matches",
        "sloop-vm-job: overlay SHA-512 matches",
        started ? `sloop-vm-job: booting under ${run.accel ?? "kvm"}` : null,
      ]
        .filter((line) => line !== null)
        .join("\n"),
      console: started ? `Welcome to ${run.machine}\nsloop-init: /analysis ready\n` : null,
      command: run.command !== null && started ? "processing 100 events\ndone\n" : null,
    };
  }

  async runCancel(id: string): Promise<RunView> {
    this.actions.push(`cancel:${id}`);
    await this.host.delay();
    const run = this.run(id);
    if (run.jobId === null) {
      throw runError(`run ${id} never reached the site; remove it with \`sloop run clean ${id}\``);
    }
    if (run.ended === null) this.setRunState(id, "KILLED");
    return structuredClone(this.run(id));
  }

  async runClean(id: string): Promise<void> {
    this.actions.push(`clean:${id}`);
    await this.host.delay();
    this.run(id);
    this.runs = this.runs.filter((r) => r.id !== id);
  }

  async runResume(id: string): Promise<RunView> {
    this.actions.push(`resume:${id}`);
    await this.host.delay();
    const run = this.run(id);
    if (run.submitted !== null) {
      throw runError(`run ${id} was submitted whole: there is nothing to resume (\`sloop run info ${id}\`)`);
    }
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    Object.assign(run, { jobId: run.jobId ?? `${id}-job`, submitted: now, reason: null });
    this.setRunState(id, "ACCEPTED");
    return structuredClone(run);
  }

  async runFetch(id: string, to: string | null, keepChanges: boolean): Promise<Fetched> {
    this.actions.push(`${keepChanges ? "fetchChanges" : "fetch"}:${id}`);
    await this.host.delay();
    const task = `fetch:${id}`;
    const fail = (error: IpcError): never => {
      this.host.emit({ type: "finished", task, error: error.message });
      throw error;
    };
    const run = this.run(id);
    if (run.ended === null) {
      fail(
        runError(
          `run ${id} has not reached the site's end yet (${run.state ?? "submitting"}); wait, or cancel it with \`sloop run cancel ${id}\``,
        ),
      );
    }
    if (keepChanges && !run.keepChanges) {
      fail(runError(`run ${id} was not started with --keep-changes: its changes were not kept`));
    }
    const dest = to || this.defaultFetchDir(run);
    if (this.fetchedDirs.has(dest)) {
      fail(runError(`${dest} exists already; give another folder with --to`));
    }
    this.cancels.delete(task);
    const files = ["output/result.txt", "output/histograms.root", "console.log", "job.out"];
    const bytes = 2_150_000;
    this.host.emit(progress(task, "downloading the outputs", 0, null));
    await new Promise((resolve) => setTimeout(resolve, this.stepMs));
    if (this.cancels.has(task)) fail(cancelled());
    this.host.emit(progress(task, "downloading the outputs", bytes, null));
    this.fetchedDirs.add(dest);
    run.outputs = dest;
    let changedMachine: string | null = null;
    if (keepChanges) {
      this.host.emit(progress(task, "downloading the changes", 0, OVERLAY_BYTES));
      await new Promise((resolve) => setTimeout(resolve, this.stepMs));
      const suffix = id.split("-").pop() ?? id;
      let name = `${run.machine}-from-${suffix}`;
      if (name.length > 32) name = `run-${suffix}`;
      const source = this.host.machines().find((m) => m.name === run.machine);
      this.host.addMachine({
        name,
        state: "stopped",
        image: source?.image ?? "Sloop tiny test image",
        vcpus: source?.vcpus ?? run.resources.cpus,
        memoryMib: source?.memoryMib ?? run.resources.memoryMib,
        sshPort: 0,
        workDir: source?.workDir ?? null,
        imageCertified: true,
        proxyAttached: false,
        layout: "overlay",
      });
      run.changedMachine = name;
      changedMachine = name;
    }
    this.host.emit({ type: "finished", task, error: null });
    return { run: id, dir: dest, files, bytes, changedMachine };
  }

  async runFetchCancel(id: string): Promise<boolean> {
    this.cancels.add(`fetch:${id}`);
    return true;
  }

  /**
   * Sets run `id`'s state at its site, as the CE would report it at the next live list; a final
   * state ends the run. `over` changes any other field (a failure's `reason`, `accel`).
   */
  setRunState(id: string, state: string, over: Partial<RunView> = {}): void {
    const run = this.run(id);
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    run.state = state;
    run.stateAt = now;
    if (FINAL_STATES.includes(state) && run.ended === null) run.ended = now;
    Object.assign(run, over);
    run.phase = phaseOf(run.state, run.submitted);
  }

  /** Where a fetch of `run` goes unless the user says, as the core's default_fetch_dir. */
  defaultFetchDir(run: RunView): string {
    const workDir = this.host.machines().find((m) => m.name === run.machine)?.workDir;
    return workDir ? `${workDir}/runs/${run.id}` : `${RUNS_DIR}/${run.id}/outputs`;
  }

  private info(site: Site): SiteInfo {
    const error = this.siteErrors.get(site.name);
    if (error) throw error;
    const identity = this.host.proxyIdentity();
    if (identity === null) {
      throw siteError(`no grid proxy at ${PROXY_PATH}; make one with \`sloop proxy init\``);
    }
    return structuredClone(this.siteInfos.get(site.name) ?? demoSiteInfo(site, identity));
  }

  private site(name: string): Site {
    const site = this.sites.find((s) => s.name === name);
    if (!site) throw this.unknownSite(name);
    return site;
  }

  private unknownSite(name: string): IpcError {
    return siteError(`there is no site named ${name}; add it with \`sloop site add ${name} URL\``);
  }

  /** Refuses a shell in run `id` as the core does: only an interactive run that is up. */
  shellable(id: string): RunView {
    const run = this.run(id);
    if (run.command !== null) {
      throw runError(
        `run ${id} runs a command and powers off; a shell needs a run submitted without --command`,
      );
    }
    if (run.ended !== null) {
      throw runError(`run ${id} has ended (${run.phase}): its machine is no longer up`);
    }
    return run;
  }

  private run(id: string): RunView {
    const run = this.runs.find((r) => r.id === id);
    if (!run) throw runError(`there is no run ${id}; \`sloop run list\` shows them`);
    return run;
  }
}
