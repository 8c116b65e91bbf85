// Mounting one view with a backend in its context, as App does for the whole window.

import { render } from "@testing-library/svelte";
import type { Component } from "svelte";
import { backendContextKey } from "./ipc/backend";
import type { Backend } from "./ipc/backend";

type ViewProps = { active?: boolean } & Record<string, unknown>;

/** Renders `component` (any view: its props are optional) with `backend` in its context. */
export function renderWith(component: Component<never>, backend: Backend, props: ViewProps = {}) {
  const context = new Map<unknown, unknown>([[backendContextKey, backend]]);
  return render(component as unknown as Component<ViewProps>, { props, context });
}
