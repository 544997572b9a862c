import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { pad, toHex, zeroHash, type Hex } from "viem";

import {
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  protocolFixture,
  sealCheckpoint,
  tokenId,
  viem,
  type Checkpoint,
  type Fixture,
} from "../helpers/fixture.js";
import { addr, as, Reason, revealPair, Role, stakeEveryone, Status } from "../helpers/ledger.js";

/**
 * Merge commits (issue 17): lane `2**31 + k` of a (shard, round) holds attempt k at merging the
 * round's training lanes. The ledger only keeps what it can check: a merge mints nothing, names
 * one lane bitmap (the merge lane's pipeline link then matches only if every shard merged the same
 * lanes), finalizes after every commit of every merged lane, and is taken down without a slash
 * when one of them is rejected. Whether its weights are the merge is the verifiers' to check.
 */

const { assertions } = viem;
const MERGE = 2 ** 31;
const CHALLENGE = BigInt(defaultParams.challengeWindow);
const DISPUTE = BigInt(defaultParams.disputeWindow);
const SLASH = defaultParams.slashAmount;
/** Trainer stake backing six pending commits each. */
const STAKE = defaultParams.minTrainerStake + 5n * SLASH;

const bitmap = (...lanes: number[]): Hex => pad(toHex(lanes.reduce((b, l) => b | (1n << BigInt(l)), 0n)), { size: 32 });

/** The merge commit of `shard` for round `round`, attempt `attempt`, by wallet `owner`. */
function mergeCheckpoint(
  f: Fixture,
  owner: number,
  shard: number,
  lanes: Hex,
  opts: { round?: bigint; attempt?: number; parentRoot?: Hex; workUnits?: bigint } = {},
): Checkpoint {
  const attempt = opts.attempt ?? 0;
  return makeCheckpoint(addr(f, owner), {
    shard,
    round: opts.round ?? 1n,
    lane: MERGE + attempt,
    parentRoot: opts.parentRoot ?? zeroHash,
    root: digest(`merge-${shard}-${opts.round ?? 1n}-${attempt}-${lanes}`),
    sentActivations: lanes,
    receivedActivations: lanes,
    sentGradients: zeroHash,
    receivedGradients: zeroHash,
    workUnits: opts.workUnits ?? 0n,
  });
}

/** Everyone staked for several pending commits; lanes 0 and 1 of round 1 revealed on both shards. */
async function setupLanes() {
  const f = await networkHelpers.loadFixture(protocolFixture);
  await stakeEveryone(f, STAKE);
  const lane0 = await revealPair(f, { lane: 0, owners: [1, 2] });
  const lane1 = await revealPair(f, { lane: 1, owners: [2, 3] });
  return { f, lane0, lane1 };
}

const idOf = (f: Fixture, cp: Checkpoint) => f.ledger.read.commitIdOf([cp.modelId, cp.shard, cp.round, cp.lane]);
const statusOf = async (f: Fixture, cp: Checkpoint) => (await f.ledger.read.commitState([await idOf(f, cp)])).status;

/** Seals `cp` and expects its reveal to revert with `error(args)`. */
async function revealReverts(
  f: Fixture,
  owner: number,
  cp: Checkpoint,
  error: "WorkOutOfRange" | "InvalidMergeLanes",
  args: unknown[],
) {
  const sealed = await sealCheckpoint(f, owner, cp);
  await assertions.revertWithCustomErrorWithArgs(
    f.ledger.write.reveal([cp, sealed.salt, sealed.commitBlock, sealed.commitTime]),
    f.ledger,
    error,
    args as never,
  );
}

describe("ContributionLedger: merge commits", () => {
  it("a merge mints nothing, and names one non-zero lane bitmap on both sides", async () => {
    const { f } = await setupLanes();
    // Declared work on a merge would mint for nothing done: refused.
    await revealReverts(f, 3, mergeCheckpoint(f, 3, 0, bitmap(0, 1), { workUnits: 1n }), "WorkOutOfRange", [1n, 0n]);
    const one = mergeCheckpoint(f, 3, 0, bitmap(0, 1), { attempt: 1 });
    const lopsided = { ...one, receivedActivations: bitmap(0) };
    await revealReverts(f, 3, lopsided, "InvalidMergeLanes", [await idOf(f, lopsided)]);
    const empty = mergeCheckpoint(f, 3, 0, zeroHash, { attempt: 2 });
    await revealReverts(f, 3, empty, "InvalidMergeLanes", [await idOf(f, empty)]);
    // A training lane still needs work.
    const idle = makeCheckpoint(addr(f, 1), { lane: 5, workUnits: 0n });
    await revealReverts(f, 1, idle, "WorkOutOfRange", [0n, defaultParams.maxWorkPerCommit]);
  });

  it("finalizes only after every commit of every merged lane, and mints only the lanes' work", async () => {
    const { f, lane0, lane1 } = await setupLanes();
    const m0 = mergeCheckpoint(f, 3, 0, bitmap(0, 1));
    const m1 = mergeCheckpoint(f, 3, 1, bitmap(0, 1));
    const [id0, id1] = [await commitAndReveal(f, 3, m0), await commitAndReveal(f, 3, m1)];
    await networkHelpers.time.increase(CHALLENGE);

    // The merge cannot go first: a lane rejected later could then not take it down.
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([m0]), f.ledger, "MergedLaneNotFinalized", [
      id0,
      0,
      0,
    ]);
    await f.ledger.write.finalize([lane0.cp0]);
    await f.ledger.write.finalize([lane0.cp1]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([m1]), f.ledger, "MergedLaneNotFinalized", [
      id1,
      0,
      1,
    ]);
    await f.ledger.write.finalize([lane1.cp0]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([m1]), f.ledger, "MergedLaneNotFinalized", [
      id1,
      1,
      1,
    ]);
    await f.ledger.write.finalize([lane1.cp1]);

    const before = [0, 1].map(async (s) => f.token.read.balanceOf([addr(f, 3), tokenId(1n, s)]));
    await assertions.emitWithArgs(f.ledger.write.finalize([m0]), f.ledger, "CheckpointFinalized", [
      id0,
      1n,
      addr(f, 3),
      tokenId(1n, 0),
      0n,
    ]);
    await f.ledger.write.finalize([m1]);
    assert.equal(await statusOf(f, m1), Status.Finalized);
    // Trainer 3 merged both shards and owns only its lane-1 commit on shard 1.
    const rate = defaultParams.workToTokenRate;
    const work = (lane0.cp0.workUnits * rate) / 10n ** 18n;
    assert.deepEqual(await Promise.all([0, 1].map((s) => f.token.read.balanceOf([addr(f, 3), tokenId(1n, s)]))), [
      await before[0],
      await before[1],
    ]);
    assert.equal(await f.token.read.balanceOf([addr(f, 3), tokenId(1n, 1)]), work);
    // Shard 1 of model 1 is co-owned by the trainers of both lanes.
    assert.equal(await f.token.read.balanceOf([addr(f, 2), tokenId(1n, 1)]), work);
    assert.equal(await f.token.read.balanceOf([addr(f, 2), tokenId(1n, 0)]), work);
    assert.equal(await f.token.read.balanceOf([addr(f, 1), tokenId(1n, 0)]), work);
    // The merger's locks are freed.
    assert.equal((await f.staking.read.stakeOf([1n, addr(f, 3), Role.Trainer])).locked, 0n);
  });

  it("merges of the same round that name different lanes on two shards do not finalize", async () => {
    const { f, lane0, lane1 } = await setupLanes();
    const m0 = mergeCheckpoint(f, 3, 0, bitmap(0, 1));
    const m1 = mergeCheckpoint(f, 3, 1, bitmap(0));
    const id0 = await commitAndReveal(f, 3, m0);
    await commitAndReveal(f, 3, m1);
    await networkHelpers.time.increase(CHALLENGE);
    for (const cp of [lane0.cp0, lane0.cp1, lane1.cp0, lane1.cp1]) await f.ledger.write.finalize([cp]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([m0]), f.ledger, "PipelineUnverified", [
      id0,
      0,
    ]);
  });

  it("the next round builds on its shard's merge, not another shard's", async () => {
    const { f } = await setupLanes();
    const m0 = mergeCheckpoint(f, 3, 0, bitmap(0, 1));
    const m1 = mergeCheckpoint(f, 3, 1, bitmap(0, 1));
    await commitAndReveal(f, 3, m0);
    await commitAndReveal(f, 3, m1);
    const next = makeCheckpoint(addr(f, 1), { shard: 0, round: 2n, lane: 0, parentRoot: m0.root });
    await sealCheckpoint(f, 1, next);
    const wrong = makeCheckpoint(addr(f, 2), { shard: 0, round: 2n, lane: 1, parentRoot: m1.root });
    await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 2, wrong), f.ledger, "InvalidParent", [
      await idOf(f, wrong),
      m1.root,
    ]);
  });

  it("a lane rejected later takes its merge down without a slash; a corrected merge replaces it, what built on the bad one is orphaned, honest lanes keep their tokens", async () => {
    const { f, lane0, lane1 } = await setupLanes();
    const bad = [mergeCheckpoint(f, 1, 0, bitmap(0, 1)), mergeCheckpoint(f, 1, 1, bitmap(0, 1))];
    const badIds = [await commitAndReveal(f, 1, bad[0]!), await commitAndReveal(f, 1, bad[1]!)] as const;
    // Round 2 of lane 0 builds on the merge at once (optimistically).
    const next = makeCheckpoint(addr(f, 2), { shard: 0, round: 2n, lane: 0, parentRoot: bad[0]!.root });
    const nextId = await commitAndReveal(f, 2, next);

    // Trainer 3 cheated on shard 1 of lane 1: challenged, voted invalid, slashed.
    const cheatId = lane1.id1;
    await f.stake.write.approve([f.ledger.address, defaultParams.challengeBond], as(f, 7));
    await f.ledger.write.challenge([cheatId, digest("evidence")], as(f, 7));
    // Not while the lane's dispute is open: its verdict decides.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([bad[0]!, 1, 1]),
      f.ledger,
      "MergedLaneNotRejected",
      [badIds[0], 1, 1],
    );
    for (const v of [4, 5]) await f.ledger.write.vote([cheatId, true], as(f, v));
    await networkHelpers.time.increase(DISPUTE);
    await f.ledger.write.resolve([lane1.cp1]);
    assert.equal(await statusOf(f, lane1.cp1), Status.Rejected);
    assert.equal(await f.staking.read.activeStake([1n, addr(f, 3), Role.Trainer]), STAKE - SLASH);

    // A merge naming a lane already rejected is refused at its reveal: otherwise its merger could
    // withdraw a wrong merge at will through rejectMerge, with no slash.
    const late = mergeCheckpoint(f, 1, 0, bitmap(0, 1), { attempt: 5 });
    await revealReverts(f, 1, late, "InvalidMergeLanes", [await idOf(f, late)]);

    // Only a merged lane's rejected commit takes the merge down; not a training commit.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([bad[0]!, 1, 0]),
      f.ledger,
      "MergedLaneNotRejected",
      [badIds[0], 1, 0],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([bad[0]!, 1, 2]),
      f.ledger,
      "MergedLaneNotRejected",
      [badIds[0], 1, 2],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([bad[0]!, 1, 300]),
      f.ledger,
      "MergedLaneNotRejected",
      [badIds[0], 1, 300],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([lane1.cp0, 1, 1]),
      f.ledger,
      "MergedLaneNotRejected",
      [lane1.id0, 1, 1],
    );
    // Anyone takes both merges down (the shard-0 merge through the shard-1 commit: the lane is
    // spoiled as a whole); the merger loses nothing.
    const mergerActive = await f.staking.read.activeStake([1n, addr(f, 1), Role.Trainer]);
    for (const [i, cp] of bad.entries()) {
      await assertions.emitWithArgs(f.ledger.write.rejectMerge([cp, 1, 1], as(f, 9)), f.ledger, "CheckpointRejected", [
        badIds[i]!,
        1n,
        Reason.MergedLaneRejected,
      ]);
    }
    assert.equal(await f.staking.read.activeStake([1n, addr(f, 1), Role.Trainer]), mergerActive);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectMerge([bad[0]!, 1, 1]),
      f.ledger,
      "WrongStatus",
      [badIds[0], Status.Rejected],
    );
    // What built on the bad merge is orphaned (no slash either).
    await assertions.emitWithArgs(f.ledger.write.rejectOrphan([next]), f.ledger, "CheckpointRejected", [
      nextId,
      1n,
      Reason.ParentRejected,
    ]);

    // The corrected merge (attempt 1) merges lane 0 only and finalizes after it.
    const good = [
      mergeCheckpoint(f, 2, 0, bitmap(0), { attempt: 1 }),
      mergeCheckpoint(f, 2, 1, bitmap(0), { attempt: 1 }),
    ];
    for (const cp of good) await commitAndReveal(f, 2, cp);
    await networkHelpers.time.increase(CHALLENGE);
    for (const cp of [lane0.cp0, lane0.cp1, lane1.cp0, ...good]) await f.ledger.write.finalize([cp]);
    assert.deepEqual(await Promise.all(good.map((cp) => statusOf(f, cp))), [Status.Finalized, Status.Finalized]);
    // The honest commits, lane 1's shard 0 included, were minted their work; the cheater nothing.
    const work = (lane0.cp0.workUnits * defaultParams.workToTokenRate) / 10n ** 18n;
    assert.equal(await f.token.read.balanceOf([addr(f, 1), tokenId(1n, 0)]), work);
    assert.equal(await f.token.read.balanceOf([addr(f, 2), tokenId(1n, 0)]), work);
    assert.equal(await f.token.read.balanceOf([addr(f, 2), tokenId(1n, 1)]), work);
    assert.equal(await f.token.read.balanceOf([addr(f, 3), tokenId(1n, 1)]), 0n);
  });

  it("rejectMerge refuses a merge under dispute: the dispute decides first", async () => {
    const { f, lane1 } = await setupLanes();
    const m0 = mergeCheckpoint(f, 1, 0, bitmap(0, 1));
    const id = await commitAndReveal(f, 1, m0);
    await f.stake.write.approve([f.ledger.address, 2n * defaultParams.challengeBond], as(f, 7));
    await f.ledger.write.challenge([lane1.id1, digest("evidence")], as(f, 7));
    for (const v of [4, 5]) await f.ledger.write.vote([lane1.id1, true], as(f, v));
    await f.ledger.write.challenge([id, digest("wrong weights")], as(f, 7));
    await networkHelpers.time.increase(DISPUTE);
    await f.ledger.write.resolve([lane1.cp1]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.rejectMerge([m0, 1, 1]), f.ledger, "DisputeOpen", [
      id,
    ]);
  });
});
