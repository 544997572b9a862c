import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Address, getAddress } from "viem";
import { DEFAULT_ROUND_PARAMS, getCapTable, getCommit, toTokenId } from "shard-protocol/sdk";

import { laneSettled } from "../../node/src/commands/verify.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { batchIds, counterRandom, loadCorpus } from "../../node/src/ml/data.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { type VerifierPass, expectedBatchIds, runVerifier, verifyOnce } from "../../node/src/verify/index.js";
import { type Actor, Lab, type LabModel, type LaneRun } from "../helpers/lane.js";
import { bits, tinySpec } from "./helpers.js";

/**
 * Replica lanes: two pipelines of the same model train the same round from the same parents,
 * concurrently, on real libp2p hosts and Helia stores against the in-process chain. Each lane
 * draws its own batches, so the lanes commit different roots (the ledger refuses a root twice);
 * a verifier replays each lane with that lane's batches and attests both; every commit finalizes
 * and mints its owner exactly its work.
 */

const P = DEFAULT_ROUND_PARAMS;
const minted = (workUnits: bigint) => (workUnits * P.workToTokenRate) / 10n ** 18n;

describe("batch ids of replica lanes", () => {
  const spec = tinySpec();
  const corpus = loadCorpus(spec);
  const span = corpus.train.length - spec.architecture.context - 1;

  it("lane 0 keeps the single-lane formula; lanes 0, 1 and 2 of a step differ; each is deterministic", () => {
    for (const [step, micro] of [
      [0, 0],
      [7, 1],
      [123, 0],
    ] as const) {
      const old = Array.from({ length: spec.training.microBatchSize }, (_, r) =>
        counterRandom(span, spec.training.seed, step, micro, r),
      );
      assert.deepEqual(batchIds(spec, corpus, step, micro, 0), old);
      const lanes = [0, 1, 2].map((lane) => batchIds(spec, corpus, step, micro, lane));
      for (const [lane, ids] of lanes.entries()) {
        assert.deepEqual(batchIds(spec, corpus, step, micro, lane), ids, `lane ${lane} is deterministic`);
        assert.equal(ids.length, spec.training.microBatchSize);
        assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < span));
      }
      for (let a = 0; a < lanes.length; a++)
        for (let b = a + 1; b < lanes.length; b++)
          assert.ok(
            lanes[a]!.every((id, r) => id !== lanes[b]![r]),
            `lanes ${a} and ${b} of step ${step} share a batch id`,
          );
    }
    // The verifier's expected ids are the lane's.
    assert.deepEqual(
      expectedBatchIds(spec, 2, 0)[1]![0],
      batchIds(spec, corpus, spec.training.stepsPerRound + 1, 0, 0),
    );
    assert.deepEqual(
      expectedBatchIds(spec, 2, 1)[1]![0],
      batchIds(spec, corpus, spec.training.stepsPerRound + 1, 0, 1),
    );
    assert.throws(() => batchIds(spec, corpus, 0, 0, -1), RangeError);
    assert.throws(() => batchIds(spec, corpus, 0, 0, 0.5), RangeError);
  });
});

describe("replica lanes: two lanes of one model train concurrently, both are verified, finalized and paid", () => {
  let lab: Lab;
  let A: Actor;

  before(async () => {
    lab = await Lab.create();
    A = lab.actor(4);
  });
  after(async () => {
    await lab?.close();
  });

  const verifierOf = (model: LabModel, v: Actor) => lab.verifierConfig(model, v);
  const commitOf = (model: LabModel, lane: number, shard: number, round: number) =>
    getCommit(A.client as never, { deployment: lab.deployment, modelId: model.modelId, shard, round, lane });
  const balanceOf = async (model: LabModel, owner: Address, shard: number) =>
    (await lab.f.token.read.balanceOf([owner, toTokenId({ modelId: model.modelId, shard })])) as bigint;

  it("lanes 0 and 1 of a 2-shard model: different roots, both replayed bit for bit, attested, finalized, each owner minted its work", async () => {
    const model = await lab.model({ trainers: [1, 2, 6, 7] });
    const t0 = performance.now();
    const runs: LaneRun[] = await Promise.all([
      lab.runLane({ model, lane: 0, rounds: 1, trainers: [1, 2] }),
      lab.runLane({ model, lane: 1, rounds: 1, trainers: [6, 7] }),
    ]);
    const trainSeconds = (performance.now() - t0) / 1000;

    // All four commits revealed: no lane's reveal was refused as a taken root.
    for (const run of runs)
      for (const [shard, r] of run.results.entries()) {
        assert.equal(r.head, 1, `lane ${run.lane} shard ${shard}`);
        assert.equal(r.journal.head?.phase, "revealed", `lane ${run.lane} shard ${shard}`);
        const errors = run.events[shard]!.filter((e) => "error" in e && e.error);
        assert.deepEqual(errors, [], `lane ${run.lane} shard ${shard}`);
        const c = await commitOf(model, run.lane, shard, 1);
        assert.equal(c.status, "pending");
        assert.equal(c.owner, run.trainers[shard]!.account.address);
        assert.equal(c.commitId, r.journal.head!.commitId);
      }
    const [lane0, lane1] = runs as [LaneRun, LaneRun];
    for (let shard = 0; shard < model.spec.shards.length; shard++)
      assert.notEqual(lane0.results[shard]!.journal.head!.root, lane1.results[shard]!.journal.head!.root);

    // Each lane trained its own batches: its weights are the baseline's run on that lane, bit for bit.
    for (const run of runs) {
      const baseline = await runBaseline(model.spec, { rounds: 1, lane: run.lane });
      for (const [shard, r] of run.results.entries()) {
        const head = r.journal.head!;
        const { state } = decodeCheckpoint(
          stageLayout(model.spec, shard),
          await readFile(join(r.journal.dir, head.checkpointFile)),
          {
            modelId: String(model.modelId),
            specDigest: model.specDigest,
            stepsPerRound: model.spec.training.stepsPerRound,
            round: head.round,
          },
        );
        const expected = await baseline.trainers[shard]!.state();
        for (const name of Object.keys(expected.params))
          assert.equal(
            bits(state.params[name]!),
            bits(expected.params[name]!),
            `lane ${run.lane} shard ${shard} ${name}`,
          );
      }
      for (const t of baseline.trainers) t.dispose();
    }

    // A verifier replays both lanes, each with its own batches, and attests all four commits.
    const v0 = performance.now();
    const first: VerifierPass = await verifyOnce(await verifierOf(model, A));
    const verifySeconds = (performance.now() - v0) / 1000;
    assert.deepEqual(
      first.replayed.map((r) => [r.lane, r.round, r.why]),
      [
        [0, 1, "sampled"],
        [1, 1, "sampled"],
      ],
    );
    assert.equal(first.verdicts.length, 4);
    for (const v of first.verdicts) assert.equal(v.valid, true, `lane ${v.lane} shard ${v.shard}: ${v.detail}`);
    const ids = await Promise.all(
      runs.flatMap((run) => run.results.map((_, shard) => commitOf(model, run.lane, shard, 1))),
    );
    assert.deepEqual([...first.attested].sort(), ids.map((c) => c.commitId).sort());
    assert.deepEqual(first.challenged, []);

    // Lane 0 finalized alone does not end `--until-round`: lane 1 was seen and is still pending.
    const settledLane0Only: VerifierPass = {
      ...first,
      commits: first.commits.map((c) => (c.lane === 0 ? { ...c, status: "finalized" } : c)),
    };
    assert.equal(laneSettled(settledLane0Only, model.spec.shards.length, 1), false);

    // Windows pass; the verifier finalizes every commit and stops once both lanes are settled.
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    const passes: VerifierPass[] = [];
    const last = await runVerifier({
      ...(await verifierOf(model, A)),
      pollMs: 10,
      until: (p) => {
        passes.push(p);
        return laneSettled(p, model.spec.shards.length, 1) || passes.length >= 5;
      },
    });
    assert.ok(laneSettled(last!, model.spec.shards.length, 1), "both lanes settled");
    assert.deepEqual(
      passes.flatMap((p) => p.finalized.map((x) => x.commitId)).sort(),
      ids.map((c) => c.commitId).sort(),
    );

    // Each of the four owners holds exactly its work in its shard's tokens.
    for (const run of runs)
      for (const [shard, r] of run.results.entries()) {
        const c = await commitOf(model, run.lane, shard, 1);
        assert.equal(c.status, "finalized", `lane ${run.lane} shard ${shard}`);
        const work = BigInt(r.journal.head!.workUnits);
        assert.ok(work > 0n);
        assert.equal(await balanceOf(model, run.trainers[shard]!.account.address, shard), minted(work));
      }

    // The shard's cap table lists the trainer of each lane.
    const table = await getCapTable(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
      confirmations: 0, // the in-process chain mines on demand
    });
    for (const [shard, s] of table.shards.entries()) {
      const expected = runs
        .map((run) => ({
          holder: getAddress(run.trainers[shard]!.account.address),
          balance: minted(BigInt(run.results[shard]!.journal.head!.workUnits)),
        }))
        .sort((a, b) => (a.holder < b.holder ? -1 : 1));
      assert.deepEqual(
        s.holders.map((h) => ({ holder: h.holder, balance: h.balance })).sort((a, b) => (a.holder < b.holder ? -1 : 1)),
        expected,
        `shard ${shard}`,
      );
      assert.equal(s.supply, expected[0]!.balance + expected[1]!.balance);
    }
    console.log(
      `# two lanes × 2 shards: trained + committed in ${trainSeconds.toFixed(1)} s, one verifier pass (2 replays) in ${verifySeconds.toFixed(1)} s`,
    );
  });
});
