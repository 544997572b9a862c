/**
 * The shard token's transfer history, fetched and applied fast: `eth_getLogs` in chunked block
 * ranges (halved when the RPC refuses a range), a few chunks in flight and delivered in block
 * order, and a decoder that slices topics and data by hand (no ABI decoding per log), so 100,000
 * events apply in a fraction of a second.
 */
import { getAddress, numberToHex, toEventSelector, type Address, type Hex } from "viem";

import type { AnyClient } from "../../utils/client.js";
import type { Balances } from "./cursor.js";
import { CapTableInconsistentError } from "./errors.js";

/** `TransferSingle(operator, from, to, id, value)` of ERC-1155. */
export const TRANSFER_SINGLE_TOPIC = toEventSelector(
  "TransferSingle(address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value)",
);
/** `TransferBatch(operator, from, to, ids, values)` of ERC-1155. */
export const TRANSFER_BATCH_TOPIC = toEventSelector(
  "TransferBatch(address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values)",
);

/** A log as `eth_getLogs` returns it (hex quantities, not decoded). */
export interface RawLog {
  topics: readonly Hex[];
  data: Hex;
  blockNumber: Hex | null;
  blockHash?: Hex | null;
  logIndex?: Hex | null;
  removed?: boolean;
}

/** One block range of logs, as handed to `onChunk` (in block order). */
export interface LogChunk {
  fromBlock: bigint;
  toBlock: bigint;
  logs: RawLog[];
}

/** 40 hex zeros: the zero address in a topic (mint `from`, burn `to`). */
const ZERO = "0000000000000000000000000000000000000000";

/** Lowercase 40-hex-digit address → checksummed address; one per sync, so each holder is hashed once. */
export type ChecksumCache = Map<string, Address>;

function holderOf(topic: Hex | undefined, checksums: ChecksumCache): Address | null {
  if (topic === undefined) throw new Error("transfer log without from/to topics");
  const key = topic.slice(26).toLowerCase();
  if (key === ZERO) return null;
  let address = checksums.get(key);
  if (address === undefined) {
    address = getAddress(`0x${key}`);
    checksums.set(key, address);
  }
  return address;
}

const word = (data: string, index: number) => BigInt(`0x${data.slice(2 + 64 * index, 66 + 64 * index)}`);

function credit(balances: Balances, id: bigint, holder: Address, value: bigint) {
  let holders = balances.get(id);
  if (holders === undefined) {
    holders = new Map();
    balances.set(id, holders);
  }
  holders.set(holder, (holders.get(holder) ?? 0n) + value);
}

function debit(balances: Balances, id: bigint, holder: Address, value: bigint, log: RawLog) {
  const holders = balances.get(id);
  const balance = holders?.get(holder) ?? 0n;
  if (balance < value) {
    throw new CapTableInconsistentError({
      tokenId: id,
      holder,
      balance,
      value,
      blockNumber: log.blockNumber === null ? -1n : BigInt(log.blockNumber),
    });
  }
  if (balance === value) {
    holders?.delete(holder);
    if (holders?.size === 0) balances.delete(id);
  } else holders!.set(holder, balance - value);
}

function move(balances: Balances, id: bigint, from: Address | null, to: Address | null, value: bigint, log: RawLog) {
  if (value === 0n) return;
  if (from !== null) debit(balances, id, from, value, log);
  if (to !== null) credit(balances, id, to, value);
}

/**
 * Applies ERC-1155 `TransferSingle` / `TransferBatch` logs, in the order given, to `balances`
 * (changed in place): mints come from the zero address, burns go to it; a balance that reaches
 * zero is removed. Logs of other events and removed logs are skipped. Throws
 * `CapTableInconsistentError` if a holder would go negative (the logs are incomplete).
 *
 * This is the decode-and-apply step of `syncCapTable`, exported for benchmarks and for callers
 * that fetch logs themselves.
 */
export function applyTransferLogs(balances: Balances, logs: readonly RawLog[], checksums: ChecksumCache = new Map()) {
  for (const log of logs) {
    if (log.removed === true) continue;
    const topics = log.topics;
    const topic0 = topics[0]?.toLowerCase();
    if (topic0 === TRANSFER_SINGLE_TOPIC) {
      const from = holderOf(topics[2], checksums);
      const to = holderOf(topics[3], checksums);
      move(balances, word(log.data, 0), from, to, word(log.data, 1), log);
    } else if (topic0 === TRANSFER_BATCH_TOPIC) {
      const from = holderOf(topics[2], checksums);
      const to = holderOf(topics[3], checksums);
      const data = log.data;
      // Two dynamic uint256[]: head (two offsets in bytes), then each array as length + elements.
      const idsAt = Number(word(data, 0)) / 32;
      const valuesAt = Number(word(data, 1)) / 32;
      const count = Number(word(data, idsAt));
      if (Number(word(data, valuesAt)) !== count)
        throw new Error("TransferBatch log with ids and values of different lengths");
      for (let i = 0; i < count; i++) {
        move(balances, word(data, idsAt + 1 + i), from, to, word(data, valuesAt + 1 + i), log);
      }
    }
  }
}

/** Phrases nodes use when an `eth_getLogs` range is too wide or returns too much. */
const RANGE_TOO_LARGE =
  /block range|range (is )?too (large|wide|big)|too many (results|logs|blocks)|more than \d+ results|response size|exceed|limited to|timed? ?out|too large/i;
/** Rate limiting is retried by the transport, not answered with smaller ranges. */
const RATE_LIMITED = /rate.?limit|too many requests/i;

/** Whether `error` says the range was too large (by JSON-RPC code -32005 or the message). */
export function isRangeTooLarge(error: unknown): boolean {
  const seen = new Set<unknown>();
  let e: unknown = error;
  while (e !== null && typeof e === "object" && !seen.has(e)) {
    seen.add(e);
    const { code, message, details, shortMessage } = e as Record<string, unknown>;
    if (code === -32005) return true;
    for (const text of [details, shortMessage, message]) {
      if (typeof text === "string" && RANGE_TOO_LARGE.test(text) && !RATE_LIMITED.test(text)) return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface FetchTransferLogsParameters {
  token: Address;
  fromBlock: bigint;
  toBlock: bigint;
  /** Blocks per `eth_getLogs` request at first; halved (and kept smaller) when the RPC refuses one. */
  blockRange: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Called for each chunk, in block order, one at a time. */
  onChunk: (chunk: LogChunk) => void | Promise<void>;
}

/**
 * Fetches every `TransferSingle` and `TransferBatch` log of `token` in [`fromBlock`, `toBlock`]
 * and hands them to `onChunk` in block order. Up to `concurrency` ranges are fetched at once.
 * When the RPC refuses a range as too large, that range is split in halves (recursively, down
 * to one block) and later ranges use the smaller size. Other RPC errors are thrown as they are.
 * Returns the block range size in use at the end.
 */
export async function fetchTransferLogs(client: AnyClient, parameters: FetchTransferLogsParameters): Promise<number> {
  const { token, toBlock, concurrency, onChunk } = parameters;
  let range = BigInt(parameters.blockRange);
  const topics = [[TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC]];

  async function fetchRange(from: bigint, to: bigint): Promise<RawLog[]> {
    try {
      return (await client.request({
        method: "eth_getLogs",
        params: [{ address: token, fromBlock: numberToHex(from), toBlock: numberToHex(to), topics }],
      })) as unknown as RawLog[];
    } catch (error) {
      if (from === to || !isRangeTooLarge(error)) throw error;
      const half = (to - from + 1n) / 2n;
      if (half < range) range = half;
      const left = await fetchRange(from, from + half - 1n);
      const right = await fetchRange(from + half, to);
      for (const log of right) left.push(log);
      return left;
    }
  }

  const inFlight: { from: bigint; to: bigint; logs: Promise<RawLog[]> }[] = [];
  let next = parameters.fromBlock;
  const launch = () => {
    while (inFlight.length < concurrency && next <= toBlock) {
      const from = next;
      const to = from + range - 1n < toBlock ? from + range - 1n : toBlock;
      next = to + 1n;
      const logs = fetchRange(from, to);
      // Awaited in order below; until then a rejection must not count as unhandled.
      logs.catch(() => {});
      inFlight.push({ from, to, logs });
    }
  };
  launch();
  while (inFlight.length > 0) {
    const chunk = inFlight.shift()!;
    const logs = await chunk.logs;
    await onChunk({ fromBlock: chunk.from, toBlock: chunk.to, logs: inOrder(logs) });
    launch();
  }
  return Number(range);
}

/** Logs sorted by (block, log index); nodes already return them so, and then this only checks. */
function inOrder(logs: RawLog[]): RawLog[] {
  const key = (log: RawLog) => [Number(log.blockNumber ?? 0), Number(log.logIndex ?? 0)] as const;
  for (let i = 1; i < logs.length; i++) {
    const [b0, i0] = key(logs[i - 1]!);
    const [b1, i1] = key(logs[i]!);
    if (b1 < b0 || (b1 === b0 && i1 < i0)) {
      return [...logs].sort((x, y) => {
        const [bx, ix] = key(x);
        const [by, iy] = key(y);
        return bx !== by ? (bx < by ? -1 : 1) : ix < iy ? -1 : ix > iy ? 1 : 0;
      });
    }
  }
  return logs;
}
