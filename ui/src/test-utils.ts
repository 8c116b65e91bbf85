// Mounting one view with a backend in its context, as App does for the whole window.

import { render } from "@testing-library/svelte";
import type { Component } from "svelte";
import { backendContextKey } from "./ipc/backend";
import type { MachineSummary } from "./ipc/bindings/MachineSummary";
import { demoCatalog } from "./ipc/fake";
import type { Backend } from "./ipc/backend";

type ViewProps = { active?: boolean } & Record<string, unknown>;

/** Renders `component` (any view: its props are optional) with `backend` in its context. */
export function renderWith(component: Component<never>, backend: Backend, props: ViewProps = {}) {
  const context = new Map<unknown, unknown>([[backendContextKey, backend]]);
  return render(component as unknown as Component<ViewProps>, { props, context });
}

/** A stopped machine "analysis" on the demo image; `over` changes any field. */
export function demoMachine(over: Partial<MachineSummary> = {}): MachineSummary {
  return {
    name: "analysis",
    state: "stopped",
    image: demoCatalog().images[0]!.title,
    vcpus: 1,
    memoryMib: 512,
    sshPort: 2222,
    workDir: null,
    imageCertified: true,
    proxyAttached: false,
    layout: "overlay",
    ...over,
  };
}
