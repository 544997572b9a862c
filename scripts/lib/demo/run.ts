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
  demoSpec,
  MIN_CHALLENGE_WINDOW,
  STAGES,
} from "./options.js";
import { ProcessGroup } from "./process.js";
import { demoTables, describeClaims } from "./report.js";
import { inferThroughGateway, PROMPTS, readDistributions } from "./revenue.js";
import { startServers } from "./serve.js";
import { formatAmount, groupDigits } from "./tables.js";
import { runTraining } from "./training.js";
import { runVerifier } from "./verification.js";

/**
 * Runs the whole protocol end to end (scripts/demo.ts says what it shows) and returns its
 * figures. Every child process is stopped and the chain closed however it ends; the work folder
 * is removed unless `keepWorkDir`.
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
      tables,
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
