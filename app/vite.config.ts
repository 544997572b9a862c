import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { defineConfig, type InlineConfig } from "vite";

import { type AppConfig, shardConfig } from "./config-plugin.js";

const root = fileURLToPath(new URL(".", import.meta.url));

/** The Vite configuration of app/; `config` is what the page is served (omitted: a build alone). */
export function appConfig(config?: AppConfig): InlineConfig {
  return {
    root,
    configFile: false,
    logLevel: "warn",
    plugins: [react(), ...(config ? [shardConfig(config)] : [])],
    // One copy of each, whether imported by the app, wagmi or the SDK.
    resolve: { dedupe: ["react", "react-dom", "viem", "wagmi", "@tanstack/react-query", "zod"] },
    build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2048 },
  };
}

export default defineConfig(appConfig());
