import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

import { type Address, type Hex, keccak256, toHex, zeroHash } from "viem";
import { type Checkpoint, MERGE_LANES, mergedLanesBitmap } from "shard-protocol/sdk";

import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { ipfsUri } from "../../node/src/ipfs/store.js";
import { initBackend } from "../../node/src/ml/backend.js";
import { encodeMergedCheckpoint, mergeCheckpoints } from "../../node/src/ml/merge.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { type MergeRule, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import { decodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { genesisState } from "../../node/src/swarm/merge-build.js";
import { type RevealedCommit, examineRound, replayRound } from "../../node/src/verify/index.js";
import { tinySpec } from "./helpers.js";

/**
 * A lane's round whose parent is a merge commit: the verifier fetches the merged checkpoint (its
 * `merge/tag` tensor and, under `diloco`, its outer momentum in the file) as the parent, replays
 * the round from it, and finds an honest pipeline's commits valid.
 */

const label = (s: string): Hex => keccak256(toHex(s));

describe("a lane's round built on a merge replays from the merged checkpoint", () => {
  it("round 2 of lane 0 on a diloco merge (tag and outer momentum in the parent file): every shard valid", async () => {
    const rule: MergeRule = { rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9, nesterov: true };
    const tiny = tinySpec([1, 1]);
    const spec = zModelSpec.parse({ ...tiny, training: { ...tiny.training, merge: rule } });
    const digest = specDigest(spec);
    const modelId = "7";
    const backend = await initBackend("wasm");
    const dir = await mkdtemp(join(tmpdir(), "merge-parent-"));
    const store = await HeliaStore.open(join(dir, "ipfs"));
    try {
      const genesis = spec.shards.map(() => ({ root: zeroHash }));
      const lanes = await Promise.all(
        [0, 1].map((lane) =>
          replayRound({ spec, modelId, specDigest: digest, lane, round: 1, parents: genesis, backend }),
        ),
      );
      const owner = "0x0000000000000000000000000000000000000001" as Address;
      const revealed = (cp: Omit<Checkpoint, "owner" | "modelId">, id: string): RevealedCommit => ({
        commitId: label(id),
        checkpoint: { ...cp, modelId: 7n, owner },
        revealBlock: 1n,
        revealBlockHash: label(`block-${id}`),
      });
      // The merge of round 1 on each shard: tagged, with DiLoCo's outer momentum.
      const merges: RevealedCommit[] = [];
      const files: Uint8Array[] = [];
      for (const shard of [0, 1]) {
        const layout = stageLayout(spec, shard);
        const merged = mergeCheckpoints(
          rule,
          genesisState(spec, shard),
          lanes.map((r, lane) => ({ lane, state: r.shards[shard]!.state })),
        );
        assert.ok(merged.outerMomentum);
        const meta = { modelId, shard, lane: MERGE_LANES, round: 1, specDigest: digest, backend: "merge" };
        const file = encodeMergedCheckpoint(layout, merged, rule, [0, 1], meta);
        files.push(file.bytes);
        const bitmap = mergedLanesBitmap([0, 1]);
        const cp = {
          shard,
          round: 1n,
          lane: MERGE_LANES,
          parentRoot: zeroHash,
          root: file.root,
          transcriptDigest: zeroHash,
          sentActivations: bitmap,
          receivedActivations: bitmap,
          sentGradients: zeroHash,
          receivedGradients: zeroHash,
          workUnits: 0n,
          lossMicros: 0n,
          checkpointURI: ipfsUri(await store.add(file.bytes)),
          transcriptURI: "ipfs://none",
        };
        merges.push(revealed(cp, `merge-${shard}`));
      }
      // Round 2 of lane 0 as an honest pipeline trains it from the merges (their decoded files).
      const parents = [0, 1].map((shard) => {
        const { state, root } = decodeCheckpoint(stageLayout(spec, shard), files[shard]!, {
          modelId,
          specDigest: digest,
          stepsPerRound: spec.training.stepsPerRound,
          round: 1,
        });
        assert.ok(state.mergeTag && state.outerMomentum, "the parent file carries the tag and the momentum");
        return { state, root };
      });
      const round2 = await replayRound({ spec, modelId, specDigest: digest, lane: 0, round: 2, parents, backend });
      const commits: RevealedCommit[] = [];
      for (const r of round2.shards) {
        const cp = {
          shard: r.shard,
          round: 2n,
          lane: 0,
          parentRoot: merges[r.shard]!.checkpoint.root,
          root: r.root,
          transcriptDigest: r.transcriptDigest,
          ...r.digests,
          workUnits: r.workUnits,
          lossMicros: r.lossMicros,
          checkpointURI: ipfsUri(await store.add(r.checkpoint)),
          transcriptURI: ipfsUri(await store.add(r.transcript)),
        };
        commits.push(revealed(cp, `round2-${r.shard}`));
      }
      // The verifier's examination fetches the merges as parents and finds both shards valid.
      const ex = await examineRound({
        spec,
        modelId: 7n,
        specDigest: digest,
        backend,
        store,
        fetchTimeoutMs: 5_000,
        lane: 0,
        round: 2,
        commits,
        byRoot: (root) => merges.find((c) => c.checkpoint.root === root),
      });
      assert.equal(ex.kind, "checked");
      if (ex.kind !== "checked") return;
      assert.deepEqual(
        ex.verdicts.map((v) => [v.shard, v.valid, v.reason]),
        [
          [0, true, "ok"],
          [1, true, "ok"],
        ],
      );
      assert.deepEqual(
        ex.replay.shards.map((r) => r.parentRoot),
        merges.map((c) => c.checkpoint.root),
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
