import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { MERGE_LANES, contributionLedgerAbi, getCommit } from "shard-protocol/sdk";

import { type MergeEvent, MergeLog, RevealScanner, mergeRound } from "../../node/src/swarm/merge-step.js";
import { type Actor, Lab, type LabModel, type LaneRun } from "../helpers/lane.js";

/**
 * Two nodes on the same merge attempt (docs/node.md, "Lanes and merging"): the attempt's commit id
 * is one slot, and the node that does not hold it has lost the attempt. It must neither exit nor
 * stay stuck on its journaled seal across a restart: it re-reads the chain and adopts the winner's
 * merge when it computes the same.
 */

/** Long enough that no lane is late, however many blocks (each a second, at least) the nodes mine. */
const REVEAL_WINDOW = 120;

/** A node stopped at a phase of its merge step (a crash at that point: what it journaled stays). */
class Stopped extends Error {}

describe("two nodes racing for one merge attempt", () => {
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
});
