import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { anyValue } from "@nomicfoundation/hardhat-viem-assertions/predicates";
import { encodeAbiParameters, hashTypedData, keccak256, parseEther, zeroAddress, zeroHash, type Hex } from "viem";

import { ledgerDomain, sealedCommitTypes } from "../../scripts/lib/eip712.js";
import {
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  protocolFixture,
  sealCheckpoint,
  sealedHashOf,
  signCommit,
  stakeAs,
  viem,
  type Checkpoint,
  type Fixture,
} from "../helpers/fixture.js";
import {
  addr,
  as,
  inOneBlock,
  now,
  rejectedWith,
  revealPair,
  revertDataOf,
  stakeEveryone,
  Status,
} from "../helpers/ledger.js";

const { assertions } = viem;

async function setup() {
  const f = await networkHelpers.loadFixture(protocolFixture);
  await stakeEveryone(f);
  return f;
}

/** A sealed commit of `cp` by its owner's own key, not sent. */
async function sealedCommitOf(f: Fixture, cp: Checkpoint, salt: Hex = digest("salt"), deadline?: bigint) {
  return {
    modelId: cp.modelId,
    shard: cp.shard,
    round: cp.round,
    lane: cp.lane,
    owner: cp.owner,
    sealedHash: await sealedHashOf(f, cp, salt),
    deadline: deadline ?? (await now()) + 3600n,
  };
}

const idOf = (f: Fixture, cp: Checkpoint) => f.ledger.read.commitIdOf([cp.modelId, cp.shard, cp.round, cp.lane]);

describe("ContributionLedger.authorizeNode", () => {
  it("authorizes a node key, emits NodeAuthorized, and revokes it", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), false);

    await assertions.emitWithArgs(f.ledger.write.authorizeNode([key, true], as(f, 1)), f.ledger, "NodeAuthorized", [
      owner,
      key,
      true,
    ]);
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), true);
    // Authorization is per owner: nobody else gained the key.
    assert.equal(await f.ledger.read.isAuthorized([addr(f, 2), key]), false);

    await assertions.emitWithArgs(f.ledger.write.authorizeNode([key, false], as(f, 1)), f.ledger, "NodeAuthorized", [
      owner,
      key,
      false,
    ]);
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), false);
  });

  it("a revoked key can no longer sign commits", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    await f.ledger.write.authorizeNode([key, true], as(f, 1));
    await f.ledger.write.authorizeNode([key, false], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[8]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.ledger, "NodeNotAuthorized", [
      owner,
      key,
    ]);
  });

  it("reverts ZeroAddress for the zero key", async () => {
    const f = await setup();
    await assertions.revertWithCustomError(
      f.ledger.write.authorizeNode([zeroAddress, true], as(f, 1)),
      f.ledger,
      "ZeroAddress",
    );
  });
});

describe("ContributionLedger.commit", () => {
  it("records a commit signed by the owner's node key and relayed by a third party", async () => {
    const f = await setup();
    const [owner, key, relayer] = [addr(f, 1), addr(f, 8), 9];
    await f.ledger.write.authorizeNode([key, true], as(f, 1));
    const cp = makeCheckpoint(owner);
    const c = await sealedCommitOf(f, cp);
    const sig = await signCommit(f, f.wallets[8]!, c);
    const commitId = await idOf(f, cp);
    assert.equal(
      commitId,
      keccak256(
        encodeAbiParameters(
          [{ type: "uint64" }, { type: "uint32" }, { type: "uint64" }, { type: "uint32" }],
          [1n, 0, 1n, 0],
        ),
      ),
    );
    assert.equal(await f.ledger.read.hashSealedCommit([c]), await hashCommitOffChain(f, c));

    const hash = await f.ledger.write.commit([c, sig], as(f, relayer));
    await assertions.emitWithArgs(hash, f.ledger, "CheckpointSealed", [
      commitId,
      1n,
      owner,
      0,
      1n,
      0,
      key,
      c.sealedHash,
    ]);
    await assertions.emitWithArgs(hash, f.registry, "RoundAdvanced", [1n, 1n]);
    const receipt = await f.publicClient.getTransactionReceipt({ hash });
    const block = await f.publicClient.getBlock({ blockNumber: receipt.blockNumber });

    const state = await f.ledger.read.commitState([commitId]);
    assert.equal(state.status, Status.Sealed);
    assert.equal(state.revealedAt, 0);
    // The stored hash binds the seal to the block and time of the commit.
    assert.equal(
      await f.ledger.read.commitHash([commitId]),
      keccak256(
        encodeAbiParameters(
          [{ type: "bytes32" }, { type: "uint64" }, { type: "uint64" }],
          [c.sealedHash, receipt.blockNumber, block.timestamp],
        ),
      ),
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
    // The relayer paid nothing and gained nothing: no stake moved.
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
  });

  it("reverts SignatureExpired after the deadline (and accepts a commit at the deadline)", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const deadline = (await now()) + 100n;
    const late = await sealedCommitOf(f, makeCheckpoint(owner), digest("salt"), deadline);
    const lateSig = await signCommit(f, f.wallets[1]!, late);
    await networkHelpers.time.setNextBlockTimestamp(deadline + 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([late, lateSig]),
      f.ledger,
      "SignatureExpired",
      [deadline],
    );

    const onTime = await sealedCommitOf(f, makeCheckpoint(owner), digest("salt"), (await now()) + 10n);
    const onTimeSig = await signCommit(f, f.wallets[1]!, onTime);
    await networkHelpers.time.setNextBlockTimestamp(onTime.deadline);
    await f.ledger.write.commit([onTime, onTimeSig]);
    assert.equal((await f.ledger.read.commitState([await idOf(f, makeCheckpoint(owner))])).status, Status.Sealed);
  });

  it("reverts NodeNotAuthorized for a key the owner did not authorize", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    // wallets[2] authorized its own key, but is not the owner's key.
    await f.ledger.write.authorizeNode([addr(f, 2), true], as(f, 2));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[2]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.ledger, "NodeNotAuthorized", [
      owner,
      addr(f, 2),
    ]);
  });

  it("reverts NodeNotAuthorized for a valid signature over different fields", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[1]!, c);
    // Each altered field recovers some other address, which the owner never authorized.
    const altered = [
      { ...c, sealedHash: digest("other seal") },
      { ...c, lane: 1 },
      { ...c, shard: 1 },
      { ...c, deadline: c.deadline + 1n },
      { ...c, owner: addr(f, 2) },
    ];
    for (const a of altered) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([a, sig]), f.ledger, "NodeNotAuthorized", [
        a.owner,
        (key: unknown) => typeof key === "string" && key.toLowerCase() !== owner.toLowerCase(),
      ]);
    }
    // The untouched commit goes through with the same signature.
    await f.ledger.write.commit([c, sig]);
  });

  it("rejects a signature from another domain (other verifying contract)", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const foreign = await f.wallets[1]!.signTypedData({
      account: f.wallets[1]!.account,
      domain: ledgerDomain(await f.publicClient.getChainId(), f.settlement.address),
      types: sealedCommitTypes,
      primaryType: "SealedCommit",
      message: c,
    });
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, foreign]), f.ledger, "NodeNotAuthorized", [
      owner,
      anyValue,
    ]);
  });

  it("reverts InvalidSignature for a malformed signature", async () => {
    const f = await setup();
    const c = await sealedCommitOf(f, makeCheckpoint(addr(f, 1)));
    await assertions.revertWithCustomError(f.ledger.write.commit([c, "0x1234"]), f.ledger, "InvalidSignature");
  });

  it("reverts InsufficientTrainerStake without stake and below the minimum", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const owner = addr(f, 1);
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([c, sig]),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, owner, 0n, defaultParams.minTrainerStake],
    );
    await stakeAs(f, 1, 0, parseEther("99"));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([c, sig]),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, owner, parseEther("99"), defaultParams.minTrainerStake],
    );
    // Verifier stake does not count as trainer stake.
    await stakeAs(f, 1, 1, parseEther("500"));
    await assertions.revertWithCustomError(f.ledger.write.commit([c, sig]), f.ledger, "InsufficientTrainerStake");
    await stakeAs(f, 1, 0, parseEther("1"));
    await f.ledger.write.commit([c, sig]);
  });

  it("reverts InsufficientTrainerStake once the stake is unbonding", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await f.staking.write.requestUnstake([1n, 0, parseEther("1")], as(f, 1));
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([c, sig]),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, owner, parseEther("99"), defaultParams.minTrainerStake],
    );
  });

  it("reverts CheckpointAlreadyCommitted when the same signature is replayed", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const sealed = await sealCheckpoint(f, 1, cp);
    const commitId = await idOf(f, cp);
    const stored = await f.ledger.read.commitHash([commitId]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([sealed.commit, sealed.signature], as(f, 9)),
      f.ledger,
      "CheckpointAlreadyCommitted",
      [commitId],
    );
    // A fresh seal for the same slot is refused too, and the first seal is untouched.
    const other = await sealedCommitOf(f, makeCheckpoint(addr(f, 1), { root: digest("other") }), digest("s2"));
    const otherSig = await signCommit(f, f.wallets[1]!, other);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([other, otherSig]),
      f.ledger,
      "CheckpointAlreadyCommitted",
      [commitId],
    );
    assert.equal(await f.ledger.read.commitHash([commitId]), stored);
  });

  it("reverts RoundSkipped (from the registry) for round 3 when the latest is 1, and for round 0", async () => {
    const f = await setup();
    await sealCheckpoint(f, 1, makeCheckpoint(addr(f, 1)));
    const c3 = await sealedCommitOf(f, makeCheckpoint(addr(f, 2), { round: 3n }));
    const sig3 = await signCommit(f, f.wallets[2]!, c3);
    await f.ledger.write.authorizeNode([addr(f, 2), true], as(f, 2));
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c3, sig3]), f.registry, "RoundSkipped", [
      1n,
      3n,
      1n,
    ]);
    const c0 = await sealedCommitOf(f, makeCheckpoint(addr(f, 2), { round: 0n }));
    const sig0 = await signCommit(f, f.wallets[2]!, c0);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c0, sig0]), f.registry, "RoundSkipped", [
      1n,
      0n,
      1n,
    ]);
    // Round 2 (latest + 1) opens.
    const c2 = await sealedCommitOf(f, makeCheckpoint(addr(f, 2), { round: 2n }));
    await f.ledger.write.commit([c2, await signCommit(f, f.wallets[2]!, c2)]);
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);
  });

  it("reverts ShardOutOfRange (from the registry) for a shard the model does not have", async () => {
    const f = await setup();
    await f.ledger.write.authorizeNode([addr(f, 1), true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(addr(f, 1), { shard: 2 }));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.registry, "ShardOutOfRange", [
      1n,
      2,
    ]);
    // Nothing was recorded, not even the round.
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
  });

  it("reverts ModelNotFound (from the registry) for an unknown model", async () => {
    const f = await setup();
    await f.ledger.write.authorizeNode([addr(f, 1), true], as(f, 1));
    const c = await sealedCommitOf(f, makeCheckpoint(addr(f, 1), { modelId: 9n }));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.registry, "ModelNotFound", [9n]);
  });
});

describe("ContributionLedger.expireSeal", () => {
  it("frees an unrevealed seal after the reveal window, so the slot can be committed again", async () => {
    const f = await setup();
    const window = BigInt(defaultParams.revealWindow);
    const cp = makeCheckpoint(addr(f, 1));
    const id = await idOf(f, cp);
    const s = await sealCheckpoint(f, 1, cp);
    const args = [cp.modelId, cp.shard, cp.round, cp.lane, s.commit.sealedHash, s.commitBlock, s.commitTime] as const;

    await networkHelpers.time.setNextBlockTimestamp(s.commitTime + window);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.expireSeal([...args]), f.ledger, "RevealWindowOpen", [
      id,
      s.commitTime + window,
    ]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.expireSeal([
        cp.modelId,
        cp.shard,
        cp.round,
        cp.lane,
        digest("other"),
        s.commitBlock,
        s.commitTime,
      ]),
      f.ledger,
      "SealMismatch",
      [id],
    );
    // Anyone can free it once the window has passed.
    await networkHelpers.time.increaseTo(s.commitTime + window + 1n);
    await assertions.emitWithArgs(f.ledger.write.expireSeal([...args], as(f, 9)), f.ledger, "SealExpired", [
      id,
      cp.modelId,
      cp.shard,
      cp.round,
      cp.lane,
    ]);
    assert.equal(await f.ledger.read.commitHash([id]), zeroHash);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.None);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.expireSeal([...args]), f.ledger, "CommitNotFound", [
      id,
    ]);
    // The late owner can no longer reveal, and another trainer can take the slot.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
      f.ledger,
      "CommitNotFound",
      [id],
    );
    await stakeAs(f, 2, 0);
    const retry = makeCheckpoint(addr(f, 2));
    await commitAndReveal(f, 2, retry);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.Pending);
  });

  it("reverts WrongStatus for a revealed commit", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const s = await sealCheckpoint(f, 1, cp);
    await f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]);
    await networkHelpers.time.increase(defaultParams.revealWindow + 1);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.expireSeal([
        cp.modelId,
        cp.shard,
        cp.round,
        cp.lane,
        s.commit.sealedHash,
        s.commitBlock,
        s.commitTime,
      ]),
      f.ledger,
      "WrongStatus",
      [await idOf(f, cp), Status.Pending],
    );
  });
});

describe("ContributionLedger.reveal", () => {
  it("reveals a sealed checkpoint (relayed), storing its hash, state and root", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    const cp = makeCheckpoint(owner, pipelineDigests(0, 2));
    const salt = digest("secret salt");
    const sealed = await sealCheckpoint(f, 1, cp, salt);
    const commitId = await idOf(f, cp);
    assert.equal(await f.ledger.read.commitOfRoot([cp.root]), zeroHash);

    const hash = await f.ledger.write.reveal([cp, salt, sealed.commitBlock, sealed.commitTime], as(f, 9));
    await assertions.emitWithArgs(hash, f.ledger, "CheckpointRevealed", [commitId, 1n, owner, cp]);
    const block = await f.publicClient.getBlock({
      blockNumber: (await f.publicClient.getTransactionReceipt({ hash })).blockNumber,
    });

    assert.deepEqual(await f.ledger.read.commitState([commitId]), {
      modelId: 1n,
      shard: 0,
      round: 1n,
      status: Status.Pending,
      revealedAt: Number(block.timestamp),
      attestations: 0,
      disputes: 0,
      upheld: false,
    });
    assert.equal(await f.ledger.read.commitHash([commitId]), await f.ledger.read.checkpointHash([cp]));
    assert.equal(await f.ledger.read.commitOfRoot([cp.root]), commitId);
    // Only one side of boundary 0 revealed: the link holds that side's digest.
    assert.equal(
      await f.ledger.read.pipelineLink([1n, 1n, 0, 0]),
      keccak256(
        encodeAbiParameters([{ type: "bytes32" }, { type: "bytes32" }], [cp.sentActivations, cp.receivedGradients]),
      ),
    );
  });

  it("reverts RevealTooEarly when the reveal lands in the commit's block", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await f.ledger.write.authorizeNode([owner, true], as(f, 1));
    const cp = makeCheckpoint(owner);
    const salt = digest("salt");
    const c = await sealedCommitOf(f, cp, salt);
    const sig = await signCommit(f, f.wallets[1]!, c);
    const commitBlock = (await f.publicClient.getBlockNumber()) + 1n;
    const commitTime = (await now()) + 10n;
    await networkHelpers.time.setNextBlockTimestamp(commitTime);

    const [commitTx, revealTx] = await inOneBlock(async () => [
      await f.ledger.write.commit([c, sig], { ...as(f, 1), gas: 1_000_000n }),
      await f.ledger.write.reveal([cp, salt, commitBlock, commitTime], { ...as(f, 9), gas: 1_000_000n }),
    ]);
    const [commitReceipt, revealReceipt] = await Promise.all([
      f.publicClient.getTransactionReceipt({ hash: commitTx }),
      f.publicClient.getTransactionReceipt({ hash: revealTx }),
    ]);
    assert.equal(commitReceipt.blockNumber, commitBlock);
    assert.equal(revealReceipt.blockNumber, commitBlock);
    assert.equal(commitReceipt.status, "success");
    assert.equal(revealReceipt.status, "reverted");
    const commitId = await idOf(f, cp);
    await assertions.revertWithCustomErrorWithArgs(
      rejectedWith(await revertDataOf(revealTx)),
      f.ledger,
      "RevealTooEarly",
      [commitId],
    );
    assert.equal((await f.ledger.read.commitState([commitId])).status, Status.Sealed);

    // The same reveal in the next block succeeds.
    await f.ledger.write.reveal([cp, salt, commitBlock, commitTime]);
    assert.equal((await f.ledger.read.commitState([commitId])).status, Status.Pending);
  });

  it("reverts SealMismatch for a wrong salt, a wrong owner, or a wrong commit block or time", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const salt = digest("salt");
    const s = await sealCheckpoint(f, 1, cp, salt);
    const commitId = await idOf(f, cp);
    const cases: [Checkpoint, Hex, bigint, bigint][] = [
      [cp, digest("wrong salt"), s.commitBlock, s.commitTime],
      [{ ...cp, owner: addr(f, 2) }, salt, s.commitBlock, s.commitTime],
      [{ ...cp, workUnits: cp.workUnits + 1n }, salt, s.commitBlock, s.commitTime],
      [{ ...cp, checkpointURI: "ipfs://bafyother" }, salt, s.commitBlock, s.commitTime],
      [cp, salt, s.commitBlock - 1n, s.commitTime],
      [cp, salt, s.commitBlock, s.commitTime + 1n],
    ];
    for (const [c, sl, b, t] of cases) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.reveal([c, sl, b, t]), f.ledger, "SealMismatch", [
        commitId,
      ]);
    }
    await f.ledger.write.reveal([cp, salt, s.commitBlock, s.commitTime]);
  });

  it("reverts RevealWindowClosed after the reveal window (and accepts a reveal at its last second)", async () => {
    const f = await setup();
    const window = BigInt(defaultParams.revealWindow);
    const late = makeCheckpoint(addr(f, 1));
    const s1 = await sealCheckpoint(f, 1, late);
    await networkHelpers.time.setNextBlockTimestamp(s1.commitTime + window + 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([late, s1.salt, s1.commitBlock, s1.commitTime]),
      f.ledger,
      "RevealWindowClosed",
      [await idOf(f, late), s1.commitTime + window],
    );

    const onTime = makeCheckpoint(addr(f, 2), { shard: 1, ...pipelineDigests(1, 2) });
    const s2 = await sealCheckpoint(f, 2, onTime);
    await networkHelpers.time.setNextBlockTimestamp(s2.commitTime + window);
    await f.ledger.write.reveal([onTime, s2.salt, s2.commitBlock, s2.commitTime]);
    assert.equal((await f.ledger.read.commitState([await idOf(f, onTime)])).status, Status.Pending);
  });

  it("reverts WorkOutOfRange for zero work and for more than maxWorkPerCommit", async () => {
    const f = await setup();
    const max = defaultParams.maxWorkPerCommit;
    const zero = makeCheckpoint(addr(f, 1), { workUnits: 0n });
    const sz = await sealCheckpoint(f, 1, zero);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([zero, sz.salt, sz.commitBlock, sz.commitTime]),
      f.ledger,
      "WorkOutOfRange",
      [0n, max],
    );
    const over = makeCheckpoint(addr(f, 2), { shard: 1, workUnits: max + 1n });
    const so = await sealCheckpoint(f, 2, over);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([over, so.salt, so.commitBlock, so.commitTime]),
      f.ledger,
      "WorkOutOfRange",
      [max + 1n, max],
    );
    const atMax = makeCheckpoint(addr(f, 3), { lane: 1, workUnits: max });
    await commitAndReveal(f, 3, atMax);
    assert.equal((await f.ledger.read.commitState([await idOf(f, atMax)])).status, Status.Pending);
  });

  describe("parent linkage", () => {
    it("reverts InvalidParent for a nonzero parent at round 1", async () => {
      const f = await setup();
      const parentRoot = digest("made up");
      const cp = makeCheckpoint(addr(f, 1), { parentRoot });
      const s = await sealCheckpoint(f, 1, cp);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, cp), parentRoot],
      );
    });

    it("reverts InvalidParent for a round-1 root presented as its own round's parent", async () => {
      const f = await setup();
      const { cp0 } = await revealPair(f);
      const cp = makeCheckpoint(addr(f, 3), { lane: 1, parentRoot: cp0.root });
      const s = await sealCheckpoint(f, 3, cp);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, cp), cp0.root],
      );
    });

    it("reverts InvalidParent for a zero parent at round 2", async () => {
      const f = await setup();
      await revealPair(f);
      const cp = makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: zeroHash });
      const s = await sealCheckpoint(f, 1, cp);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, cp), zeroHash],
      );
    });

    it("reverts InvalidParent for the parent of another shard, and accepts its own shard's parent", async () => {
      const f = await setup();
      const r1 = await revealPair(f);
      const wrong = makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: r1.cp1.root });
      const s = await sealCheckpoint(f, 1, wrong);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([wrong, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, wrong), r1.cp1.root],
      );
      const right = makeCheckpoint(addr(f, 1), { round: 2n, lane: 1, parentRoot: r1.cp0.root });
      await commitAndReveal(f, 1, right);
      assert.equal((await f.ledger.read.commitState([await idOf(f, right)])).status, Status.Pending);
    });

    it("reverts InvalidParent for an unknown root and for a parent two rounds back", async () => {
      const f = await setup();
      const r1 = await revealPair(f);
      const r2 = await revealPair(f, { round: 2n, parents: [r1.cp0.root, r1.cp1.root] });
      assert.equal((await f.ledger.read.commitState([r2.id0])).status, Status.Pending);
      const skip = makeCheckpoint(addr(f, 1), { round: 3n, parentRoot: r1.cp0.root });
      const s = await sealCheckpoint(f, 1, skip);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([skip, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, skip), r1.cp0.root],
      );
      const unknown = makeCheckpoint(addr(f, 2), { shard: 1, round: 3n, parentRoot: digest("nowhere") });
      const s2 = await sealCheckpoint(f, 2, unknown);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([unknown, s2.salt, s2.commitBlock, s2.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, unknown), digest("nowhere")],
      );
    });

    it("reverts InvalidParent for a rejected parent", async () => {
      const f = await setup();
      const r1 = await revealPair(f);
      await f.ledger.write.challenge([r1.id0, digest("evidence")], as(f, 7));
      await f.ledger.write.vote([r1.id0, true], as(f, 4));
      await networkHelpers.time.increase(defaultParams.disputeWindow);
      await f.ledger.write.resolve([r1.cp0]);
      assert.equal((await f.ledger.read.commitState([r1.id0])).status, Status.Rejected);

      // Trainer 1 was slashed below the minimum; trainer 3 builds on the rejected root.
      const child = makeCheckpoint(addr(f, 3), { round: 2n, parentRoot: r1.cp0.root });
      const s = await sealCheckpoint(f, 3, child);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([child, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, child), r1.cp0.root],
      );
    });
  });

  describe("copy protection", () => {
    it("reverts CheckpointRootTaken when trainer B seals and reveals the root A revealed", async () => {
      const f = await setup();
      const a = makeCheckpoint(addr(f, 1), pipelineDigests(0, 2));
      const idA = await commitAndReveal(f, 1, a, digest("A's salt"));

      // B reads A's checkpoint from the CheckpointRevealed event and claims it for itself, in
      // another lane, with its own salt, its own key and a valid seal.
      const logs = await f.ledger.getEvents.CheckpointRevealed({ commitId: idA }, { fromBlock: 0n });
      const seen = logs[0]!.args.checkpoint!;
      const copy: Checkpoint = { ...seen, owner: addr(f, 2), lane: 1 } as Checkpoint;
      assert.equal(copy.root, a.root);
      const s = await sealCheckpoint(f, 2, copy, digest("B's salt"));
      const idB = await idOf(f, copy);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([copy, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "CheckpointRootTaken",
        [a.root, idA],
      );
      assert.equal(await f.ledger.read.commitOfRoot([a.root]), idA);
      assert.equal((await f.ledger.read.commitState([idB])).status, Status.Sealed);
    });

    it("the first sealed commit to reveal a root owns it, even if B sealed first", async () => {
      const f = await setup();
      const root = digest("shared root");
      const a = makeCheckpoint(addr(f, 1), { root });
      const b = makeCheckpoint(addr(f, 2), { root, lane: 1 });
      const sb = await sealCheckpoint(f, 2, b);
      const sa = await sealCheckpoint(f, 1, a);
      await f.ledger.write.reveal([a, sa.salt, sa.commitBlock, sa.commitTime]);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([b, sb.salt, sb.commitBlock, sb.commitTime]),
        f.ledger,
        "CheckpointRootTaken",
        [root, await idOf(f, a)],
      );
    });

    it("reverts CheckpointRootTaken for the zero root", async () => {
      const f = await setup();
      const cp = makeCheckpoint(addr(f, 1), { root: zeroHash });
      const s = await sealCheckpoint(f, 1, cp);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "CheckpointRootTaken",
        [zeroHash, zeroHash],
      );
    });
  });

  it("reverts WrongStatus on a second reveal", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const s = await sealCheckpoint(f, 1, cp);
    await f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
      f.ledger,
      "WrongStatus",
      [await idOf(f, cp), Status.Pending],
    );
  });

  it("reverts CommitNotFound for a checkpoint that was never sealed", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([cp, digest("salt"), 1n, 1n]),
      f.ledger,
      "CommitNotFound",
      [await idOf(f, cp)],
    );
  });

  describe("pipeline links", () => {
    it("emits PipelineLinkChecked(matched = true) when both sides agree", async () => {
      const f = await setup();
      const cp0 = makeCheckpoint(addr(f, 1), { shard: 0, ...pipelineDigests(0, 2) });
      const cp1 = makeCheckpoint(addr(f, 2), { shard: 1, ...pipelineDigests(1, 2) });
      await commitAndReveal(f, 1, cp0);
      const s = await sealCheckpoint(f, 2, cp1);
      await assertions.emitWithArgs(
        f.ledger.write.reveal([cp1, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "PipelineLinkChecked",
        [1n, 1n, 0, 0, true],
      );
      assert.equal(await f.ledger.read.pipelineLink([1n, 1n, 0, 0]), `0x${"0".repeat(63)}1`);
    });

    it("emits PipelineLinkChecked(matched = false) when a digest disagrees", async () => {
      const f = await setup();
      const cp0 = makeCheckpoint(addr(f, 1), { shard: 0, ...pipelineDigests(0, 2) });
      // Shard 1 claims to have sent different gradients back than shard 0 received.
      const cp1 = makeCheckpoint(addr(f, 2), {
        shard: 1,
        ...pipelineDigests(1, 2),
        sentGradients: digest("other gradients"),
      });
      await commitAndReveal(f, 1, cp0);
      const s = await sealCheckpoint(f, 2, cp1);
      await assertions.emitWithArgs(
        f.ledger.write.reveal([cp1, s.salt, s.commitBlock, s.commitTime]),
        f.ledger,
        "PipelineLinkChecked",
        [1n, 1n, 0, 0, false],
      );
      assert.equal(await f.ledger.read.pipelineLink([1n, 1n, 0, 0]), `0x${"0".repeat(63)}2`);
    });

    it("keeps lanes apart: a stage in lane 1 does not link with lane 0", async () => {
      const f = await setup();
      const cp0 = makeCheckpoint(addr(f, 1), { shard: 0, lane: 0, ...pipelineDigests(0, 2) });
      const cp1 = makeCheckpoint(addr(f, 2), { shard: 1, lane: 1, ...pipelineDigests(1, 2) });
      await commitAndReveal(f, 1, cp0);
      const s = await sealCheckpoint(f, 2, cp1);
      const hash = await f.ledger.write.reveal([cp1, s.salt, s.commitBlock, s.commitTime]);
      const receipt = await f.publicClient.getTransactionReceipt({ hash });
      const checked = await f.ledger.getEvents.PipelineLinkChecked(
        {},
        { fromBlock: receipt.blockNumber, toBlock: receipt.blockNumber },
      );
      assert.equal(checked.length, 0);
      assert.equal(
        await f.ledger.read.pipelineLink([1n, 1n, 1, 0]),
        keccak256(
          encodeAbiParameters([{ type: "bytes32" }, { type: "bytes32" }], [cp1.receivedActivations, cp1.sentGradients]),
        ),
      );
    });
  });
});

async function hashCommitOffChain(f: Fixture, c: Awaited<ReturnType<typeof sealedCommitOf>>) {
  return hashTypedData({
    domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
    types: sealedCommitTypes,
    primaryType: "SealedCommit",
    message: c,
  });
}
