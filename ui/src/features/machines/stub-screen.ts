// A stand-in for xterm.js in tests (jsdom cannot run it): keeps what it shows as text and types
// what a test tells it to.

import type { TerminalSize } from "../../ipc/bindings/TerminalSize";
import type { XtermScreen } from "./xterm";

export class StubScreen implements XtermScreen {
  /** Every screen opened since the last reset, in order. */
  static opened: StubScreen[] = [];

  static open(container: HTMLElement): StubScreen {
    const screen = new StubScreen(container);
    StubScreen.opened.push(screen);
    return screen;
  }

  text = "";
  current: TerminalSize = { cols: 80, rows: 24 };
  disposed = false;
  focused = 0;
  private dataListeners = new Set<(data: string) => void>();
  private resizeListeners = new Set<(size: TerminalSize) => void>();

  constructor(readonly container: HTMLElement | null = null) {}

  write(data: Uint8Array | string): void {
    this.text += typeof data === "string" ? data : new TextDecoder().decode(data);
  }
  onData(listener: (data: string) => void): () => void {
    this.dataListeners.add(listener);
    return () => this.dataListeners.delete(listener);
  }
  onResize(listener: (size: TerminalSize) => void): () => void {
    this.resizeListeners.add(listener);
    return () => this.resizeListeners.delete(listener);
  }
  size(): TerminalSize {
    return { ...this.current };
  }
  fit(): void {}
  focus(): void {
    this.focused += 1;
  }
  dispose(): void {
    this.disposed = true;
  }

  /** As if the user typed `data`. */
  type(data: string): void {
    for (const listener of this.dataListeners) listener(data);
  }
  /** As if the container changed size. */
  resizeTo(cols: number, rows: number): void {
    this.current = { cols, rows };
    for (const listener of this.resizeListeners) listener(this.size());
  }
  /** How many listeners a session keeps on it. */
  get listening(): number {
    return this.dataListeners.size + this.resizeListeners.size;
  }
}
