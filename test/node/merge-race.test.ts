import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { keccak256 } from "viem";
import {
  type Checkpoint,
  MERGE_LANES,
  contributionLedgerAbi,
  getCommit,
  getRevealedCheckpoints,
  reveal,
  signSealedCommit,
  submitCommit,
} from "shard-protocol/sdk";

import { ipfsUri } from "../../node/src/ipfs/store.js";
import { buildMerge, randomNonce } from "../../node/src/swarm/merge-build.js";
import { planMerge, readRoundState } from "../../node/src/swarm/merge-plan.js";
import { type MergeEvent, MergeLog, RevealScanner, mergeRound } from "../../node/src/swarm/merge-step.js";
import { type Actor, Lab, type LabModel, type LaneRun } from "../helpers/lane.js";

/**
 * Two nodes on the same merge attempt (docs/node.md, "Lanes and merging"): the attempt's commit id
 * is one slot, and the node that does not hold it has lost the attempt. It must neither exit nor
 * stay stuck on its journaled seal across a restart: it re-reads the chain and adopts the winner's
 * merge when it computes the same. And a node adopts an accepted merge only if it passes the
 * checks a verifier runs on it, not on its root alone.
 */

/** Long enough that no lane is late, however many blocks (each a second, at least) the nodes mine. */
const REVEAL_WINDOW = 120;

/** A node stopped at a phase of its merge step (a crash at that point: what it journaled stays). */
class Stopped extends Error {}

describe("adopting a merge: two nodes racing for one attempt, an accepted merge verifiers would challenge", () => {
  let lab: Lab;
  let A: Actor;

  before(async () => {
    lab = await Lab.create();
    A = lab.actor(4);
  });
  after(async () => {
    await lab?.close();
  });

  it("the node whose journaled seal lost the slot adopts the winner's merge on restart, never sealing", async () => {
    const model: LabModel = await lab.model({ trainers: [1, 2, 6, 7], params: { revealWindow: REVEAL_WINDOW } });
    // Round 1 of two lanes (without `training.merge` the nodes stop there); the merge step is run by hand.
    const [lane0, lane1] = (await lab.runLanes([
      { model, lane: 0, rounds: 1, trainers: [1, 2] },
      { model, lane: 1, rounds: 1, trainers: [6, 7] },
    ])) as [LaneRun, LaneRun];
    await lab.increaseTime(REVEAL_WINDOW + 1);
    const ctxOf = async (
      run: LaneRun,
      shard: number,
      opts: { mergerWaitMs?: number; stopAt?: string; events?: MergeEvent[] } = {},
    ) => ({
      spec: model.spec,
      specDigest: model.specDigest,
      modelId: model.modelId,
      shard,
      lane: run.lane,
      chain: {
        client: run.trainers[shard]!.client as never,
        account: run.trainers[shard]!.account,
        deployment: lab.deployment,
      },
      store: run.nodes[shard]!.store,
      journal: run.results[shard]!.journal,
      merges: await MergeLog.open(run.results[shard]!.journal.dir),
      scanner: new RevealScanner(A.client as never, lab.deployment, model.modelId),
      fetchTimeoutMs: 10_000,
      mergerWaitMs: opts.mergerWaitMs,
      shouldStop: () => false,
      emit: (e: MergeEvent) => {
        opts.events?.push(e);
        if (e.type === "merging" && e.phase === opts.stopAt) throw new Stopped(e.phase);
      },
    });
    const slot = { deployment: lab.deployment, modelId: model.modelId, shard: 0, round: 1, lane: MERGE_LANES };

    // Lane 1's node on shard 0 does not wait for the merger: it takes attempt 0 and stops right
    // after journaling its seal (signed, not sent).
    await assert.rejects(
      mergeRound(await ctxOf(lane1, 0, { mergerWaitMs: 0, stopAt: "sealing" }), 1, new Map()),
      Stopped,
    );
    assert.equal((await getCommit(A.client as never, slot)).status, "none");
    // The merger (lane 0's node) seals the same attempt first, and stops before its reveal.
    await assert.rejects(mergeRound(await ctxOf(lane0, 0, { stopAt: "sealed" }), 1, new Map()), Stopped);
    const sealed = await getCommit(A.client as never, slot);
    assert.equal(sealed.status, "sealed");

    // All restart: lane 1's node finds its attempt taken and waits; the merger reveals, and merges shard 1.
    const events: MergeEvent[] = [];
    const [loser, winner, shard1] = await Promise.all([
      mergeRound(await ctxOf(lane1, 0, { mergerWaitMs: 60_000, events }), 1, new Map()),
      mergeRound(await ctxOf(lane0, 0), 1, new Map()),
      mergeRound(await ctxOf(lane0, 1), 1, new Map()),
    ]);
    assert.ok(loser && winner && shard1);
    assert.deepEqual(
      events.filter((e) => e.type === "merging" && e.phase === "lost").map((e) => e.type === "merging" && e.attempt),
      [0],
    );
    assert.deepEqual([winner.merged.attempt, winner.merged.own, winner.merged.commitId], [0, true, sealed.commitId]);
    assert.deepEqual(
      [loser.merged.attempt, loser.merged.lanes, loser.merged.root, loser.merged.commitId, loser.merged.own],
      [0, [0, 1], winner.merged.root, sealed.commitId, false],
    );
    assert.equal(loser.merged.committer, lane0.trainers[0]!.account.address);
    assert.ok(!events.some((e) => e.type === "merging" && ["sealed", "revealed"].includes(e.phase)));
    const seals = await A.client.getContractEvents({
      address: lab.deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      eventName: "CheckpointSealed",
      fromBlock: lab.deployment.blockNumber,
    });
    assert.equal(seals.filter((e) => e.args.commitId === sealed.commitId).length, 1, "sealed once, by the merger");
    assert.equal((await getCommit(A.client as never, { ...slot, lane: MERGE_LANES + 1 })).status, "none");

    // Restarted again without its merge log: the lost attempt stays lost (not carried on), the
    // winner's merge is adopted again.
    await rm(join(lane1.results[0]!.journal.dir, "merges.json"));
    const again = await mergeRound(await ctxOf(lane1, 0, { mergerWaitMs: 10_000, events }), 1, new Map());
    assert.deepEqual([again?.merged.commitId, again?.merged.own], [sealed.commitId, false]);
    assert.equal(events.filter((e) => e.type === "merging" && e.phase === "lost").length, 1);
  });

  it("a node does not go on from an accepted merge with the right root and a manifest verifiers would challenge", async () => {
    const model: LabModel = await lab.model({ trainers: [1, 2, 6, 7, 3], params: { revealWindow: REVEAL_WINDOW } });
    const [, lane1] = (await lab.runLanes([
      { model, lane: 0, rounds: 1, trainers: [1, 2] },
      { model, lane: 1, rounds: 1, trainers: [6, 7] },
    ])) as [LaneRun, LaneRun];
    await lab.increaseTime(REVEAL_WINDOW + 1);
    const { deployment } = lab;
    const { reveals } = await getRevealedCheckpoints(A.client as never, { deployment, modelId: model.modelId });
    const plan = planMerge(
      await readRoundState(A.client as never, {
        deployment,
        modelId: model.modelId,
        round: 1n,
        shardCount: 2,
        revealWindow: REVEAL_WINDOW,
        reveals,
      }),
    );
    // Attempt 0 on both shards by a crook: the right merges (so the right roots), each with a
    // manifest that is not the one they recompute to (verifiers challenge it: merge-transcript).
    const crook = lab.actor(3);
    const node = await lab.contentNode("crook");
    const src = { ...model, store: node.store, fetchTimeoutMs: 10_000 };
    for (const shard of [0, 1]) {
      const built = await buildMerge(src, { plan, shard, attempt: 0, nonce: randomNonce() });
      const manifest = new TextEncoder().encode(
        JSON.stringify({
          ...JSON.parse(new TextDecoder().decode(built.manifest)),
          note: "not the recomputed manifest",
        }),
      );
      const cp: Checkpoint = {
        ...built.fields,
        transcriptDigest: keccak256(manifest),
        owner: crook.account.address,
        checkpointURI: ipfsUri(await node.store.add(built.checkpoint.bytes)),
        transcriptURI: ipfsUri(await node.store.add(manifest)),
      };
      const signed = await signSealedCommit(crook.client as never, {
        deployment,
        account: crook.account,
        checkpoint: cp,
      });
      const sent = await submitCommit(crook.client as never, {
        deployment,
        account: crook.account,
        commit: signed.commit,
        signature: signed.signature,
      });
      await lab.mine();
      await reveal(crook.client as never, {
        deployment,
        account: crook.account,
        checkpoint: cp,
        salt: signed.salt,
        commitBlock: sent.commitBlock,
        commitTime: sent.commitTime,
      });
    }
    // Lane 1's node on shard 0 finds the crook's merge accepted, with its own root: it commits its own.
    const events: MergeEvent[] = [];
    const trainer = lane1.trainers[0]!;
    const got = await mergeRound(
      {
        spec: model.spec,
        specDigest: model.specDigest,
        modelId: model.modelId,
        shard: 0,
        lane: 1,
        chain: { client: trainer.client as never, account: trainer.account, deployment },
        store: lane1.nodes[0]!.store,
        journal: lane1.results[0]!.journal,
        merges: await MergeLog.open(lane1.results[0]!.journal.dir),
        scanner: new RevealScanner(A.client as never, deployment, model.modelId),
        fetchTimeoutMs: 10_000,
        mergerWaitMs: 10_000,
        shouldStop: () => false,
        emit: (e: MergeEvent) => events.push(e),
      },
      1,
      new Map(),
    );
    const mismatch = events.find((e) => e.type === "merging" && e.phase === "mismatch");
    assert.match((mismatch?.type === "merging" && mismatch.detail) || "", /^merge-transcript: /);
    assert.deepEqual([got?.merged.attempt, got?.merged.own, got?.merged.lanes], [1, true, [0, 1]]);
    const slot = { deployment, modelId: model.modelId, shard: 0, round: 1, lane: MERGE_LANES + 1 };
    const own = await getCommit(A.client as never, slot);
    assert.deepEqual([own.status, own.owner, own.commitId], ["pending", trainer.account.address, got?.merged.commitId]);
  });
});
