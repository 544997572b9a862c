import type { Plugin } from "vite";

/** What the page needs to find the chain: the RPC URL and the deployment (bigints as strings). */
export interface AppConfig {
  rpcUrl: string;
  deployment: {
    chainId: number;
    contracts: { registry: string; token: string; staking: string; ledger: string; settlement: string };
    blockNumber: string;
    multicall3?: string | undefined;
  };
}

/** The path the page fetches its configuration from (dev server and preview server alike). */
export const CONFIG_PATH = "/shard-config.json";

/**
 * Serves the app's configuration at `CONFIG_PATH`, so one build runs against any chain: the
 * deployment and RPC URL are chosen when the server starts (`npm run app -- --deployment …`).
 */
export function shardConfig(config: AppConfig): Plugin {
  const body = JSON.stringify(config);
  const serve = (req: { url?: string | undefined }, res: import("node:http").ServerResponse, next: () => void) => {
    if (req.url?.split("?")[0] !== CONFIG_PATH) return next();
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    res.end(body);
  };
  return {
    name: "shard-config",
    configureServer: (server) => void server.middlewares.use(serve),
    configurePreviewServer: (server) => void server.middlewares.use(serve),
  };
}
