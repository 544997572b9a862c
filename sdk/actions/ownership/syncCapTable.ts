import { getAddress, numberToHex, type Hex } from "viem";
import { z } from "zod";

import { toShardError } from "../../errors/contract.js";
import { type AnyClient, type DeploymentParameter, assertChain, type ReadErrorType } from "../../utils/client.js";
import { validate } from "../../utils/schemas.js";
import { type Balances, type CapTableCursor, cloneBalances, zCursor } from "./cursor.js";
import { type CapTableInconsistentError, CursorMismatchError } from "./errors.js";
import { applyTransferLogs, type ChecksumCache, fetchTransferLogs } from "./transferLogs.js";

/** Blocks behind the head that are left out unless `confirmations` says otherwise. */
export const DEFAULT_CONFIRMATIONS = 12;
/** Blocks per `eth_getLogs` request at first (most public RPCs accept 2,000–10,000). */
export const DEFAULT_BLOCK_RANGE = 5_000;
/** `eth_getLogs` requests in flight at once. */
export const DEFAULT_CONCURRENCY = 4;

/** What `onProgress` is told after each block range is applied. */
export interface CapTableProgress {
  fromBlock: bigint;
  toBlock: bigint;
  /** The chain head when the sync started (the sync stops at head − confirmations). */
  head: bigint;
  /** Transfer logs in this range. */
  logs: number;
}

export type SyncCapTableParameters = DeploymentParameter & {
  /** Resume from here (from `cursor.blockNumber + 1`); without it, scan from the deployment block. */
  cursor?: CapTableCursor | undefined;
  /**
   * Only blocks ≤ head − `confirmations` are processed (default 12), so a shallow reorg never
   * reaches the cursor. Local chains that mine on demand can pass 0.
   */
  confirmations?: number | undefined;
  /** Blocks per `eth_getLogs` request at first (default 5,000); halved when the RPC refuses a range. */
  blockRange?: number | undefined;
  /** `eth_getLogs` requests in flight at once (default 4); results are applied in block order. */
  concurrency?: number | undefined;
  onProgress?: ((progress: CapTableProgress) => void) | undefined;
};

export interface SyncCapTableReturnType {
  /** Balances up to `cursor.blockNumber`; pass it back to resume. */
  cursor: CapTableCursor;
  /**
   * True when the given cursor's block is no longer on the chain (its hash changed, or the chain
   * is now shorter): its balances were discarded and the table rebuilt from the deployment block.
   */
  reorged: boolean;
  /** Blocks scanned by this call ([fromBlock, toBlock]; empty when fromBlock > toBlock). */
  fromBlock: bigint;
  toBlock: bigint;
  /** Transfer logs applied by this call. */
  logs: number;
}

export type SyncCapTableErrorType = ReadErrorType | CursorMismatchError | CapTableInconsistentError;

const parametersSchema = z.object({
  cursor: zCursor.optional(),
  confirmations: z.number().int().min(0).max(1_000_000).default(DEFAULT_CONFIRMATIONS),
  blockRange: z.number().int().min(1).max(10_000_000).default(DEFAULT_BLOCK_RANGE),
  concurrency: z.number().int().min(1).max(64).default(DEFAULT_CONCURRENCY),
});

/** Hash of block `blockNumber`, or null if the chain has no such block (any more). */
export async function blockHashAt(client: AnyClient, blockNumber: bigint): Promise<Hex | null> {
  const block = (await client.request({
    method: "eth_getBlockByNumber",
    params: [numberToHex(blockNumber), false],
  })) as { hash: Hex | null } | null;
  return block?.hash ?? null;
}

/**
 * Builds (or brings up to date) the balances of every (token id, holder) of the shard token from
 * its `TransferSingle` and `TransferBatch` events: mints come from the zero address, burns go to
 * it. Logs are fetched with `eth_getLogs` in block ranges of `blockRange` (halved when the RPC
 * refuses a range as too large), `concurrency` ranges at a time, and applied in block order.
 * Only blocks ≤ head − `confirmations` are processed.
 *
 * **Resuming and reorgs.** With a `cursor`, the scan continues at `cursor.blockNumber + 1`. First
 * the chain's hash of `cursor.blockNumber` is compared with `cursor.blockHash`: if they differ (or
 * the block is gone), the chain reorganised below the cursor and its balances may include
 * transfers that no longer happened, so they are dropped and the table is rebuilt from the
 * deployment block; the result says `reorged: true`. A cursor for another chain or token throws
 * `CursorMismatchError`. The given cursor is never modified.
 *
 * @example
 * const { cursor } = await syncCapTable(client, { deployment })
 * await writeFile("cap-table.json", serializeCursor(cursor))
 * // later: only the new blocks are scanned
 * const { cursor: next, reorged } = await syncCapTable(client, {
 *   deployment,
 *   cursor: parseCursor(await readFile("cap-table.json", "utf8")),
 * })
 * next.balances.get(tokenId)?.get(holder) // balance of holder
 */
export async function syncCapTable(
  client: AnyClient,
  parameters: SyncCapTableParameters,
): Promise<SyncCapTableReturnType> {
  const action = "syncCapTable";
  const { deployment, onProgress } = parameters;
  const { cursor, confirmations, blockRange, concurrency } = validate(action, parametersSchema, {
    cursor: parameters.cursor,
    confirmations: parameters.confirmations,
    blockRange: parameters.blockRange,
    concurrency: parameters.concurrency,
  });
  const token = getAddress(deployment.contracts.token);
  if (cursor !== undefined && (cursor.chainId !== deployment.chainId || cursor.token !== token)) {
    throw new CursorMismatchError(
      action,
      { chainId: deployment.chainId, token },
      { chainId: cursor.chainId, token: cursor.token },
    );
  }
  await assertChain(client, deployment, action);

  try {
    const head = BigInt((await client.request({ method: "eth_blockNumber" })) as Hex);
    const target = head - BigInt(confirmations);

    let balances: Balances = new Map();
    let start = deployment.blockNumber;
    let reorged = false;
    if (cursor !== undefined) {
      const hash = await blockHashAt(client, cursor.blockNumber);
      if (hash !== null && hash.toLowerCase() === cursor.blockHash.toLowerCase()) {
        balances = cloneBalances(cursor.balances as Balances);
        if (cursor.blockNumber + 1n > start) start = cursor.blockNumber + 1n;
      } else {
        reorged = true;
      }
    }

    if (start > target) {
      // Nothing new is confirmed. Keep a valid cursor as it is; otherwise stand at the confirmed head.
      if (cursor !== undefined && !reorged) {
        return { cursor: { ...cursor, balances }, reorged, fromBlock: start, toBlock: target, logs: 0 };
      }
      const at = target > 0n ? target : 0n;
      const blockHash = (await blockHashAt(client, at))!;
      const empty = { chainId: deployment.chainId, token, blockNumber: at, blockHash, balances };
      return { cursor: empty, reorged, fromBlock: start, toBlock: target, logs: 0 };
    }

    // The hash is taken before the scan: if the chain reorganises during it, the next resume sees
    // a different hash and rebuilds, rather than trusting logs from the replaced blocks.
    const blockHash = await blockHashAt(client, target);
    if (blockHash === null) throw new Error(`the node has no block ${target} below its head ${head}`);

    const checksums: ChecksumCache = new Map();
    let logs = 0;
    await fetchTransferLogs(client, {
      token,
      fromBlock: start,
      toBlock: target,
      blockRange,
      concurrency,
      onChunk: (chunk) => {
        applyTransferLogs(balances, chunk.logs, checksums);
        logs += chunk.logs.length;
        onProgress?.({ fromBlock: chunk.fromBlock, toBlock: chunk.toBlock, head, logs: chunk.logs.length });
      },
    });
    return {
      cursor: { chainId: deployment.chainId, token, blockNumber: target, blockHash, balances },
      reorged,
      fromBlock: start,
      toBlock: target,
      logs,
    };
  } catch (error) {
    throw toShardError(error, action);
  }
}
