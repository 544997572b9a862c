/**
 * SDK benchmark: the cap table from 100,000 transfer events among 1,000 holders. Builds the
 * history on an in-process chain (genesis mints to every holder on four shards, then batches of
 * transfers through the `TransferFanout` operator, plus holder-signed batch transfers), then times
 *   (a) fetching the transfer logs through the SDK (eth_getLogs in chunks: RPC-bound),
 *   (b) building the cap table from the fetched logs (decode + apply alone),
 *   (c) getCapTable of the model from the cursor,
 * checks the cap table against the chain (every holder's balance, every id's totalSupply), prints
 * a table and writes results/sdk-bench.json.
 *
 *   npm run bench -- sdk
 */
import { performance } from "node:perf_hooks";

import { network } from "hardhat";
import { createWalletClient, custom, keccak256, parseEther, toHex, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import type { Balances } from "../sdk/actions/ownership/cursor.js";
import { getCapTable } from "../sdk/actions/ownership/getCapTable.js";
import { syncCapTable } from "../sdk/actions/ownership/syncCapTable.js";
import {
  applyTransferLogs,
  fetchTransferLogs,
  type RawLog,
  TRANSFER_SINGLE_TOPIC,
} from "../sdk/actions/ownership/transferLogs.js";
import { defineDeployment } from "../sdk/deployment.js";
import { DEFAULT_ROUND_PARAMS, deployProtocol } from "./lib/protocol.js";
import { report } from "./lib/results.js";

const HOLDERS = 1_000;
const SHARDS = 4;
const MOVES = 100_000;
/**
 * Moves per `TransferFanout.move` transaction: about 21,000 gas each (8.4M a transaction), well under
 * the 16,777,216 gas cap per transaction of the Osaka hard fork and the 60M block gas limit of
 * Hardhat's simulated network, so the defaults do.
 */
const MOVES_PER_TX = 400;
/** Holder-signed `safeBatchTransferFrom`s (each moves every shard at once: one TransferBatch of 4 ids). */
const BATCH_TRANSFERS = 200;
const GENESIS_CHUNK = 250;
const REPETITIONS = 3;
/** The SDK's default range: here the whole history (a few hundred blocks) is one request. */
const BLOCK_RANGE = 5_000;
/** A small range, so the chunked, concurrent, in-order pipeline is timed too (~14 requests). */
const SMALL_BLOCK_RANGE = 20;
const CONCURRENCY = 4;

const connection = await network.create();
const { viem } = connection;
const publicClient = await viem.getPublicClient();
const chainId = await publicClient.getChainId();
const log = (line: string) => process.stderr.write(`${line}\n`);

/* SETUP: protocol, a model with four shards, 1,000 funded holders with deterministic keys */

const started = performance.now();
const deployBlock = await publicClient.getBlockNumber({ cacheTime: 0 });
const protocol = await deployProtocol(viem);
const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
const fanout = await viem.deployContract("TransferFanout");
await protocol.registry.write.registerModel([
  {
    specDigest: keccak256(toHex("bench-sdk spec")),
    specURI: "ipfs://bafybenchsdk",
    shardWeights: Array.from({ length: SHARDS }, (_, i) => BigInt(SHARDS - i)),
    stakingToken: stake.address,
    currencies: [stake.address],
    unbondingDelay: 7 * 86_400,
    params: DEFAULT_ROUND_PARAMS,
  },
]);
const modelId = await protocol.registry.read.modelCount();
const ids = Array.from({ length: SHARDS }, (_, shard) => (modelId << 32n) | BigInt(shard));
const token = protocol.token.address;

const accounts = Array.from({ length: HOLDERS }, (_, i) =>
  privateKeyToAccount(keccak256(toHex(`bench-sdk holder ${i}`))),
);
const holders: Address[] = accounts.map((a) => a.address);
for (const holder of holders) {
  await connection.provider.request({ method: "hardhat_setBalance", params: [holder, toHex(parseEther("10"))] });
}

// Genesis: every holder gets 1,000,000 of every shard (a mint, i.e. a TransferSingle, each).
for (const id of ids) {
  for (let i = 0; i < holders.length; i += GENESIS_CHUNK) {
    const chunk = holders.slice(i, i + GENESIS_CHUNK);
    await protocol.ledger.write.allocateGenesis([
      modelId,
      Number(id & 0xffffffffn),
      chunk,
      chunk.map(() => 1_000_000n),
    ]);
  }
}

// Every holder approves the fanout operator, signing its own transaction (sent with automine off).
const transport = custom(connection.provider);
const wallets = accounts.map((account) => createWalletClient({ account, transport, chain: publicClient.chain }));
const fees = { maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 1n };
await inBlocks(async (hashes) => {
  for (const wallet of wallets) {
    hashes.push(
      await wallet.writeContract({
        address: token,
        abi: protocol.token.abi,
        functionName: "setApprovalForAll",
        args: [fanout.address, true],
        gas: 100_000n,
        nonce: 0,
        ...fees,
      }),
    );
  }
});
log(`setup: ${((performance.now() - started) / 1000).toFixed(1)} s`);

/* HISTORY: 100,000 TransferSingle through the fanout, 200 holder batch transfers */

let seed = 0x5eed;
/** mulberry32: a small deterministic PRNG, so every run builds the same history. */
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n: number) => Math.floor(random() * n);

const generation = performance.now();
let gasPerMove = 0;
for (let done = 0; done < MOVES; done += MOVES_PER_TX) {
  const n = Math.min(MOVES_PER_TX, MOVES - done);
  const from: Address[] = [];
  const to: Address[] = [];
  const moveIds: bigint[] = [];
  const amounts: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const a = pick(HOLDERS);
    from.push(holders[a]!);
    to.push(holders[(a + 1 + pick(HOLDERS - 1)) % HOLDERS]!);
    moveIds.push(ids[pick(SHARDS)]!);
    amounts.push(BigInt(1 + pick(100)));
  }
  const hash = await fanout.write.move([token, from, to, moveIds, amounts], { gas: 16_000_000n });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`fanout move reverted at ${done}`);
  if (done === 0) gasPerMove = Number(receipt.gasUsed) / n;
  if ((done / MOVES_PER_TX) % 50 === 0) log(`  moves ${done + n} / ${MOVES}`);
}
await inBlocks(async (hashes) => {
  for (let i = 0; i < BATCH_TRANSFERS; i++) {
    const a = i % HOLDERS;
    const b = (a + 1 + pick(HOLDERS - 1)) % HOLDERS;
    hashes.push(
      await wallets[a]!.writeContract({
        address: token,
        abi: protocol.token.abi,
        functionName: "safeBatchTransferFrom",
        args: [holders[a]!, holders[b]!, ids, ids.map(() => BigInt(1 + pick(100))), "0x"],
        gas: 300_000n,
        nonce: 1 + Math.floor(i / HOLDERS),
        ...fees,
      }),
    );
  }
});
const generationSeconds = (performance.now() - generation) / 1000;
const head = await publicClient.getBlockNumber({ cacheTime: 0 });
log(
  `history: ${generationSeconds.toFixed(1)} s, ${head - deployBlock} blocks, ~${Math.round(gasPerMove)} gas per move`,
);

/** Runs `send` with automine off, then mines blocks (up to the gas limit each) until all it sent is in. */
async function inBlocks(send: (hashes: Hex[]) => Promise<void>) {
  await connection.provider.request({ method: "evm_setAutomine", params: [false] });
  try {
    let pending: Hex[] = [];
    await send(pending);
    while (pending.length > 0) {
      await connection.provider.request({ method: "evm_mine" });
      const receipts = await Promise.all(
        pending.map((hash) => publicClient.getTransactionReceipt({ hash }).catch(() => undefined)),
      );
      if (receipts.some((r) => r !== undefined && r.status !== "success")) throw new Error("a transaction reverted");
      pending = pending.filter((_, i) => receipts[i] === undefined);
    }
  } finally {
    await connection.provider.request({ method: "evm_setAutomine", params: [true] });
  }
}

/* MEASURE */

const deployment = defineDeployment({ chainId, contracts: protocol.addresses, blockNumber: deployBlock });
const seconds = (since: number) => (performance.now() - since) / 1000;
const runs: { fetch: number; fetchChunked: number; build: number; sync: number; getCapTable: number }[] = [];

/** Fetches every transfer log through the SDK's chunked eth_getLogs, into memory. */
async function fetchAll(blockRange: number) {
  const logs: RawLog[] = [];
  await fetchTransferLogs(publicClient, {
    token,
    fromBlock: deployBlock,
    toBlock: head,
    blockRange,
    concurrency: CONCURRENCY,
    onChunk: (chunk) => {
      for (const l of chunk.logs) logs.push(l);
    },
  });
  return logs;
}
let events = 0;
let logCount = 0;
let balances: Balances = new Map();
let table: Awaited<ReturnType<typeof getCapTable>> | undefined;
for (let r = 0; r < REPETITIONS; r++) {
  // (a) fetch through the SDK's chunked eth_getLogs, with the default and with a small range
  let t = performance.now();
  await fetchAll(SMALL_BLOCK_RANGE);
  const fetchChunked = seconds(t);
  t = performance.now();
  const logs = await fetchAll(BLOCK_RANGE);
  const fetch = seconds(t);
  // (b) decode and apply, from logs already in memory
  t = performance.now();
  balances = new Map();
  applyTransferLogs(balances, logs);
  const build = seconds(t);
  // both, as a user calls it
  t = performance.now();
  const { cursor } = await syncCapTable(publicClient, {
    deployment,
    confirmations: 0,
    blockRange: BLOCK_RANGE,
    concurrency: CONCURRENCY,
  });
  const sync = seconds(t);
  // (c) the model's cap table from the cursor
  t = performance.now();
  table = await getCapTable(publicClient, { deployment, modelId, cursor });
  const capTable = seconds(t);
  runs.push({ fetch, fetchChunked, build, sync, getCapTable: capTable });
  logCount = logs.length;
  events = logs.reduce((n, l) => n + (l.topics[0] === TRANSFER_SINGLE_TOPIC ? 1 : 0), 0);
  log(
    `  run ${r + 1}: fetch ${fetch.toFixed(3)} s (${fetchChunked.toFixed(3)} s chunked), build ${build.toFixed(3)} s, sync ${sync.toFixed(3)} s`,
  );
}

/* VERIFY against the chain: every holder's balance of every shard, every shard's supply */

const sdkTable = table!;
for (const [shard, id] of ids.entries()) {
  const onChain = await protocol.token.read.balanceOfBatch([holders, holders.map(() => id)]);
  const fromTable = new Map(sdkTable.shards[shard]!.holders.map((h) => [h.holder, h.balance]));
  holders.forEach((holder, i) => {
    const expected = onChain[i]!;
    if ((balances.get(id)?.get(holder) ?? 0n) !== expected || (fromTable.get(holder) ?? 0n) !== expected) {
      throw new Error(`cap table disagrees with the chain: ${holder} holds ${expected} of ${id}`);
    }
  });
  const supply = await protocol.token.read.totalSupply([id]);
  if (sdkTable.shards[shard]!.supply !== supply) throw new Error(`supply of ${id}: ${supply} on chain`);
}
const shareSum = sdkTable.revenueShares.reduce((sum, s) => sum + s.shareWad, 0n);
if (shareSum > 10n ** 18n || shareSum < 10n ** 18n - BigInt(HOLDERS))
  throw new Error(`revenue shares sum to ${shareSum}`);

/* REPORT */

const best = (key: keyof (typeof runs)[number]) => Math.min(...runs.map((r) => r[key]));
const median = (key: keyof (typeof runs)[number]) => runs.map((r) => r[key]).sort((a, b) => a - b)[runs.length >> 1]!;
const smallChunks = Math.ceil(Number(head - deployBlock + 1n) / SMALL_BLOCK_RANGE);
const rows = (["fetch", "fetchChunked", "build", "sync", "getCapTable"] as const).map((key) => ({
  step: {
    fetch: `(a) fetch transfer logs (eth_getLogs, ranges of ${BLOCK_RANGE} blocks)`,
    fetchChunked: `(a) fetch transfer logs (${smallChunks} ranges of ${SMALL_BLOCK_RANGE} blocks, ${CONCURRENCY} in flight)`,
    build: "(b) build cap table from fetched logs",
    sync: "syncCapTable from scratch (a + b)",
    getCapTable: "(c) getCapTable from the cursor",
  }[key],
  "best s": Number(best(key).toFixed(4)),
  "median s": Number(median(key).toFixed(4)),
}));
const goal = {
  goal: "cap table < 3 s once logs are fetched",
  "seconds (best)": Number(best("build").toFixed(4)),
  met: best("build") < 3,
};
await report(
  "sdk-bench",
  [
    `\nCap table: ${logCount} transfer logs (${events} TransferSingle), ${HOLDERS} holders, ${SHARDS} shards, ` +
      `${head - deployBlock} blocks; ${REPETITIONS} runs`,
    { rows },
    { rows: [goal] },
    `Checked against the chain: ${HOLDERS * SHARDS} balances and ${SHARDS} supplies agree.`,
  ],
  {
    date: new Date().toISOString(),
    chainId,
    holders: HOLDERS,
    shards: SHARDS,
    logs: logCount,
    transferSingle: events,
    blocks: Number(head - deployBlock),
    blockRange: BLOCK_RANGE,
    smallBlockRange: SMALL_BLOCK_RANGE,
    concurrency: CONCURRENCY,
    generationSeconds,
    gasPerMove: Math.round(gasPerMove),
    runs,
    goal,
  },
);
