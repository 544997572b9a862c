/**
 * ethers v6 entry point: use the SDK with an ethers provider and signer. The adapter turns them
 * into viem clients (a custom transport over `provider.send`, and an account whose signatures come
 * from the ethers signer), so every action of the core works unchanged.
 *
 * @example
 * import { BrowserProvider, Wallet } from "ethers"
 * import { fromEthers } from "shard-protocol/sdk/ethers"
 * const { client } = await fromEthers({ provider, signer: new Wallet(key, provider), deployment })
 * await client.stake({ modelId: 1n, role: "trainer", amount: 100n * 10n ** 18n })
 */
import type { JsonRpcApiProvider, Signer, TransactionRequest } from "ethers";
import {
  createClient,
  custom,
  publicActions,
  RpcRequestError,
  type Account,
  type Chain,
  type Client,
  type PublicActions,
  type Transport,
  type WalletActions,
  type Address,
  type Hex,
  type TransactionSerializable,
  type TypedDataDefinition,
  walletActions,
  getAddress,
  hexToBytes,
} from "viem";
import { toAccount } from "viem/accounts";

import { shardActions, type ShardActions } from "./decorators/shard.js";
import type { Deployment } from "./deployment.js";
import { ShardBaseError } from "./errors/base.js";

export interface FromEthersParameters {
  /** Any ethers v6 JSON-RPC provider (`JsonRpcProvider`, `BrowserProvider`, …). */
  provider: JsonRpcApiProvider;
  /** Signs writes; omit for a read-only client. */
  signer?: Signer | undefined;
  deployment: Deployment;
  /** Milliseconds between polls for receipts (default 250). */
  pollingInterval?: number | undefined;
}

/** The ethers signer cannot do what was asked (e.g. a signer without a provider). */
export class EthersAdapterError extends ShardBaseError {
  override name = "EthersAdapterError";
}

/** A viem transport that sends every request through `provider.send`, keeping JSON-RPC errors intact. */
export function ethersTransport(provider: JsonRpcApiProvider) {
  return custom({
    async request({ method, params }: { method: string; params?: unknown }) {
      try {
        return await provider.send(method, (params as unknown[] | undefined) ?? []);
      } catch (error) {
        throw unwrapRpcError(method, params, error);
      }
    },
  });
}

/**
 * ethers wraps JSON-RPC errors in its own; viem (and the SDK's error decoding) want the original
 * `{ code, message, data }`, so revert data of custom errors survives the adapter. They are
 * rethrown as viem's `RpcRequestError`, which viem does not retry when the code says "reverted".
 */
function unwrapRpcError(method: string, params: unknown, error: unknown): unknown {
  if (error === null || typeof error !== "object") return error;
  const e = error as { error?: unknown; info?: { error?: unknown }; data?: unknown; message?: string };
  const inner = (e.error ?? e.info?.error) as { code?: unknown; message?: string; data?: unknown } | undefined;
  let rpcError: { code: number; message: string; data?: unknown } | undefined;
  if (inner !== undefined && typeof inner.code === "number") {
    const data = inner.data ?? e.data;
    // A revert is final: report it as EIP-1474 code 3 so that viem does not retry it.
    const reverted = typeof data === "string" && data.startsWith("0x") && data.length >= 10;
    rpcError = { code: reverted ? 3 : inner.code, message: inner.message ?? "RPC error", data };
  } else if (typeof e.data === "string" && e.data.startsWith("0x") && e.data.length >= 10) {
    rpcError = { code: 3, message: e.message ?? "execution reverted", data: e.data };
  }
  if (rpcError === undefined) return error;
  return new RpcRequestError({ body: { method, params }, error: rpcError, url: "ethers provider" });
}

function toEthersTransaction(tx: TransactionSerializable): TransactionRequest {
  const request: TransactionRequest = {
    to: tx.to ?? null,
    data: tx.data ?? "0x",
    value: tx.value ?? 0n,
    nonce: tx.nonce ?? null,
    gasLimit: tx.gas ?? null,
    chainId: tx.chainId ?? null,
  };
  if (tx.maxFeePerGas !== undefined) {
    Object.assign(request, {
      type: 2,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas ?? 0n,
    });
  } else if (tx.gasPrice !== undefined) {
    Object.assign(request, { type: 0, gasPrice: tx.gasPrice });
  }
  return request;
}

/**
 * A viem account backed by an ethers signer. A local key (`Wallet`) signs transactions itself;
 * any other signer (e.g. `JsonRpcSigner`) is used as a JSON-RPC account: the node signs.
 */
export async function ethersAccount(signer: Signer): Promise<Account> {
  const address = getAddress(await signer.getAddress()) as Address;
  if (!("signingKey" in signer)) return { address, type: "json-rpc" };
  return toAccount({
    address,
    signMessage: async ({ message }) => {
      const payload =
        typeof message === "string" ? message : typeof message.raw === "string" ? hexToBytes(message.raw) : message.raw;
      return (await signer.signMessage(payload)) as Hex;
    },
    signTypedData: async (definition) => {
      const { domain, types, message } = definition as TypedDataDefinition & { domain?: object };
      const { EIP712Domain: _, ...rest } = types as unknown as Record<string, { name: string; type: string }[]>;
      return (await signer.signTypedData(
        (domain ?? {}) as Record<string, unknown>,
        rest,
        message as Record<string, unknown>,
      )) as Hex;
    },
    signTransaction: async (tx) => (await signer.signTransaction(toEthersTransaction(tx))) as Hex,
  });
}

/** A viem client over an ethers provider, with public, wallet and protocol actions. */
export type EthersShardClient = Client<
  Transport,
  Chain | undefined,
  Account | undefined,
  undefined,
  PublicActions<Transport, Chain | undefined, Account | undefined> &
    WalletActions<Chain | undefined, Account | undefined> &
    ShardActions
>;

export interface FromEthersReturnType {
  client: EthersShardClient;
  account: Account | undefined;
}

/**
 * viem client for an ethers provider (and signer), extended with every protocol action bound to
 * `deployment`.
 */
export async function fromEthers({
  provider,
  signer,
  deployment,
  pollingInterval = 250,
}: FromEthersParameters): Promise<FromEthersReturnType> {
  const account = signer === undefined ? undefined : await ethersAccount(signer);
  const client = createClient({ account, transport: ethersTransport(provider), pollingInterval })
    .extend(publicActions)
    .extend(walletActions)
    .extend(shardActions(deployment));
  return { client, account };
}
