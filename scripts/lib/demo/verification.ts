/**
 * Stage 6 of the demo: a verifier stakes and runs `shard-node verify` over every commit; what was
 * minted is read back from the ledger.
 */
import path from "node:path";

import type { Hex } from "viem";
import { type Checkpoint, contributionLedgerAbi, MERGE_LANES, mergedLanesOf } from "shard-protocol/sdk";

import type { DemoDeployment } from "./chain.js";
import { type SdkClient, shortAddress } from "./clients.js";
import type { DemoMerge, DemoParticipant, StageLog } from "./options.js";
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

/** A checkpoint's name in the demo's lines: `shard 0 round 1`, `lane 1 shard 0 round 1`, `merge of shard 0 round 1`. */
function nameOf(cp: Checkpoint, lanes: number): string {
  if (cp.lane >= MERGE_LANES) return `merge of shard ${cp.shard} round ${cp.round}`;
  return `${lanes > 1 ? `lane ${cp.lane} ` : ""}shard ${cp.shard} round ${cp.round}`;
}

/**
 * Stakes the verifier (`shard-node stake --role verifier`) and runs `shard-node verify` until every
 * commit up to `rounds` is finalized (or rejected): it replays every round of every lane
 * (`--sample 1`) and recomputes every merge, attests and finalizes. Returns what was minted per
 * lane, shard and round and the finalized merges, read back from the ledger's events.
 */
export async function runVerifier(ctx: {
  group: ProcessGroup;
  verifier: DemoParticipant;
  deployment: DemoDeployment;
  rounds: number;
  shards: number;
  lanes: number;
  workDir: string;
  env: Record<string, string>;
  contentPeers: string[];
  log: StageLog;
  reader: SdkClient;
}): Promise<{ minted: bigint[][][]; workUnits: bigint[][][]; merges: DemoMerge[] }> {
  const { group, verifier, deployment, rounds, shards, lanes, workDir, env, log } = ctx;
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
    byCommit.set(await commitIdOf(ctx.reader, deployment, cp), nameOf(cp, lanes));
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
          `verifier replayed ${lanes > 1 ? `lane ${e.lane} ` : ""}round ${e.round} in ${Number(e.seconds).toFixed(1)} s (+ ${Number(e.fetchSeconds).toFixed(1)} s fetching from IPFS)`,
        );
      if (e.event === "verdict")
        log(
          "verification",
          `  ${e.verdict.lane >= MERGE_LANES ? "merge of " : lanes > 1 ? `lane ${e.verdict.lane} ` : ""}shard ${e.verdict.shard}: ${e.verdict.valid ? "valid" : `INVALID (${e.verdict.reason})`}`,
        );
      if (e.event === "recomputed")
        log(
          "verification",
          `verifier recomputed the merge of shard ${e.shard} round ${e.round} in ${Number(e.seconds).toFixed(2)} s`,
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
  const perLane = () => Array.from({ length: lanes }, () => Array.from({ length: shards }, (): bigint[] => []));
  const minted = perLane();
  const workUnits = perLane();
  const merges: DemoMerge[] = [];
  for (const cp of checkpoints) {
    const id = await commitIdOf(ctx.reader, deployment, cp);
    const m = mintedBy.get(id);
    if (m === undefined) throw new Error(`${nameOf(cp, lanes)} was not finalized`);
    const round = Number(cp.round);
    if (cp.lane >= MERGE_LANES) {
      const merged = mergedLanesOf(cp.sentActivations);
      merges.push({ shard: cp.shard, round, lanes: merged, committer: cp.owner, minted: m });
      log(
        "verification",
        `merge of shard ${cp.shard} round ${round} (lanes ${merged.join(", ")}) recomputed and finalized`,
      );
      continue;
    }
    minted[cp.lane]![cp.shard]![round - 1] = m;
    workUnits[cp.lane]![cp.shard]![round - 1] = cp.workUnits;
  }
  merges.sort((a, b) => a.round - b.round || a.shard - b.shard);
  log("verification", `${result.finalized} commits finalized by shard-node verify`);
  return { minted, workUnits, merges };
}
