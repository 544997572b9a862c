/**
 * `runDemo`: the whole protocol end to end, stage by stage (see scripts/demo.ts for what it shows).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { type Address, getAddress, parseEther, parseUnits } from "viem";
import { shardTokenAbi, toTokenId } from "shard-protocol/sdk";

import { addressOf, deployDemo, privateKeyOf, startChain } from "./chain.js";
import { sdkClient, shortAddress } from "./clients.js";
import {
  ACCOUNTS,
  DemoAbortedError,
  type DemoOptions,
  type DemoParticipant,
  type DemoResult,
  DEMO_MERGE_RULES,
  demoSpec,
  MAX_TRAINERS,
  MERGING_CHALLENGE_WINDOW,
  MIN_CHALLENGE_WINDOW,
  STAGES,
} from "./options.js";
import { ProcessGroup } from "./process.js";
import { demoTables, describeClaims } from "./report.js";
import { inferThroughGateway, PROMPTS, readDistributions } from "./revenue.js";
import { type ServeNode, startLaneServers } from "./serve.js";
import { formatAmount, groupDigits } from "./tables.js";
import { runTraining } from "./training.js";
import { runVerifier } from "./verification.js";

/**
 * Runs the whole protocol end to end (scripts/demo.ts says what it shows) and returns its
 * figures. Every child process is stopped and the chain closed however it ends; the work folder
 * is removed unless `keepWorkDir`.
 *
 * @example
 * const result = await runDemo({ shards: 2, lanes: 2, rounds: 1 })
 * console.log(result.tables.capTable)
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const shards = options.shards ?? 2;
  const lanes = options.lanes ?? 2;
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(shards) || shards < 1 || shards > 4) throw new RangeError("shards must be 1 to 4");
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 4) throw new RangeError("lanes must be 1 to 4");
  if (lanes * shards > MAX_TRAINERS)
    throw new RangeError(`lanes × shards must be at most ${MAX_TRAINERS} (one account per trainer)`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new RangeError("rounds must be 1 to 50");
  const merge = lanes > 1 ? (options.merge ?? DEMO_MERGE_RULES.mean) : undefined;
  const spec = options.spec ?? demoSpec(shards, options.stepsPerRound ?? 20, merge);
  if (spec.shards.length !== shards) throw new RangeError(`the spec has ${spec.shards.length} shards, not ${shards}`);
  if (lanes > 1 && spec.training.merge === undefined)
    throw new RangeError("with more than one lane the spec must set training.merge (merging mode)");
  const challengeWindow = options.challengeWindow ?? (lanes > 1 ? MERGING_CHALLENGE_WINDOW : 10);
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

  // One trainer (its own account and stake) per lane and shard: trainers[lane * shards + shard].
  const trainers: DemoParticipant[] = Array.from({ length: lanes * shards }, (_, i) => ({
    name: `trainer ${i}`,
    account: ACCOUNTS.firstTrainer + i,
    address: addressOf(ACCOUNTS.firstTrainer + i),
    lane: Math.floor(i / shards),
    shard: i % shards,
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
      spec.training.merge
        ? `${lanes} lanes of ${shards} trainers each (${lanes * shards} trainers, each its own account); merging mode: each shard's lanes merged after every round by the rule "${spec.training.merge.rule}"`
        : `${lanes} lane of ${shards} trainers, no merging`,
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
    // In merging mode any node may commit its shard's merge of a round, which locks as much again.
    const { minTrainerStake, slashAmount } = deployment.params;
    const locked = BigInt(rounds) * slashAmount * (spec.training.merge ? 2n : 1n);
    const trainerStake = locked > minTrainerStake ? locked : minTrainerStake;
    await Promise.all(
      trainers.map(async (t) => {
        await group.run({
          label: `${t.name} stake`,
          args: ["stake", String(trainerStake / 10n ** 18n)],
          cwd: workDir,
          env: nodeEnv(t.account, t.shard!),
        });
        log(
          "stake",
          `${t.name} ${shortAddress(t.address)} staked ${trainerStake / 10n ** 18n} STK for ${lanes > 1 ? `lane ${t.lane} ` : ""}shard ${t.shard} (${slashAmount / 10n ** 18n} locked per pending commit)`,
        );
      }),
    );
    done("stake");

    // 5. Training: one `shard-node train` process per shard and lane, the last shard first (it
    // listens). As each lane finishes, its serve processes start on its trainers' data folders and
    // the checkpoints they ended with: they serve the checkpoints, transcripts and merges to the
    // lanes still merging and to the verifier (IPFS bitswap) and, once finalized, the model for
    // inference (lane 0's, behind its shard 0's paying gateway).
    const evalLoss: number[] = [];
    const pricePerUnit = parseUnits("0.001", deployment.currencyA.decimals); // per generated character
    const prompts = PROMPTS.slice(0, 3);
    const serveContext = {
      group,
      trainers,
      shards,
      modelId,
      workDir,
      nodeEnv,
      log,
      currency: deployment.currencyA.address,
      price: "0.001",
      settleBatch: prompts.length,
    };
    const byLane: ServeNode[][] = [];
    await runTraining({
      group,
      trainers,
      lanes,
      spec,
      rounds,
      workDir,
      nodeEnv,
      log,
      signal,
      evalLoss,
      onLaneDone: async (lane, running) => {
        byLane[lane] = await startLaneServers(serveContext, lane, running);
      },
      seeders: (shard) => byLane.flat().flatMap((x) => (x.shard === shard ? [x.multiaddr] : [])),
    });
    const servers = byLane.flat();
    done("training");

    // 6. Verification.
    const { minted, workUnits, merges } = await runVerifier({
      group,
      verifier,
      deployment,
      rounds,
      shards,
      lanes,
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
    // The trainers claim at once (separate accounts), and are reported in order.
    const claimed: DemoResult["claimed"] = {};
    const currencies = [deployment.currencyA, deployment.currencyB];
    const claims = await Promise.all(
      trainers.map((t) =>
        group.run<{ claims: { token: { address: Address }; amount: string }[] }>({
          label: `${t.name} claim`,
          args: ["claim"],
          cwd: workDir,
          env: nodeEnv(t.account, 0),
        }),
      ),
    );
    for (const [i, t] of trainers.entries()) {
      claimed[t.address] = Object.fromEntries(currencies.map((c) => [c.address, 0n]));
      for (const c of claims[i]!.claims) claimed[t.address]![getAddress(c.token.address)] = BigInt(c.amount);
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
    const holders = [...trainers, newHolder];
    const { balances, supplies, tables } = await demoTables({
      reader: client(0),
      modelId,
      token,
      shards,
      holders,
      currencies,
      claimed,
      revenue,
    });
    const result: DemoResult = {
      modelId,
      spec,
      deployment,
      lanes,
      trainers,
      verifier,
      dapp,
      newHolder,
      evalLoss,
      minted,
      workUnits,
      merges,
      transfer: { from: trainers[0]!.address, to: newHolder.address, tokenId: id0, amount },
      revenue,
      generated,
      balances,
      supplies,
      claimed,
      tables,
      timings,
    };
    await options.onDone?.(result, { rpcUrl, chainId });
    return result;
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
