/// <reference types="vitest/config" />
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vite";

// The Tauri shell loads http://localhost:5173 in `tauri dev` (see src-tauri/tauri.conf.json) and
// embeds dist/ otherwise.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    // WebKitGTK 2.40+ on Linux, WebView2 on Windows, WKWebView on macOS 11+.
    target: ["es2022", "safari15"],
    outDir: "dist",
    emptyOutDir: true,
  },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
    setupFiles: ["src/test-setup.ts"],
  },
});
