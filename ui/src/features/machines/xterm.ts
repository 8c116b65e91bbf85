// xterm.js as a Screen for terminal sessions: it fills its container and follows its size.
// jsdom cannot run xterm.js (no canvas, no matchMedia): component tests mock this module.

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import type { Screen } from "./terminal";

export interface XtermScreen extends Screen {
  /** Fits the terminal to its container again (nothing while the container is hidden). */
  fit(): void;
  focus(): void;
  dispose(): void;
}

/** Opens a terminal in `container`, which must have a size of its own and no padding. */
export function openScreen(container: HTMLElement): XtermScreen {
  const terminal = new Terminal({
    fontFamily: '"DejaVu Sans Mono", ui-monospace, "SF Mono", Menlo, Consolas, monospace',
    fontSize: 13,
    cursorBlink: true,
    scrollback: 5000,
    // Dark in both schemes, like the console (--console-bg and --console-text in app.css).
    theme: {
      background: "#0b1a2e",
      foreground: "#e3e9f2",
      cursor: "#8cc4ff",
      selectionBackground: "#2f5b8f",
    },
  });
  const fitAddon = new FitAddon();
  terminal.loadAddon(fitAddon);
  terminal.attachCustomKeyEventHandler((event) => clipboardKeys(event, terminal));
  terminal.open(container);
  const styles = adoptRefusedStyles(container);

  const fit = () => {
    // A hidden container measures 0 × 0: the shell keeps its size until it is shown again.
    if (container.clientWidth === 0 || container.clientHeight === 0) return;
    try {
      fitAddon.fit();
    } catch {
      // Not measurable yet (fonts loading); the next resize fits it.
    }
  };
  fit();
  const observer = new ResizeObserver(() => fit());
  observer.observe(container);

  return {
    write: (data) => terminal.write(data),
    onData: (listener) => {
      const subscription = terminal.onData(listener);
      return () => subscription.dispose();
    },
    onResize: (listener) => {
      const subscription = terminal.onResize(({ cols, rows }) => listener({ cols, rows }));
      return () => subscription.dispose();
    },
    size: () => ({ cols: terminal.cols, rows: terminal.rows }),
    fit,
    focus: () => terminal.focus(),
    dispose: () => {
      observer.disconnect();
      styles.dispose();
      terminal.dispose();
    },
  };
}

/**
 * Ctrl+Shift+C copies the selection and Ctrl+Shift+V pastes, as in desktop terminals; xterm.js
 * would send them to the shell as ^C and ^V. Everything else goes to xterm.js (false: it does not).
 */
function clipboardKeys(event: KeyboardEvent, terminal: Terminal): boolean {
  if (!event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
  const key = event.key.toLowerCase();
  if (key !== "c" && key !== "v") return true;
  if (event.type === "keydown") {
    event.preventDefault();
    if (key === "c") copy(terminal);
    else void paste(terminal);
  }
  return false;
}

function copy(terminal: Terminal): void {
  const text = terminal.getSelection();
  if (!text) return;
  // xterm.js answers the copy event with its selection; the Clipboard API when that is refused.
  if (!document.execCommand("copy")) void navigator.clipboard?.writeText(text).catch(() => {});
}

async function paste(terminal: Terminal): Promise<void> {
  try {
    const text = await navigator.clipboard.readText();
    if (text) terminal.paste(text);
  } catch {
    // No clipboard access: the context menu's Paste and Shift+Insert still work.
  }
}

/**
 * xterm.js sizes and colours its rows with <style> elements it adds at run time. A content
 * security policy without 'unsafe-inline' in style-src refuses them (their `sheet` stays null);
 * while it does, their rules are copied into a constructed style sheet, which it does not cover.
 */
function adoptRefusedStyles(root: HTMLElement): { dispose(): void } {
  if (typeof CSSStyleSheet === "undefined" || !("adoptedStyleSheets" in document)) {
    return { dispose() {} };
  }
  const sheet = new CSSStyleSheet();
  let adopted = false;
  const update = () => {
    const refused = Array.from(root.querySelectorAll("style")).filter((s) => s.sheet === null);
    if (refused.length === 0 && !adopted) return;
    try {
      sheet.replaceSync(refused.map((s) => s.textContent ?? "").join("\n"));
    } catch {
      return;
    }
    if (!adopted) {
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      adopted = true;
    }
  };
  const observer = new MutationObserver(update);
  observer.observe(root, { childList: true, subtree: true, characterData: true });
  update();
  return {
    dispose() {
      observer.disconnect();
      if (!adopted) return;
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
    },
  };
}
