import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseEther, zeroHash, type Hex } from "viem";

import { contributionActions } from "../../sdk/decorators/contributions.js";
import { InvalidParameterError } from "../../sdk/errors/validation.js";
import type { AnyClient } from "../../sdk/utils/client.js";
import {
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  type Checkpoint,
} from "../helpers/fixture.js";
import { addr, as, registerModel, Role, stakeIn } from "../helpers/ledger.js";
import { clientFor, PATHS, sdkFixture, type ClientPath, type SdkFixture } from "./helpers.js";

const CHALLENGE = BigInt(defaultParams.challengeWindow);
const DISPUTE = BigInt(defaultParams.disputeWindow);

/**
 * Three rounds of model 1, built through the contracts:
 * - lane 0: round 1 on both shards (finalized), round 2 on both shards (finalized), round 3 on
 *   shard 0 (pending);
 * - lane 1 on shard 0: round 1 rejected by a dispute, its round-2 child rejected as an orphan;
 * - lane 2 on shard 0: a round-2 replica building on lane 0's round 1 (pending);
 * - model 2 has one revealed checkpoint on shard 0 (with the root of model 1's first one: roots
 *   are per model), which model 1's lineage must not show.
 */
async function lineageFixture() {
  const f = await sdkFixture();
  for (const i of [1, 2, 3]) await stakeIn(f, 1n, i, Role.Trainer, 3n * defaultParams.minTrainerStake);
  for (const i of [4, 5]) await stakeIn(f, 1n, i, Role.Verifier, defaultParams.minVerifierStake);
  await f.stake.write.approve([f.ledger.address, parseEther("1000")], as(f, 7));

  const revealedBlock = new Map<Hex, bigint>();
  const reveal = async (ownerIndex: number, cp: Checkpoint) => {
    const id = await commitAndReveal(f, ownerIndex, cp);
    revealedBlock.set(id, await f.publicClient.getBlockNumber());
    return id;
  };
  const cp = (owner: number, shard: number, round: bigint, lane: number, parentRoot: Hex, extra: Partial<Checkpoint>) =>
    makeCheckpoint(addr(f, owner), {
      shard,
      round,
      lane,
      parentRoot,
      checkpointURI: `ipfs://ckpt-r${round}-s${shard}-l${lane}`,
      transcriptURI: `ipfs://transcript-r${round}-s${shard}-l${lane}`,
      ...pipelineDigests(shard, 2, `-r${round}-l${lane}`),
      ...extra,
    });

  const r1s0 = cp(1, 0, 1n, 0, zeroHash, { workUnits: 1000n, lossMicros: 2_500_000n });
  const r1s1 = cp(2, 1, 1n, 0, zeroHash, { workUnits: 400n, lossMicros: 2_400_000n });
  const bad1 = cp(3, 0, 1n, 1, zeroHash, { workUnits: 900n, lossMicros: 9_000_000n });
  const ids = {
    r1s0: await reveal(1, r1s0),
    r1s1: await reveal(2, r1s1),
    bad1: await reveal(3, bad1),
  } as Record<string, Hex>;
  const bad2 = cp(3, 0, 2n, 1, bad1.root, { workUnits: 800n, lossMicros: 8_000_000n });
  ids.bad2 = await reveal(3, bad2);

  // The lane-1 branch is disputed and rejected; its child follows as an orphan.
  await f.ledger.write.challenge([ids.bad1!, digest("diverges")], as(f, 7));
  await f.ledger.write.vote([ids.bad1!, true], as(f, 4));
  await networkHelpers.time.increase(DISPUTE);
  await f.ledger.write.resolve([bad1]);
  await f.ledger.write.rejectOrphan([bad2]);
  await networkHelpers.time.increase(CHALLENGE);
  await f.ledger.write.finalize([r1s0]);
  await f.ledger.write.finalize([r1s1]);

  const r2s0 = cp(1, 0, 2n, 0, r1s0.root, { workUnits: 2000n, lossMicros: 1_750_000n });
  const r2s1 = cp(2, 1, 2n, 0, r1s1.root, { workUnits: 800n, lossMicros: 1_700_000n });
  ids.r2s0 = await reveal(1, r2s0);
  ids.r2s1 = await reveal(2, r2s1);
  const replica = cp(2, 0, 2n, 2, r1s0.root, { workUnits: 500n, lossMicros: 2_000_000n });
  ids.replica = await reveal(2, replica);
  await networkHelpers.time.increase(CHALLENGE);
  await f.ledger.write.finalize([r2s0]);
  await f.ledger.write.finalize([r2s1]);
  const r3s0 = cp(1, 0, 3n, 0, r2s0.root, { workUnits: 3000n, lossMicros: 1_500_000n });
  ids.r3s0 = await reveal(1, r3s0);

  const model2 = await registerModel(f);
  await stakeIn(f, model2, 1, Role.Trainer, defaultParams.minTrainerStake);
  // Roots are unique per model only: model 2 may reveal the root model 1 revealed first.
  const other = makeCheckpoint(addr(f, 1), { modelId: model2, root: r1s0.root, ...pipelineDigests(0, 2) });
  ids.other = await reveal(1, other);

  return { ...f, cps: { r1s0, r1s1, bad1, bad2, r2s0, r2s1, replica, r3s0, other }, ids, revealedBlock, model2 };
}

type LineageFixture = Awaited<ReturnType<typeof lineageFixture>>;

async function sdk(f: SdkFixture, path: ClientPath, index: number) {
  const base = (await clientFor(f, path, index)) as unknown as AnyClient;
  return base.extend(contributionActions(f.deployment));
}

/** Fetches the fixture, and a client of wallet 9 (an observer with no part in the lineage). */
async function setup(path: ClientPath) {
  const f: LineageFixture = await networkHelpers.loadFixture(lineageFixture);
  return { f, client: await sdk(f, path, 9) };
}

for (const path of PATHS) {
  describe(`lineage (${path})`, () => {
    it("links a shard's checkpoints to their parents, with statuses, mints and reasons, by round then lane", async () => {
      const { f, client } = await setup(path);
      const { ids, cps } = f;
      const lineage = await client.getLineage({ modelId: 1n, shard: 0 });

      assert.deepEqual(
        lineage.map((n) => n.commitId),
        [ids.r1s0, ids.bad1, ids.r2s0, ids.bad2, ids.replica, ids.r3s0],
      );
      assert.deepEqual(
        lineage.map((n) => [n.round, n.lane]),
        [
          [1n, 0],
          [1n, 1],
          [2n, 0],
          [2n, 1],
          [2n, 2],
          [3n, 0],
        ],
      );
      assert.deepEqual(
        lineage.map((n) => n.parent),
        [null, null, ids.r1s0, ids.bad1, ids.r1s0, ids.r2s0],
      );
      assert.deepEqual(
        lineage.map((n) => n.status),
        ["finalized", "rejected", "finalized", "rejected", "pending", "pending"],
      );
      assert.deepEqual(
        lineage.map((n) => n.minted),
        [1000n, null, 2000n, null, null, null],
      );
      assert.deepEqual(
        lineage.map((n) => n.rejectReason),
        [null, "dispute", null, "parentRejected", null, null],
      );
      assert.deepEqual(
        lineage.map((n) => n.loss),
        [2.5, 9, 1.75, 8, 2, 1.5],
      );
      assert.deepEqual(
        lineage.map((n) => n.revealedBlock),
        lineage.map((n) => f.revealedBlock.get(n.commitId)),
      );

      const [first, bad] = [lineage[0]!, lineage[1]!];
      const { r1s0, bad1 } = cps;
      assert.equal(first.owner, addr(f, 1));
      assert.equal(first.root, r1s0.root);
      assert.equal(first.parentRoot, zeroHash);
      assert.equal(first.checkpointURI, "ipfs://ckpt-r1-s0-l0");
      assert.equal(first.transcriptURI, "ipfs://transcript-r1-s0-l0");
      assert.equal(first.transcriptDigest, r1s0.transcriptDigest);
      assert.equal(first.workUnits, 1000n);
      assert.equal(first.lossMicros, 2_500_000n);
      assert.deepEqual(first.challenges, []);
      assert.equal(bad.owner, addr(f, 3));
      assert.equal(bad.root, bad1.root);
      assert.equal(bad.challenges.length, 1);
      assert.equal(bad.challenges[0]!.challenger, addr(f, 7));
      assert.equal(bad.challenges[0]!.bond, defaultParams.challengeBond);
      assert.equal(bad.challenges[0]!.evidence, digest("diverges"));
      assert.equal(lineage[3]!.parentRoot, bad1.root);
    });

    it("keeps shards and models apart", async () => {
      const { f, client } = await setup(path);
      const shard1 = await client.getLineage({ modelId: 1n, shard: 1 });
      assert.deepEqual(
        shard1.map((n) => [n.commitId, n.parent, n.status, n.minted, n.owner]),
        [
          [f.ids.r1s1, null, "finalized", 400n, addr(f, 2)],
          [f.ids.r2s1, f.ids.r1s1, "finalized", 800n, addr(f, 2)],
        ],
      );
      const other = await client.getLineage({ modelId: f.model2, shard: 0 });
      assert.deepEqual(
        other.map((n) => [n.commitId, n.status, n.minted]),
        [[f.ids.other, "pending", null]],
      );
      assert.deepEqual(await client.getLineage({ modelId: f.model2, shard: 1 }), []);
      assert.deepEqual(await client.getLineage({ modelId: 9n, shard: 0 }), []);
    });

    it("filters by lane, still linking parents in other lanes", async () => {
      const { f, client } = await setup(path);
      const lane1 = await client.getLineage({ modelId: 1n, shard: 0, lane: 1 });
      assert.deepEqual(
        lane1.map((n) => [n.commitId, n.parent, n.status]),
        [
          [f.ids.bad1, null, "rejected"],
          [f.ids.bad2, f.ids.bad1, "rejected"],
        ],
      );
      const lane2 = await client.getLineage({ modelId: 1n, shard: 0, lane: 2 });
      assert.deepEqual(
        lane2.map((n) => [n.commitId, n.parent, n.owner]),
        [[f.ids.replica, f.ids.r1s0, addr(f, 2)]],
      );
    });

    it("returns the same lineage however the block range is chunked, and starts at fromBlock", async () => {
      const { f, client } = await setup(path);
      const whole = await client.getLineage({ modelId: 1n, shard: 0 });
      assert.deepEqual(await client.getLineage({ modelId: 1n, shard: 0, blockRange: 1n }), whole);
      assert.deepEqual(await client.getLineage({ modelId: 1n, shard: 0, blockRange: 7 }), whole);

      // From the reveal of round 2 on: its parent was revealed before the scan, so it is unlinked.
      const from = f.revealedBlock.get(f.ids.r2s0!)!;
      const tail = await client.getLineage({ modelId: 1n, shard: 0, fromBlock: from });
      assert.deepEqual(
        tail.map((n) => [n.commitId, n.parent]),
        [
          [f.ids.r2s0, null],
          [f.ids.replica, null],
          [f.ids.r3s0, f.ids.r2s0],
        ],
      );
      const latest = await f.publicClient.getBlockNumber();
      assert.deepEqual(await client.getLineage({ modelId: 1n, shard: 0, fromBlock: latest + 1n }), []);
    });

    it("getRevealedCheckpoints lists a model's reveals in chain order, however chunked, and follows the chain", async () => {
      const { f, client } = await setup(path);
      const whole = await client.getRevealedCheckpoints({ modelId: 1n });
      const model1 = [...f.revealedBlock.keys()].filter((id) => id !== f.ids.other);
      assert.deepEqual(
        whole.reveals.map((r) => r.commitId),
        model1,
        "model 1's reveals, in order, and not model 2's",
      );
      for (const r of whole.reveals) {
        assert.equal(r.revealBlock, f.revealedBlock.get(r.commitId));
        assert.equal(r.revealBlockHash, (await f.publicClient.getBlock({ blockNumber: r.revealBlock })).hash);
      }
      assert.equal(whole.toBlock, await f.publicClient.getBlockNumber());
      assert.deepEqual(await client.getRevealedCheckpoints({ modelId: 1n, blockRange: 1n }), whole);
      assert.deepEqual(await client.getRevealedCheckpoints({ modelId: 1n, blockRange: 3n }), whole);

      // Resuming after a block: only the later reveals.
      const cut = f.revealedBlock.get(f.ids.r2s0!)!;
      const head = await client.getRevealedCheckpoints({ modelId: 1n, toBlock: cut - 1n });
      const rest = await client.getRevealedCheckpoints({ modelId: 1n, fromBlock: head.toBlock + 1n });
      assert.equal(head.toBlock, cut - 1n);
      assert.deepEqual([...head.reveals, ...rest.reveals], whole.reveals);
      assert.ok(rest.reveals.length > 0 && head.reveals.length > 0);
      await assert.rejects(client.getRevealedCheckpoints({ modelId: 0n, blockRange: 0n }), (e: unknown) => {
        assert.ok(e instanceof InvalidParameterError);
        assert.deepEqual(e.issues.map((i) => i.path).sort(), ["blockRange", "modelId"]);
        return true;
      });
    });

    it("validates its inputs", async () => {
      const { client } = await setup(path);
      await assert.rejects(client.getLineage({ modelId: 0n, shard: -1, blockRange: 0n }), (e: unknown) => {
        assert.ok(e instanceof InvalidParameterError);
        assert.deepEqual(e.issues.map((i) => i.path).sort(), ["blockRange", "modelId", "shard"]);
        return true;
      });
    });
  });
}
