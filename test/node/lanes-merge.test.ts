import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Hex, createWalletClient, custom, publicActions } from "viem";
import {
  DEFAULT_ROUND_PARAMS,
  MERGE_LANES,
  type RevealedCheckpoint,
  contributionLedgerAbi,
  finalize,
  getCommit,
  getRevealedCheckpoints,
  mergedLanesBitmap,
  toTokenId,
} from "shard-protocol/sdk";

import { runBaseline } from "../../node/src/ml/baseline.js";
import { encodeMergedCheckpoint, mergeCheckpoints, nonceOfTag } from "../../node/src/ml/merge.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { mergeRule } from "../../node/src/ml/spec.js";
import type { StageState } from "../../node/src/ml/stage.js";
import { decodeCheckpoint, encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { genesisState } from "../../node/src/swarm/merge-build.js";
import { type MergeEvent, MergeLog, RevealScanner, mergeRound } from "../../node/src/swarm/merge-step.js";
import type { SwarmEvent } from "../../node/src/swarm/node.js";
import { connection } from "../helpers/fixture.js";
import { type Actor, Lab, type LabModel, type LaneRun } from "../helpers/lane.js";

/**
 * Merging mode (`training.merge` set): three lanes of a 2-shard model train each round
 * concurrently; after the round's merge deadline, the node of lane 0 on each shard commits the
 * merge of all lanes, the other lanes' nodes check it against their own, and every node starts
 * the next round from it. Real libp2p hosts and Helia stores (the lanes' stores connected, so the
 * merger fetches the other lanes' checkpoints), against the in-process chain.
 */

const P = DEFAULT_ROUND_PARAMS;
const minted = (workUnits: bigint) => (workUnits * P.workToTokenRate) / 10n ** 18n;
/** Long enough that no lane is late, however many blocks (each a second, at least) the nodes mine. */
const REVEAL_WINDOW = 120;
const LANES = [0, 1, 2];
/** Each lane's trainer accounts, shard by shard. */
const TRAINERS = [
  [1, 2],
  [6, 7],
  [3, 8],
];

/**
 * Time passes: once every lane of a round has revealed on every shard, the chain's clock jumps to
 * the round's merge deadline, so that the nodes do not sit out the reveal window.
 */
function skipMergeWaits(lab: Lab, client: Actor["client"], model: LabModel, lanes: number, rounds: number) {
  let stop = false;
  const done = (async () => {
    const skipped = new Set<bigint>();
    while (!stop && skipped.size < rounds) {
      const { reveals } = await getRevealedCheckpoints(client as never, {
        deployment: lab.deployment,
        modelId: model.modelId,
      });
      for (let round = 1n; round <= BigInt(rounds); round++) {
        const training = reveals.filter((r) => r.checkpoint.round === round && r.checkpoint.lane < MERGE_LANES);
        if (skipped.has(round) || training.length < lanes * model.spec.shards.length) continue;
        const first = Math.min(
          ...(await Promise.all(
            training.map(async (r) => Number((await client.getBlock({ blockNumber: r.revealBlock })).timestamp)),
          )),
        );
        const now = Number((await client.getBlock({ blockTag: "latest" })).timestamp);
        if (now <= first + REVEAL_WINDOW) await lab.increaseTime(first + REVEAL_WINDOW - now + 1);
        skipped.add(round);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return async () => {
    stop = true;
    await done;
  };
}

describe("merging lanes: each round's lanes are merged on-chain and the next round starts from the merge", () => {
  let lab: Lab;
  let A: Actor;

  before(async () => {
    lab = await Lab.create();
    A = lab.actor(4);
  });
  after(async () => {
    await lab?.close();
  });

  it("3 lanes × 2 shards × 2 rounds: merges revealed with every lane, equal to the single-process reference, parents of round 2, owners minted", async () => {
    const model: LabModel = await lab.model({
      trainers: TRAINERS.flat(),
      merge: { rule: "mean" },
      params: { revealWindow: REVEAL_WINDOW },
    });
    const { spec } = model;
    const shards = spec.shards.length;
    const rounds = 2;
    const t0 = performance.now();
    const skipping = skipMergeWaits(lab, A.client, model, LANES.length, rounds);
    let runs: LaneRun[];
    try {
      runs = await lab.runLanes(LANES.map((lane) => ({ model, lane, rounds, trainers: TRAINERS[lane] })));
    } finally {
      await skipping();
    }
    const seconds = (performance.now() - t0) / 1000;
    const lane0 = runs[0]!;

    const { reveals } = await getRevealedCheckpoints(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
    });
    const revealOf = (round: number, lane: number, shard: number): RevealedCheckpoint => {
      const r = reveals.find(
        (x) => x.checkpoint.round === BigInt(round) && x.checkpoint.lane === lane && x.checkpoint.shard === shard,
      );
      assert.ok(r, `round ${round} lane ${lane} shard ${shard} revealed`);
      return r;
    };

    // (a) Each round has exactly one merge per shard, attempt 0, by lane 0's trainer, naming both lanes.
    const bitmap = mergedLanesBitmap(LANES);
    for (let round = 1; round <= rounds; round++)
      for (let shard = 0; shard < shards; shard++) {
        const m = revealOf(round, MERGE_LANES, shard).checkpoint;
        assert.equal(m.owner, lane0.trainers[shard]!.account.address);
        assert.equal(m.sentActivations, bitmap);
        assert.equal(m.receivedActivations, bitmap);
        assert.equal(m.workUnits, 0n);
        const c = await getCommit(A.client as never, {
          deployment: lab.deployment,
          commitId: revealOf(round, MERGE_LANES, shard).commitId,
        });
        assert.equal(c.status, "pending");
      }
    assert.equal(reveals.filter((r) => r.checkpoint.lane > MERGE_LANES).length, 0, "no second attempt");

    // (b) The single-process reference: each lane from the same base, merged by the rule, bit for bit.
    const rule = mergeRule(spec);
    const meta = (shard: number, round: number, lane: number) => ({
      modelId: String(model.modelId),
      shard,
      lane,
      round,
      specDigest: model.specDigest,
      backend: "reference",
    });
    let base: StageState[] = Array.from({ length: shards }, (_, s) => genesisState(spec, s));
    const mergeRoots: Hex[][] = [];
    for (let round = 1; round <= rounds; round++) {
      const laneStates: StageState[][] = [];
      for (const lane of LANES) {
        const ref = await runBaseline(spec, { rounds: 1, fromRound: round, lane, states: base });
        laneStates.push(await Promise.all(ref.trainers.map((t) => t.state())));
        for (const t of ref.trainers) t.dispose();
        for (let shard = 0; shard < shards; shard++)
          assert.equal(
            revealOf(round, lane, shard).checkpoint.root,
            encodeCheckpoint(stageLayout(spec, shard), laneStates[lane]![shard]!, meta(shard, round, lane)).root,
            `round ${round} lane ${lane} shard ${shard}: the reference lane`,
          );
      }
      const merged = base.map((b, shard) =>
        mergeCheckpoints(
          rule,
          b,
          LANES.map((lane) => ({ lane, state: laneStates[lane]![shard]! })),
        ),
      );
      // The merger's random nonce is in its merged checkpoint's tag (lane 0's node kept the file).
      const nonces = await Promise.all(
        merged.map(async (_, shard) => {
          const dir = runs.find((r) => r.lane === 0)!.results[shard]!.journal.dir;
          const entry = (await MergeLog.open(dir)).get(round)!;
          const bytes = await readFile(join(dir, entry.file));
          const { state } = decodeCheckpoint(stageLayout(spec, shard), bytes, {
            modelId: String(model.modelId),
            specDigest: model.specDigest,
            stepsPerRound: spec.training.stepsPerRound,
            round,
          });
          return nonceOfTag(state.mergeTag!);
        }),
      );
      const roots = merged.map(
        (m, shard) =>
          encodeMergedCheckpoint(
            stageLayout(spec, shard),
            m,
            rule,
            LANES,
            meta(shard, round, MERGE_LANES),
            0,
            nonces[shard],
          ).root,
      );
      for (let shard = 0; shard < shards; shard++)
        assert.equal(
          revealOf(round, MERGE_LANES, shard).checkpoint.root,
          roots[shard],
          `round ${round} shard ${shard}: the merge`,
        );
      mergeRoots.push(roots);
      base = merged;
    }

    // (c) Round 2's lane commits name round 1's merges as parents; round 2's merges build on them too.
    for (const lane of [...LANES, MERGE_LANES])
      for (let shard = 0; shard < shards; shard++)
        assert.equal(
          revealOf(2, lane, shard).checkpoint.parentRoot,
          mergeRoots[0]![shard],
          `lane ${lane} shard ${shard}`,
        );

    // Every node merged both rounds: lane 0's committed them, the others checked and adopted them.
    for (const run of runs)
      for (let shard = 0; shard < shards; shard++) {
        const r = run.results[shard]!;
        assert.equal(r.head, rounds);
        const log = await MergeLog.open(r.journal.dir);
        const events = run.events[shard]!.filter(
          (e): e is Extract<SwarmEvent, { type: "merged" }> => e.type === "merged",
        );
        assert.deepEqual(
          events.map((e) => [e.round, e.root, e.lanes, e.attempt, e.committer, e.own]),
          mergeRoots.map((roots, i) => [
            i + 1,
            roots[shard],
            LANES,
            0,
            lane0.trainers[shard]!.account.address,
            run.lane === 0,
          ]),
          `lane ${run.lane} shard ${shard}`,
        );
        for (let round = 1; round <= rounds; round++) assert.equal(log.get(round)?.root, mergeRoots[round - 1]![shard]);
        const errors = run.events[shard]!.filter((e) => "error" in e && e.error);
        assert.deepEqual(errors, [], `lane ${run.lane} shard ${shard}`);
      }

    // (d) Windows pass; finalized through the ledger, parents first: each owner mints its lanes'
    // work, a merge mints nothing. (Verifiers that attest merge commits are tested with the
    // verifier: test/node/verify-merge.test.ts; here the quorum is 0 and anyone may finalize.)
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    for (let round = 1; round <= rounds; round++)
      for (const lane of [...LANES, MERGE_LANES])
        for (let shard = 0; shard < shards; shard++) {
          const { checkpoint } = revealOf(round, lane, shard);
          const done = await finalize(A.client as never, {
            deployment: lab.deployment,
            account: A.account,
            checkpoint,
          });
          assert.equal(done.minted, minted(checkpoint.workUnits), `round ${round} lane ${lane} shard ${shard}`);
        }
    for (const run of runs)
      for (let shard = 0; shard < shards; shard++) {
        const work = [1, 2].reduce((sum, round) => sum + revealOf(round, run.lane, shard).checkpoint.workUnits, 0n);
        assert.ok(work > 0n);
        const balance = (await lab.f.token.read.balanceOf([
          run.trainers[shard]!.account.address,
          toTokenId({ modelId: model.modelId, shard }),
        ])) as bigint;
        assert.equal(balance, minted(work), `lane ${run.lane} shard ${shard}`);
      }
    console.log(`# ${LANES.length} lanes × 2 shards × ${rounds} rounds, merged each round: ${seconds.toFixed(1)} s`);
  });

  it("a merger stopped between its seal and its reveal finishes the same seal on restart (one seal); a merger that never comes is replaced", async () => {
    const model: LabModel = await lab.model({ trainers: [1, 2, 6, 7], params: { revealWindow: REVEAL_WINDOW } });
    // Round 1 of two lanes (without `training.merge` the nodes stop there); the merge step is run by hand.
    const runs = await lab.runLanes([
      { model, lane: 0, rounds: 1, trainers: [1, 2] },
      { model, lane: 1, rounds: 1, trainers: [6, 7] },
    ]);
    await lab.increaseTime(REVEAL_WINDOW + 1);
    const [lane0] = runs as [LaneRun, LaneRun];
    const trainer = lane0.trainers[0]!;
    // The node's RPC drops its second transaction (the merge's reveal; the first is its seal).
    let sent = 0;
    const flaky = createWalletClient({
      account: trainer.account,
      chain: undefined,
      transport: custom({
        request: async (args: { method: string; params?: unknown }) => {
          if (args.method === "eth_sendRawTransaction" && ++sent === 2) throw new Error("connection reset");
          return connection.provider.request(args as never);
        },
      }),
    }).extend(publicActions);
    const events: MergeEvent[] = [];
    const ctx = {
      spec: model.spec,
      specDigest: model.specDigest,
      modelId: model.modelId,
      shard: 0,
      lane: 0,
      chain: { client: flaky as never, account: trainer.account, deployment: lab.deployment },
      store: lane0.nodes[0]!.store,
      journal: lane0.results[0]!.journal,
      merges: await MergeLog.open(lane0.results[0]!.journal.dir),
      scanner: new RevealScanner(A.client as never, lab.deployment, model.modelId),
      fetchTimeoutMs: 10_000,
      shouldStop: () => false,
      emit: (e: MergeEvent) => events.push(e),
    };
    await assert.rejects(mergeRound(ctx, 1, new Map()), /reveal failed/);
    const merge = { deployment: lab.deployment, modelId: model.modelId, shard: 0, round: 1, lane: MERGE_LANES };
    assert.equal((await getCommit(A.client as never, merge)).status, "sealed");
    assert.equal(ctx.merges.get(1), undefined);

    // Restarted (a fresh merge log, the same directory): the journaled seal is revealed, not sealed again.
    const again = await mergeRound(
      {
        ...ctx,
        chain: { ...ctx.chain, client: trainer.client as never },
        merges: await MergeLog.open(ctx.journal.dir),
      },
      1,
      new Map(),
    );
    assert.ok(again);
    const c = await getCommit(A.client as never, merge);
    assert.equal(c.status, "pending");
    assert.equal(again.merged.commitId, c.commitId);
    assert.deepEqual([again.merged.attempt, again.merged.lanes, again.merged.own], [0, [0, 1], true]);
    const seals = await A.client.getContractEvents({
      address: lab.deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      eventName: "CheckpointSealed",
      fromBlock: lab.deployment.blockNumber,
    });
    assert.equal(seals.filter((e) => e.args.commitId === c.commitId).length, 1, "sealed once");
    const { reveals } = await getRevealedCheckpoints(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
    });
    assert.equal(reveals.find((r) => r.commitId === c.commitId)?.checkpoint.root, again.merged.root);
    // Once merged, the step is done: the same merge, with no chain call.
    const third = await mergeRound({ ...ctx, merges: await MergeLog.open(ctx.journal.dir) }, 1, new Map());
    assert.deepEqual(third?.merged, again.merged);

    // Nobody merges shard 1 (lane 0's node there is not running): lane 1's node waits for the
    // merger, then commits the merge itself at the first attempt.
    const lane1 = runs[1]!;
    const late: MergeEvent[] = [];
    const byLane1 = await mergeRound(
      {
        ...ctx,
        shard: 1,
        lane: 1,
        chain: {
          client: lane1.trainers[1]!.client as never,
          account: lane1.trainers[1]!.account,
          deployment: lab.deployment,
        },
        store: lane1.nodes[1]!.store,
        journal: lane1.results[1]!.journal,
        merges: await MergeLog.open(lane1.results[1]!.journal.dir),
        mergerWaitMs: 500,
        emit: (e: MergeEvent) => late.push(e),
      },
      1,
      new Map(),
    );
    assert.deepEqual(
      late
        .filter((e) => e.type === "merging" && ["waiting", "committing"].includes(e.phase))
        .map((e) => e.type === "merging" && e.phase),
      ["waiting", "committing"],
    );
    assert.deepEqual([byLane1?.merged.attempt, byLane1?.merged.lanes, byLane1?.merged.own], [0, [0, 1], true]);
    const shard1 = await getCommit(A.client as never, { ...merge, shard: 1 });
    assert.equal(shard1.status, "pending");
    assert.equal(shard1.owner, lane1.trainers[1]!.account.address);
  });
});
