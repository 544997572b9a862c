/**
 * Stage 6 of the demo: a verifier stakes and runs `shard-node verify` over every commit; what was
 * minted is read back from the ledger.
 */
import path from "node:path";

import type { Hex } from "viem";
import { type Checkpoint, contributionLedgerAbi } from "shard-protocol/sdk";

import type { DemoDeployment } from "./chain.js";
import { type SdkClient, shortAddress } from "./clients.js";
import type { DemoParticipant, StageLog } from "./options.js";
import type { ProcessGroup } from "./process.js";
import { groupDigits } from "./tables.js";

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
 * Stakes the verifier (`shard-node stake --role verifier`) and runs `shard-node verify` until every
 * commit up to `rounds` is finalized (or rejected): it replays every round (`--sample 1`), attests
 * and finalizes. Returns what was minted per shard and round, read back from the ledger's events.
 */
export async function runVerifier(ctx: {
  group: ProcessGroup;
  verifier: DemoParticipant;
  deployment: DemoDeployment;
  rounds: number;
  shards: number;
  workDir: string;
  env: Record<string, string>;
  contentPeers: string[];
  log: StageLog;
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
