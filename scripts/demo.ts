/**
 * `npm run demo`: the whole protocol on this machine, in one command. A local chain (Hardhat's EDR
 * behind a real JSON-RPC endpoint), the protocol deployed, a model registered, S trainers staking
 * and training their shards as separate `shard-node train` processes over libp2p for R rounds,
 * `shard-node serve` for every shard (seeding the checkpoints to the verifier over IPFS, then
 * serving inference, shard 0 with the paying gateway), a `shard-node verify` process that replays,
 * attests and finalizes every commit (shard tokens minted for the verified work), a token transfer,
 * revenue from a dApp (escrow + `requestInference` through the gateway, whose receipts it settles
 * in a batch, and a direct payment in a second currency), claims (`shard-node claim`, SDK), and
 * the cap table, revenue table and generated text at the end.
 *
 * Settings (environment): DEMO_SHARDS (2, or 3), DEMO_ROUNDS (3), DEMO_STEPS (steps per round,
 * 20), DEMO_CHALLENGE_WINDOW (seconds, 10, at least 10), DEMO_KEEP=1 (keep the work folder); DEMO_HELP=1 prints them.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { type Address, type Hex, getAddress, parseEther, parseUnits } from "viem";
import {
  type Checkpoint,
  contributionLedgerAbi,
  getInferenceQuote,
  shardTokenAbi,
  toTokenId,
} from "shard-protocol/sdk";

import { defaultSpec, type ModelSpec, zModelSpec } from "../node/src/ml/spec.js";
import { zJournal } from "../node/src/swarm/journal.js";
import { addressOf, deployDemo, type DemoDeployment, privateKeyOf, startChain } from "./lib/demo/chain.js";
import { sdkClient, type SdkClient, shortAddress } from "./lib/demo/clients.js";
import { type NodeEvent, type NodeProcess, NodeProcessError, ProcessGroup } from "./lib/demo/process.js";
import { formatAmount, formatPercent, groupDigits, renderTable } from "./lib/demo/tables.js";

/** What `runDemo` runs. Every field has a default that fits a 2-core machine in a few minutes. */
export interface DemoOptions {
  /** Shards, one trainer process each (default 2; 1–4). */
  shards?: number | undefined;
  /** Training rounds (default 3). */
  rounds?: number | undefined;
  /** Steps per round of the default spec (default 20). Ignored when `spec` is given. */
  stepsPerRound?: number | undefined;
  /** The model spec (default: `defaultSpec` split into `shards` stages with `stepsPerRound`). */
  spec?: ModelSpec | undefined;
  /**
   * Challenge window in seconds (default 10, at least 10): finalization waits for it after each
   * reveal. The reveal window equals it (the registry bounds it by the challenge window), and a
   * reveal lands a few blocks after its seal, each block a second later on the local chain.
   */
  challengeWindow?: number | undefined;
  /** Progress lines (default: console.log). */
  log?: ((line: string) => void) | undefined;
  /** Keep the work folder (checkpoints, journals, logs) instead of deleting it. */
  keepWorkDir?: boolean | undefined;
  /** Aborts the run: processes are stopped and the chain closed, then `runDemo` rejects with `DemoAbortedError`. */
  signal?: AbortSignal | undefined;
  /** Called with every child process the demo starts (its label and pid). */
  onProcess?: ((label: string, pid: number) => void) | undefined;
}

/** A participant of the demo: a Hardhat default account with a role. */
export interface DemoParticipant {
  name: string;
  account: number;
  address: Address;
}

/** The figures of a run, for the tables and the end-to-end test. */
export interface DemoResult {
  modelId: bigint;
  spec: ModelSpec;
  deployment: DemoDeployment;
  trainers: DemoParticipant[];
  verifier: DemoParticipant;
  dapp: DemoParticipant;
  newHolder: DemoParticipant;
  /** Held-out loss after each round (from the last shard's events). */
  evalLoss: number[];
  /** Tokens minted per finalized commit: `minted[shard][round - 1]`, all to the shard's trainer. */
  minted: bigint[][];
  /** Work units declared per commit: `workUnits[shard][round - 1]`. */
  workUnits: bigint[][];
  /** The shard-0 tokens trainer 0 sent to the new holder. */
  transfer: { from: Address; to: Address; tokenId: bigint; amount: bigint };
  /** Revenue paid in: the receipts settled in currency A, and the direct payment in currency B. */
  revenue: {
    escrowDeposit: bigint;
    receipts: { units: bigint; pricePerUnit: bigint; amount: bigint }[];
    settledA: bigint;
    directB: bigint;
    /** Every `ModelRevenueDistributed` amount, in order, per currency. */
    distributions: { currency: Address; amount: bigint }[];
  };
  /** Text generated for the dApp (empty while inference is not wired in). */
  generated: { prompt: string; text: string }[];
  /** Shard balances at the end: `balances[holder][shard]`. */
  balances: Record<Address, bigint[]>;
  supplies: bigint[];
  /** Claimed amounts: `claimed[holder][currency]`. */
  claimed: Record<Address, Record<Address, bigint>>;
  /** Rendered tables. */
  tables: { capTable: string; revenue: string };
  /** Seconds per stage. */
  timings: Record<string, number>;
}

/** Accounts of the demo's roles (Hardhat's default accounts; 0 deploys). */
const ACCOUNTS = { firstTrainer: 1, verifier: 8, dapp: 9, newHolder: 10 } as const;

const STAGES = ["chain", "deploy", "model", "stake", "training", "verification", "transfer", "inference", "claims"];

/** Blocks per shard for `shards` stages of the default 4-block model (at least one block each). */
function blocksPerShard(shards: number): number[] {
  const total = Math.max(4, shards);
  return Array.from({ length: shards }, (_, i) => Math.floor(total / shards) + (i < total % shards ? 1 : 0));
}

/** The default demo spec: the default Moby-Dick char GPT in `shards` stages with fewer steps per round. */
export function demoSpec(shards: number, stepsPerRound: number): ModelSpec {
  const base = defaultSpec({ shards: blocksPerShard(shards) });
  return zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound } });
}

/** `runDemo` was aborted through its `signal` (every process it started has been stopped). */
export class DemoAbortedError extends Error {
  override name = "DemoAbortedError";
  constructor() {
    super("the demo was interrupted");
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new DemoAbortedError());
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new DemoAbortedError());
      },
      { once: true },
    );
  });

/**
 * Runs the whole protocol end to end (see the file comment) and returns its figures. Every child
 * process is stopped and the chain closed however it ends; the work folder is removed unless
 * `keepWorkDir`.
 *
 * @example
 * const result = await runDemo({ shards: 2, rounds: 1 })
 * console.log(result.tables.capTable)
 */
/**
 * Shortest challenge (and so reveal) window: a seal and its reveal are some blocks apart, and the
 * local chain's blocks (the other trainers' transactions too) each move its clock by a second.
 */
const MIN_CHALLENGE_WINDOW = 10;

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const shards = options.shards ?? 2;
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(shards) || shards < 1 || shards > 4) throw new RangeError("shards must be 1 to 4");
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new RangeError("rounds must be 1 to 50");
  const spec = options.spec ?? demoSpec(shards, options.stepsPerRound ?? 20);
  if (spec.shards.length !== shards) throw new RangeError(`the spec has ${spec.shards.length} shards, not ${shards}`);
  const challengeWindow = options.challengeWindow ?? 10;
  if (!Number.isInteger(challengeWindow) || challengeWindow < MIN_CHALLENGE_WINDOW)
    throw new RangeError(`challengeWindow must be at least ${MIN_CHALLENGE_WINDOW} s (it bounds the reveal window)`);
  const print = options.log ?? ((line: string) => console.log(line));
  const signal = options.signal;
  const log = (stage: string, text: string) =>
    print(`[${STAGES.indexOf(stage) + 1}/${STAGES.length}] ${stage}: ${text}`);
  const timings: Record<string, number> = {};
  let stageStart = performance.now();
  const done = (stage: string) => {
    timings[stage] = Number(((performance.now() - stageStart) / 1000).toFixed(2));
    stageStart = performance.now();
  };

  const trainers: DemoParticipant[] = Array.from({ length: shards }, (_, s) => ({
    name: `trainer ${s}`,
    account: ACCOUNTS.firstTrainer + s,
    address: addressOf(ACCOUNTS.firstTrainer + s),
  }));
  const participant = (name: string, account: number): DemoParticipant => ({
    name,
    account,
    address: addressOf(account),
  });
  const verifier = participant("verifier", ACCOUNTS.verifier);
  const dapp = participant("dApp", ACCOUNTS.dapp);
  const newHolder = participant("new holder", ACCOUNTS.newHolder);

  const workDir = await mkdtemp(path.join(tmpdir(), "shard-demo-"));
  const group = new ProcessGroup(options.onProcess);
  const onAbort = () => void group.stopAll(1_000);
  signal?.addEventListener("abort", onAbort, { once: true });
  let chain: Awaited<ReturnType<typeof startChain>> | undefined;
  try {
    if (signal?.aborted) throw new DemoAbortedError();
    // 1. The chain.
    chain = await startChain();
    const { rpcUrl, chainId } = chain;
    log("chain", `Hardhat EDR JSON-RPC at ${rpcUrl} (chain ${chainId})`);
    done("chain");

    // 2. Deployment and 3. the model.
    const deployment = await deployDemo(chain, {
      spec,
      trainers: trainers.map((t) => t.account),
      verifier: verifier.account,
      dapp: dapp.account,
      // The registry bounds the reveal window by the challenge window.
      windows: { challengeWindow, disputeWindow: challengeWindow, revealWindow: challengeWindow },
      dir: workDir,
    });
    log("deploy", `registry ${deployment.addresses.registry}, token ${deployment.addresses.token}`);
    log(
      "deploy",
      `staking token STK ${shortAddress(deployment.stakingToken)}, currencies ${deployment.currencyA.symbol} ${shortAddress(deployment.currencyA.address)} and ${deployment.currencyB.symbol} ${shortAddress(deployment.currencyB.address)}`,
    );
    done("deploy");
    const { modelId } = deployment;
    log(
      "model",
      `model ${modelId} "${spec.name}": ${shards} shards (${spec.shards.join("+")} blocks), weights ${deployment.shardWeights.map(groupDigits).join(" / ")} parameters, ${spec.training.stepsPerRound} steps/round, spec ${deployment.specURI}`,
    );
    log(
      "model",
      `challenge window ${challengeWindow} s, 1 attestation per commit, ${groupDigits(deployment.params.workToTokenRate)} token wei per work unit`,
    );
    done("model");

    const client = (index: number) => sdkClient(rpcUrl, chainId, deployment.addresses, index, deployment.deployBlock);
    const nodeEnv = (account: number, shard: number): Record<string, string> => ({
      SHARD_NODE_PRIVATE_KEY: privateKeyOf(account),
      SHARD_NODE_RPC_URL: rpcUrl,
      SHARD_NODE_CHAIN_ID: String(chainId),
      SHARD_NODE_DEPLOYMENT: deployment.deploymentFile,
      SHARD_NODE_MODEL_ID: String(modelId),
      SHARD_NODE_SHARD: String(shard),
      SHARD_NODE_DATA_DIR: path.join(workDir, `node-${account}`),
      SHARD_NODE_BACKEND: "wasm",
    });

    // 4. Stake: each trainer with `shard-node stake` (also authorizes its key to sign commits,
    // with the key's consent). Each pending commit locks slashAmount of it until finalized, and
    // no round finalizes before training ends here: enough for every round, at least the minimum.
    const { minTrainerStake, slashAmount } = deployment.params;
    const trainerStake =
      BigInt(rounds) * slashAmount > minTrainerStake ? BigInt(rounds) * slashAmount : minTrainerStake;
    await Promise.all(
      trainers.map(async (t, s) => {
        await group.run({
          label: `${t.name} stake`,
          args: ["stake", String(trainerStake / 10n ** 18n)],
          cwd: workDir,
          env: nodeEnv(t.account, s),
        });
        log(
          "stake",
          `${t.name} ${shortAddress(t.address)} staked ${trainerStake / 10n ** 18n} STK for shard ${s} (${slashAmount / 10n ** 18n} locked per pending commit)`,
        );
      }),
    );
    done("stake");

    // 5. Training: one `shard-node train` process per shard, the last one first (it listens).
    const evalLoss: number[] = [];
    await runTraining({ group, trainers, spec, rounds, workDir, nodeEnv, log, signal, evalLoss });
    done("training");

    // 6. Verification. The shards' serve processes start first, on the trainers' data folders and
    // the checkpoints of their last round: they serve the checkpoints and transcripts to the
    // verifier (IPFS bitswap) and, once finalized, the model for inference.
    const pricePerUnit = parseUnits("0.001", deployment.currencyA.decimals); // per generated character
    const prompts = PROMPTS.slice(0, 3);
    const servers = await startServers({
      group,
      trainers,
      modelId,
      workDir,
      nodeEnv,
      log,
      currency: deployment.currencyA.address,
      price: "0.001",
      settleBatch: prompts.length,
    });
    const { minted, workUnits } = await runVerifier({
      group,
      verifier,
      deployment,
      rounds,
      shards,
      workDir,
      env: nodeEnv(verifier.account, 0),
      contentPeers: servers.map((x) => x.multiaddr),
      log,
      reader: client(0),
    });
    done("verification");

    // 7. A transfer: trainer 0 sends a quarter of its shard-0 tokens to a new holder.
    const token = deployment.addresses.token;
    const id0 = toTokenId({ modelId, shard: 0 });
    const trainer0 = client(trainers[0]!.account);
    const balance0 = await trainer0.readContract({
      address: token,
      abi: shardTokenAbi,
      functionName: "balanceOf",
      args: [trainers[0]!.address, id0],
    });
    const amount = balance0 / 4n;
    const hash = await trainer0.writeContract({
      address: token,
      abi: shardTokenAbi,
      functionName: "safeTransferFrom",
      args: [trainers[0]!.address, newHolder.address, id0, amount, "0x"],
    });
    await trainer0.waitForTransactionReceipt({ hash });
    log(
      "transfer",
      `${trainers[0]!.name} sent ${groupDigits(amount)} of ${groupDigits(balance0)} shard-0 tokens to the ${newHolder.name} ${shortAddress(newHolder.address)} (ERC-1155 safeTransferFrom)`,
    );
    done("transfer");

    // 8. Revenue: escrow in currency A and paid requests through shard 0's gateway (receipts
    // settled in a batch), and a direct payment in currency B.
    const dappClient = client(dapp.account);
    const { generated, revenue } = await inferThroughGateway({
      dappClient,
      deployment,
      gateway: servers[0]!,
      prompts,
      pricePerUnit,
      log,
    });
    await Promise.all(servers.map((x) => x.process.stop(10_000)));
    log("inference", "serve processes stopped");
    revenue.directB = parseEther("3");
    await dappClient.pay({ modelId, currency: deployment.currencyB.address, amount: revenue.directB });
    log(
      "inference",
      `dApp paid ${formatAmount(revenue.directB, deployment.currencyB.decimals, deployment.currencyB.symbol)} directly (SDK pay)`,
    );
    revenue.distributions = await readDistributions(dappClient, deployment);
    done("inference");

    // 9. Claims: trainers with `shard-node claim`, the new holder with the SDK.
    const claimed: DemoResult["claimed"] = {};
    const currencies = [deployment.currencyA, deployment.currencyB];
    for (const t of trainers) {
      const r = await group.run<{ claims: { token: { address: Address }; amount: string }[] }>({
        label: `${t.name} claim`,
        args: ["claim"],
        cwd: workDir,
        env: nodeEnv(t.account, 0),
      });
      claimed[t.address] = Object.fromEntries(currencies.map((c) => [c.address, 0n]));
      for (const c of r.claims) claimed[t.address]![getAddress(c.token.address)] = BigInt(c.amount);
      log("claims", `${t.name} claimed with shard-node claim: ${describeClaims(claimed[t.address]!, currencies)}`);
    }
    const holderClaim = await client(newHolder.account).claim({ modelId });
    claimed[newHolder.address] = Object.fromEntries(
      currencies.map((c) => [c.address, holderClaim.byCurrency[c.address] ?? 0n]),
    );
    log("claims", `${newHolder.name} claimed with the SDK: ${describeClaims(claimed[newHolder.address]!, currencies)}`);
    done("claims");

    // The tables: the cap table from the SDK (built from the token's transfer events), checked
    // against the token's balances on-chain.
    const reader = client(0);
    const holders = [...trainers, newHolder];
    const table = await reader.getCapTable({ modelId, confirmations: 0 });
    const supplies = table.shards.map((x) => x.supply);
    const balances: DemoResult["balances"] = {};
    const shareWad = new Map(table.revenueShares.map((x) => [getAddress(x.holder), x.shareWad]));
    for (const h of holders) {
      balances[h.address] = table.shards.map(
        (x) => x.holders.find((y) => getAddress(y.holder) === h.address)?.balance ?? 0n,
      );
      for (const [shard, balance] of balances[h.address]!.entries()) {
        const onChain = await reader.readContract({
          address: token,
          abi: shardTokenAbi,
          functionName: "balanceOf",
          args: [h.address, toTokenId({ modelId, shard })],
        });
        if (onChain !== balance)
          throw new Error(`cap table says ${balance} for ${h.name} on shard ${shard}, the token says ${onChain}`);
      }
    }
    const capTable = renderTable(
      ["holder", "address", ...Array.from({ length: shards }, (_, s) => `shard ${s} tokens`), "share of revenue"],
      [
        ...holders.map((h) => [
          h.name,
          shortAddress(h.address),
          ...balances[h.address]!.map((b, s) => `${groupDigits(b)} (${formatPercent(b, supplies[s]!)})`),
          formatPercent(shareWad.get(h.address) ?? 0n, 10n ** 18n),
        ]),
        ["total", "", ...supplies.map((s) => `${groupDigits(s)} (100.00 %)`), "100.00 %"],
      ],
      ["left", "left", ...supplies.map(() => "right" as const), "right"],
    );
    const paidIn = [revenue.settledA, revenue.directB];
    const revenueTable = renderTable(
      ["holder", ...currencies.map((c) => `claimed ${c.symbol}`)],
      [
        ...holders.map((h) => [
          h.name,
          ...currencies.map((c) => formatAmount(claimed[h.address]![c.address] ?? 0n, c.decimals, c.symbol)),
        ]),
        ["paid in", ...currencies.map((c, i) => formatAmount(paidIn[i]!, c.decimals, c.symbol))],
        [
          "dust (unclaimable)",
          ...currencies.map((c, i) =>
            formatAmount(
              paidIn[i]! - holders.reduce((sum, h) => sum + (claimed[h.address]![c.address] ?? 0n), 0n),
              c.decimals,
              c.symbol,
            ),
          ),
        ],
      ],
      ["left", ...currencies.map(() => "right" as const)],
    );
    return {
      modelId,
      spec,
      deployment,
      trainers,
      verifier,
      dapp,
      newHolder,
      evalLoss,
      minted,
      workUnits,
      transfer: { from: trainers[0]!.address, to: newHolder.address, tokenId: id0, amount },
      revenue,
      generated,
      balances,
      supplies,
      claimed,
      tables: { capTable, revenue: revenueTable },
      timings,
    };
  } catch (err) {
    if (signal?.aborted) throw new DemoAbortedError();
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await group.stopAll();
    await chain?.close();
    if (options.keepWorkDir) print(`work folder kept: ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}

function describeClaims(
  amounts: Record<Address, bigint>,
  currencies: { address: Address; symbol: string; decimals: number }[],
): string {
  return currencies.map((c) => formatAmount(amounts[c.address] ?? 0n, c.decimals, c.symbol)).join(", ");
}

interface TrainingContext {
  group: ProcessGroup;
  trainers: DemoParticipant[];
  spec: ModelSpec;
  rounds: number;
  workDir: string;
  nodeEnv: (account: number, shard: number) => Record<string, string>;
  log: (stage: string, text: string) => void;
  signal: AbortSignal | undefined;
  evalLoss: number[];
}

/**
 * Starts one `shard-node train --json` process per shard (the last shard first: it listens, the
 * one before dials it), shows their progress, and waits for all of them to finish `rounds` rounds.
 */
async function runTraining(ctx: TrainingContext): Promise<NodeProcess[]> {
  const { group, trainers, spec, rounds, workDir, log } = ctx;
  const shards = trainers.length;
  const steps = spec.training.stepsPerRound;
  const everyStep = Math.max(1, Math.round(steps / 2));
  const processes: NodeProcess[] = new Array(shards);
  let nextAddr: string | undefined;
  const t0 = performance.now();
  for (let s = shards - 1; s >= 0; s--) {
    const last = s === shards - 1;
    const onEvent = (e: NodeEvent) => {
      if (last && e.event === "step" && ((e.step + 1) % everyStep === 0 || e.step + 1 === steps))
        log(
          "training",
          `round ${e.round}/${rounds} · step ${e.step + 1}/${steps} · shard ${s} loss ${typeof e.loss === "number" ? e.loss.toFixed(3) : "–"} · ${Number(e.samplesPerSecond).toFixed(1)} samples/s`,
        );
      if (last && e.event === "round") {
        const loss = e.outcome?.evalLoss as number | undefined;
        if (typeof loss === "number") ctx.evalLoss[e.round - 1] = loss;
        log(
          "training",
          `round ${e.round}/${rounds} decided by all ${shards} shards${typeof loss === "number" ? ` · held-out loss ${loss.toFixed(4)}` : ""} · ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      }
      if (e.event === "commit" && e.phase === "done")
        log(
          "training",
          `shard ${s} round ${e.round}: sealed and revealed on-chain (commit ${String(e.commitId).slice(0, 10)}…)`,
        );
      if (e.event === "retry") log("training", `shard ${s} round ${e.round}: ${e.reason}; retrying`);
    };
    const args = [
      "train",
      "--spec",
      path.join(workDir, "spec.json"),
      "--rounds",
      String(rounds),
      "--peer-timeout",
      "60",
    ];
    args.push("--listen", "/ip4/127.0.0.1/tcp/0");
    if (nextAddr) args.push("--peer-next", nextAddr);
    const p = group.start({
      label: `trainer ${s}`,
      args,
      cwd: workDir,
      env: ctx.nodeEnv(trainers[s]!.account, s),
      onEvent,
    });
    processes[s] = p;
    const listening = await p.waitFor((e) => e.event === "listening");
    nextAddr = (listening.multiaddrs as string[])[0];
    log(
      "training",
      `${trainers[s]!.name} (shard ${s}) started: pid ${p.child.pid}, backend ${listening.backend}, ${nextAddr}`,
    );
  }
  await Promise.all(processes.map((p) => p.result()));
  log(
    "training",
    `${rounds} round(s) trained and committed by ${shards} processes in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return processes;
}

/** Every checkpoint revealed for the model, from the ledger's `CheckpointRevealed` events. */
async function readRevealed(client: SdkClient, deployment: DemoDeployment, modelId: bigint): Promise<Checkpoint[]> {
  const logs = await client.getContractEvents({
    address: deployment.addresses.ledger,
    abi: contributionLedgerAbi,
    eventName: "CheckpointRevealed",
    args: { modelId },
    fromBlock: deployment.deployBlock,
    toBlock: "latest",
  });
  return logs.map((l) => l.args.checkpoint as Checkpoint);
}

async function commitIdOf(client: SdkClient, deployment: DemoDeployment, cp: Checkpoint): Promise<Hex> {
  return client.readContract({
    address: deployment.addresses.ledger,
    abi: contributionLedgerAbi,
    functionName: "commitIdOf",
    args: [cp.modelId, cp.shard, cp.round, cp.lane],
  });
}

/**
 * The dApp's escrow deposit in currency A, bound to the gateway: the quote names its payee (the
 * account that settles), and only that payee can draw on the escrow.
 */
async function deposit(
  d: SdkClient,
  deployment: DemoDeployment,
  gatewayUrl: string,
  log: (stage: string, text: string) => void,
): Promise<bigint> {
  const a = deployment.currencyA;
  const amount = parseUnits("5", a.decimals);
  const { payee } = await getInferenceQuote({ gatewayUrl });
  await d.depositEscrow({ currency: a.address, payee, amount });
  log(
    "inference",
    `dApp ${shortAddress(d.account.address)} deposited ${formatAmount(amount, a.decimals, a.symbol)} into escrow with the gateway ${shortAddress(payee)} (SDK depositEscrow)`,
  );
  return amount;
}

/** Every `ModelRevenueDistributed` of the model, in order. */
async function readDistributions(
  client: SdkClient,
  deployment: DemoDeployment,
): Promise<DemoResult["revenue"]["distributions"]> {
  const events = await client.getContractEvents({
    address: deployment.addresses.token,
    abi: shardTokenAbi,
    eventName: "ModelRevenueDistributed",
    args: { modelId: deployment.modelId },
    fromBlock: deployment.deployBlock,
    toBlock: "latest",
  });
  return events.map((e) => ({ currency: getAddress(e.args.currency!), amount: e.args.amount! }));
}

/** Prompts the dApp sends (characters of the model's vocabulary). */
const PROMPTS = ["Call me Ishmael. ", "The whale ", "It was the sea that "];

/** A running `shard-node serve` of one shard. */
interface ServeNode {
  shard: number;
  process: NodeProcess;
  /** Its libp2p address (with peer id): where shard − 1 forwards and where the verifier fetches content. */
  multiaddr: string;
  /** Shard 0's paying gateway. */
  gatewayUrl: string | null;
}

/** The checkpoint file of the last decided round in a trainer's journal. */
async function headCheckpoint(dataDir: string, modelId: bigint, shard: number): Promise<string> {
  const dir = path.join(dataDir, `${modelId}-${shard}-0`);
  const journal = zJournal.parse(JSON.parse(await readFile(path.join(dir, "journal.json"), "utf8")));
  const head = journal.rounds.at(-1);
  if (!head) throw new Error(`trainer of shard ${shard} has no round in its journal (${dir})`);
  return path.join(dir, head.checkpointFile);
}

/**
 * Starts `shard-node serve` for every shard (the last first: shard s forwards to shard s + 1), each
 * on its trainer's data folder and the checkpoint of the last round; shard 0 also starts the paying
 * gateway (receipts in `currency` at `price` per character, settled once `settleBatch` are pending).
 */
async function startServers(ctx: {
  group: ProcessGroup;
  trainers: DemoParticipant[];
  modelId: bigint;
  workDir: string;
  nodeEnv: (account: number, shard: number) => Record<string, string>;
  log: (stage: string, text: string) => void;
  currency: Address;
  price: string;
  settleBatch: number;
}): Promise<ServeNode[]> {
  const { group, trainers, modelId, workDir, log } = ctx;
  const servers: ServeNode[] = [];
  let next: string | undefined;
  for (let s = trainers.length - 1; s >= 0; s--) {
    const env = ctx.nodeEnv(trainers[s]!.account, s);
    const checkpoint = await headCheckpoint(env.SHARD_NODE_DATA_DIR!, modelId, s);
    const args = ["serve", "--spec", path.join(workDir, "spec.json"), "--checkpoint", checkpoint];
    args.push("--listen", "/ip4/127.0.0.1/tcp/0");
    if (next) args.push("--peer-next", next);
    if (s === 0)
      args.push(
        ...["--currency", ctx.currency, "--price", ctx.price, "--gateway-port", "0"],
        ...["--settle-batch", String(ctx.settleBatch), "--settle-interval", "5"],
      );
    const onEvent = (e: NodeEvent) => {
      if (e.event === "gateway.served")
        log(
          "inference",
          `gateway served ${e.tokens} characters to ${shortAddress(e.payer)} (receipt nonce …${String(e.nonce).slice(-6)})`,
        );
      if (e.event === "gateway.settled")
        log(
          "inference",
          `gateway settled ${e.settled} receipt(s) in one batch (${e.skipped} skipped, ${e.deferred} kept to retry), tx ${String(e.tx).slice(0, 10)}…`,
        );
      if (e.event === "gateway.settle-failed") log("inference", `gateway settlement failed: ${e.error} ${e.message}`);
    };
    const p = group.start({ label: `serve shard ${s}`, args, cwd: workDir, env, onEvent });
    const listening = await p.waitFor((e) => e.event === "listening");
    next = (listening.multiaddrs as string[])[0]!;
    servers.unshift({
      shard: s,
      process: p,
      multiaddr: next,
      gatewayUrl: (listening.gatewayUrl as string | null) ?? null,
    });
    log(
      "verification",
      `serve shard ${s} started (pid ${p.child.pid}) with round ${listening.round ?? "?"} weights${s === 0 ? `, paying gateway at ${listening.gatewayUrl}` : ""}`,
    );
  }
  if (servers.length > 1) await servers[0]!.process.waitFor((e) => e.event === "connected");
  return servers;
}

/**
 * Stakes the verifier (`shard-node stake --role verifier`) and runs `shard-node verify` until every
 * commit up to `rounds` is finalized (or rejected): it replays every round (`--sample 1`), attests
 * and finalizes. Returns what was minted per shard and round, read back from the ledger's events.
 */
async function runVerifier(ctx: {
  group: ProcessGroup;
  verifier: DemoParticipant;
  deployment: DemoDeployment;
  rounds: number;
  shards: number;
  workDir: string;
  env: Record<string, string>;
  contentPeers: string[];
  log: (stage: string, text: string) => void;
  reader: SdkClient;
}): Promise<{ minted: bigint[][]; workUnits: bigint[][] }> {
  const { group, verifier, deployment, rounds, shards, workDir, env, log } = ctx;
  const amount = deployment.params.minVerifierStake / 10n ** 18n;
  await group.run({
    label: "verifier stake",
    args: ["stake", String(amount), "--role", "verifier"],
    cwd: workDir,
    env,
  });
  log(
    "verification",
    `${verifier.name} ${shortAddress(verifier.address)} staked ${amount} STK (shard-node stake --role verifier)`,
  );
  const byCommit = new Map<string, string>();
  for (const cp of await readRevealed(ctx.reader, deployment, deployment.modelId))
    byCommit.set(await commitIdOf(ctx.reader, deployment, cp), `shard ${cp.shard} round ${cp.round}`);
  const args = ["verify", "--spec", path.join(workDir, "spec.json"), "--sample", "1", "--poll", "1"];
  args.push("--until-round", String(rounds), "--fetch-timeout", "30", "--listen", "/ip4/127.0.0.1/tcp/0");
  if (ctx.contentPeers.length > 0) args.push("--ipfs-peer", ...ctx.contentPeers);
  const p = group.start({
    label: "verifier",
    args,
    cwd: workDir,
    env,
    onEvent: (e) => {
      const which = (id: string) => byCommit.get(id) ?? `${id.slice(0, 10)}…`;
      if (e.event === "replayed")
        log(
          "verification",
          `verifier replayed round ${e.round} in ${Number(e.seconds).toFixed(1)} s (+ ${Number(e.fetchSeconds).toFixed(1)} s fetching from IPFS)`,
        );
      if (e.event === "verdict")
        log(
          "verification",
          `  shard ${e.verdict.shard}: ${e.verdict.valid ? "valid" : `INVALID (${e.verdict.reason})`}`,
        );
      if (e.event === "attested") log("verification", `verifier attested ${which(e.commitId)}`);
      if (e.event === "challenged") log("verification", `verifier CHALLENGED ${which(e.commitId)} (${e.finding})`);
      if (e.event === "finalized")
        log("verification", `${which(e.commitId)} finalized: ${groupDigits(BigInt(e.minted))} tokens minted`);
      if (e.event === "unverifiable") log("verification", `round ${e.round} not verifiable yet: ${e.detail}`);
      if (e.event === "refused") log("verification", `${e.action} refused by the ledger: ${e.error}`);
    },
  });
  log("verification", `shard-node verify started (pid ${p.child.pid}), replaying every round`);
  const result = await p.result<{ finalized: number; challenged: number }>();
  if (result.challenged > 0) throw new Error(`the verifier challenged ${result.challenged} honest commit(s)`);
  // What was minted, from the ledger.
  const checkpoints = await readRevealed(ctx.reader, deployment, deployment.modelId);
  const finalized = await ctx.reader.getContractEvents({
    address: deployment.addresses.ledger,
    abi: contributionLedgerAbi,
    eventName: "CheckpointFinalized",
    args: { modelId: deployment.modelId },
    fromBlock: deployment.deployBlock,
    toBlock: "latest",
  });
  const mintedBy = new Map(finalized.map((e) => [e.args.commitId!, e.args.amount!]));
  const minted: bigint[][] = Array.from({ length: shards }, () => []);
  const workUnits: bigint[][] = Array.from({ length: shards }, () => []);
  for (const cp of checkpoints) {
    const id = await commitIdOf(ctx.reader, deployment, cp);
    const m = mintedBy.get(id);
    if (m === undefined) throw new Error(`shard ${cp.shard} round ${cp.round} was not finalized`);
    minted[cp.shard]![Number(cp.round) - 1] = m;
    workUnits[cp.shard]![Number(cp.round) - 1] = cp.workUnits;
  }
  log("verification", `${result.finalized} commits finalized by shard-node verify`);
  return { minted, workUnits };
}

/**
 * The dApp pays for inference: escrow in currency A, then one `requestInference` per prompt
 * through shard 0's gateway (quote checked, receipt signed, text back); the gateway settles the
 * receipts in a batch once all are pending.
 */
async function inferThroughGateway(ctx: {
  dappClient: SdkClient;
  deployment: DemoDeployment;
  gateway: ServeNode;
  prompts: string[];
  pricePerUnit: bigint;
  log: (stage: string, text: string) => void;
}): Promise<{ generated: DemoResult["generated"]; revenue: DemoResult["revenue"] }> {
  const { dappClient: d, deployment, gateway, log } = ctx;
  const a = deployment.currencyA;
  const escrowDeposit = await deposit(d, deployment, gateway.gatewayUrl!, log);
  const generated: DemoResult["generated"] = [];
  const receipts: DemoResult["revenue"]["receipts"] = [];
  const lengths = [48, 64, 40];
  for (const [i, prompt] of ctx.prompts.entries()) {
    const r = await d.requestInference({
      gatewayUrl: gateway.gatewayUrl!,
      prompt,
      maxTokens: lengths[i % lengths.length]!,
      temperature: 0.8,
      seed: i + 1,
      modelId: deployment.modelId,
      maxPricePerUnit: ctx.pricePerUnit,
    });
    generated.push({ prompt, text: r.text });
    receipts.push({ units: r.charged.units, pricePerUnit: r.receipt.pricePerUnit, amount: r.charged.amount });
    log(
      "inference",
      `requestInference ${JSON.stringify(prompt)} → ${JSON.stringify(r.text)} (${r.tokens} characters, ${formatAmount(r.charged.amount, a.decimals, a.symbol)})`,
    );
  }
  // The gateway settles once the batch is full (or on its interval).
  let settled = 0;
  const events = () => gateway.process.events.filter((e) => e.event === "gateway.settled");
  for (let i = 0; i < 300 && (settled = events().reduce((n, e) => n + Number(e.settled), 0)) < receipts.length; i++)
    await sleep(100);
  if (settled < receipts.length) throw new Error(`the gateway settled ${settled} of ${receipts.length} receipts`);
  const settledA = (await readDistributions(d, deployment))
    .filter((x) => x.currency === a.address)
    .reduce((sum, x) => sum + x.amount, 0n);
  return { generated, revenue: { escrowDeposit, receipts, settledA, directB: 0n, distributions: [] } };
}

/** Integer setting from the environment, with a default and bounds. */
function envInt(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  return value;
}

const HELP = `npm run demo: the whole protocol on this machine (a local chain, S trainer processes, a verifier,
a dApp paying for inference, holders claiming), ending with a cap table and a revenue table.

Settings (environment):
  DEMO_SHARDS=2            shards, one trainer process each (1-4)
  DEMO_ROUNDS=3            training rounds
  DEMO_STEPS=20            steps per round
  DEMO_CHALLENGE_WINDOW=10 seconds a commit can be challenged before it finalizes (10 or more)
  DEMO_KEEP=1              keep the work folder (checkpoints, journals)
`;

async function main(): Promise<void> {
  if (process.env.DEMO_HELP === "1") {
    console.log(HELP);
    return;
  }
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    console.log(`\n${sig}: stopping every process of the demo (again to quit at once)…`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const t0 = performance.now();
  try {
    console.log(
      "Shard protocol demo: a local chain, trainers, a verifier, a dApp and holders (DEMO_HELP=1 for settings)\n",
    );
    const r = await runDemo({
      shards: envInt("DEMO_SHARDS", 2, 1, 4),
      rounds: envInt("DEMO_ROUNDS", 3, 1, 50),
      stepsPerRound: envInt("DEMO_STEPS", 20, 1, 1000),
      challengeWindow: envInt("DEMO_CHALLENGE_WINDOW", 10, MIN_CHALLENGE_WINDOW, 3600),
      keepWorkDir: process.env.DEMO_KEEP === "1",
      signal: controller.signal,
    });
    console.log(`\nCap table of model ${r.modelId} (shard tokens; revenue splits by shard weight, then pro rata)\n`);
    console.log(r.tables.capTable);
    console.log(`\nRevenue claimed\n`);
    console.log(r.tables.revenue);
    if (r.generated.length > 0) {
      console.log(`\nGenerated text\n`);
      for (const g of r.generated) console.log(`  ${JSON.stringify(g.prompt)} → ${JSON.stringify(g.text)}`);
    }
    console.log(
      `\nDone in ${((performance.now() - t0) / 1000).toFixed(1)} s (${Object.entries(r.timings)
        .map(([k, v]) => `${k} ${v} s`)
        .join(", ")}).`,
    );
  } catch (err) {
    if (err instanceof DemoAbortedError) {
      console.error("interrupted; every process of the demo was stopped");
      process.exitCode = 130;
      return;
    }
    // A child's failure is explained by its own report (in the message); anything else by its stack.
    const text =
      err instanceof NodeProcessError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`demo failed: ${text}`);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// Run by `hardhat run scripts/demo.ts` (not when a test imports `runDemo`).
if (process.argv.some((a) => a.endsWith(path.join("scripts", "demo.ts")))) await main();
