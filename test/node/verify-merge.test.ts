import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Address, type Hex, keccak256, toHex, zeroHash } from "viem";
import {
  type Checkpoint,
  type CommitStatusName,
  DEFAULT_ROUND_PARAMS,
  MERGE_LANES,
  getCommit,
  getRevealedCheckpoints,
  mergedLanesBitmap,
  reveal,
  signSealedCommit,
  submitCommit,
  toTokenId,
} from "shard-protocol/sdk";

import { laneSettled } from "../../node/src/commands/verify.js";
import { type ContentStore, ipfsUri } from "../../node/src/ipfs/store.js";
import { encodeMergedCheckpoint } from "../../node/src/ml/merge.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { type BuiltMerge, buildMerge, randomNonce } from "../../node/src/swarm/merge-build.js";
import { type MergePlan, type RoundCommit, planMerge, readRoundState } from "../../node/src/swarm/merge-plan.js";
import {
  type VerifierPass,
  checkMergeFields,
  checkMergeRecomputed,
  finalMarginSeconds,
  planForMerge,
  verifyOnce,
} from "../../node/src/verify/index.js";

import { WithholdingStore } from "../helpers/adversary.js";
import { type Actor, Lab, type LabModel, TRAINER_STAKE } from "../helpers/lane.js";

/**
 * The verifier's side of merges (docs/protocol.md, "Merging lanes"): merge commits are recomputed,
 * not replayed; a correct one is attested and finalizes after its lanes; a wrong one is challenged
 * with the reason that names what differs, voted invalid and slashed; a lane rejected after the
 * merge was revealed takes the merge down (`rejectMerge`, no slash) and a corrected attempt merges
 * the others.
 */

const P = DEFAULT_ROUND_PARAMS;
const minted = (workUnits: bigint) => (workUnits * P.workToTokenRate) / 10n ** 18n;
const label = (s: string): Hex => keccak256(toHex(s));

function roundCommit(
  shard: number,
  lane: number,
  opts: { status?: CommitStatusName; at?: number; bitmap?: Hex } = {},
): RoundCommit {
  const merge = lane >= MERGE_LANES;
  return {
    commitId: label(`id-${shard}-${lane}`),
    revealBlock: 1n,
    revealedAt: opts.at ?? 1000,
    status: opts.status ?? "pending",
    checkpoint: {
      modelId: 1n,
      shard,
      round: 1n,
      lane,
      owner: "0x0000000000000000000000000000000000000001",
      parentRoot: zeroHash,
      root: label(`root-${shard}-${lane}`),
      transcriptDigest: label(`t-${shard}-${lane}`),
      sentActivations: opts.bitmap ?? zeroHash,
      receivedActivations: opts.bitmap ?? zeroHash,
      sentGradients: zeroHash,
      receivedGradients: zeroHash,
      workUnits: merge ? 0n : 10n,
      lossMicros: 0n,
      checkpointURI: "ipfs://x",
      transcriptURI: "ipfs://y",
    },
  };
}

describe("merge checks without a chain", () => {
  const lanes01 = mergedLanesBitmap([0, 1]);
  const lane0 = mergedLanesBitmap([0]);
  // Lanes 0 and 1 on time on both shards; lane 1's shard-1 commit rejected since.
  const commits = [0, 1].flatMap((s) => [
    roundCommit(s, 0),
    roundCommit(s, 1, { status: s === 1 ? "rejected" : "pending" }),
  ]);
  const input = { round: 1n, shardCount: 2, revealWindow: 600, commits, linkMatched: () => true };

  it("a lane the merge included and that was rejected since counts as not rejected (rejectMerge takes it down)", () => {
    assert.deepEqual(planMerge(input).lanes, [0]);
    const old = roundCommit(0, MERGE_LANES, { bitmap: lanes01 }).checkpoint;
    assert.deepEqual(planForMerge(input, old).lanes, [0, 1]);
    const corrected = roundCommit(0, MERGE_LANES + 1, { bitmap: lane0 }).checkpoint;
    assert.deepEqual(planForMerge(input, corrected).lanes, [0]);
  });

  it("fields: lanes, parent, and what a merge leaves empty, each with its reason", () => {
    const plan = planMerge(input);
    const good = roundCommit(0, MERGE_LANES + 1, { bitmap: lane0 }).checkpoint;
    assert.equal(checkMergeFields(good, plan), undefined);
    const reason = (cp: Partial<Checkpoint>) => checkMergeFields({ ...good, ...cp }, plan)?.reason;
    assert.equal(reason({ sentActivations: lanes01, receivedActivations: lanes01 }), "merge-lanes");
    assert.equal(reason({ receivedActivations: lanes01 }), "merge-lanes");
    assert.equal(reason({ parentRoot: label("elsewhere") }), "merge-parent");
    assert.equal(reason({ workUnits: 5n }), "work-units");
    assert.equal(reason({ sentGradients: label("g") }), "pipeline-digest");
    assert.equal(reason({ lossMicros: 7n }), "loss");
    // No lane to merge: every merge is wrong.
    const none = planMerge({ ...input, commits: [] });
    assert.equal(checkMergeFields(good, none)?.reason, "merge-lanes");
    const built = { lanes: [0], attempt: 1, fields: { root: good.root }, manifestDigest: good.transcriptDigest };
    assert.equal(checkMergeRecomputed(good, built as BuiltMerge), undefined);
    assert.equal(checkMergeRecomputed({ ...good, root: label("r") }, built as BuiltMerge)?.reason, "merge-root");
    assert.equal(
      checkMergeRecomputed({ ...good, transcriptDigest: label("m") }, built as BuiltMerge)?.reason,
      "merge-transcript",
    );
  });

  it("--until-round waits for the merges of the round, and for a finalized merge on every shard", () => {
    const c = (shard: number, lane: number, status: CommitStatusName) =>
      ({ commitId: label(`${shard}-${lane}-${status}`), shard, lane, round: 1, status }) as const;
    const pass = (commits: ReturnType<typeof c>[]) => ({ commits }) as unknown as VerifierPass;
    const lanes = [0, 1].flatMap((s) => [c(s, 0, "finalized"), c(s, 1, "finalized")]);
    assert.equal(laneSettled(pass(lanes), 2, 1), true, "no merge seen: lanes only");
    const pending = [c(0, MERGE_LANES, "pending"), c(1, MERGE_LANES, "finalized")];
    assert.equal(laneSettled(pass([...lanes, ...pending]), 2, 1), false);
    const takenDown = [c(0, MERGE_LANES, "rejected"), c(1, MERGE_LANES, "rejected")];
    assert.equal(laneSettled(pass([...lanes, ...takenDown]), 2, 1), false, "waits for the corrected attempt");
    const corrected = [c(0, MERGE_LANES + 1, "finalized"), c(1, MERGE_LANES + 1, "finalized")];
    assert.equal(laneSettled(pass([...lanes, ...takenDown, ...corrected]), 2, 1), true);
  });
});

describe("verifiers recompute merges: attest the right one, slash the wrong ones, take down the merge of a rejected lane", () => {
  let lab: Lab;
  let A: Actor;
  let B: Actor;

  before(async () => {
    lab = await Lab.create();
    [A, B] = [lab.actor(4), lab.actor(5)];
  });
  after(async () => {
    await lab?.close();
  });

  const pass = async (model: LabModel, v: Actor): Promise<VerifierPass> =>
    verifyOnce(await lab.verifierConfig(model, v));
  const commitOf = (model: LabModel, lane: number, shard: number) =>
    getCommit(A.client as never, { deployment: lab.deployment, modelId: model.modelId, shard, round: 1, lane });
  const stakeOf = async (model: LabModel, a: Actor) => {
    const s = (await lab.f.staking.read.stakeOf([model.modelId, a.account.address, 0])) as {
      active: bigint;
      locked: bigint;
    };
    return { active: s.active, locked: s.locked };
  };
  const tokens = async (model: LabModel, owner: Address, shard: number) =>
    (await lab.f.token.read.balanceOf([owner, toTokenId({ modelId: model.modelId, shard })])) as bigint;

  /** Round 1's merge plan as the chain says now, with the commits it reads. */
  async function planNow(model: LabModel): Promise<MergePlan> {
    const { reveals } = await getRevealedCheckpoints(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
    });
    const input = await readRoundState(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
      round: 1n,
      shardCount: 2,
      revealWindow: P.revealWindow,
      reveals,
    });
    return planMerge(input);
  }

  /** Publishes a merge's files on `store` and seals and reveals it from `who`; returns the checkpoint. */
  async function commitMerge(who: Actor, store: ContentStore, built: BuiltMerge): Promise<Checkpoint> {
    const cp: Checkpoint = {
      ...built.fields,
      owner: who.account.address,
      checkpointURI: ipfsUri(await store.add(built.checkpoint.bytes)),
      transcriptURI: ipfsUri(await store.add(built.manifest)),
    };
    return sealAndReveal(who, cp);
  }

  async function sealAndReveal(who: Actor, cp: Checkpoint): Promise<Checkpoint> {
    const { deployment } = lab;
    const signed = await signSealedCommit(who.client as never, { deployment, account: who.account, checkpoint: cp });
    const sent = await submitCommit(who.client as never, {
      deployment,
      account: who.account,
      commit: signed.commit,
      signature: signed.signature,
    });
    await lab.mine(); // a reveal must be in a later block than its seal
    await reveal(who.client as never, {
      deployment,
      account: who.account,
      checkpoint: cp,
      salt: signed.salt,
      commitBlock: sent.commitBlock,
      commitTime: sent.commitTime,
    });
    return cp;
  }

  it("lanes 0 and 1 (lane 1 cheats on shard 1), merges by hand: right, wrong root, wrong lanes; then a corrected merge", async () => {
    const t0 = performance.now();
    const m = await lab.model({ trainers: [1, 2, 3, 6, 7, 8], merge: { rule: "mean" } });
    const { spec } = m;
    assert.deepEqual([spec.shards.length, spec.training.merge], [2, { rule: "mean" }]);
    const [merger, crook] = [lab.actor(3), lab.actor(8)];
    const node = await lab.contentNode("merger");
    const src = { spec, specDigest: m.specDigest, modelId: m.modelId, store: node.store, fetchTimeoutMs: 5_000 };
    const [lane0, lane1] = await Promise.all([
      lab.runLane({ model: m, lane: 0, rounds: 1, trainers: [1, 2], noMergeStep: true }),
      lab.runLane({
        model: m,
        lane: 1,
        rounds: 1,
        trainers: [6, 7],
        noMergeStep: true,
        adversary: { shard: 1, adversary: { kind: "perturb-weights" } },
      }),
    ]);
    const cheat = await commitOf(m, 1, 1);

    // Both lanes revealed: the merger commits attempt 0 at once, before the merge deadline (its
    // node connected to the lanes' nodes, from which it fetches their checkpoints).
    await lab.contentNode("merger");
    const plan = await planNow(m);
    assert.deepEqual(plan.lanes, [0, 1]);
    const right = await Promise.all(
      [0, 1].map(async (shard) => buildMerge(src, { plan, shard, attempt: 0, nonce: randomNonce() })),
    );
    const rightCps: Checkpoint[] = [];
    for (const b of right) rightCps.push(await commitMerge(merger, node.store, b));

    // Before the deadline (a lane could still join the plan): lanes replayed, merges not judged yet;
    // A challenges lane 1's shard 1, B votes it invalid.
    const a0 = await pass(m, A);
    const b0 = await pass(m, B);
    assert.deepEqual(a0.challenged, [cheat.commitId]);
    assert.ok(b0.voted.some((v) => v.commitId === cheat.commitId && v.invalid));
    assert.deepEqual([a0.recomputed, b0.recomputed], [[], []]);
    assert.ok(!a0.attested.some((id) => a0.commits.some((c) => c.commitId === id && c.lane >= MERGE_LANES)));

    // The deadline passes; lane 1 is still pending, so the plan still merges lanes 0 and 1.
    await lab.increaseTime(P.revealWindow + 1);
    assert.deepEqual((await planNow(m)).lanes, [0, 1]);
    // Attempt 1 by a crook: shard 0's weights nudged (another root); shard 1 leaves out lane 1, which was on time.
    const honest1 = await buildMerge(src, { plan, shard: 0, attempt: 1, nonce: randomNonce() });
    const layout = stageLayout(spec, 0);
    const { state, meta } = decodeCheckpoint(layout, honest1.checkpoint.bytes, {
      modelId: String(m.modelId),
      specDigest: m.specDigest,
      stepsPerRound: spec.training.stepsPerRound,
      round: 1,
    });
    const first = Object.keys(state.params)[0]!;
    state.params[first]![0]! += 1e-3;
    const nudged = encodeMergedCheckpoint(layout, state, { rule: "mean" }, [0, 1], meta, 1);
    const wrongRoot: BuiltMerge = { ...honest1, checkpoint: nudged, fields: { ...honest1.fields, root: nudged.root } };
    const only0: MergePlan = {
      ...plan,
      lanes: [0],
      bitmap: mergedLanesBitmap([0]),
      laneCommits: plan.laneCommits.map((cs) => cs.filter((c) => c.checkpoint.lane === 0)),
    };
    const wrongLanes = await buildMerge(src, { plan: only0, shard: 1, attempt: 1, nonce: randomNonce() });
    await commitMerge(crook, node.store, wrongRoot);
    await commitMerge(crook, node.store, wrongLanes);
    const ids = async (lane: number) => Promise.all([0, 1].map(async (s) => (await commitOf(m, lane, s)).commitId));
    const [attempt0, attempt1] = [await ids(MERGE_LANES), await ids(MERGE_LANES + 1)];
    // A round-2 commit of lane 0 built on shard 0's attempt-0 merge (its content does not matter here).
    const onMerge = await sealAndReveal(lane0.trainers[0]!, {
      ...rightCps[0]!,
      round: 2n,
      lane: 0,
      owner: lane0.trainers[0]!.account.address,
      parentRoot: rightCps[0]!.root,
      root: label("built on the merge"),
      sentActivations: label("a"),
      receivedActivations: zeroHash,
      workUnits: 1000n,
    });
    const onMergeId = (
      await getCommit(A.client as never, {
        deployment: lab.deployment,
        modelId: m.modelId,
        shard: 0,
        round: 2,
        lane: 0,
      })
    ).commitId;
    assert.equal(onMerge.parentRoot, rightCps[0]!.root);

    // Both verifiers recompute every merge: attempt 0 attested; attempt 1 challenged by A, voted invalid by B.
    const a1 = await pass(m, A);
    const b1 = await pass(m, B);
    for (const p of [a1, b1]) {
      assert.equal(p.recomputed.length, 4);
      assert.ok(
        p.replayed.every((r) => r.lane < MERGE_LANES),
        "merges are never replayed as training",
      );
      const reasons = new Map(p.verdicts.map((v) => [v.commitId, v.reason]));
      assert.deepEqual(
        [...attempt0, ...attempt1].map((id) => reasons.get(id)),
        ["ok", "ok", "merge-root", "merge-lanes"],
      );
      for (const id of attempt0) assert.ok(p.attested.includes(id));
    }
    assert.deepEqual([...a1.challenged].sort(), [...attempt1].sort());
    for (const id of attempt1) assert.ok(b1.voted.some((v) => v.commitId === id && v.invalid));
    assert.equal(rightCps[0]!.parentRoot, zeroHash);

    // Windows pass: disputes resolved (the cheating lane and both wrong merges rejected and slashed);
    // lane commits finalize; the right merges merged lane 1, now rejected: taken down (no slash).
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    const later: VerifierPass[] = [];
    for (let i = 0; i < 4; i++) later.push(await pass(m, A), await pass(m, B));
    const all = [a0, b0, a1, b1, ...later];
    const resolved = all.flatMap((p) => p.resolved);
    for (const id of [cheat.commitId, ...attempt1])
      assert.deepEqual(
        resolved.filter((r) => r.commitId === id),
        [{ commitId: id, verdict: "invalid", slashed: P.slashAmount }],
      );
    assert.deepEqual(all.flatMap((p) => p.mergesRejected).sort(), [...attempt0].sort());
    // What was built on a merge taken down is rejected by cascade, its lock released (no slash).
    assert.ok(all.some((p) => p.orphansRejected.includes(onMergeId)));
    for (const s of [0, 1]) {
      assert.equal((await commitOf(m, MERGE_LANES, s)).status, "rejected");
      assert.equal((await commitOf(m, MERGE_LANES + 1, s)).status, "rejected");
      assert.equal((await commitOf(m, 0, s)).status, "finalized");
    }
    assert.equal((await commitOf(m, 1, 0)).status, "finalized", "lane 1's honest shard finalizes");
    assert.equal((await commitOf(m, 1, 1)).status, "rejected");
    assert.equal(laneSettled(later.at(-1)!, 2, 1), false, "round 1 has no merge yet");

    // The corrected merge: lane 0 alone, at attempt 2 (the first free one), attested and finalized.
    const corrected = await planNow(m);
    assert.deepEqual([corrected.lanes, corrected.nextAttempt], [[0], [2, 2]]);
    const fixedBuilt = await Promise.all(
      [0, 1].map((shard) => buildMerge(src, { plan: corrected, shard, attempt: 2, nonce: randomNonce() })),
    );
    for (const b of fixedBuilt) await commitMerge(merger, node.store, b);
    const attempt2 = await ids(MERGE_LANES + 2);
    const a2 = await pass(m, A);
    assert.deepEqual(
      a2.verdicts.map((v) => [v.commitId, v.reason]),
      attempt2.map((id) => [id, "ok"]),
    );
    assert.deepEqual([...a2.attested].sort(), [...attempt2].sort());
    await lab.increaseTime(P.challengeWindow + 60);
    const a3 = await pass(m, A);
    assert.deepEqual(a3.finalized.map((f) => f.commitId).sort(), [...attempt2].sort());
    assert.ok(
      a3.finalized.every((f) => f.minted === 0n),
      "a merge mints nothing",
    );
    assert.ok(laneSettled(a3, 2, 1), "round 1 settled: lanes and the merge");

    // Money: honest trainers minted their work, the cheaters slashed once per bad commit, the merger whole.
    for (const [run, shard] of [
      [lane0, 0],
      [lane0, 1],
      [lane1, 0],
    ] as const) {
      const owner = run.trainers[shard]!;
      const work = BigInt(run.results[shard]!.journal.head!.workUnits);
      assert.equal(await tokens(m, owner.account.address, shard), minted(work));
      assert.deepEqual(await stakeOf(m, owner), { active: TRAINER_STAKE, locked: 0n });
    }
    assert.deepEqual(await stakeOf(m, lab.actor(7)), { active: TRAINER_STAKE - P.slashAmount, locked: 0n });
    assert.equal(await tokens(m, lab.actor(7).account.address, 1), 0n);
    assert.deepEqual(await stakeOf(m, merger), { active: TRAINER_STAKE, locked: 0n });
    assert.deepEqual(await stakeOf(m, crook), { active: TRAINER_STAKE - 2n * P.slashAmount, locked: 0n });

    // A merge whose files were never published: only retried early in its window; near its end
    // reported and challenged as withheld (the next round could not start from it).
    const hidden = await commitMerge(
      crook,
      new WithholdingStore(node.store),
      await buildMerge(src, { plan: corrected, shard: 0, attempt: 3, nonce: randomNonce() }),
    );
    const hiddenId = (await commitOf(m, hidden.lane, 0)).commitId;
    const early = await pass(m, A);
    assert.deepEqual([early.verdicts, early.challenged, early.notFetched], [[], [], []]);
    assert.equal(early.recomputed.length, 0, "no verdict without its files");
    await lab.increaseTime(P.challengeWindow - finalMarginSeconds(P.challengeWindow) + 30);
    const late = await pass(m, A);
    assert.deepEqual(
      late.notFetched.map((n) => [n.commitId, n.reason, n.kind, n.action]),
      [[hiddenId, "withheld", "challenge", "challenge"]],
    );
    assert.deepEqual(late.challenged, [hiddenId]);
    console.log(`# merges verified end to end in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
});
