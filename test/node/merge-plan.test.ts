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
  opts: { at?: number; status?: CommitStatusName; parent?: Hex; root?: Hex; block?: bigint; lanes?: Hex } = {},
): RoundCommit {
  return {
    commitId: root(`id-${shard}-${round}-${lane}`),
    revealBlock: opts.block ?? 1n,
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
      sentActivations: opts.lanes ?? zeroHash,
      receivedActivations: opts.lanes ?? zeroHash,
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
    const m = [0, 1].map((s) =>
      commit(s, 1n, MERGE_LANES, { root: root(`merge-${s}`), lanes: mergedLanesBitmap([0]) }),
    );
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

  it("the accepted merge is the complete attempt revealed first; each shard's next attempt completes one across shards", () => {
    const lanes = mergedLanesBitmap([0]);
    const m = (shard: number, attempt: number, block: bigint, status: CommitStatusName = "pending") =>
      commit(shard, 1n, MERGE_LANES + attempt, { root: root(`m${attempt}-${shard}`), block, status, lanes });
    // Attempt 0 rejected; attempts 1 and 2 complete; attempt 2's last shard revealed first.
    const merges = [m(0, 0, 1n, "rejected"), m(1, 0, 1n), m(0, 1, 3n), m(1, 1, 6n), m(0, 2, 4n), m(1, 2, 5n)];
    assert.deepEqual(
      acceptedMerge(merges, 2).map((c) => c?.checkpoint.root),
      [root("m2-0"), root("m2-1")],
    );
    // Sealed early and revealed late, a lower attempt does not take the place of the accepted one.
    assert.deepEqual(
      acceptedMerge([...merges, m(0, 3, 2n), m(1, 3, 9n)], 2).map((c) => c?.checkpoint.root),
      [root("m2-0"), root("m2-1")],
    );
    // A lone attempt on one shard, or shards naming different lanes, count for nothing.
    assert.deepEqual(acceptedMerge([m(0, 0, 1n)], 2), [undefined, undefined]);
    const other = {
      ...m(1, 0, 1n),
      checkpoint: { ...m(1, 0, 1n).checkpoint, sentActivations: mergedLanesBitmap([1]) },
    };
    assert.deepEqual(acceptedMerge([m(0, 0, 1n), other], 2), [undefined, undefined]);
    const plan = planMerge({
      round: 1n,
      shardCount: 2,
      revealWindow: 10,
      commits: [commit(0, 1n, 0), commit(1, 1n, 0), m(0, 0, 1n, "rejected"), m(1, 0, 1n), m(1, 1, 2n)],
      linkMatched: allMatched,
    });
    assert.deepEqual(plan.accepted, [undefined, undefined]);
    // Shard 0 joins attempt 1 (shard 1's is alive and names these lanes); shard 1 has used 0 and 1.
    assert.deepEqual(plan.nextAttempt, [1, 2]);
    // An attempt whose other shard is rejected, or names other lanes, is skipped.
    const skip = planMerge({
      round: 1n,
      shardCount: 2,
      revealWindow: 10,
      commits: [
        commit(0, 1n, 0),
        commit(1, 1n, 0),
        m(1, 0, 1n, "rejected"),
        { ...m(1, 1, 2n), checkpoint: { ...m(1, 1, 2n).checkpoint, sentActivations: mergedLanesBitmap([1]) } },
      ],
      linkMatched: allMatched,
    });
    assert.deepEqual(skip.nextAttempt, [2, 2]);
  });

  it("commits on another parent neither start the round's clock nor merge; round r + 1 waits for r's merge", () => {
    const merges = [0, 1].map((s) =>
      commit(s, 1n, MERGE_LANES, { root: root(`merge-${s}`), lanes: mergedLanesBitmap([0]) }),
    );
    // Built on a round-1 training commit, revealed early (before any merge of round 1 existed).
    const early = [0, 1].map((s) => commit(s, 2n, 300 % 256, { parent: root(`root-${s}-1-0`), at: 500 }));
    const onBase = [0, 1].map((s) => commit(s, 2n, 0, { parent: root(`merge-${s}`), at: 2000 }));
    const input = { round: 2n, shardCount: 2, revealWindow: 10, linkMatched: allMatched };
    assert.deepEqual(planMerge({ ...input, commits: early }).deadline, undefined);
    const plan = planMerge({ ...input, commits: [...merges, ...early, ...onBase] });
    assert.equal(plan.deadline, 2010);
    assert.deepEqual(plan.lanes, [0]);
    // A commit rejected later does not move the clock.
    const rejected = [0, 1].map((s) => commit(s, 2n, 5, { parent: root(`merge-${s}`), at: 1990, status: "rejected" }));
    assert.equal(planMerge({ ...input, commits: [...merges, ...onBase, ...rejected] }).deadline, 2000);
  });

  it("merges at most 2048 (lane, shard) commits: the lowest lanes", () => {
    const shardCount = 16;
    const commits = Array.from({ length: 200 }, (_, lane) =>
      Array.from({ length: shardCount }, (_, s) => commit(s, 1n, lane)),
    ).flat();
    const plan = planMerge({ round: 1n, shardCount, revealWindow: 10, commits, linkMatched: allMatched });
    assert.equal(plan.lanes.length, 128);
    assert.deepEqual(plan.lanes.slice(-2), [126, 127]);
  });

  it("with nothing revealed there is no deadline and no lane", () => {
    const plan = planMerge({ round: 3n, shardCount: 2, revealWindow: 10, commits: [], linkMatched: allMatched });
    assert.equal(plan.deadline, undefined);
    assert.deepEqual(plan.lanes, []);
    assert.equal(plan.bitmap, undefined);
  });
});
