import {
  parseEventLogs,
  type Abi,
  type ContractEventName,
  type ParseEventLogsReturnType,
  type Account,
  type Address,
  type Chain,
  type Client,
  type ContractFunctionArgs,
  type ContractFunctionName,
  type ContractFunctionParameters,
  type ContractFunctionReturnType,
  type Hex,
  type MulticallContracts,
  type MulticallResults,
  type TransactionReceipt,
  type Transport,
} from "viem";
import {
  estimateContractGas,
  getChainId,
  getCode,
  multicall,
  readContract,
  simulateContract,
  waitForTransactionReceipt,
  writeContract,
} from "viem/actions";

import type { Deployment } from "../deployment.js";
import { ShardBaseError } from "../errors/base.js";
import {
  CallFailedError,
  type ContractRevertError,
  type RpcUnavailableError,
  type SignerRejectedError,
  toShardError,
} from "../errors/contract.js";
import { AccountRequiredError, ChainMismatchError, type InvalidParameterError } from "../errors/validation.js";

/** Any viem client: public, wallet, or test client, with or without an account. */
export type AnyClient = Client<Transport, Chain | undefined, Account | undefined>;

/** Every action is given the deployment it acts on; the decorators bind it once. */
export interface DeploymentParameter {
  deployment: Deployment;
}

/** Write actions send from `account`, or from the client's own account. */
export interface AccountParameter {
  account?: Account | Address | undefined;
}

/** What every write action returns, besides its own fields. */
export interface WriteResult {
  hash: Hex;
  receipt: TransactionReceipt;
}

/**
 * What a read action can throw: its parameters are invalid (nothing is sent), the client is on
 * another chain, the contract reverted (decoded), the RPC failed, or the call failed otherwise.
 */
export type ReadErrorType =
  InvalidParameterError | ChainMismatchError | ContractRevertError | RpcUnavailableError | CallFailedError;

/** What an action that signs typed data can throw: what a read can, and no account or a refused signature. */
export type SignErrorType = ReadErrorType | AccountRequiredError | SignerRejectedError;

/** What a write action can throw: what a read can, and no account, a refused signature, a revert once mined. */
export type WriteErrorType = ReadErrorType | AccountRequiredError | SignerRejectedError | TransactionRevertedError;

/** The Multicall3 address most chains host. */
export const MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11" as const;

const checkedChains = new WeakMap<object, number>();
const multicallOf = new WeakMap<object, Address | null>();

/** Throws `ChainMismatchError` if `client` is not on the deployment's chain (asked once per client). */
export async function assertChain(client: AnyClient, deployment: Deployment, action: string) {
  let chainId = client.chain?.id ?? checkedChains.get(client);
  if (chainId === undefined) {
    try {
      chainId = await getChainId(client);
    } catch (error) {
      throw toShardError(error, action);
    }
    checkedChains.set(client, chainId);
  }
  if (chainId !== deployment.chainId) throw new ChainMismatchError(deployment.chainId, chainId);
}

/** The Multicall3 to batch reads through, or null where the chain has none (asked once per client). */
async function multicallAddress(client: AnyClient, deployment: Deployment): Promise<Address | null> {
  if (deployment.multicall3 !== undefined) return deployment.multicall3;
  const known = client.chain?.contracts?.multicall3?.address;
  if (known !== undefined) return known;
  const cached = multicallOf.get(client);
  if (cached !== undefined) return cached;
  const code = await getCode(client, { address: MULTICALL3_ADDRESS });
  const found = code !== undefined && code !== "0x" ? MULTICALL3_ADDRESS : null;
  multicallOf.set(client, found);
  return found;
}

/**
 * Reads many contract calls: one or a few Multicall3 calls where the chain has Multicall3,
 * otherwise plain `eth_call`s in parallel (which HTTP transports with `batch` enabled send as
 * one JSON-RPC batch). Results come back in order; any failure throws a decoded SDK error.
 * Typed like viem's `multicall` without failures allowed: each call's function name must be one
 * of its `abi`'s view functions, its `args` must match that function's inputs, and each result is
 * its call's decoded output (a tuple for a tuple of calls, an array for an array of like calls).
 * The calls are inferred as written (`contracts`) and checked one by one (`ReadManyParameters`): a
 * misspelled name or wrong arguments make that call's fields `never`, and it does not compile.
 */
export async function readMany<const contracts extends readonly unknown[]>(
  client: AnyClient,
  deployment: Deployment,
  action: string,
  calls: contracts & ReadManyParameters<contracts>,
): Promise<ReadManyReturnType<contracts>> {
  const list = calls as readonly ContractFunctionParameters[];
  if (list.length === 0) return [] as unknown as ReadManyReturnType<contracts>;
  try {
    await assertChain(client, deployment, action);
    const address = await multicallAddress(client, deployment);
    if (address !== null && list.length > 1) {
      // viem's own overloads cannot be re-entered with our generics; the parameter type above is the check.
      return (await multicall(client, {
        contracts: list,
        allowFailure: false,
        multicallAddress: address,
        batchSize: 64 * 1024,
      })) as ReadManyReturnType<contracts>;
    }
    // Bounded concurrency: thousands of parallel requests would trip rate limits of public RPCs.
    const results: unknown[] = [];
    for (let i = 0; i < list.length; i += PLAIN_READ_CONCURRENCY) {
      const slice = list.slice(i, i + PLAIN_READ_CONCURRENCY);
      results.push(...(await Promise.all(slice.map((call) => readContract(client, call as never)))));
    }
    return results as ReadManyReturnType<contracts>;
  } catch (error) {
    throw toShardError(error, action);
  }
}

/**
 * What `readMany` accepts for `contracts`: each call checked as viem's `multicall` checks one. A
 * mapped type, so a tuple, an array, and a tuple with a spread array (`[a, ...bs]`) all keep their shape.
 */
export type ReadManyParameters<contracts extends readonly unknown[]> = {
  [K in keyof contracts]: MulticallContracts<readonly [contracts[K]], { mutability: ReadMutability }>[0];
};

/** What `readMany` returns for `contracts`: each call's decoded output, in the calls' shape. */
export type ReadManyReturnType<contracts extends readonly unknown[]> = {
  -readonly [K in keyof contracts]: MulticallResults<readonly [contracts[K]], false, { mutability: ReadMutability }>[0];
};

/** Plain `eth_call`s in flight at once where the chain has no Multicall3. */
const PLAIN_READ_CONCURRENCY = 32;

/** The view and pure functions of an ABI: what `readOne` may call. */
export type ReadMutability = "pure" | "view";
/** The state-changing functions of an ABI: what `write` may call. */
export type WriteMutability = "nonpayable" | "payable";

/**
 * One contract read, with chain check and decoded errors. Typed like viem's `readContract`: the
 * function name must be one of `abi`'s view functions, `args` must match its inputs, and the
 * result is its decoded output.
 */
export async function readOne<
  const abi extends Abi,
  functionName extends ContractFunctionName<abi, ReadMutability>,
  const args extends ContractFunctionArgs<abi, ReadMutability, functionName>,
>(
  client: AnyClient,
  deployment: Deployment,
  action: string,
  call: ContractFunctionParameters<abi, ReadMutability, functionName, args>,
): Promise<ContractFunctionReturnType<abi, ReadMutability, functionName, args>> {
  try {
    await assertChain(client, deployment, action);
    // viem's own overloads cannot be re-entered with our generics; the parameter type above is the check.
    return (await readContract(client, call as never)) as ContractFunctionReturnType<
      abi,
      ReadMutability,
      functionName,
      args
    >;
  } catch (error) {
    throw toShardError(error, action);
  }
}

/** A mined transaction reverted (the chain changed between simulation and mining). */
export class TransactionRevertedError extends ShardBaseError {
  override name = "TransactionRevertedError";
  readonly hash: Hex;
  constructor(action: string, hash: Hex) {
    super(`${action}: transaction ${hash} was mined but reverted.`, {
      details: "the chain changed between the simulation and the transaction; check the state and retry",
    });
    this.hash = hash;
  }
}

/**
 * Simulates a contract write (so a revert surfaces as a decoded error before anything is sent),
 * sends it, and waits for the receipt. The simulation runs against the pending block, the one the
 * transaction goes into: on a chain that mines only on demand (`hardhat node`, `anvil`) the latest
 * block can be minutes old, and a time-gated call (finalize after a window) would be refused
 * against it for ever, since nothing else mines the block that would let it pass. Typed like viem's `writeContract`: the function name
 * must be one of `abi`'s state-changing functions and `args` must match its inputs.
 */
export async function write<
  const abi extends Abi,
  functionName extends ContractFunctionName<abi, WriteMutability>,
  const args extends ContractFunctionArgs<abi, WriteMutability, functionName>,
>(
  client: AnyClient,
  deployment: Deployment,
  action: string,
  call: ContractFunctionParameters<abi, WriteMutability, functionName, args> & { address: Address },
  account: Account | Address | undefined,
): Promise<WriteResult & { result: ContractFunctionReturnType<abi, WriteMutability, functionName, args> }> {
  const from = account ?? client.account;
  if (from === undefined) throw new AccountRequiredError(action);
  let hash: Hex;
  let result: ContractFunctionReturnType<abi, WriteMutability, functionName, args>;
  try {
    await assertChain(client, deployment, action);
    const simulation = await simulateContract(client, { ...call, account: from, blockTag: "pending" } as never);
    result = (simulation as { result: ContractFunctionReturnType<abi, WriteMutability, functionName, args> }).result;
    // The gas too (a node left to estimate it picks its own default block, the latest on some).
    const gas = await estimateContractGas(client, { ...call, account: from, blockTag: "pending" } as never);
    hash = await writeContract(client, {
      ...(simulation as { request: object }).request,
      gas,
      account: from,
      chain: client.chain ?? null,
    } as never);
  } catch (error) {
    throw toShardError(error, action);
  }
  let receipt: TransactionReceipt;
  try {
    receipt = await waitForTransactionReceipt(client, { hash });
  } catch (error) {
    throw toShardError(error, action);
  }
  if (receipt.status !== "success") throw new TransactionRevertedError(action, hash);
  return { hash, receipt, result };
}

/**
 * The first `eventName` event that `abi`'s contract emitted in `receipt`. Its absence after a
 * successful transaction means the address is not the contract the SDK expects: that is an
 * error, never a silent zero.
 */
export function eventOf<const abi extends Abi, eventName extends ContractEventName<abi>>(
  action: string,
  receipt: TransactionReceipt,
  abi: abi,
  eventName: eventName,
): ParseEventLogsReturnType<abi, eventName, true>[number] {
  const [event] = parseEventLogs({ abi, eventName, logs: receipt.logs } as never) as ParseEventLogsReturnType<
    abi,
    eventName,
    true
  >;
  if (event === undefined) {
    throw new CallFailedError(action, new Error(`no ${eventName} event in transaction ${receipt.transactionHash}`));
  }
  return event;
}
