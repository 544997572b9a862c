/**
 * `npm run demo`: the whole protocol on this machine, in one command. A local chain (Hardhat's EDR
 * behind a real JSON-RPC endpoint), the protocol deployed, a model registered, S trainers staking
 * and training their shards as separate `shard-node train` processes over libp2p for R rounds,
 * verification and finalization (shard tokens minted for the verified work), a token transfer,
 * revenue from a dApp (escrow + signed usage receipts settled in a batch, and a direct payment in
 * a second currency), claims, and the cap table and revenue table at the end.
 *
 * Settings (environment): DEMO_SHARDS (2, or 3), DEMO_ROUNDS (3), DEMO_STEPS (steps per round,
 * 10), DEMO_CHALLENGE_WINDOW (seconds, 6), DEMO_KEEP=1 (keep the work folder). `--help` prints them.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { type Address, type Hex, getAddress, parseEther, parseUnits } from "viem";
import {
  type Checkpoint,
  contributionLedgerAbi,
  ContractRevertError,
  shardTokenAbi,
  toTokenId,
  type SignedUsageReceipt,
} from "shard-protocol/sdk";

import { defaultSpec, type ModelSpec, zModelSpec } from "../node/src/ml/spec.js";
import { addressOf, deployDemo, type DemoDeployment, privateKeyOf, startChain } from "./lib/demo/chain.js";
import { sdkClient, type SdkClient, shortAddress } from "./lib/demo/clients.js";
import { type NodeEvent, type NodeProcess, ProcessGroup } from "./lib/demo/process.js";
import { formatAmount, formatPercent, groupDigits, renderTable } from "./lib/demo/tables.js";

/** What `runDemo` runs. Every field has a default that fits a 2-core machine in a few minutes. */
export interface DemoOptions {
  /** Shards, one trainer process each (default 2; 1–4). */
  shards?: number | undefined;
  /** Training rounds (default 3). */
  rounds?: number | undefined;
  /** Steps per round of the default spec (default 10). Ignored when `spec` is given. */
  stepsPerRound?: number | undefined;
  /** The model spec (default: `defaultSpec` split into `shards` stages with `stepsPerRound`). */
  spec?: ModelSpec | undefined;
  /** Challenge window in seconds (default 6): finalization waits for it after each reveal. */
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
  /** Steps the run made through an interim path (a missing component), named for the report. */
  interim: string[];
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
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const shards = options.shards ?? 2;
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(shards) || shards < 1 || shards > 4) throw new RangeError("shards must be 1 to 4");
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new RangeError("rounds must be 1 to 50");
  const spec = options.spec ?? demoSpec(shards, options.stepsPerRound ?? 10);
  if (spec.shards.length !== shards) throw new RangeError(`the spec has ${spec.shards.length} shards, not ${shards}`);
  const challengeWindow = options.challengeWindow ?? 6;
  const print = options.log ?? ((line: string) => console.log(line));
  const signal = options.signal;
  const log = (stage: string, text: string) =>
    print(`[${STAGES.indexOf(stage) + 1}/${STAGES.length}] ${stage}: ${text}`);
  const timings: Record<string, number> = {};
  const interim: string[] = [];
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
      windows: { challengeWindow, disputeWindow: challengeWindow, revealWindow: 120 },
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

    // 4. Stake: each trainer with `shard-node stake` (also authorizes its key to sign commits).
    const minStake = deployment.params.minTrainerStake;
    await Promise.all(
      trainers.map(async (t, s) => {
        await group.run({
          label: `${t.name} stake`,
          args: ["stake", String(minStake / 10n ** 18n)],
          cwd: workDir,
          env: nodeEnv(t.account, s),
        });
        log("stake", `${t.name} ${shortAddress(t.address)} staked ${minStake / 10n ** 18n} STK for shard ${s}`);
      }),
    );
    done("stake");

    // 5. Training: one `shard-node train` process per shard, the last one first (it listens).
    const evalLoss: number[] = [];
    const train = await runTraining({ group, trainers, spec, rounds, workDir, nodeEnv, log, signal, evalLoss });
    done("training");

    // 6. Verification and finalization.
    const checkpoints = await readRevealed(client(0), deployment, modelId);
    interim.push(
      "verification: `shard-node verify` is not in the CLI yet; the demo attests and finalizes through the SDK",
    );
    const { minted, workUnits } = await verifyInterim({
      verifierClient: client(verifier.account),
      deployment,
      checkpoints,
      shards,
      rounds,
      log,
      signal,
    });
    done("verification");
    void train;

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

    // 8. Revenue: escrow + signed usage receipts in currency A, settled in a batch; a direct payment in B.
    const revenue = await payInterim({ dappClient: client(dapp.account), gatewayClient: trainer0, deployment, log });
    interim.push(
      "inference: `shard-node serve` and the paying gateway are not in the CLI yet; the dApp signs receipts with the SDK and trainer 0 settles them with the SDK, no text is generated",
    );
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

    // The tables.
    const reader = client(0);
    const holders = [...trainers, newHolder];
    const supplies: bigint[] = [];
    const balances: DemoResult["balances"] = Object.fromEntries(holders.map((h) => [h.address, [] as bigint[]]));
    for (let s = 0; s < shards; s++) {
      const id = toTokenId({ modelId, shard: s });
      supplies.push(
        await reader.readContract({ address: token, abi: shardTokenAbi, functionName: "totalSupply", args: [id] }),
      );
      for (const h of holders)
        balances[h.address]!.push(
          await reader.readContract({
            address: token,
            abi: shardTokenAbi,
            functionName: "balanceOf",
            args: [h.address, id],
          }),
        );
    }
    const capTable = renderTable(
      ["holder", "address", ...Array.from({ length: shards }, (_, s) => `shard ${s} tokens`), "share of revenue"],
      [
        ...holders.map((h) => [
          h.name,
          shortAddress(h.address),
          ...balances[h.address]!.map((b, s) => `${groupDigits(b)} (${formatPercent(b, supplies[s]!)})`),
          formatPercent(revenueShareWad(balances[h.address]!, supplies, deployment.shardWeights), 10n ** 18n),
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
      generated: [],
      balances,
      supplies,
      claimed,
      tables: { capTable, revenue: revenueTable },
      timings,
      interim,
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

/** A holder's share of the model's revenue in wad: Σ_s weight_s / Σ weights × balance_s / supply_s. */
function revenueShareWad(balances: bigint[], supplies: bigint[], weights: bigint[]): bigint {
  const total = weights.reduce((a, b) => a + b, 0n);
  let share = 0n;
  for (let s = 0; s < balances.length; s++)
    if (supplies[s]! > 0n) share += (balances[s]! * weights[s]! * 10n ** 18n) / (supplies[s]! * total);
  return share;
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

interface VerifyContext {
  verifierClient: SdkClient;
  deployment: DemoDeployment;
  checkpoints: Checkpoint[];
  shards: number;
  rounds: number;
  log: (stage: string, text: string) => void;
  signal: AbortSignal | undefined;
}

/**
 * INTERIM (until `shard-node verify` lands): the verifier stakes, attests every revealed commit and
 * finalizes them round by round once their challenge windows close, through the SDK.
 */
async function verifyInterim(ctx: VerifyContext): Promise<{ minted: bigint[][]; workUnits: bigint[][] }> {
  const { verifierClient: v, deployment, checkpoints, shards, rounds, log } = ctx;
  const modelId = deployment.modelId;
  await v.stake({ modelId, role: "verifier", amount: deployment.params.minVerifierStake });
  log(
    "verification",
    `verifier ${shortAddress(v.account.address)} staked ${deployment.params.minVerifierStake / 10n ** 18n} STK (interim: SDK, not shard-node verify)`,
  );
  const minted: bigint[][] = Array.from({ length: shards }, () => []);
  const workUnits: bigint[][] = Array.from({ length: shards }, () => []);
  const byKey = new Map(checkpoints.map((c) => [`${c.shard}/${c.round}`, c]));
  for (let round = 1; round <= rounds; round++)
    for (let shard = 0; shard < shards; shard++) {
      const cp = byKey.get(`${shard}/${round}`);
      if (!cp) throw new Error(`no revealed checkpoint for shard ${shard} round ${round}`);
      await v.attest({ commitId: await commitIdOf(v, deployment, cp) });
    }
  log("verification", `attested ${checkpoints.length} commits`);
  for (let round = 1; round <= rounds; round++)
    for (let shard = 0; shard < shards; shard++) {
      const cp = byKey.get(`${shard}/${round}`)!;
      for (;;) {
        try {
          const r = await v.finalize({ checkpoint: cp });
          minted[shard]![round - 1] = r.minted;
          workUnits[shard]![round - 1] = cp.workUnits;
          log(
            "verification",
            `shard ${shard} round ${round} finalized: ${groupDigits(r.minted)} tokens minted to ${shortAddress(cp.owner)} for ${groupDigits(cp.workUnits)} work units`,
          );
          break;
        } catch (err) {
          if (err instanceof ContractRevertError && err.errorName === "ChallengeWindowOpen") {
            await sleep(500, ctx.signal);
            continue;
          }
          throw err;
        }
      }
    }
  return { minted, workUnits };
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
 * INTERIM (until `shard-node serve` and the gateway land): the dApp deposits escrow in currency A and
 * signs usage receipts; the gateway's operator (trainer 0) settles them in one batch; the dApp pays
 * directly in currency B.
 */
async function payInterim(ctx: {
  dappClient: SdkClient;
  gatewayClient: SdkClient;
  deployment: DemoDeployment;
  log: (stage: string, text: string) => void;
}): Promise<DemoResult["revenue"]> {
  const { dappClient: d, gatewayClient: g, deployment, log } = ctx;
  const { modelId, currencyA: a, currencyB: b } = deployment;
  const escrowDeposit = parseUnits("5", a.decimals);
  await d.depositEscrow({ currency: a.address, amount: escrowDeposit });
  log(
    "inference",
    `dApp ${shortAddress(d.account.address)} deposited ${formatAmount(escrowDeposit, a.decimals, a.symbol)} into escrow`,
  );
  const pricePerUnit = parseUnits("0.001", a.decimals); // per generated token
  const requests = [48n, 64n, 37n];
  const signed: SignedUsageReceipt[] = [];
  for (const units of requests)
    signed.push(await d.signUsageReceipt({ modelId, currency: a.address, units, pricePerUnit }));
  log(
    "inference",
    `dApp signed ${signed.length} usage receipts (${requests.join(", ")} tokens at ${formatAmount(pricePerUnit, a.decimals, a.symbol)} each)`,
  );
  const settled = await g.settleReceipts({ receipts: signed });
  log(
    "inference",
    `settled ${settled.settled.length} receipts in one batch: ${formatAmount(settled.total, a.decimals, a.symbol)}`,
  );
  const directB = parseEther("3");
  await d.pay({ modelId, currency: b.address, amount: directB });
  log("inference", `dApp paid ${formatAmount(directB, b.decimals, b.symbol)} directly`);
  const events = await d.getContractEvents({
    address: deployment.addresses.token,
    abi: shardTokenAbi,
    eventName: "ModelRevenueDistributed",
    args: { modelId },
    fromBlock: deployment.deployBlock,
    toBlock: "latest",
  });
  return {
    escrowDeposit,
    receipts: requests.map((units) => ({ units, pricePerUnit, amount: units * pricePerUnit })),
    settledA: settled.total,
    directB,
    distributions: events.map((e) => ({ currency: getAddress(e.args.currency!), amount: e.args.amount! })),
  };
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
  DEMO_STEPS=10            steps per round
  DEMO_CHALLENGE_WINDOW=6  seconds a commit can be challenged before it finalizes
  DEMO_KEEP=1              keep the work folder (checkpoints, journals)
`;

async function main(): Promise<void> {
  if (process.argv.includes("--help") || process.env.DEMO_HELP === "1") {
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
    const r = await runDemo({
      shards: envInt("DEMO_SHARDS", 2, 1, 4),
      rounds: envInt("DEMO_ROUNDS", 3, 1, 50),
      stepsPerRound: envInt("DEMO_STEPS", 10, 1, 1000),
      challengeWindow: envInt("DEMO_CHALLENGE_WINDOW", 6, 1, 3600),
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
    if (r.interim.length > 0) {
      console.log(`\nInterim steps (components not yet in the CLI):`);
      for (const line of r.interim) console.log(`  - ${line}`);
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
    console.error(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// Run by `hardhat run scripts/demo.ts` (not when a test imports `runDemo`).
if (process.argv.some((a) => a.endsWith(path.join("scripts", "demo.ts")))) await main();
