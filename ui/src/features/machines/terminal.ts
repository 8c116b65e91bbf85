// The in-app terminal's plumbing, apart from xterm.js: a shell session in a machine between the
// backend (terminalOpen, terminalWrite, terminalResize, terminalClose) and a Screen, which is
// xterm.js in the window (xterm.ts) and a stub in tests.

import { type Backend, errorMessage } from "../../ipc/backend";
import type { TerminalEvent } from "../../ipc/bindings/TerminalEvent";
import type { TerminalSize } from "../../ipc/bindings/TerminalSize";
import type { TerminalTarget } from "../../ipc/bindings/TerminalTarget";

/** The bytes base64 `text` stands for (terminal output is not always UTF-8). */
export function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** What a session needs of the terminal on screen. */
export interface Screen {
  /** Shows output: raw bytes from the machine, or text of the window's own. */
  write(data: Uint8Array | string): void;
  /** Calls `listener` with what the user types or pastes; returns the unsubscribe function. */
  onData(listener: (data: string) => void): () => void;
  /** Calls `listener` when the screen's size in cells changes; returns the unsubscribe function. */
  onResize(listener: (size: TerminalSize) => void): () => void;
  /** The size in cells now. */
  size(): TerminalSize;
}

/** Where a session is. */
export type SessionStatus =
  | { kind: "connecting" }
  | { kind: "open"; id: number }
  | { kind: "closed"; status: number | null }
  | { kind: "failed"; message: string };

/** What the window calls the target: the machine's name, or "run ID". */
export function targetLabel(target: TerminalTarget): string {
  return "run" in target ? `run ${target.run}` : target.machine;
}

/**
 * One shell in one machine, shown on one Screen. Keystrokes are sent in order, one call at a
 * time (what is typed meanwhile goes out together in the next call); only the latest size is
 * sent. Output and the shell's end arrive through the backend's callback.
 */
export class TerminalSession {
  private id: number | null = null;
  /** The shell ended, opening failed, or close was called: nothing more goes out. */
  private ended = false;
  /** close was called: nothing more is shown either. */
  private dropped = false;
  private pending = "";
  private writing = false;
  private sentSize: TerminalSize | null = null;
  private wantedSize: TerminalSize | null = null;
  private resizing = false;
  private unsubscribe: (() => void)[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly target: TerminalTarget,
    private readonly screen: Screen,
    private readonly onstatus: (status: SessionStatus) => void,
  ) {}

  /** Opens the shell; resolves once it is open or has failed (see onstatus). */
  async open(): Promise<void> {
    this.onstatus({ kind: "connecting" });
    this.unsubscribe.push(
      this.screen.onData((data) => this.input(data)),
      this.screen.onResize((size) => this.resize(size)),
    );
    const size = this.screen.size();
    let id: number;
    try {
      id = await this.backend.terminalOpen(this.target, size, (event) => this.event(event));
    } catch (e) {
      if (!this.ended) {
        this.end();
        this.onstatus({ kind: "failed", message: errorMessage(e) });
      }
      return;
    }
    this.id = id;
    this.sentSize = size;
    if (this.ended) {
      // Closed (by the user or the shell) before the backend said which terminal it was.
      void this.release();
      return;
    }
    this.onstatus({ kind: "open", id });
    void this.flush();
    this.resize(this.wantedSize ?? this.screen.size());
  }

  /** Ends the shell, if it is still there; the screen shows nothing more from it. */
  async close(): Promise<void> {
    this.dropped = true;
    if (this.ended) return;
    this.end();
    await this.release();
  }

  private event(event: TerminalEvent): void {
    if (this.dropped) return;
    if (event.type === "data") {
      this.screen.write(decodeBase64(event.base64));
    } else if (!this.ended) {
      this.end();
      this.onstatus({ kind: "closed", status: event.status });
      // The backend keeps an ended terminal until it is closed.
      void this.release();
    }
  }

  private input(data: string): void {
    if (this.ended) return;
    this.pending += data;
    void this.flush();
  }

  private async flush(): Promise<void> {
    if (this.writing || this.id === null) return;
    this.writing = true;
    try {
      while (this.pending && !this.ended && this.id !== null) {
        const chunk = this.pending;
        this.pending = "";
        await this.backend.terminalWrite(this.id, chunk).catch(() => {
          // The terminal is gone; its closed event (or the next open) says so.
        });
      }
    } finally {
      this.writing = false;
    }
  }

  private resize(size: TerminalSize): void {
    if (this.ended) return;
    this.wantedSize = { cols: size.cols, rows: size.rows };
    void this.sendSize();
  }

  private async sendSize(): Promise<void> {
    if (this.resizing || this.id === null) return;
    this.resizing = true;
    try {
      while (
        !this.ended &&
        this.id !== null &&
        this.wantedSize &&
        !sameSize(this.wantedSize, this.sentSize)
      ) {
        const size = this.wantedSize;
        this.sentSize = size;
        await this.backend.terminalResize(this.id, size).catch(() => {});
      }
    } finally {
      this.resizing = false;
    }
  }

  private end(): void {
    this.ended = true;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
  }

  private async release(): Promise<void> {
    if (this.id === null) return;
    const id = this.id;
    this.id = null;
    await this.backend.terminalClose(id).catch(() => {});
  }
}

function sameSize(a: TerminalSize, b: TerminalSize | null): boolean {
  return b !== null && a.cols === b.cols && a.rows === b.rows;
}
