import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { anyValue } from "@nomicfoundation/hardhat-viem-assertions/predicates";
import {
  encodeAbiParameters,
  hashTypedData,
  keccak256,
  parseEther,
  recoverAddress,
  zeroAddress,
  zeroHash,
  type Hex,
} from "viem";

import { ledgerDomain, sealedCommitTypes } from "../../scripts/lib/eip712.js";
import { nodeConsentTypes } from "../../sdk/constants.js";
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
  sealedHashOf,
  signCommit,
  signNodeConsent,
  stakeAs,
  viem,
  type Checkpoint,
  type Fixture,
  type SealedCommit,
} from "../helpers/fixture.js";
import {
  addr,
  as,
  inOneBlock,
  now,
  registerModel,
  rejectedWith,
  revealPair,
  revertDataOf,
  stakeEveryone,
  Role,
  stakeIn,
  Status,
} from "../helpers/ledger.js";

const { assertions } = viem;
const SLASH = defaultParams.slashAmount;

/** Everyone staked (trainers the minimum: one pending commit each) and genesis closed. */
async function setup(trainerStake?: bigint) {
  const f = await networkHelpers.loadFixture(protocolFixture);
  await stakeEveryone(f, trainerStake);
  await f.registry.write.closeGenesis([f.modelId]);
  return f;
}

/** Trainers staked for three pending commits each (lineages over rounds). */
const setupDeep = () => setup(defaultParams.minTrainerStake + 2n * SLASH);

/** A sealed commit of `cp` (naming the parameter version in force for its round), not sent. */
async function sealedCommitOf(
  f: Fixture,
  cp: Checkpoint,
  salt: Hex = digest("salt"),
  deadline?: bigint,
): Promise<SealedCommit> {
  // An unknown model has no version; the commit is refused before it matters.
  const paramsVersion = await f.registry.read.paramsVersionAt([cp.modelId, cp.round]).catch(() => 1);
  return {
    modelId: cp.modelId,
    shard: cp.shard,
    round: cp.round,
    lane: cp.lane,
    owner: cp.owner,
    parentRoot: cp.parentRoot,
    sealedHash: await sealedHashOf(f, cp, salt),
    paramsVersion,
    deadline: deadline ?? (await now()) + 3600n,
  };
}

/** The value a seal stores: the sealed hash bound to owner, parent, block and time. */
const sealKey = (c: SealedCommit, commitBlock: bigint, commitTime: bigint) =>
  keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "address" }, { type: "bytes32" }, { type: "uint64" }, { type: "uint64" }],
      [c.sealedHash, c.owner, c.parentRoot, commitBlock, commitTime],
    ),
  );

const idOf = (f: Fixture, cp: Checkpoint) => f.ledger.read.commitIdOf([cp.modelId, cp.shard, cp.round, cp.lane]);

describe("ContributionLedger.authorizeNode", () => {
  it("authorizes a node key with its consent, emits NodeAuthorized, and revokes it without one", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), false);

    const consent = await signNodeConsent(f, f.wallets[8]!, owner);
    // The consent is the key's EIP-712 signature in the ledger's domain (which the ledger checks below).
    const consentDigest = hashTypedData({
      domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
      types: nodeConsentTypes,
      primaryType: "NodeConsent",
      message: { owner, nodeKey: key, deadline: consent.deadline },
    });
    assert.equal(await recoverAddress({ hash: consentDigest, signature: consent.signature }), key);
    // Anyone may send it, but it authorizes the key for the owner it names: the caller.
    await assertions.emitWithArgs(
      f.ledger.write.authorizeNode([key, true, consent.deadline, consent.signature], as(f, 1)),
      f.ledger,
      "NodeAuthorized",
      [owner, key, true],
    );
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), true);
    // Authorization is per owner: nobody else gained the key.
    assert.equal(await f.ledger.read.isAuthorized([addr(f, 2), key]), false);

    await assertions.emitWithArgs(
      f.ledger.write.authorizeNode([key, false, 0n, "0x"], as(f, 1)),
      f.ledger,
      "NodeAuthorized",
      [owner, key, false],
    );
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), false);
  });

  it("reverts NodeConsentMismatch without the key's consent to this owner", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    // Signed by another key.
    const byOther = await signNodeConsent(f, f.wallets[2]!, owner);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([key, true, byOther.deadline, byOther.signature], as(f, 1)),
      f.ledger,
      "NodeConsentMismatch",
      [key, (signer: unknown) => typeof signer === "string" && signer.toLowerCase() !== key.toLowerCase()],
    );
    // The key consented to serve owner 2, not owner 1: owner 1 cannot use that consent.
    const forOther = await signNodeConsent(f, f.wallets[8]!, addr(f, 2));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([key, true, forOther.deadline, forOther.signature], as(f, 1)),
      f.ledger,
      "NodeConsentMismatch",
      [key, anyValue],
    );
    // A consent with another deadline than the one it was signed for.
    const mine = await signNodeConsent(f, f.wallets[8]!, owner);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([key, true, mine.deadline + 1n, mine.signature], as(f, 1)),
      f.ledger,
      "NodeConsentMismatch",
      [key, anyValue],
    );
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), false);
    // Owner 2 can use the consent given to it.
    await f.ledger.write.authorizeNode([key, true, forOther.deadline, forOther.signature], as(f, 2));
    assert.equal(await f.ledger.read.isAuthorized([addr(f, 2), key]), true);
  });

  it("reverts SignatureExpired after the consent's deadline and InvalidSignature for a malformed one", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    const deadline = (await now()) + 100n;
    const consent = await signNodeConsent(f, f.wallets[8]!, owner, deadline);
    await networkHelpers.time.setNextBlockTimestamp(deadline + 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([key, true, deadline, consent.signature], as(f, 1)),
      f.ledger,
      "SignatureExpired",
      [deadline],
    );
    await assertions.revertWithCustomError(
      f.ledger.write.authorizeNode([key, true, (await now()) + 1000n, "0x1234"], as(f, 1)),
      f.ledger,
      "InvalidSignature",
    );
    // Authorizing with no consent at all is a malformed signature too.
    await assertions.revertWithCustomError(
      f.ledger.write.authorizeNode([key, true, (await now()) + 1000n, "0x"], as(f, 1)),
      f.ledger,
      "InvalidSignature",
    );
    // At its deadline the consent still counts.
    const last = await signNodeConsent(f, f.wallets[8]!, owner, (await now()) + 10n);
    await networkHelpers.time.setNextBlockTimestamp(last.deadline);
    await f.ledger.write.authorizeNode([key, true, last.deadline, last.signature], as(f, 1));
    assert.equal(await f.ledger.read.isAuthorized([owner, key]), true);
  });

  it("a revoked key can no longer sign commits", async () => {
    const f = await setup();
    const [owner, key] = [addr(f, 1), addr(f, 8)];
    await authorizeKey(f, 1, 8);
    await f.ledger.write.authorizeNode([key, false, 0n, "0x"], as(f, 1));
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
      f.ledger.write.authorizeNode([zeroAddress, true, (await now()) + 100n, "0x"], as(f, 1)),
      f.ledger,
      "ZeroAddress",
    );
    await assertions.revertWithCustomError(
      f.ledger.write.authorizeNode([zeroAddress, false, 0n, "0x"], as(f, 1)),
      f.ledger,
      "ZeroAddress",
    );
  });
});

describe("ContributionLedger.commit", () => {
  it("records a commit signed by the owner's node key and relayed by a third party", async () => {
    const f = await setup();
    const [owner, key, relayer] = [addr(f, 1), addr(f, 8), 9];
    await authorizeKey(f, 1, 8);
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
    // Signed over the off-chain EIP-712 digest; the ledger recovers the same key (CheckpointSealed names it).
    assert.equal(await recoverAddress({ hash: await hashCommitOffChain(f, c), signature: sig }), addr(f, 8));

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
    // The stored hash binds the seal to its owner and parent, and to the block and time of the commit.
    assert.equal(await f.ledger.read.commitHash([commitId]), sealKey(c, receipt.blockNumber, block.timestamp));
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
    // The relayer paid nothing and gained nothing: no stake moved, the owner's slash amount is locked.
    assert.equal(await f.stake.read.balanceOf([f.ledger.address]), 0n);
    const stake = await f.staking.read.stakeOf([1n, owner, Role.Trainer]);
    assert.equal(stake.active, defaultParams.minTrainerStake);
    assert.equal(stake.locked, SLASH);
  });

  it("reverts SignatureExpired after the deadline (and accepts a commit at the deadline)", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await authorizeKey(f, 1, 1);
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
    await authorizeKey(f, 2, 2);
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
    await authorizeKey(f, 1, 1);
    const c = await sealedCommitOf(f, makeCheckpoint(owner));
    const sig = await signCommit(f, f.wallets[1]!, c);
    // Each altered field recovers some other address, which the owner never authorized.
    const altered = [
      { ...c, sealedHash: digest("other seal") },
      { ...c, lane: 1 },
      { ...c, shard: 1 },
      { ...c, deadline: c.deadline + 1n },
      { ...c, owner: addr(f, 2) },
      { ...c, paramsVersion: c.paramsVersion + 1 },
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
    await authorizeKey(f, 1, 1);
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
    await f.registry.write.closeGenesis([1n]);
    const owner = addr(f, 1);
    await authorizeKey(f, 1, 1);
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
    await authorizeKey(f, 1, 1);
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

  it("reverts InvalidParent for a seal whose parent is not revealed on its shard in the round before", async () => {
    const f = await setupDeep();
    const r1 = await revealPair(f);
    const cases: [string, Checkpoint][] = [
      [
        "round 3 on a round-1 parent (skips round 2)",
        makeCheckpoint(addr(f, 1), { round: 3n, parentRoot: r1.cp0.root }),
      ],
      ["round 2 on nothing", makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: zeroHash })],
      ["round 0", makeCheckpoint(addr(f, 1), { round: 0n, parentRoot: zeroHash })],
      ["round 1 on a round-1 root", makeCheckpoint(addr(f, 1), { lane: 1, parentRoot: r1.cp0.root })],
      ["round 1 on a made-up root", makeCheckpoint(addr(f, 1), { lane: 1, parentRoot: digest("made up") })],
      ["round 2 on another shard's root", makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: r1.cp1.root })],
      ["round 2 on an unknown root", makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: digest("nowhere") })],
    ];
    for (const [name, cp] of cases) {
      const c = await sealedCommitOf(f, cp);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.commit([c, await signCommit(f, f.wallets[1]!, c)]),
        f.ledger,
        "InvalidParent",
        [await idOf(f, cp), cp.parentRoot],
      );
      assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n, name);
    }
    // A parent that is only sealed cannot open a round either.
    const sealedOnly = makeCheckpoint(addr(f, 3), { lane: 1 });
    await sealCheckpoint(f, 3, sealedOnly);
    const onSealed = makeCheckpoint(addr(f, 1), { round: 2n, lane: 1, parentRoot: sealedOnly.root });
    await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 1, onSealed), f.ledger, "InvalidParent", [
      await idOf(f, onSealed),
      sealedOnly.root,
    ]);
    // Round 2 (latest + 1) opens on its shard's round-1 root.
    await sealCheckpoint(f, 1, makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: r1.cp0.root }));
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);
  });

  it("reverts GenesisNotClosed (from the registry) for round 1 before the registrant closes genesis", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await stakeEveryone(f);
    await authorizeKey(f, 1, 1);
    const c = await sealedCommitOf(f, makeCheckpoint(addr(f, 1)));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.registry, "GenesisNotClosed", [
      1n,
    ]);
    await f.registry.write.closeGenesis([1n]);
    await f.ledger.write.commit([c, sig]);
  });

  it("locks slashAmount per pending commit: another needs that much free stake", async () => {
    const f = await setup();
    const owner = addr(f, 1);
    await authorizeKey(f, 1, 1);
    const first = makeCheckpoint(owner);
    await sealCheckpoint(f, 1, first);
    // 100 active, 60 locked: a second pending commit needs 60 free, 40 are.
    const second = await sealedCommitOf(f, makeCheckpoint(owner, { lane: 1 }));
    const sig = await signCommit(f, f.wallets[1]!, second);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([second, sig]),
      f.staking,
      "InsufficientFreeStake",
      [1n, owner, Role.Trainer, SLASH, defaultParams.minTrainerStake - SLASH],
    );
    // Locked stake cannot leave either.
    await assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([1n, Role.Trainer, parseEther("41")], as(f, 1)),
      f.staking,
      "InsufficientFreeStake",
      [1n, owner, Role.Trainer, parseEther("41"), parseEther("40")],
    );
    await stakeIn(f, 1n, 1, Role.Trainer, parseEther("20"));
    await f.ledger.write.commit([second, sig]);
    assert.equal((await f.staking.read.stakeOf([1n, owner, Role.Trainer])).locked, 2n * SLASH);
    assert.equal(
      (await f.ledger.read.commitState([await idOf(f, makeCheckpoint(owner, { lane: 1 }))])).status,
      Status.Sealed,
    );
  });

  it("reverts ShardOutOfRange (from the registry) for a shard the model does not have", async () => {
    const f = await setup();
    await authorizeKey(f, 1, 1);
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
    await authorizeKey(f, 1, 1);
    const c = await sealedCommitOf(f, makeCheckpoint(addr(f, 1), { modelId: 9n }));
    const sig = await signCommit(f, f.wallets[1]!, c);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.commit([c, sig]), f.registry, "ModelNotFound", [9n]);
  });
});

describe("ContributionLedger.expireSeal", () => {
  it("frees an unrevealed seal after the reveal window, releasing the lock and burning the seal deposit", async () => {
    const f = await setup();
    const window = BigInt(defaultParams.revealWindow);
    const owner = addr(f, 1);
    const cp = makeCheckpoint(owner);
    const id = await idOf(f, cp);
    const s = await sealCheckpoint(f, 1, cp);
    const args = [s.commit, s.commitBlock, s.commitTime] as const;
    assert.equal((await f.staking.read.stakeOf([1n, owner, Role.Trainer])).locked, SLASH);

    await networkHelpers.time.setNextBlockTimestamp(s.commitTime + window);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.expireSeal([...args]), f.ledger, "RevealWindowOpen", [
      id,
      s.commitTime + window,
    ]);
    for (const wrong of [
      { ...s.commit, sealedHash: digest("other") },
      { ...s.commit, owner: addr(f, 2) },
      { ...s.commit, parentRoot: digest("other parent") },
    ]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.expireSeal([wrong, s.commitBlock, s.commitTime]),
        f.ledger,
        "SealMismatch",
        [id],
      );
    }
    // Anyone can free it once the window has passed; the deadline and version it was signed
    // with do not matter any more.
    await networkHelpers.time.increaseTo(s.commitTime + window + 1n);
    const hash = await f.ledger.write.expireSeal(
      [{ ...s.commit, deadline: 0n, paramsVersion: 99 }, s.commitBlock, s.commitTime],
      as(f, 9),
    );
    await assertions.emitWithArgs(hash, f.ledger, "SealExpired", [id, cp.modelId, cp.shard, cp.round, cp.lane]);
    const deposit = defaultParams.sealDeposit;
    await assertions.emitWithArgs(hash, f.staking, "Slashed", [1n, owner, Role.Trainer, deposit, zeroAddress, 0n]);
    const stake = await f.staking.read.stakeOf([1n, owner, Role.Trainer]);
    assert.equal(stake.locked, 0n);
    assert.equal(stake.active, defaultParams.minTrainerStake - deposit);
    assert.equal((await f.staking.read.totals([1n])).slashed, deposit);
    assert.equal(await f.ledger.read.commitHash([id]), zeroHash);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.None);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.expireSeal([...args]), f.ledger, "CommitNotFound", [
      id,
    ]);
    // The late owner can no longer reveal, nor seal the same hash again.
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]),
      f.ledger,
      "CommitNotFound",
      [id],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([s.commit, s.signature]),
      f.ledger,
      "SealSpent",
      [id],
    );
    // Another trainer can take the slot.
    await stakeAs(f, 8, 0);
    const retry = makeCheckpoint(addr(f, 8));
    await commitAndReveal(f, 8, retry);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.Pending);
  });

  it("the owner may seal the slot again with another sealed hash", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const s = await sealCheckpoint(f, 1, cp, digest("first salt"));
    await networkHelpers.time.increase(defaultParams.revealWindow + 1);
    await f.ledger.write.expireSeal([s.commit, s.commitBlock, s.commitTime]);
    // 95 active: below the minimum until the trainer tops up the lost deposit.
    await assertions.revertWithCustomErrorWithArgs(
      sealCheckpoint(f, 1, cp, digest("second salt")),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, addr(f, 1), defaultParams.minTrainerStake - defaultParams.sealDeposit, defaultParams.minTrainerStake],
    );
    await stakeIn(f, 1n, 1, Role.Trainer, defaultParams.sealDeposit);
    const again = await sealCheckpoint(f, 1, cp, digest("second salt"));
    await f.ledger.write.reveal([cp, again.salt, again.commitBlock, again.commitTime]);
    assert.equal((await f.ledger.read.commitState([await idOf(f, cp)])).status, Status.Pending);
  });

  it("reverts WrongStatus for a revealed commit", async () => {
    const f = await setup();
    const cp = makeCheckpoint(addr(f, 1));
    const s = await sealCheckpoint(f, 1, cp);
    await f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]);
    await networkHelpers.time.increase(defaultParams.revealWindow + 1);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.expireSeal([s.commit, s.commitBlock, s.commitTime]),
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
    assert.equal(await f.ledger.read.commitOfRoot([1n, cp.root]), zeroHash);

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
    assert.equal(await f.ledger.read.commitOwner([commitId]), owner);
    assert.equal(await f.ledger.read.commitOfRoot([1n, cp.root]), commitId);
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
    await authorizeKey(f, 1, 1);
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
      [{ ...cp, parentRoot: digest("parent") }, salt, s.commitBlock, s.commitTime],
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

  describe("parent linkage (checked at seal, bound to the reveal)", () => {
    it("reverts InvalidParent at seal for a nonzero parent at round 1", async () => {
      const f = await setup();
      const parentRoot = digest("made up");
      const cp = makeCheckpoint(addr(f, 1), { parentRoot });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 1, cp), f.ledger, "InvalidParent", [
        await idOf(f, cp),
        parentRoot,
      ]);
      assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
    });

    it("reverts InvalidParent at seal for a round-1 root presented as its own round's parent", async () => {
      const f = await setup();
      const { cp0 } = await revealPair(f);
      const cp = makeCheckpoint(addr(f, 3), { lane: 1, parentRoot: cp0.root });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 3, cp), f.ledger, "InvalidParent", [
        await idOf(f, cp),
        cp0.root,
      ]);
    });

    it("reverts InvalidParent at seal for a zero parent at round 2", async () => {
      const f = await setupDeep();
      await revealPair(f);
      const cp = makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: zeroHash });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 1, cp), f.ledger, "InvalidParent", [
        await idOf(f, cp),
        zeroHash,
      ]);
      assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
    });

    it("reverts InvalidParent for the parent of another shard, and accepts its own shard's parent", async () => {
      const f = await setupDeep();
      const r1 = await revealPair(f);
      const wrong = makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: r1.cp1.root });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 1, wrong), f.ledger, "InvalidParent", [
        await idOf(f, wrong),
        r1.cp1.root,
      ]);
      const right = makeCheckpoint(addr(f, 1), { round: 2n, lane: 1, parentRoot: r1.cp0.root });
      await commitAndReveal(f, 1, right);
      assert.equal((await f.ledger.read.commitState([await idOf(f, right)])).status, Status.Pending);
    });

    it("reverts InvalidParent for an unknown root and for a parent two rounds back", async () => {
      const f = await setupDeep();
      const r1 = await revealPair(f);
      const r2 = await revealPair(f, { round: 2n, parents: [r1.cp0.root, r1.cp1.root] });
      assert.equal((await f.ledger.read.commitState([r2.id0])).status, Status.Pending);
      const skip = makeCheckpoint(addr(f, 1), { round: 3n, parentRoot: r1.cp0.root });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 1, skip), f.ledger, "InvalidParent", [
        await idOf(f, skip),
        r1.cp0.root,
      ]);
      const unknown = makeCheckpoint(addr(f, 2), { shard: 1, round: 3n, parentRoot: digest("nowhere") });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 2, unknown), f.ledger, "InvalidParent", [
        await idOf(f, unknown),
        digest("nowhere"),
      ]);
    });

    it("reverts InvalidParent at seal for a rejected parent", async () => {
      const f = await setup();
      const r1 = await revealPair(f);
      await f.ledger.write.challenge([r1.id0, digest("evidence")], as(f, 7));
      await f.ledger.write.vote([r1.id0, true], as(f, 4));
      await networkHelpers.time.increase(defaultParams.disputeWindow);
      await f.ledger.write.resolve([r1.cp0]);
      assert.equal((await f.ledger.read.commitState([r1.id0])).status, Status.Rejected);

      // Trainer 1 was slashed below the minimum; trainer 3 builds on the rejected root.
      const child = makeCheckpoint(addr(f, 3), { round: 2n, parentRoot: r1.cp0.root });
      await assertions.revertWithCustomErrorWithArgs(sealCheckpoint(f, 3, child), f.ledger, "InvalidParent", [
        await idOf(f, child),
        r1.cp0.root,
      ]);
      assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
    });

    it("a reveal must name the parent sealed (SealMismatch)", async () => {
      const f = await setupDeep();
      const r1 = await revealPair(f);
      const child = makeCheckpoint(addr(f, 3), { round: 2n, parentRoot: r1.cp0.root });
      const s = await sealCheckpoint(f, 3, child);
      // The checkpoint under another parent (even one valid for a seal) does not match the seal.
      for (const parentRoot of [digest("elsewhere"), zeroHash]) {
        await assertions.revertWithCustomErrorWithArgs(
          f.ledger.write.reveal([{ ...child, parentRoot }, s.salt, s.commitBlock, s.commitTime]),
          f.ledger,
          "SealMismatch",
          [await idOf(f, child)],
        );
      }
      await f.ledger.write.reveal([child, s.salt, s.commitBlock, s.commitTime]);
      assert.equal((await f.ledger.read.commitState([await idOf(f, child)])).status, Status.Pending);
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
      assert.equal(await f.ledger.read.commitOfRoot([1n, a.root]), idA);
      assert.equal((await f.ledger.read.commitState([idB])).status, Status.Sealed);
    });

    it("a root belongs to the earliest seal: a later-sealed copy that revealed first is rejected and slashed", async () => {
      const f = await setup();
      const root = digest("shared root");
      const a = makeCheckpoint(addr(f, 1), { root });
      const b = makeCheckpoint(addr(f, 2), { root, lane: 1 });
      const sb = await sealCheckpoint(f, 2, b);
      const sa = await sealCheckpoint(f, 1, a);
      await f.ledger.write.reveal([a, sa.salt, sa.commitBlock, sa.commitTime]);
      const idA = await idOf(f, a);
      await assertions.emitWithArgs(
        f.ledger.write.reveal([b, sb.salt, sb.commitBlock, sb.commitTime]),
        f.ledger,
        "CheckpointRejected",
        [idA, 1n, 2],
      );
      assert.equal(await f.ledger.read.commitOfRoot([1n, root]), await idOf(f, b));
      assert.equal((await f.ledger.read.commitState([idA])).status, Status.Rejected);
      const s = await f.staking.read.stakeOf([1n, addr(f, 1), Role.Trainer]);
      assert.deepEqual([s.active, s.locked], [defaultParams.minTrainerStake - defaultParams.slashAmount, 0n]);
    });

    it("a commit sealed after the root's holder cannot take it (CheckpointRootTaken)", async () => {
      const f = await setup();
      const root = digest("shared root");
      const a = makeCheckpoint(addr(f, 1), { root });
      const b = makeCheckpoint(addr(f, 2), { root, lane: 1 });
      const sa = await sealCheckpoint(f, 1, a);
      const sb = await sealCheckpoint(f, 2, b);
      await f.ledger.write.reveal([a, sa.salt, sa.commitBlock, sa.commitTime]);
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.reveal([b, sb.salt, sb.commitBlock, sb.commitTime]),
        f.ledger,
        "CheckpointRootTaken",
        [root, await idOf(f, a)],
      );
    });

    it("roots are per model: the root revealed on model 1 is free on model 2", async () => {
      const f = await setup();
      const root = digest("shared root");
      const m2 = await registerModel(f, { shardWeights: [1n] });
      await stakeIn(f, m2, 2, Role.Trainer, defaultParams.minTrainerStake);
      const a = makeCheckpoint(addr(f, 1), { root });
      const b = makeCheckpoint(addr(f, 2), { modelId: m2, root, ...pipelineDigests(0, 1) });
      const idA = await commitAndReveal(f, 1, a);
      const idB = await commitAndReveal(f, 2, b);
      assert.equal(await f.ledger.read.commitOfRoot([1n, root]), idA);
      assert.equal(await f.ledger.read.commitOfRoot([m2, root]), idB);
      assert.notEqual(idA, idB);
      assert.equal(await f.ledger.read.commitOwner([idB]), addr(f, 2));
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

async function hashCommitOffChain(f: Fixture, c: SealedCommit) {
  return hashTypedData({
    domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
    types: sealedCommitTypes,
    primaryType: "SealedCommit",
    message: c,
  });
}
