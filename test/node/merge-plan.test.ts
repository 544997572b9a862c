import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { keccak256, toHex, zeroHash, type Hex } from "viem";
import { MERGE_LANES, mergedLanesBitmap, mergedLanesOf, type CommitStatusName } from "shard-protocol/sdk";

import { acceptedMerge, planMerge, type RoundCommit } from "../../node/src/swarm/merge-plan.js";

/** The rule that decides a round's merge from on-chain data alone (docs/protocol.md, "Merging lanes"). */

const root = (label: string): Hex => keccak256(toHex(label));

function commit(
  shard: number,
  round: bigint,
  lane: number,
  opts: { at?: number; status?: CommitStatusName; parent?: Hex; root?: Hex } = {},
): RoundCommit {
  return {
    commitId: root(`id-${shard}-${round}-${lane}`),
    revealBlock: 1n,
    revealedAt: opts.at ?? 1000,
    status: opts.status ?? "pending",
    checkpoint: {
      modelId: 1n,
      shard,
      round,
      lane,
      owner: "0x0000000000000000000000000000000000000001",
      parentRoot: opts.parent ?? zeroHash,
      root: opts.root ?? root(`root-${shard}-${round}-${lane}`),
      transcriptDigest: zeroHash,
      sentActivations: zeroHash,
      receivedActivations: zeroHash,
      sentGradients: zeroHash,
      receivedGradients: zeroHash,
      workUnits: lane >= MERGE_LANES ? 0n : 10n,
      lossMicros: 0n,
      checkpointURI: "ipfs://x",
      transcriptURI: "ipfs://y",
    },
  };
}

const allMatched = () => true;

describe("merge plan: which lanes of a round merge, from on-chain state alone", () => {
  it("merges every lane revealed on every shard by the deadline with matched links, in lane order", () => {
    const commits = [0, 1].flatMap((s) => [
      commit(s, 1n, 2, { at: 1003 }),
      commit(s, 1n, 0, { at: 1000 }),
      commit(s, 1n, 1, { at: 1010 }),
    ]);
    const plan = planMerge({ round: 1n, shardCount: 2, revealWindow: 10, commits, linkMatched: allMatched });
    assert.equal(plan.deadline, 1010);
    assert.deepEqual(plan.lanes, [0, 1, 2]);
    assert.equal(plan.bitmap, mergedLanesBitmap([0, 1, 2]));
    assert.deepEqual(mergedLanesOf(plan.bitmap!), [0, 1, 2]);
    assert.deepEqual(
      plan.laneCommits.map((cs) => cs.map((c) => [c.checkpoint.shard, c.checkpoint.lane])),
      [
        [
          [0, 0],
          [0, 1],
          [0, 2],
        ],
        [
          [1, 0],
          [1, 1],
          [1, 2],
        ],
      ],
    );
    assert.deepEqual(plan.base, [zeroHash, zeroHash]);
    assert.deepEqual(plan.nextAttempt, [0, 0]);
  });

  it("leaves out a lane that is late, incomplete, rejected, unlinked, built on another base, or above 255", () => {
    const commits = [
      ...[0, 1].map((s) => commit(s, 1n, 0, { at: 1000 })),
      ...[0, 1].map((s) => commit(s, 1n, 1, { at: s === 1 ? 1011 : 1000 })), // shard 1 late
      commit(0, 1n, 2), // shard 1 never revealed
      ...[0, 1].map((s) => commit(s, 1n, 3, { status: s === 1 ? "rejected" : "pending" })),
      ...[0, 1].map((s) => commit(s, 1n, 4)), // link mismatched
      ...[0, 1].map((s) => commit(s, 1n, 256)),
    ];
    const plan = planMerge({
      round: 1n,
      shardCount: 2,
      revealWindow: 10,
      commits,
      linkMatched: (lane) => lane !== 4,
    });
    assert.deepEqual(plan.lanes, [0]);

    // Round 2 builds on the accepted merge of round 1: a lane on another parent is left out.
    const m = [0, 1].map((s) => commit(s, 1n, MERGE_LANES, { root: root(`merge-${s}`) }));
    const round2 = [
      ...[0, 1].map((s) => commit(s, 2n, 0, { parent: root(`merge-${s}`), at: 2000 })),
      ...[0, 1].map((s) => commit(s, 2n, 1, { parent: root(`root-${s}-1-1`), at: 2000 })),
    ];
    const plan2 = planMerge({
      round: 2n,
      shardCount: 2,
      revealWindow: 10,
      commits: [...commits, ...m, ...round2],
      linkMatched: allMatched,
    });
    assert.deepEqual(plan2.base, [root("merge-0"), root("merge-1")]);
    assert.deepEqual(plan2.lanes, [0]);
  });

  it("the accepted merge is the lowest attempt revealed and not rejected; the next attempt is the first free", () => {
    const m0 = commit(0, 1n, MERGE_LANES, { status: "rejected", root: root("m0") });
    const m1 = commit(0, 1n, MERGE_LANES + 1, { root: root("m1") });
    const m2 = commit(0, 1n, MERGE_LANES + 2, { root: root("m2") });
    assert.equal(acceptedMerge([m2, m0, m1])?.checkpoint.root, root("m1"));
    assert.equal(acceptedMerge([m0]), undefined);
    const plan = planMerge({
      round: 1n,
      shardCount: 1,
      revealWindow: 10,
      commits: [commit(0, 1n, 0), m0, m1],
      linkMatched: allMatched,
    });
    assert.equal(plan.accepted[0]?.checkpoint.root, root("m1"));
    assert.deepEqual(plan.nextAttempt, [2]);
  });

  it("with nothing revealed there is no deadline and no lane", () => {
    const plan = planMerge({ round: 3n, shardCount: 2, revealWindow: 10, commits: [], linkMatched: allMatched });
    assert.equal(plan.deadline, undefined);
    assert.deepEqual(plan.lanes, []);
    assert.equal(plan.bitmap, undefined);
  });
});
