/**
 * `npm run app`: serves the web app against one deployment.
 *
 *   npm run app                                    # deployments/31337.json, RPC http://127.0.0.1:8545
 *   npm run app -- --deployment deployments/11155111.json --rpc https://…
 *   npm run app -- --chain-id 31337 --registry 0x… --token 0x… --staking 0x… --ledger 0x… --settlement 0x…
 *   npm run app -- --preview                       # a production build, then `vite preview`
 *
 * Environment: RPC_URL, SHARD_APP_DEPLOYMENT (a file), SHARD_APP_PORT.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

import { defineDeployment } from "shard-protocol/sdk";
import { build, createServer, preview } from "vite";

import type { AppConfig } from "./config-plugin.js";
import { appConfig } from "./vite.config.js";

const ROOT = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "..");

export interface StartAppOptions {
  config: AppConfig;
  port?: number | undefined;
  host?: string | undefined;
  /** Serve a production build (`vite build` unless `skipBuild`, then `vite preview`) instead of the dev server. */
  preview?: boolean | undefined;
  skipBuild?: boolean | undefined;
}

/** Starts the app's server; resolves to its URL and a function that stops it. */
export async function startApp(options: StartAppOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const base = appConfig(options.config);
  const server = { port: options.port ?? 5173, host: options.host ?? "127.0.0.1", strictPort: options.port !== 0 };
  if (options.preview) {
    if (!options.skipBuild) await build(appConfig());
    const running = await preview({ ...base, preview: server });
    return { url: running.resolvedUrls!.local[0]!, close: () => running.close() };
  }
  const running = await createServer({ ...base, server });
  await running.listen();
  return { url: running.resolvedUrls!.local[0]!, close: () => running.close() };
}

/** The configuration from a deployment file, or from explicit addresses. */
export async function configFrom(values: Record<string, string | boolean | undefined>): Promise<AppConfig> {
  const rpcUrl = String(values.rpc ?? process.env.RPC_URL ?? "http://127.0.0.1:8545");
  const names = ["registry", "token", "staking", "ledger", "settlement"] as const;
  let input: unknown;
  if (names.some((n) => values[n] !== undefined)) {
    input = {
      chainId: Number(values["chain-id"] ?? 31337),
      contracts: Object.fromEntries(names.map((n) => [n, values[n]])),
      blockNumber: String(values["from-block"] ?? "0"),
    };
  } else {
    const file = path.resolve(
      String(values.deployment ?? process.env.SHARD_APP_DEPLOYMENT ?? path.join(ROOT, "deployments/31337.json")),
    );
    try {
      input = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      throw new Error(
        `cannot read the deployment file ${file} (run \`npm run deploy -- --network localhost\`): ${error}`,
      );
    }
  }
  const raw = input as { blockNumber?: unknown };
  const deployment = defineDeployment({
    ...(input as object),
    blockNumber: BigInt(String(raw.blockNumber ?? 0)),
  } as never);
  return {
    rpcUrl,
    deployment: {
      chainId: deployment.chainId,
      contracts: deployment.contracts,
      blockNumber: deployment.blockNumber.toString(),
      multicall3: deployment.multicall3,
    },
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      deployment: { type: "string" },
      rpc: { type: "string" },
      "chain-id": { type: "string" },
      registry: { type: "string" },
      token: { type: "string" },
      staking: { type: "string" },
      ledger: { type: "string" },
      settlement: { type: "string" },
      "from-block": { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      preview: { type: "boolean" },
    },
  });
  const config = await configFrom(values);
  const port = Number(values.port ?? process.env.SHARD_APP_PORT ?? 5173);
  const { url } = await startApp({ config, port, host: values.host, preview: values.preview });
  console.log(`Shard app on chain ${config.deployment.chainId} (RPC ${config.rpcUrl}): ${url}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
