import { isTauri } from "@tauri-apps/api/core";
import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";
import type { Backend } from "./ipc/backend";
import { FakeBackend } from "./ipc/fake";
import { demoSite } from "./ipc/fake-grid";
import { TauriBackend } from "./ipc/tauri";

// In the app window the Rust shell answers; in a plain browser (`npm run dev`) a fake does, so
// the UI can be worked on without building the app.
function backend(): Backend {
  if (isTauri()) return new TauriBackend();
  const fake = new FakeBackend({
    delayMs: 600,
    grid: { sites: [demoSite()], stepMs: 600, advance: true },
  });
  fake.log("info", "Sloop started in a plain browser: the data shown is made up", "sloop_ui");
  return fake;
}

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");
const chosen = backend();
mount(App, { target, props: { backend: chosen } });
// Two animation frames after mounting, the first frame with the app in it has been painted: the
// log notes when (startup time, scripts/bench-package.sh).
requestAnimationFrame(() => requestAnimationFrame(() => void chosen.painted()));
