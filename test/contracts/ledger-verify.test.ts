import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { anyValue } from "@nomicfoundation/hardhat-viem-assertions/predicates";
import { getAddress, parseEther, zeroAddress, zeroHash } from "viem";

import {
  authorizeKey,
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  protocolFixture,
  sealCheckpoint,
  tokenId,
  viem,
  type Checkpoint,
  type Fixture,
} from "../helpers/fixture.js";
import {
  addr,
  as,
  now,
  Reason,
  registerModel,
  revealPair,
  Role,
  setRoundOneParams,
  stakeEveryone,
  stakeIn,
  Status,
} from "../helpers/ledger.js";

const { assertions } = viem;
const CHALLENGE = BigInt(defaultParams.challengeWindow);
const DISPUTE = BigInt(defaultParams.disputeWindow);
const BOND = defaultParams.challengeBond;
const SLASH = defaultParams.slashAmount;
const BPS = 10_000n;
/** `Verdict` of a resolved dispute. */
const Verdict = { None: 0, Invalid: 1, Valid: 2, Inconclusive: 3 } as const;
/** Quorum of the fixture's verifier stake (two verifiers at the minimum), rounded up. */
const QUORUM = (2n * defaultParams.minVerifierStake * BigInt(defaultParams.quorumBps) + BPS - 1n) / BPS;

/** Everyone staked; trainers by default the minimum (one pending commit each). */
async function setup(trainerStake?: bigint) {
  const f = await networkHelpers.loadFixture(protocolFixture);
  await stakeEveryone(f, trainerStake);
  return f;
}

/** Trainer stake for three pending commits each (lineages over rounds). */
const DEEP_STAKE = defaultParams.minTrainerStake + 2n * SLASH;

/** Setup plus a revealed, agreeing round-1 pair (trainer 1 on shard 0, trainer 2 on shard 1). */
async function setupPair(trainerStake?: bigint) {
  const f = await setup(trainerStake);
  return { f, ...(await revealPair(f)) };
}

const stateOf = (f: Fixture, id: `0x${string}`) => f.ledger.read.commitState([id]);
const revealedAt = async (f: Fixture, id: `0x${string}`) => BigInt((await stateOf(f, id)).revealedAt);

/** Opens a dispute on `id` by the challenger (7), has `votes` cast, and resolves it. */
async function dispute(f: Fixture, cp: Checkpoint, id: `0x${string}`, votes: [number, boolean][]) {
  await f.ledger.write.challenge([id, digest("evidence")], as(f, 7));
  for (const [voter, invalid] of votes) await f.ledger.write.vote([id, invalid], as(f, voter));
  await networkHelpers.time.increase(DISPUTE);
  return f.ledger.write.resolve([cp]);
}

describe("ContributionLedger.attest", () => {
  it("counts one attestation per staked verifier and emits CheckpointAttested", async () => {
    const { f, id0 } = await setupPair();
    await assertions.emitWithArgs(f.ledger.write.attest([id0], as(f, 4)), f.ledger, "CheckpointAttested", [
      id0,
      addr(f, 4),
    ]);
    assert.equal(await f.ledger.read.hasAttested([id0, addr(f, 4)]), true);
    assert.equal(await f.ledger.read.hasAttested([id0, addr(f, 5)]), false);
    assert.equal((await stateOf(f, id0)).attestations, 1);
    await f.ledger.write.attest([id0], as(f, 5));
    assert.equal((await stateOf(f, id0)).attestations, 2);
  });

  it("reverts InsufficientVerifierStake without verifier stake or below the minimum", async () => {
    const { f, id0 } = await setupPair();
    // Trainer stake is not verifier stake.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.attest([id0], as(f, 3)),
      f.ledger,
      "InsufficientVerifierStake",
      [1n, addr(f, 3), 0n, defaultParams.minVerifierStake],
    );
    await stakeIn(f, 1n, 8, Role.Verifier, parseEther("49"));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.attest([id0], as(f, 8)),
      f.ledger,
      "InsufficientVerifierStake",
      [1n, addr(f, 8), parseEther("49"), defaultParams.minVerifierStake],
    );
    assert.equal((await stateOf(f, id0)).attestations, 0);
  });

  it("reverts AlreadyAttested on a second attestation by the same verifier", async () => {
    const { f, id0 } = await setupPair();
    await f.ledger.write.attest([id0], as(f, 4));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.attest([id0], as(f, 4)),
      f.ledger,
      "AlreadyAttested",
      [id0, addr(f, 4)],
    );
    assert.equal((await stateOf(f, id0)).attestations, 1);
  });

  it("reverts WrongStatus for an unknown, a sealed-only, and a finalized commit", async () => {
    const { f, cp0, cp1, id0 } = await setupPair();
    const unknown = digest("no commit");
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.attest([unknown], as(f, 4)),
      f.ledger,
      "WrongStatus",
      [unknown, Status.None],
    );
    const sealedOnly = makeCheckpoint(addr(f, 3), { lane: 1 });
    await sealCheckpoint(f, 3, sealedOnly);
    const sealedId = await f.ledger.read.commitIdOf([1n, 0, 1n, 1]);
    assert.equal((await stateOf(f, sealedId)).status, Status.Sealed);
    await assertions.revertWithCustomError(f.ledger.write.attest([sealedId], as(f, 4)), f.ledger, "WrongStatus");

    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cp0]);
    await f.ledger.write.finalize([cp1]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.attest([id0], as(f, 4)), f.ledger, "WrongStatus", [
      id0,
      Status.Finalized,
    ]);
  });
});

describe("ContributionLedger: the owner and its node keys", () => {
  it("cannot attest or vote on their own commit (OwnCommit)", async () => {
    const { f, id1 } = await setupPair();
    // Trainer 2's node key 8 is a staked verifier too; trainer 2 has verifier stake as well.
    await authorizeKey(f, 2, 8);
    await stakeIn(f, 1n, 8, Role.Verifier, defaultParams.minVerifierStake);
    await stakeIn(f, 1n, 2, Role.Verifier, defaultParams.minVerifierStake);
    for (const i of [2, 8]) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.attest([id1], as(f, i)), f.ledger, "OwnCommit", [
        id1,
        addr(f, i),
      ]);
    }
    await f.ledger.write.challenge([id1, zeroHash], as(f, 7));
    for (const i of [2, 8]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.vote([id1, false], as(f, i)),
        f.ledger,
        "OwnCommit",
        [id1, addr(f, i)],
      );
    }
    assert.equal((await stateOf(f, id1)).attestations, 0);
  });
});

describe("ContributionLedger.challenge", () => {
  it("pulls the bond, opens dispute 1 with its quorum and emits CheckpointChallenged", async () => {
    const { f, id0 } = await setupPair();
    const challenger = addr(f, 7);
    const before = await f.stake.read.balanceOf([challenger]);
    const evidence = digest("replay diverges at step 12");
    const t = (await now()) + 5n;
    await networkHelpers.time.setNextBlockTimestamp(t);
    const hash = await f.ledger.write.challenge([id0, evidence], as(f, 7));
    await assertions.emitWithArgs(hash, f.ledger, "CheckpointChallenged", [
      id0,
      challenger,
      BOND,
      evidence,
      Number(t + DISPUTE),
    ]);
    const openedBlock = (await f.publicClient.getTransactionReceipt({ hash })).blockNumber;
    assert.equal(before - (await f.stake.read.balanceOf([challenger])), BOND);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), BOND);
    const expected = {
      challenger,
      endsAt: Number(t + DISPUTE),
      open: true,
      verdict: Verdict.None,
      openedBlock: Number(openedBlock),
      bond: BOND,
      shareBond: BOND,
      validWeight: 0n,
      invalidWeight: 0n,
      quorum: QUORUM,
      reward: 0n,
    };
    assert.deepEqual(await f.ledger.read.dispute([id0]), expected);
    assert.deepEqual(await f.ledger.read.disputeAt([id0, 1]), expected);
    assert.deepEqual(await f.ledger.read.challengerOf([id0, 1, challenger]), {
      bond: BOND,
      own: false,
      claimed: false,
    });
    assert.equal((await stateOf(f, id0)).disputes, 1);
    assert.equal((await stateOf(f, id0)).status, Status.Pending);
  });

  it("reverts when the challenger has not approved the bond", async () => {
    const { f, id0 } = await setupPair();
    await assertions.revertWithCustomError(
      f.ledger.write.challenge([id0, zeroHash], as(f, 8)),
      f.stake,
      "ERC20InsufficientAllowance",
    );
  });

  it("reverts ChallengeWindowClosed from revealedAt + challengeWindow on", async () => {
    const { f, id0 } = await setupPair();
    const closesAt = (await revealedAt(f, id0)) + CHALLENGE;
    await networkHelpers.time.setNextBlockTimestamp(closesAt);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 7)),
      f.ledger,
      "ChallengeWindowClosed",
      [id0, closesAt],
    );
  });

  it("accepts a challenge in the last second of the window", async () => {
    const { f, id0 } = await setupPair();
    await networkHelpers.time.setNextBlockTimestamp((await revealedAt(f, id0)) + CHALLENGE - 1n);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    assert.equal((await f.ledger.read.dispute([id0])).open, true);
  });

  it("others join the open dispute until it ends (even past the challenge window); each once, no voter", async () => {
    const { f, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    const { endsAt } = await f.ledger.read.dispute([id0]);
    await f.stake.write.approve([f.ledger.address, 3n * BOND], as(f, 8));
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 9));
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 4));
    await f.ledger.write.vote([id0, true], as(f, 5));

    await assertions.emitWithArgs(
      f.ledger.write.challenge([id0, digest("me too")], as(f, 8)),
      f.ledger,
      "CheckpointChallenged",
      [id0, addr(f, 8), BOND, digest("me too"), endsAt],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 8)),
      f.ledger,
      "AlreadyChallenged",
      [id0, addr(f, 8)],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 7)),
      f.ledger,
      "AlreadyChallenged",
      [id0, addr(f, 7)],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 5)),
      f.ledger,
      "VoterCannotChallenge",
      [id0],
    );
    // Past the challenge window but before the vote ends: still joinable.
    assert.ok(BigInt(endsAt) - 1n >= (await revealedAt(f, id0)) + CHALLENGE);
    await networkHelpers.time.setNextBlockTimestamp(BigInt(endsAt) - 1n);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 9));
    // From endsAt on, nobody joins.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 4)),
      f.ledger,
      "DisputeWindowClosed",
      [id0, endsAt],
    );
    const d = await f.ledger.read.dispute([id0]);
    assert.equal(d.bond, 3n * BOND);
    assert.equal(d.shareBond, 3n * BOND);
    assert.equal(d.challenger, addr(f, 7));
    assert.equal((await stateOf(f, id0)).disputes, 1);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 3n * BOND);
  });

  it("reverts WrongStatus for an unrevealed commit", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    await sealCheckpoint(f, 1, cp);
    const id = await f.ledger.read.commitIdOf([1n, 0, 1n, 0]);
    // The status in the error is the stored one (None before reveal), not the view's Sealed.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id, zeroHash], as(f, 7)),
      f.ledger,
      "WrongStatus",
      [id, anyValue],
    );
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
  });

  it("reverts TooManyDisputes after MAX_DISPUTES disputes", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    // A long challenge window and a short dispute window leave room for many disputes.
    await setRoundOneParams(f, { challengeWindow: 100_000, disputeWindow: 60 });
    await stakeEveryone(f);
    const { cp0, id0 } = await revealPair(f);
    const max = await f.ledger.read.MAX_DISPUTES();
    assert.equal(max, 8);
    const trainerBefore = await f.stake.read.balanceOf([addr(f, 1)]);
    for (let i = 1; i <= max; i++) {
      await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
      await f.ledger.write.vote([id0, false], as(f, 4));
      await networkHelpers.time.increase(60);
      await f.ledger.write.resolve([cp0]);
      assert.equal((await f.ledger.read.disputeAt([id0, i])).verdict, Verdict.Valid);
      await f.ledger.write.claimDispute([id0, i, addr(f, 1)]);
      await f.ledger.write.releaseVote([id0, i, addr(f, 4)]);
    }
    assert.equal((await stateOf(f, id0)).disputes, max);
    // Each failed challenge forfeited its bond to the trainer.
    assert.equal((await f.stake.read.balanceOf([addr(f, 1)])) - trainerBefore, BOND * BigInt(max));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 7)),
      f.ledger,
      "TooManyDisputes",
      [id0],
    );
  });
});

describe("ContributionLedger.vote", () => {
  it("weighs each vote by the verifier's stake before the dispute opened, capped by its active stake", async () => {
    const { f, id0 } = await setupPair();
    await stakeIn(f, 1n, 4, Role.Verifier, parseEther("30")); // 80 in all
    await stakeIn(f, 1n, 8, Role.Verifier, parseEther("70"));
    // Stake that is unbonding does not count.
    await f.staking.write.requestUnstake([1n, Role.Verifier, parseEther("20")], as(f, 8));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    // Stake added after the dispute opened does not count either.
    await stakeIn(f, 1n, 5, Role.Verifier, parseEther("500"));
    assert.equal((await f.ledger.read.dispute([id0])).quorum, (parseEther("180") * 3000n + BPS - 1n) / BPS);

    await assertions.emitWithArgs(f.ledger.write.vote([id0, true], as(f, 4)), f.ledger, "DisputeVoted", [
      id0,
      addr(f, 4),
      true,
      parseEther("80"),
    ]);
    await assertions.emitWithArgs(f.ledger.write.vote([id0, false], as(f, 5)), f.ledger, "DisputeVoted", [
      id0,
      addr(f, 5),
      false,
      parseEther("50"),
    ]);
    await assertions.emitWithArgs(f.ledger.write.vote([id0, false], as(f, 8)), f.ledger, "DisputeVoted", [
      id0,
      addr(f, 8),
      false,
      parseEther("50"),
    ]);
    const d = await f.ledger.read.dispute([id0]);
    assert.equal(d.invalidWeight, parseEther("80"));
    assert.equal(d.validWeight, parseEther("100"));
    // Each counted weight is recorded and locked until released.
    assert.deepEqual(await f.ledger.read.voteOf([id0, 1, addr(f, 4)]), {
      weight: parseEther("80"),
      invalid: true,
      released: false,
    });
    assert.equal((await f.staking.read.stakeOf([1n, addr(f, 4), Role.Verifier])).locked, parseEther("80"));
    assert.equal((await f.staking.read.stakeOf([1n, addr(f, 5), Role.Verifier])).locked, parseEther("50"));
    await assertions.revertWithCustomError(
      f.staking.write.requestUnstake([1n, Role.Verifier, 1n], as(f, 4)),
      f.staking,
      "InsufficientFreeStake",
    );
  });

  it("stake that left after the dispute opened does not count: the weight is capped by the active stake", async () => {
    const { f, id0 } = await setupPair();
    await stakeIn(f, 1n, 8, Role.Verifier, parseEther("80"));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await f.staking.write.requestUnstake([1n, Role.Verifier, parseEther("20")], as(f, 8));
    await assertions.emitWithArgs(f.ledger.write.vote([id0, true], as(f, 8)), f.ledger, "DisputeVoted", [
      id0,
      addr(f, 8),
      true,
      parseEther("60"),
    ]);
  });

  it("a dispute opened before any verifier staked has no quorum and no weight to count (stake at openedBlock - 1)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    // A challenge window long enough for a second dispute.
    await setRoundOneParams(f, { challengeWindow: 100_000 });
    for (const i of [1, 2]) await stakeIn(f, 1n, i, Role.Trainer, defaultParams.minTrainerStake);
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 7));
    const { cp0, id0 } = await revealPair(f);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    assert.equal((await f.ledger.read.dispute([id0])).quorum, 0n);
    // The verifiers stake in the dispute's own block or later: none of it counts.
    for (const i of [4, 5]) await stakeIn(f, 1n, i, Role.Verifier, defaultParams.minVerifierStake);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 4)),
      f.ledger,
      "InsufficientVerifierStake",
      [1n, addr(f, 4), 0n, defaultParams.minVerifierStake],
    );
    await networkHelpers.time.increase(DISPUTE);
    await assertions.emitWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Inconclusive,
      0n,
      0n,
      0n,
    ]);
    // The next dispute counts them: quorum of the 100 staked before it opened.
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 7));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    assert.equal((await f.ledger.read.dispute([id0])).quorum, QUORUM);
    await f.ledger.write.vote([id0, true], as(f, 4));
  });

  it("reverts NoOpenDispute without a dispute and after it was resolved", async () => {
    const { f, cp0, id0 } = await setupPair();
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 4)),
      f.ledger,
      "NoOpenDispute",
      [id0],
    );
    await dispute(f, cp0, id0, []);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 4)),
      f.ledger,
      "NoOpenDispute",
      [id0],
    );
  });

  it("reverts DisputeWindowClosed from endsAt on", async () => {
    const { f, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    const { endsAt } = await f.ledger.read.dispute([id0]);
    await networkHelpers.time.setNextBlockTimestamp(endsAt);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 4)),
      f.ledger,
      "DisputeWindowClosed",
      [id0, endsAt],
    );
  });

  it("reverts ChallengerCannotVote even when the challenger is a staked verifier", async () => {
    const { f, id0 } = await setupPair();
    await stakeIn(f, 1n, 7, Role.Verifier, parseEther("500"));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 7)),
      f.ledger,
      "ChallengerCannotVote",
      [id0],
    );
  });

  it("reverts AlreadyVoted on a second vote in the same dispute, but allows a vote in the next one", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await setRoundOneParams(f, { challengeWindow: 100_000, disputeWindow: 60 });
    await stakeEveryone(f);
    const { cp0, id0 } = await revealPair(f);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await f.ledger.write.vote([id0, false], as(f, 4));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 4)),
      f.ledger,
      "AlreadyVoted",
      [id0, addr(f, 4)],
    );
    await networkHelpers.time.increase(60);
    await f.ledger.write.resolve([cp0]);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    // The first vote's lock is still held: the same stake backs a vote in the next dispute.
    await f.ledger.write.vote([id0, true], as(f, 4));
    assert.equal((await f.ledger.read.dispute([id0])).invalidWeight, defaultParams.minVerifierStake);
    assert.equal(
      (await f.staking.read.stakeOf([1n, addr(f, 4), Role.Verifier])).locked,
      2n * defaultParams.minVerifierStake,
    );
  });

  it("reverts InsufficientVerifierStake for an unstaked voter", async () => {
    const { f, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id0, true], as(f, 9)),
      f.ledger,
      "InsufficientVerifierStake",
      [1n, addr(f, 9), 0n, defaultParams.minVerifierStake],
    );
  });
});

describe("ContributionLedger.resolve", () => {
  it("reverts DisputeWindowOpen before endsAt", async () => {
    const { f, cp0, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    const { endsAt } = await f.ledger.read.dispute([id0]);
    await networkHelpers.time.setNextBlockTimestamp(BigInt(endsAt) - 1n);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "DisputeWindowOpen", [
      id0,
      endsAt,
    ]);
  });

  it("reverts NoOpenDispute without a dispute and on a second resolve", async () => {
    const { f, cp0, id0 } = await setupPair();
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "NoOpenDispute", [id0]);
    await dispute(f, cp0, id0, []);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "NoOpenDispute", [id0]);
  });

  it("reverts CheckpointMismatch for tampered fields and CommitNotFound for an unrevealed commit", async () => {
    const { f, cp0, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await networkHelpers.time.increase(DISPUTE);
    const tampered: Checkpoint[] = [
      { ...cp0, owner: addr(f, 3) }, // a different owner would take the bond
      { ...cp0, workUnits: cp0.workUnits + 1n },
      { ...cp0, transcriptURI: "ipfs://bafyelse" },
      { ...cp0, lossMicros: 1n },
    ];
    for (const cp of tampered) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([cp]), f.ledger, "CheckpointMismatch", [
        id0,
      ]);
    }
    const ghost = makeCheckpoint(addr(f, 3), { lane: 5 });
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([ghost]), f.ledger, "CommitNotFound", [
      await f.ledger.read.commitIdOf([1n, 0, 1n, 5]),
    ]);
    await f.ledger.write.resolve([cp0]);
  });

  it("invalid: rejects the commit and slashes the trainer; the challenger pulls bond + share, the losing voter loses its slash", async () => {
    const { f, cp0, id0 } = await setupPair();
    const [trainer, challenger, loser] = [addr(f, 1), addr(f, 7), addr(f, 8)];
    await stakeIn(f, 1n, 8, Role.Verifier, parseEther("60"));
    const challengerBefore = await f.stake.read.balanceOf([challenger]);
    const stakingBefore = await f.stake.read.balanceOf([f.staking.address]);
    const trainerWalletBefore = await f.stake.read.balanceOf([trainer]);

    await f.ledger.write.challenge([id0, digest("evidence")], as(f, 7));
    await f.ledger.write.vote([id0, true], as(f, 4));
    await f.ledger.write.vote([id0, true], as(f, 5));
    await f.ledger.write.vote([id0, false], as(f, 8)); // 60 valid < 100 invalid
    await networkHelpers.time.increase(DISPUTE);
    const hash = await f.ledger.write.resolve([cp0], as(f, 9));
    await assertions.emitWithArgs(hash, f.ledger, "CheckpointRejected", [id0, 1n, Reason.Dispute]);
    await assertions.emitWithArgs(hash, f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Invalid,
      parseEther("60"),
      parseEther("100"),
      SLASH,
    ]);
    const share = (SLASH * BigInt(defaultParams.challengerShareBps)) / BPS;
    // The share goes to the ledger; nothing is pushed to the challenger at resolve.
    await assertions.emitWithArgs(hash, f.staking, "Slashed", [
      1n,
      trainer,
      Role.Trainer,
      SLASH,
      getAddress(f.ledger.address),
      share,
    ]);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), BOND + share);
    assert.equal(challengerBefore - (await f.stake.read.balanceOf([challenger])), BOND);
    const d = await f.ledger.read.dispute([id0]);
    assert.equal(d.open, false);
    assert.equal(d.verdict, Verdict.Invalid);
    assert.equal(d.reward, share);

    const state = await stateOf(f, id0);
    assert.equal(state.status, Status.Rejected);
    assert.equal(state.upheld, false);
    assert.equal(await f.staking.read.activeStake([1n, trainer, Role.Trainer]), defaultParams.minTrainerStake - SLASH);
    assert.equal((await f.staking.read.stakeOf([1n, trainer, Role.Trainer])).locked, 0n);
    assert.equal(await f.stake.read.balanceOf([trainer]), trainerWalletBefore);

    // Anyone triggers the claim; the challenger gets its bond back plus the whole share.
    assert.equal(
      (await f.ledger.simulate.claimDispute([id0, 1, challenger], { account: addr(f, 9) })).result,
      BOND + share,
    );
    await assertions.emitWithArgs(
      f.ledger.write.claimDispute([id0, 1, challenger], as(f, 9)),
      f.ledger,
      "DisputeClaimed",
      [id0, 1, challenger, BOND + share],
    );
    assert.equal((await f.stake.read.balanceOf([challenger])) - challengerBefore, share);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
    assert.deepEqual(await f.ledger.read.challengerOf([id0, 1, challenger]), { bond: BOND, own: false, claimed: true });
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id0, 1, challenger]),
      f.ledger,
      "NothingToClaim",
      [id0, 1, challenger],
    );
    // The owner gets nothing of an Invalid verdict.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id0, 1, trainer]),
      f.ledger,
      "NothingToClaim",
      [id0, 1, trainer],
    );

    // Votes are released: the winners whole, the loser less voterSlashBps of its weight (burned).
    const penalty = (parseEther("60") * BigInt(defaultParams.voterSlashBps)) / BPS;
    await assertions.emitWithArgs(f.ledger.write.releaseVote([id0, 1, loser], as(f, 9)), f.ledger, "VoteReleased", [
      id0,
      1,
      loser,
      parseEther("60"),
      penalty,
    ]);
    await assertions.emitWithArgs(f.ledger.write.releaseVote([id0, 1, addr(f, 4)]), f.ledger, "VoteReleased", [
      id0,
      1,
      addr(f, 4),
      defaultParams.minVerifierStake,
      0n,
    ]);
    const loserStake = await f.staking.read.stakeOf([1n, loser, Role.Verifier]);
    assert.deepEqual([loserStake.active, loserStake.locked], [parseEther("60") - penalty, 0n]);
    const winnerStake = await f.staking.read.stakeOf([1n, addr(f, 4), Role.Verifier]);
    assert.deepEqual([winnerStake.active, winnerStake.locked], [defaultParams.minVerifierStake, 0n]);
    assert.equal((await f.staking.read.totals([1n])).slashed, SLASH + penalty);
    // Of the slashes only the challengers' share left the staking contract; the rest is burned there.
    assert.equal(stakingBefore - (await f.stake.read.balanceOf([f.staking.address])), share);
  });

  it("invalid after a self-challenge: no share to the owner or its node key, the full slash stays", async () => {
    const { f, cp0, id0, cp1, id1 } = await setupPair();
    const [owner0, owner1, nodeKey1] = [addr(f, 1), addr(f, 2), addr(f, 6)];
    await authorizeKey(f, 2, 6);
    for (const i of [1, 6]) await f.stake.write.approve([f.ledger.address, BOND], as(f, i));
    const stakingBefore = await f.stake.read.balanceOf([f.staking.address]);
    const walletsBefore = await Promise.all([owner0, nodeKey1].map((a) => f.stake.read.balanceOf([a])));

    // Trainer 1 "appeals" its own commit; trainer 2's node key challenges trainer 2's commit.
    await f.ledger.write.challenge([id0, digest("appeal")], as(f, 1));
    await f.ledger.write.challenge([id1, digest("appeal")], as(f, 6));
    assert.deepEqual(await f.ledger.read.challengerOf([id0, 1, owner0]), { bond: BOND, own: true, claimed: false });
    assert.equal((await f.ledger.read.dispute([id1])).shareBond, 0n);
    for (const id of [id0, id1]) {
      await f.ledger.write.vote([id, true], as(f, 4));
      await f.ledger.write.vote([id, true], as(f, 5));
    }
    await networkHelpers.time.increase(DISPUTE);
    const h0 = await f.ledger.write.resolve([cp0], as(f, 9));
    const h1 = await f.ledger.write.resolve([cp1], as(f, 9));
    await assertions.emitWithArgs(h0, f.staking, "Slashed", [1n, owner0, Role.Trainer, SLASH, zeroAddress, 0n]);
    await assertions.emitWithArgs(h1, f.staking, "Slashed", [1n, owner1, Role.Trainer, SLASH, zeroAddress, 0n]);
    // Bonds come back when claimed, nothing of the slashes is paid out.
    await f.ledger.write.claimDispute([id0, 1, owner0]);
    await f.ledger.write.claimDispute([id1, 1, nodeKey1]);
    const walletsAfter = await Promise.all([owner0, nodeKey1].map((a) => f.stake.read.balanceOf([a])));
    assert.deepEqual(walletsAfter, walletsBefore);
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), stakingBefore);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
    assert.equal((await f.staking.read.totals([1n])).slashed, 2n * SLASH);
    assert.equal((await stateOf(f, id0)).status, Status.Rejected);
  });

  it("invalid: challengers that joined split the share by bond; an own challenger gets only its bond", async () => {
    const { f, cp0, id0 } = await setupPair();
    // Owner 1's node key 9 joins too: it gets its bond back, no share.
    await authorizeKey(f, 1, 9);
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 8));
    await f.stake.write.approve([f.ledger.address, BOND], as(f, 9));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 8));
    await f.ledger.write.challenge([id0, zeroHash], as(f, 9));
    const d0 = await f.ledger.read.dispute([id0]);
    assert.deepEqual([d0.bond, d0.shareBond], [3n * BOND, 2n * BOND]);
    await f.ledger.write.vote([id0, true], as(f, 4));
    await networkHelpers.time.increase(DISPUTE);
    await f.ledger.write.resolve([cp0]);
    const share = (SLASH * BigInt(defaultParams.challengerShareBps)) / BPS;
    const paid = await Promise.all(
      [7, 8, 9].map(async (i) => {
        const before = await f.stake.read.balanceOf([addr(f, i)]);
        await f.ledger.write.claimDispute([id0, 1, addr(f, i)]);
        return (await f.stake.read.balanceOf([addr(f, i)])) - before;
      }),
    );
    assert.deepEqual(paid, [BOND + share / 2n, BOND + share / 2n, BOND]);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), share - 2n * (share / 2n));
  });

  it("invalid: a trainer cannot unbond the stake locked for a pending commit; the free part it unbonded is spared", async () => {
    const { f, cp0, id0 } = await setupPair();
    const trainer = addr(f, 1);
    // 100 staked, 60 locked by the pending commit: only 40 can unbond.
    await assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([1n, Role.Trainer, parseEther("70")], as(f, 1)),
      f.staking,
      "InsufficientFreeStake",
      [1n, trainer, Role.Trainer, parseEther("70"), parseEther("40")],
    );
    await f.staking.write.requestUnstake([1n, Role.Trainer, parseEther("40")], as(f, 1));
    const hash = await dispute(f, cp0, id0, [[4, true]]);
    await assertions.emitWithArgs(hash, f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Invalid,
      0n,
      parseEther("50"),
      SLASH,
    ]);
    const info = await f.staking.read.stakeOf([1n, trainer, Role.Trainer]);
    assert.equal(info.active, 0n);
    assert.equal(info.locked, 0n);
    assert.equal(info.unbonding, parseEther("40"));
  });

  it("valid: upholds the commit; the trainer pulls the forfeited bond, the losing voter loses its slash", async () => {
    const { f, cp0, id0 } = await setupPair();
    const [trainer, challenger] = [addr(f, 1), addr(f, 7)];
    const trainerBefore = await f.stake.read.balanceOf([trainer]);
    const challengerBefore = await f.stake.read.balanceOf([challenger]);
    await stakeIn(f, 1n, 8, Role.Verifier, parseEther("60"));
    const hash = await dispute(f, cp0, id0, [
      [4, false],
      [5, false],
      [8, true],
    ]);
    await assertions.emitWithArgs(hash, f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Valid,
      parseEther("100"),
      parseEther("60"),
      0n,
    ]);
    assert.equal(await f.stake.read.balanceOf([trainer]), trainerBefore);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id0, 1, challenger]),
      f.ledger,
      "NothingToClaim",
      [id0, 1, challenger],
    );
    await f.ledger.write.claimDispute([id0, 1, trainer], as(f, 9));
    assert.equal((await f.stake.read.balanceOf([trainer])) - trainerBefore, BOND);
    assert.equal(challengerBefore - (await f.stake.read.balanceOf([challenger])), BOND);
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
    await assertions.revertWithCustomError(f.ledger.write.claimDispute([id0, 1, trainer]), f.ledger, "NothingToClaim");
    const state = await stateOf(f, id0);
    assert.equal(state.status, Status.Pending);
    assert.equal(state.upheld, true);
    assert.equal(await f.staking.read.activeStake([1n, trainer, Role.Trainer]), defaultParams.minTrainerStake);
    // The invalid voter was on the losing side.
    const penalty = (parseEther("60") * BigInt(defaultParams.voterSlashBps)) / BPS;
    assert.equal((await f.ledger.simulate.releaseVote([id0, 1, addr(f, 8)])).result, penalty);
    await f.ledger.write.releaseVote([id0, 1, addr(f, 8)]);
    assert.equal(await f.staking.read.activeStake([1n, addr(f, 8), Role.Verifier]), parseEther("60") - penalty);
  });

  it("inconclusive: a tie or no votes returns the bonds and does not uphold the commit", async () => {
    const { f, cp0, cp1, id0, id1 } = await setupPair();
    const challenger = addr(f, 7);
    const before = await f.stake.read.balanceOf([challenger]);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await f.ledger.write.challenge([id1, zeroHash], as(f, 7));
    await f.ledger.write.vote([id0, true], as(f, 4));
    await f.ledger.write.vote([id0, false], as(f, 5));
    await networkHelpers.time.increase(DISPUTE);
    await assertions.emitWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Inconclusive,
      parseEther("50"),
      parseEther("50"),
      0n,
    ]);
    await assertions.emitWithArgs(f.ledger.write.resolve([cp1]), f.ledger, "DisputeResolved", [
      id1,
      1,
      Verdict.Inconclusive,
      0n,
      0n,
      0n,
    ]);
    for (const id of [id0, id1]) {
      await f.ledger.write.claimDispute([id, 1, challenger]);
      const state = await stateOf(f, id);
      assert.equal(state.upheld, false);
      assert.equal(state.status, Status.Pending);
    }
    assert.equal(await f.stake.read.balanceOf([challenger]), before);
    // No side lost: both tied voters are released whole.
    for (const v of [4, 5]) {
      assert.equal((await f.ledger.simulate.releaseVote([id0, 1, addr(f, v)])).result, 0n);
      await f.ledger.write.releaseVote([id0, 1, addr(f, v)]);
      assert.equal(await f.staking.read.activeStake([1n, addr(f, v), Role.Verifier]), defaultParams.minVerifierStake);
    }
    // The owner gets nothing of an inconclusive dispute.
    await assertions.revertWithCustomError(
      f.ledger.write.claimDispute([id0, 1, addr(f, 1)]),
      f.ledger,
      "NothingToClaim",
    );
  });

  it("inconclusive below quorum, even when every vote says invalid", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await setRoundOneParams(f, { quorumBps: 6000 });
    await stakeEveryone(f);
    const { cp0, id0 } = await revealPair(f);
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    assert.equal((await f.ledger.read.dispute([id0])).quorum, parseEther("60"));
    await f.ledger.write.vote([id0, true], as(f, 4)); // 50 < 60
    await networkHelpers.time.increase(DISPUTE);
    await assertions.emitWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "DisputeResolved", [
      id0,
      1,
      Verdict.Inconclusive,
      0n,
      parseEther("50"),
      0n,
    ]);
    assert.equal((await stateOf(f, id0)).status, Status.Pending);
    assert.equal(await f.staking.read.activeStake([1n, addr(f, 1), Role.Trainer]), defaultParams.minTrainerStake);
  });

  it("claimDispute and releaseVote revert DisputeNotFound, DisputeNotResolved, NothingToClaim, NoVote, VoteAlreadyReleased", async () => {
    const { f, cp0, id0 } = await setupPair();
    for (const index of [0, 1]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.claimDispute([id0, index, addr(f, 7)]),
        f.ledger,
        "DisputeNotFound",
        [id0, index],
      );
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.releaseVote([id0, index, addr(f, 4)]),
        f.ledger,
        "DisputeNotFound",
        [id0, index],
      );
    }
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await f.ledger.write.vote([id0, true], as(f, 4));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id0, 1, addr(f, 7)]),
      f.ledger,
      "DisputeNotResolved",
      [id0, 1],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.releaseVote([id0, 1, addr(f, 4)]),
      f.ledger,
      "DisputeNotResolved",
      [id0, 1],
    );
    await networkHelpers.time.increase(DISPUTE);
    await f.ledger.write.resolve([cp0]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id0, 1, addr(f, 8)]),
      f.ledger,
      "NothingToClaim",
      [id0, 1, addr(f, 8)],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.releaseVote([id0, 1, addr(f, 5)]),
      f.ledger,
      "NoVote",
      [id0, 1, addr(f, 5)],
    );
    await f.ledger.write.releaseVote([id0, 1, addr(f, 4)]);
    assert.deepEqual(await f.ledger.read.voteOf([id0, 1, addr(f, 4)]), {
      weight: defaultParams.minVerifierStake,
      invalid: true,
      released: true,
    });
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.releaseVote([id0, 1, addr(f, 4)]),
      f.ledger,
      "VoteAlreadyReleased",
      [id0, 1, addr(f, 4)],
    );
    assert.equal((await f.staking.read.stakeOf([1n, addr(f, 4), Role.Verifier])).locked, 0n);
  });
});

describe("ContributionLedger.finalize", () => {
  it("mints workUnits * rate / 1e18 shard tokens to the owner after the challenge window", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const rate = 2_500_000_000_000_000_000n; // 2.5 tokens per work unit
    const m2 = await registerModel(f, { shardWeights: [1n], params: { workToTokenRate: rate } });
    await stakeIn(f, m2, 1, Role.Trainer, defaultParams.minTrainerStake);
    const owner = addr(f, 1);
    const cp = makeCheckpoint(owner, { modelId: m2, root: digest("m2 root"), ...pipelineDigests(0, 1) });
    cp.workUnits = 1001n;
    const id = await commitAndReveal(f, 1, cp);
    await networkHelpers.time.increaseTo((await revealedAt(f, id)) + CHALLENGE);
    const expected = (1001n * rate) / 10n ** 18n;
    assert.equal(expected, 2502n);
    const { result } = await f.ledger.simulate.finalize([cp], { account: addr(f, 9) });
    assert.equal(result, expected);
    await assertions.emitWithArgs(f.ledger.write.finalize([cp], as(f, 9)), f.ledger, "CheckpointFinalized", [
      id,
      m2,
      owner,
      tokenId(m2, 0),
      expected,
    ]);
    assert.equal(await f.token.read.balanceOf([owner, tokenId(m2, 0)]), expected);
    assert.equal((await stateOf(f, id)).status, Status.Finalized);
  });

  it("finalizes both stages of an agreeing pipeline, releasing the owners' locks", async () => {
    const { f, cp0, cp1, id0, id1 } = await setupPair();
    assert.equal((await f.staking.read.stakeOf([1n, cp0.owner, Role.Trainer])).locked, SLASH);
    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cp0]);
    await f.ledger.write.finalize([cp1]);
    for (const owner of [cp0.owner, cp1.owner]) {
      assert.equal((await f.staking.read.stakeOf([1n, owner, Role.Trainer])).locked, 0n);
    }
    assert.equal(await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]), cp0.workUnits);
    assert.equal(await f.token.read.balanceOf([cp1.owner, tokenId(1n, 1)]), cp1.workUnits);
    assert.equal((await stateOf(f, id0)).status, Status.Finalized);
    assert.equal((await stateOf(f, id1)).status, Status.Finalized);
  });

  it("reverts ChallengeWindowOpen before revealedAt + challengeWindow", async () => {
    const { f, cp0, id0 } = await setupPair();
    const closesAt = (await revealedAt(f, id0)) + CHALLENGE;
    await networkHelpers.time.setNextBlockTimestamp(closesAt - 1n);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "ChallengeWindowOpen", [
      id0,
      closesAt,
    ]);
    await networkHelpers.time.setNextBlockTimestamp(closesAt);
    await f.ledger.write.finalize([cp0]);
  });

  it("reverts NotEnoughAttestations below minAttestations (scheduled before round 1)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await setRoundOneParams(f, { minAttestations: 2 });
    assert.equal((await f.registry.read.paramsAt([1n, 1n])).minAttestations, 2);
    await stakeEveryone(f);
    const { cp0, id0 } = await revealPair(f);
    await f.ledger.write.attest([id0], as(f, 4));
    await networkHelpers.time.increase(CHALLENGE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "NotEnoughAttestations", [
      id0,
      1,
      2,
    ]);
    await f.ledger.write.attest([id0], as(f, 5));
    await f.ledger.write.finalize([cp0]);
    assert.equal((await stateOf(f, id0)).status, Status.Finalized);
  });

  it("reverts ParentNotFinalized until the parent is finalized", async () => {
    const { f, cp0, cp1 } = await setupPair(DEEP_STAKE);
    const r2 = await revealPair(f, { round: 2n, parents: [cp0.root, cp1.root] });
    await networkHelpers.time.increase(CHALLENGE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([r2.cp0]), f.ledger, "ParentNotFinalized", [
      r2.id0,
      cp0.root,
    ]);
    await f.ledger.write.finalize([cp0]);
    await f.ledger.write.finalize([r2.cp0]);
    assert.equal((await stateOf(f, r2.id0)).status, Status.Finalized);
    assert.equal(await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]), cp0.workUnits + r2.cp0.workUnits);
  });

  it("reverts PipelineUnverified when the neighbour never revealed", async () => {
    const f = await setup();
    const cp0 = makeCheckpoint(addr(f, 1), pipelineDigests(0, 2));
    const id0 = await commitAndReveal(f, 1, cp0);
    // Only sealed, never revealed.
    await sealCheckpoint(f, 2, makeCheckpoint(addr(f, 2), { shard: 1, ...pipelineDigests(1, 2) }));
    await networkHelpers.time.increase(CHALLENGE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "PipelineUnverified", [
      id0,
      0,
    ]);
  });

  it("reverts PipelineUnverified on both sides when the digests disagree", async () => {
    const f = await setup();
    const { cp0, cp1, id0, id1 } = await revealPair(f, { mismatch: true });
    assert.equal(await f.ledger.read.pipelineLink([1n, 1n, 0, 0]), `0x${"0".repeat(63)}2`);
    await networkHelpers.time.increase(CHALLENGE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "PipelineUnverified", [
      id0,
      0,
    ]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp1]), f.ledger, "PipelineUnverified", [
      id1,
      0,
    ]);
  });

  it("checks both boundaries of a middle stage", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const m2 = await registerModel(f, { shardWeights: [1n, 1n, 1n] });
    for (const i of [1, 2, 3]) await stakeIn(f, m2, i, Role.Trainer, defaultParams.minTrainerStake);
    const cps = [0, 1, 2].map((s) =>
      makeCheckpoint(addr(f, s + 1), { modelId: m2, shard: s, root: digest(`m2-${s}`), ...pipelineDigests(s, 3) }),
    );
    // The last stage disagrees with the middle one on boundary 1.
    cps[2]!.receivedActivations = digest("forged");
    const ids: `0x${string}`[] = [];
    for (const [s, cp] of cps.entries()) ids.push(await commitAndReveal(f, s + 1, cp));
    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cps[0]!]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cps[1]!]), f.ledger, "PipelineUnverified", [
      ids[1]!,
      1,
    ]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cps[2]!]), f.ledger, "PipelineUnverified", [
      ids[2]!,
      1,
    ]);
  });

  it("an upheld commit finalizes despite a pipeline mismatch; its neighbour still cannot", async () => {
    const f = await setup();
    const { cp0, cp1, id0, id1 } = await revealPair(f, { mismatch: true });
    await dispute(f, cp0, id0, [[4, false]]);
    assert.equal((await stateOf(f, id0)).upheld, true);
    await f.ledger.write.finalize([cp0]);
    assert.equal((await stateOf(f, id0)).status, Status.Finalized);
    assert.equal(await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]), cp0.workUnits);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp1]), f.ledger, "PipelineUnverified", [
      id1,
      0,
    ]);
  });

  it("reverts WrongStatus on a second finalize, minting once", async () => {
    const { f, cp0, id0 } = await setupPair();
    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cp0]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "WrongStatus", [
      id0,
      Status.Finalized,
    ]);
    assert.equal(await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]), cp0.workUnits);
  });

  it("reverts WrongStatus on a rejected commit, minting nothing", async () => {
    const { f, cp1, id1 } = await setupPair();
    await dispute(f, cp1, id1, [[4, true]]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp1]), f.ledger, "WrongStatus", [
      id1,
      Status.Rejected,
    ]);
    assert.equal(await f.token.read.balanceOf([cp1.owner, tokenId(1n, 1)]), 0n);
  });

  it("reverts DisputeOpen while a dispute is open, even after the challenge window", async () => {
    const { f, cp0, id0 } = await setupPair();
    await f.ledger.write.challenge([id0, zeroHash], as(f, 7));
    await networkHelpers.time.increase(CHALLENGE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "DisputeOpen", [id0]);
  });

  it("reverts CheckpointMismatch when the fields are inflated", async () => {
    const { f, cp0, id0 } = await setupPair();
    await networkHelpers.time.increase(CHALLENGE);
    for (const cp of [
      { ...cp0, workUnits: cp0.workUnits * 1000n },
      { ...cp0, owner: addr(f, 9) },
    ]) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp]), f.ledger, "CheckpointMismatch", [
        id0,
      ]);
    }
  });
});

describe("ContributionLedger deferred mints", () => {
  it("a mint that cannot happen (supply cap) defers instead of blocking; only the owner claims it", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const m2 = await registerModel(f, { shardWeights: [1n] });
    const max = await f.token.read.MAX_SUPPLY();
    await f.ledger.write.allocateGenesis([m2, 0, [addr(f, 6)], [max - 999n]]);
    await stakeIn(f, m2, 1, Role.Trainer, defaultParams.minTrainerStake);
    const owner = addr(f, 1);
    const cp = makeCheckpoint(owner, { modelId: m2, root: digest("m2 capped"), ...pipelineDigests(0, 1) });
    const id = await commitAndReveal(f, 1, cp);
    await networkHelpers.time.increase(CHALLENGE);
    const hash = await f.ledger.write.finalize([cp]);
    await assertions.emitWithArgs(hash, f.ledger, "MintDeferred", [id, owner, cp.workUnits]);
    await assertions.emitWithArgs(hash, f.ledger, "CheckpointFinalized", [id, m2, owner, tokenId(m2, 0), cp.workUnits]);
    assert.equal((await stateOf(f, id)).status, Status.Finalized);
    assert.equal(await f.ledger.read.deferredMint([id]), cp.workUnits);
    assert.equal(await f.token.read.balanceOf([owner, tokenId(m2, 0)]), 0n);
    assert.equal((await f.staking.read.stakeOf([m2, owner, Role.Trainer])).locked, 0n);

    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDeferredMint([cp, addr(f, 8)], as(f, 8)),
      f.ledger,
      "NotOwner",
      [id, addr(f, 8)],
    );
    // While the cap still binds, the claim reverts and the deferred amount stays.
    await assertions.revertWithCustomError(
      f.ledger.write.claimDeferredMint([cp, owner], as(f, 1)),
      f.token,
      "SupplyCapExceeded",
    );
    assert.equal(await f.ledger.read.deferredMint([id]), cp.workUnits);
  });

  it("reverts NoDeferredMint for a commit whose mint went through", async () => {
    const { f, cp0, id0 } = await setupPair();
    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cp0]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDeferredMint([cp0, cp0.owner], as(f, 1)),
      f.ledger,
      "NoDeferredMint",
      [id0],
    );
  });
});

describe("ContributionLedger.rejectOrphan", () => {
  it("cascades a rejection down the lineage, releasing each orphan's lock", async () => {
    const { f, cp0, cp1, id0 } = await setupPair(DEEP_STAKE);
    const r2 = await revealPair(f, { round: 2n, parents: [cp0.root, cp1.root] });
    const r3 = await revealPair(f, { round: 3n, parents: [r2.cp0.root, r2.cp1.root] });
    await dispute(f, cp0, id0, [[4, true]]);
    assert.equal((await stateOf(f, id0)).status, Status.Rejected);

    // The grandchild waits for its parent to be rejected first.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectOrphan([r3.cp0]),
      f.ledger,
      "ParentNotRejected",
      [r3.id0, r2.cp0.root],
    );
    await assertions.emitWithArgs(f.ledger.write.rejectOrphan([r2.cp0], as(f, 9)), f.ledger, "CheckpointRejected", [
      r2.id0,
      1n,
      Reason.ParentRejected,
    ]);
    await f.ledger.write.rejectOrphan([r3.cp0], as(f, 9));
    assert.equal((await stateOf(f, r2.id0)).status, Status.Rejected);
    assert.equal((await stateOf(f, r3.id0)).status, Status.Rejected);
    // No slash for building on bad work: trainer 1 lost only the first slash, and every lock
    // (the slashed commit's and the orphans') is released.
    const stake = await f.staking.read.stakeOf([1n, addr(f, 1), Role.Trainer]);
    assert.equal(stake.active, DEEP_STAKE - SLASH);
    assert.equal(stake.locked, 0n);
    // The other lineage is untouched.
    assert.equal((await stateOf(f, r2.id1)).status, Status.Pending);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([r2.cp0]), f.ledger, "WrongStatus", [
      r2.id0,
      Status.Rejected,
    ]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.rejectOrphan([r2.cp0]), f.ledger, "WrongStatus", [
      r2.id0,
      Status.Rejected,
    ]);
  });

  it("reverts ParentNotRejected for a round-1 commit and for a child of a live parent", async () => {
    const { f, cp0, cp1, id0 } = await setupPair(DEEP_STAKE);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.rejectOrphan([cp0]), f.ledger, "ParentNotRejected", [
      id0,
      zeroHash,
    ]);
    const r2 = await revealPair(f, { round: 2n, parents: [cp0.root, cp1.root] });
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectOrphan([r2.cp1]),
      f.ledger,
      "ParentNotRejected",
      [r2.id1, cp1.root],
    );
  });

  it("reverts CheckpointMismatch for tampered fields", async () => {
    const { f, cp0, cp1, id0 } = await setupPair(DEEP_STAKE);
    const r2 = await revealPair(f, { round: 2n, parents: [cp0.root, cp1.root] });
    await dispute(f, cp0, id0, [[4, true]]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.rejectOrphan([{ ...r2.cp0, lossMicros: 0n }]),
      f.ledger,
      "CheckpointMismatch",
      [r2.id0],
    );
  });
});

describe("ContributionLedger.allocateGenesis", () => {
  it("mints genesis allocations from the registrant", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const [a, b] = [addr(f, 6), addr(f, 8)];
    const hash = await f.ledger.write.allocateGenesis([1n, 1, [a, b], [700n, 300n]]);
    await assertions.emitWithArgs(hash, f.ledger, "GenesisAllocated", [1n, 1, a, 700n]);
    await assertions.emitWithArgs(hash, f.ledger, "GenesisAllocated", [1n, 1, b, 300n]);
    assert.equal(await f.token.read.balanceOf([a, tokenId(1n, 1)]), 700n);
    assert.equal(await f.token.read.balanceOf([b, tokenId(1n, 1)]), 300n);
    assert.equal(await f.token.read.balanceOf([a, tokenId(1n, 0)]), 0n);
    // Repeatable until the registrant closes genesis.
    await f.ledger.write.allocateGenesis([1n, 0, [a], [5n]]);
    assert.equal(await f.token.read.balanceOf([a, tokenId(1n, 0)]), 5n);
  });

  it("reverts NotRegistrant for anyone else", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([1n, 0, [addr(f, 1)], [1n]], as(f, 1)),
      f.ledger,
      "NotRegistrant",
      [1n, addr(f, 1)],
    );
  });

  it("reverts GenesisClosed once the registrant closed genesis (per model)", async () => {
    const f = await setup();
    await f.ledger.write.allocateGenesis([1n, 0, [addr(f, 6)], [1n]]);
    await f.registry.write.closeGenesis([1n]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([1n, 0, [addr(f, 6)], [1n]]),
      f.ledger,
      "GenesisClosed",
      [1n],
    );
    // Another model's genesis stays open.
    const m2 = await registerModel(f, { shardWeights: [1n] });
    await f.ledger.write.allocateGenesis([m2, 0, [addr(f, 6)], [1n]]);
    assert.equal(await f.token.read.balanceOf([addr(f, 6), tokenId(1n, 0)]), 1n);
    assert.equal(await f.token.read.balanceOf([addr(f, 6), tokenId(m2, 0)]), 1n);
  });

  it("reverts ShardOutOfRange, LengthMismatch and (registry) ModelNotFound", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([1n, 2, [addr(f, 6)], [1n]]),
      f.ledger,
      "ShardOutOfRange",
      [1n, 2],
    );
    await assertions.revertWithCustomError(
      f.ledger.write.allocateGenesis([1n, 0, [addr(f, 6), addr(f, 8)], [1n]]),
      f.ledger,
      "LengthMismatch",
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([7n, 0, [addr(f, 6)], [1n]]),
      f.registry,
      "ModelNotFound",
      [7n],
    );
    await assertions.revertWithCustomError(
      f.ledger.write.allocateGenesis([1n, 0, [zeroAddress], [1n]]),
      f.token,
      "ERC1155InvalidReceiver",
    );
  });
});

describe("ContributionLedger: a finalized checkpoint never changes", () => {
  it("keeps its state and hash through later actions, which all revert", async () => {
    const { f, cp0, cp1, id0 } = await setupPair(DEEP_STAKE);
    await networkHelpers.time.increase(CHALLENGE);
    await f.ledger.write.finalize([cp0]);
    await f.ledger.write.finalize([cp1]);
    const state = await stateOf(f, id0);
    const hash = await f.ledger.read.commitHash([id0]);
    const balance = await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]);

    // Later activity on the model: a child round, disputes and a rejection of the child.
    const r2 = await revealPair(f, { round: 2n, parents: [cp0.root, cp1.root] });
    await dispute(f, r2.cp0, r2.id0, [[4, true]]);
    await f.ledger.write.attest([r2.id1], as(f, 5));

    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "WrongStatus", [
      id0,
      Status.Finalized,
    ]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id0, zeroHash], as(f, 7)),
      f.ledger,
      "WrongStatus",
      [id0, Status.Finalized],
    );
    // No dispute can be open on it, so resolve has nothing to resolve.
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.resolve([cp0]), f.ledger, "NoOpenDispute", [id0]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.attest([id0], as(f, 4)), f.ledger, "WrongStatus", [
      id0,
      Status.Finalized,
    ]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.rejectOrphan([cp0]), f.ledger, "WrongStatus", [
      id0,
      Status.Finalized,
    ]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([cp0, digest("salt"), 0n, 0n]),
      f.ledger,
      "WrongStatus",
      [id0, Status.Finalized],
    );

    assert.deepEqual(await stateOf(f, id0), state);
    assert.equal(await f.ledger.read.commitHash([id0]), hash);
    assert.equal(await f.ledger.read.commitOfRoot([1n, cp0.root]), id0);
    assert.equal(await f.token.read.balanceOf([cp0.owner, tokenId(1n, 0)]), balance);
  });
});
