import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Hex, keccak256, toHex, zeroHash } from "viem";
import {
  type Checkpoint,
  DEFAULT_ROUND_PARAMS,
  MERGE_LANES,
  getCommit,
  getRevealedCheckpoints,
  reveal,
  signSealedCommit,
  submitCommit,
} from "shard-protocol/sdk";

import { decodeSafetensors, encodeSafetensors } from "../../node/src/checkpoint/safetensors.js";
import { type ContentStore, ipfsUri } from "../../node/src/ipfs/store.js";
import { stageLayout } from "../../node/src/ml/model.js";
import type { StageState } from "../../node/src/ml/stage.js";
import { encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { type BuiltMerge, buildMerge, genesisState, randomNonce } from "../../node/src/swarm/merge-build.js";
import { type MergePlan, planMerge, readRoundState } from "../../node/src/swarm/merge-plan.js";
import { type VerifierPass, finalMarginSeconds, verifyOnce } from "../../node/src/verify/index.js";

import { WithholdingStore } from "../helpers/adversary.js";
import { type Actor, Lab, type LabModel } from "../helpers/lane.js";

/**
 * A merge's inputs under attack (docs/threat-model.md, "Merging lanes"): the optimizer step is
 * outside the Merkle root, so a merge file with the right root and a wrong step must be refused;
 * a lane whose file does not hash to its root is blamed (challenged) when a merge reads it, and a
 * merge nobody could recompute is never attested nor finalized by a verifier. The lanes are
 * committed by hand (round 1 from genesis, one weight moved per lane), and the verifiers sample no
 * lane (rate 0): what they find, they find through the merges.
 */

const P = DEFAULT_ROUND_PARAMS;
const label = (s: string): Hex => keccak256(toHex(s));

describe("a merge's inputs: the optimizer step, unreadable lanes, inputs that never come", () => {
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
    verifyOnce({ ...(await lab.verifierConfig(model, v)), sampleRate: 0, retry: { baseMs: 1, maxMs: 1 } });
  const commitOf = (model: LabModel, lane: number, shard: number) =>
    getCommit(A.client as never, { deployment: lab.deployment, modelId: model.modelId, shard, round: 1, lane });

  async function planNow(model: LabModel): Promise<MergePlan> {
    const { reveals } = await getRevealedCheckpoints(A.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
    });
    return planMerge(
      await readRoundState(A.client as never, {
        deployment: lab.deployment,
        modelId: model.modelId,
        round: 1n,
        shardCount: 2,
        revealWindow: P.revealWindow,
        reveals,
      }),
    );
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
    await lab.mine();
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

  /** A round-1 lane state: genesis, one weight moved by the lane, Adam's step after one round. */
  function laneState(model: LabModel, shard: number, lane: number): StageState {
    const state = genesisState(model.spec, shard);
    const first = Object.keys(state.params)[0]!;
    state.params[first]![0]! += 0.01 * (lane + 1);
    return { ...state, step: model.spec.training.stepsPerRound };
  }

  /**
   * Commits lane `lane` of round 1 on both shards with matching pipeline digests; `file(shard)`
   * overrides what a shard's URI points to (a wrong file), `stores[shard]` where it is published.
   */
  async function commitLane(
    model: LabModel,
    lane: number,
    owners: [Actor, Actor],
    stores: [ContentStore, ContentStore],
    file: (shard: number) => Uint8Array | undefined = () => undefined,
  ): Promise<StageState[]> {
    const states: StageState[] = [];
    for (const shard of [0, 1]) {
      const state = laneState(model, shard, lane);
      states.push(state);
      const meta = {
        modelId: String(model.modelId),
        shard,
        lane,
        round: 1,
        specDigest: model.specDigest,
        backend: "wasm",
      };
      const encoded = encodeCheckpoint(stageLayout(model.spec, shard), state, meta);
      const [acts, grads] = [label(`acts-${model.modelId}-${lane}`), label(`grads-${model.modelId}-${lane}`)];
      await sealAndReveal(owners[shard]!, {
        modelId: model.modelId,
        shard,
        round: 1n,
        lane,
        owner: owners[shard]!.account.address,
        parentRoot: zeroHash,
        root: encoded.root,
        transcriptDigest: label(`transcript-${lane}-${shard}`),
        sentActivations: shard === 0 ? acts : label("logits"),
        receivedActivations: shard === 0 ? zeroHash : acts,
        sentGradients: shard === 0 ? zeroHash : grads,
        receivedGradients: shard === 0 ? grads : zeroHash,
        workUnits: 1000n,
        lossMicros: 1n,
        checkpointURI: ipfsUri(await stores[shard]!.add(file(shard) ?? encoded.bytes)),
        transcriptURI: ipfsUri(await stores[shard]!.add(new TextEncoder().encode("{}"))),
      });
    }
    return states;
  }

  async function commitMerge(who: Actor, store: ContentStore, built: BuiltMerge): Promise<Hex> {
    await sealAndReveal(who, {
      ...built.fields,
      owner: who.account.address,
      checkpointURI: ipfsUri(await store.add(built.checkpoint.bytes)),
      transcriptURI: ipfsUri(await store.add(built.manifest)),
    });
    return (await commitOf({ modelId: built.fields.modelId } as LabModel, built.fields.lane, built.shard)).commitId;
  }

  it("a merge with a wrong optimizer step under the right root is challenged; a lane that hashes elsewhere is blamed", async () => {
    const m = await lab.model({ trainers: [1, 2, 3, 6, 7, 8], merge: { rule: "mean" } });
    const [t1, t2, merger, crook, c7] = [lab.actor(1), lab.actor(2), lab.actor(3), lab.actor(6), lab.actor(7)];
    const node = await lab.contentNode("inputs-1");
    const stores: [ContentStore, ContentStore] = [node.store, node.store];
    const src = {
      spec: m.spec,
      specDigest: m.specDigest,
      modelId: m.modelId,
      store: node.store,
      fetchTimeoutMs: 5_000,
    };
    await commitLane(m, 0, [t1, t2], stores);
    // Lane 1's shard-1 URI points to lane 0's file: it hashes to lane 0's root, not its own.
    const lane0Shard1 = encodeCheckpoint(stageLayout(m.spec, 1), laneState(m, 1, 0), {
      modelId: String(m.modelId),
      shard: 1,
      lane: 0,
      round: 1,
      specDigest: m.specDigest,
      backend: "wasm",
    }).bytes;
    const lane1 = await commitLane(m, 1, [crook, c7], stores, (s) => (s === 1 ? lane0Shard1 : undefined));
    const badLane = (await commitOf(m, 1, 1)).commitId;
    await lab.increaseTime(P.revealWindow + 1);
    const plan = await planNow(m);
    assert.deepEqual(plan.lanes, [0, 1]);

    // Attempt 0: shard 0 honest; shard 1 by the crook, who has lane 1's real state at hand.
    const right0 = await commitMerge(
      merger,
      node.store,
      await buildMerge(src, { plan, shard: 0, attempt: 0, nonce: randomNonce() }),
    );
    await assert.rejects(
      buildMerge(src, { plan, shard: 1, attempt: 0, nonce: randomNonce() }),
      (e: Error & { input?: { fault: string } }) =>
        e.name === "MergeInputError" && e.input?.fault === "checkpoint-root",
    );
    const known = new Map([[plan.laneCommits[1]![1]!.checkpoint.root, lane1[1]!]]);
    const onBad = await commitMerge(
      crook,
      node.store,
      await buildMerge({ ...src, known }, { plan, shard: 1, attempt: 0, nonce: randomNonce() }),
    );
    // Attempt 1 on shard 0: the honest merge's tensors (so its root), another optimizer step in the file.
    const honest = await buildMerge(src, { plan, shard: 0, attempt: 1, nonce: randomNonce() });
    const { tensors, metadata } = decodeSafetensors(honest.checkpoint.bytes);
    assert.equal(metadata.optimizerStep, String(m.spec.training.stepsPerRound));
    const wrongStep = encodeSafetensors(tensors, { ...metadata, optimizerStep: "1" });
    const stepped = await commitMerge(crook, node.store, {
      ...honest,
      checkpoint: { bytes: wrongStep, root: honest.checkpoint.root },
    });

    const a = await pass(m, A);
    const b = await pass(m, B);
    const reasons = new Map(a.verdicts.map((v) => [v.commitId, v.reason]));
    assert.deepEqual(
      [right0, stepped, badLane].map((id) => reasons.get(id)),
      ["ok", "checkpoint-malformed", "checkpoint-root"],
    );
    assert.equal(reasons.get(onBad), undefined, "no verdict on a merge nobody could recompute");
    assert.ok(a.attested.includes(right0));
    assert.ok(!a.attested.includes(onBad) && !a.attested.includes(stepped));
    assert.deepEqual([...a.challenged].sort(), [stepped, badLane].sort());
    for (const id of [stepped, badLane]) assert.ok(b.voted.some((v) => v.commitId === id && v.invalid));

    // Windows pass: the step forger and the lane slashed; both merges of lane 1 taken down, never finalized.
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    const later: VerifierPass[] = [];
    for (let i = 0; i < 3; i++) later.push(await pass(m, A), await pass(m, B));
    const all = [a, b, ...later];
    const resolved = all.flatMap((p) => p.resolved);
    for (const id of [stepped, badLane])
      assert.deepEqual(
        resolved.filter((r) => r.commitId === id).map((r) => r.verdict),
        ["invalid"],
      );
    assert.deepEqual(all.flatMap((p) => p.mergesRejected).sort(), [right0, onBad].sort());
    assert.ok(!all.some((p) => p.finalized.some((f) => f.commitId === onBad)));
    assert.equal((await commitOf(m, MERGE_LANES, 1)).status, "rejected");
  });

  it("a merge whose lane never arrives is neither attested nor finalized by a verifier; the lane is challenged as withheld", async () => {
    const m = await lab.model({ trainers: [1, 2, 3, 6, 7, 8], merge: { rule: "mean" } });
    const [t1, t2, merger, crook, c7] = [lab.actor(1), lab.actor(2), lab.actor(3), lab.actor(6), lab.actor(7)];
    const node = await lab.contentNode("inputs-2");
    const hidden = new WithholdingStore(node.store);
    const src = {
      spec: m.spec,
      specDigest: m.specDigest,
      modelId: m.modelId,
      store: node.store,
      fetchTimeoutMs: 5_000,
    };
    await commitLane(m, 0, [t1, t2], [node.store, node.store]);
    const lane1 = await commitLane(m, 1, [crook, c7], [node.store, hidden]);
    await lab.increaseTime(P.revealWindow + 1);
    const plan = await planNow(m);
    assert.deepEqual(plan.lanes, [0, 1]);
    // Attempt 0 on both shards (the same lanes, so its link matches); shard 1's by someone holding
    // lane 1's state there, which nobody else can fetch.
    const known = new Map([[plan.laneCommits[1]![1]!.checkpoint.root, lane1[1]!]]);
    const shard0 = await commitMerge(
      merger,
      node.store,
      await buildMerge(src, { plan, shard: 0, attempt: 0, nonce: randomNonce() }),
    );
    const merge = await commitMerge(
      merger,
      node.store,
      await buildMerge({ ...src, known }, { plan, shard: 1, attempt: 0, nonce: randomNonce() }),
    );
    const first = await pass(m, A);
    assert.deepEqual(
      first.verdicts.map((v) => [v.commitId, v.reason]),
      [[shard0, "ok"]],
    );
    assert.deepEqual(first.attested, [shard0]);
    // Near the end of the lane's own window, its file still not fetched: the lane (sampled by no
    // one) is reported and challenged as withheld, since a merge reads it.
    const withheldLane = (await commitOf(m, 1, 1)).commitId;
    await lab.increaseTime(P.challengeWindow - finalMarginSeconds(P.challengeWindow) + 30 - (P.revealWindow + 1));
    const late = await pass(m, A);
    assert.deepEqual(
      late.notFetched.map((n) => [n.commitId, n.reason, n.action]),
      [[withheldLane, "withheld", "challenge"]],
    );
    assert.deepEqual(late.challenged, [withheldLane]);
    // Every window passes: shard 1's merge, never recomputed, is never attested nor finalized by the verifier.
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    const later: VerifierPass[] = [];
    for (let i = 0; i < 2; i++) later.push(await pass(m, A));
    assert.ok(
      ![first, late, ...later].some((p) => p.attested.includes(merge) || p.finalized.some((f) => f.commitId === merge)),
    );
    assert.notEqual((await commitOf(m, MERGE_LANES, 1)).status, "finalized");
  });
});
