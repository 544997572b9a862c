import { readFile } from "node:fs/promises";

import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  publicActions,
  webSocket,
  type Chain,
  type Hash,
  type LocalAccount,
  type Transport,
} from "viem";
import { getChainId } from "viem/actions";
import { defineDeployment, shardActions, ShardBaseError, type Deployment } from "shard-protocol/sdk";
import { loadDeployment } from "shard-protocol/sdk/node";

import { ConfigError } from "./config/errors.js";
import type { NodeConfig } from "./config/schema.js";
import { NodeError, type NodeErrorParameters } from "./errors.js";

/** How long `connect` waits for the endpoint's `eth_chainId` before calling it unreachable. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Timeout of every later request (a transaction's simulation, a log range). */
const REQUEST_TIMEOUT_MS = 30_000;
const POLLING_INTERVAL_MS = 1_000;

/* ERRORS */

/** The JSON-RPC endpoint did not answer (refused, unknown host, timed out). Retryable. */
export class RpcUnreachableError extends NodeError {
  override name = "RpcUnreachableError";
  readonly url: string;
  constructor(url: string, parameters: Omit<NodeErrorParameters, "retryable"> = {}) {
    super(`RPC unreachable at ${displayUrl(url)}.`, { ...parameters, retryable: true });
    this.url = displayUrl(url);
  }
}

/** The endpoint answered with an HTTP error that retrying will not fix (401, 403, 404, ...). */
export class RpcRefusedError extends NodeError {
  override name = "RpcRefusedError";
  constructor(url: string, status: number, cause?: unknown) {
    super(`The RPC at ${displayUrl(url)} refused the request (HTTP ${status}).`, {
      cause,
      details: "check rpcUrl (and any API key in it)",
    });
  }
}

/** The endpoint, or the deployment file, is on another chain than the config's `chainId`. */
export class ChainIdMismatchError extends NodeError {
  override name = "ChainIdMismatchError";
  readonly expected: number;
  readonly actual: number;
  constructor(what: string, expected: number, actual: number) {
    super(`${what} is on chain ${actual}, but the config says chain ${expected}.`, {
      details: "fix chainId (SHARD_NODE_CHAIN_ID, --chain-id) or point rpcUrl / deployment at the right network",
    });
    this.expected = expected;
    this.actual = actual;
  }
}

/* CLIENTS */

function publicClientOf(chain: Chain, transport: Transport, deployment: Deployment) {
  return createPublicClient({ chain, transport, pollingInterval: POLLING_INTERVAL_MS }).extend(
    shardActions(deployment),
  );
}

function walletClientOf(chain: Chain, transport: Transport, deployment: Deployment, account: LocalAccount) {
  return createWalletClient({ account, chain, transport, pollingInterval: POLLING_INTERVAL_MS })
    .extend(publicActions)
    .extend(shardActions(deployment));
}

/** A public client with every SDK action bound to the deployment. */
export type ShardPublicClient = ReturnType<typeof publicClientOf>;
/** A wallet client (the node's account) with public and SDK actions. */
export type ShardWalletClient = ReturnType<typeof walletClientOf>;

export interface Connection<account extends LocalAccount | undefined = LocalAccount | undefined> {
  publicClient: ShardPublicClient;
  /** Present when `connect` was given an account. */
  walletClient: account extends LocalAccount ? ShardWalletClient : undefined;
  deployment: Deployment;
  chainId: number;
  /** The endpoint, with credentials and key-like path segments masked: safe to print. */
  rpcUrl: string;
  /** Closes WebSocket connections (a no-op over HTTP). */
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** How long to wait for `eth_chainId` (default 5 s). */
  timeoutMs?: number | undefined;
}

export type ConnectErrorType = RpcUnreachableError | RpcRefusedError | ChainIdMismatchError | ConfigError;

/**
 * Connects to the config's JSON-RPC endpoint (HTTP or WebSocket): checks within a short timeout
 * that it answers and is on `config.chainId`, loads the deployment (`config.deployment`, else
 * `deployments/<chainId>.json`) and returns viem clients extended with the SDK's actions.
 * Unreachable → `RpcUnreachableError` (retryable); wrong chain → `ChainIdMismatchError`.
 *
 * @example
 * const { walletClient, publicClient } = await connect(config, account)
 * await walletClient.stake({ modelId: config.modelId, role: "trainer", amount })
 */
export async function connect<account extends LocalAccount | undefined = undefined>(
  config: Pick<NodeConfig, "rpcUrl" | "chainId" | "deployment">,
  account?: account,
  options: ConnectOptions = {},
): Promise<Connection<account>> {
  const { rpcUrl, chainId: expected } = config;
  const timeoutMs = options.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const ws = rpcUrl.startsWith("ws:") || rpcUrl.startsWith("wss:");
  const transportOf = (timeout: number, retryCount: number) =>
    ws ? webSocket(rpcUrl, { timeout, retryCount }) : http(rpcUrl, { timeout, retryCount });

  const actual = await probeChainId(rpcUrl, transportOf(timeoutMs, 0), timeoutMs);
  if (actual !== expected) throw new ChainIdMismatchError(`The RPC at ${displayUrl(rpcUrl)}`, expected, actual);
  const deployment = await deploymentFor(config);

  const chain = defineChain({
    id: expected,
    name: `chain ${expected}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: ws ? { http: [], webSocket: [rpcUrl] } : { http: [rpcUrl] } },
  });
  const transport = transportOf(REQUEST_TIMEOUT_MS, 2);
  const publicClient = publicClientOf(chain, transport, deployment);
  const walletClient = account === undefined ? undefined : walletClientOf(chain, transport, deployment, account);
  return {
    publicClient,
    walletClient: walletClient as Connection<account>["walletClient"],
    deployment,
    chainId: expected,
    rpcUrl: displayUrl(rpcUrl),
    close: async () => {
      if (!ws) return;
      const value = publicClient.transport as unknown as { getRpcClient?: () => Promise<{ close(): void }> };
      (await value.getRpcClient?.())?.close();
    },
  };
}

/** The endpoint's chain id, within `timeoutMs`; failures become node errors. */
async function probeChainId(rpcUrl: string, transport: Transport, timeoutMs: number): Promise<number> {
  const client = createPublicClient({ transport });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RpcUnreachableError(rpcUrl, { details: `no answer to eth_chainId within ${timeoutMs} ms` })),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([getChainId(client), timeout]);
  } catch (error) {
    if (error instanceof NodeError) throw error;
    const status = statusOf(error);
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      throw new RpcRefusedError(rpcUrl, status, error);
    }
    throw new RpcUnreachableError(rpcUrl, { cause: error, details: reasonOf(error) });
  } finally {
    clearTimeout(timer);
    if (rpcUrl.startsWith("ws")) {
      const value = client.transport as unknown as { getRpcClient?: () => Promise<{ close(): void }> };
      await value
        .getRpcClient?.()
        .then((c) => c.close())
        .catch(() => undefined);
    }
  }
}

/** The deployment: the config's file, or `deployments/<chainId>.json`; it must be for `chainId`. */
async function deploymentFor(config: Pick<NodeConfig, "chainId" | "deployment">): Promise<Deployment> {
  if (config.deployment === undefined) return loadDeployment({ chainId: config.chainId });
  let json: unknown;
  try {
    json = JSON.parse(await readFile(config.deployment, "utf8"));
  } catch (error) {
    throw new ConfigError(`Cannot read the deployment file ${config.deployment}.`, [], {
      cause: error,
      details: error instanceof Error ? error.message : undefined,
    });
  }
  let deployment: Deployment;
  try {
    deployment = defineDeployment(json as Parameters<typeof defineDeployment>[0]);
  } catch (error) {
    throw new ConfigError(`The deployment file ${config.deployment} is invalid.`, [], {
      cause: error,
      details: error instanceof ShardBaseError ? error.message.split("\n").slice(1).join("\n").trim() : undefined,
    });
  }
  if (deployment.chainId !== config.chainId) {
    throw new ChainIdMismatchError(`The deployment file ${config.deployment}`, config.chainId, deployment.chainId);
  }
  return deployment;
}

/**
 * Waits until the transaction has `confirmations` blocks (the SDK already waited for it to be
 * mined, which is one).
 */
export async function waitForConfirmations(client: ShardPublicClient, hash: Hash, confirmations: number) {
  if (confirmations > 1) await client.waitForTransactionReceipt({ hash, confirmations });
}

/** `url` without credentials, query, or key-like path segments (API keys often live there). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname
      .split("/")
      .map((s) => (s.length >= 20 ? `${s.slice(0, 4)}…` : s))
      .join("/");
    return `${u.protocol}//${u.host}${path === "/" ? "" : path}`;
  } catch {
    return "(invalid URL)";
  }
}

function statusOf(error: unknown): number | undefined {
  for (let e = error, depth = 0; e !== null && typeof e === "object" && depth < 8; depth++) {
    const status = (e as { status?: unknown }).status;
    if (typeof status === "number") return status;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The most telling reason in a cause chain: a system error code, a timeout, else the deepest message. */
function reasonOf(error: unknown): string | undefined {
  let deepest: string | undefined;
  for (let e = error, depth = 0; e !== null && typeof e === "object" && depth < 8; depth++) {
    const { code, message, name } = e as { code?: unknown; message?: unknown; name?: unknown };
    if (typeof code === "string" && /^E[A-Z]+$/.test(code))
      return code === "ECONNREFUSED" ? "connection refused" : code;
    if (name === "TimeoutError") return "the request timed out";
    if (typeof message === "string" && message !== "") deepest = message.split("\n")[0];
    e = (e as { cause?: unknown }).cause;
  }
  return deepest;
}
