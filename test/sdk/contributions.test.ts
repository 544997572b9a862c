import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, hashTypedData, recoverAddress, zeroAddress, zeroHash, type Hex } from "viem";

import { computeCommitId } from "../../sdk/actions/contributions/checkpoint.js";
import { computeCheckpointHash } from "../../sdk/actions/contributions/computeCheckpointHash.js";
import { stake } from "../../sdk/actions/staking/stake.js";
import { ledgerDomain, nodeConsentTypes, sealedCommitTypes, sealedHash } from "../../sdk/constants.js";
import { contributionActions } from "../../sdk/decorators/contributions.js";
import { modelActions } from "../../sdk/decorators/models.js";
import { stakingActions } from "../../sdk/decorators/staking.js";
import { ContractRevertError } from "../../sdk/errors/contract.js";
import { InvalidParameterError } from "../../sdk/errors/validation.js";
import type { AnyClient } from "../../sdk/utils/client.js";
import {
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  tokenId,
  type Checkpoint,
} from "../helpers/fixture.js";
import { addr, Role, stakeIn } from "../helpers/ledger.js";
import { clientFor, PATHS, sdkFixture, type ClientPath, type SdkFixture } from "./helpers.js";

const CHALLENGE = BigInt(defaultParams.challengeWindow);
const DISPUTE = BigInt(defaultParams.disputeWindow);
const REVEAL = BigInt(defaultParams.revealWindow);
const BOND = defaultParams.challengeBond;
const SLASH = defaultParams.slashAmount;
const CHALLENGER_SHARE = (SLASH * BigInt(defaultParams.challengerShareBps)) / 10_000n;
const VERIFIER = defaultParams.minVerifierStake;
/** Trainers 1 and 2 stake enough for three pending commits each (each locks `slashAmount`). */
const TRAINER_STAKE = 3n * defaultParams.minTrainerStake;
/** Quorum of a dispute with only verifiers 4 and 5 staked (rounded up). */
const QUORUM = (2n * VERIFIER * BigInt(defaultParams.quorumBps) + 9_999n) / 10_000n;

/** Wallets: 1, 2 staked trainers; 3 a trainer without stake; 4, 5 verifiers; 7 challenger; 8 node key; 9 relayer. */
const NODE = 8;
const RELAYER = 9;

/**
 * The SDK fixture with trainers 1 and 2 and verifiers 4 and 5 staked (the challenger approved
 * nothing), genesis of model 1 still open.
 */
async function openGenesisFixture() {
  const f = await sdkFixture();
  for (const i of [1, 2]) await stakeIn(f, f.modelId, i, Role.Trainer, TRAINER_STAKE);
  for (const i of [4, 5]) await stakeIn(f, f.modelId, i, Role.Verifier, VERIFIER);
  return f;
}

/** `openGenesisFixture` with genesis closed by the registrant: round 1 can open. */
async function stakedFixture() {
  const f = await openGenesisFixture();
  await f.registry.write.closeGenesis([f.modelId]);
  return f;
}

/** An SDK client acting as wallet `index`, with the contribution, model and staking actions. */
async function sdk(f: SdkFixture, path: ClientPath, index: number) {
  const base = (await clientFor(f, path, index)) as unknown as AnyClient;
  return base
    .extend(contributionActions(f.deployment))
    .extend(modelActions(f.deployment))
    .extend(stakingActions(f.deployment));
}

/** SDK clients for several wallets at once, in order. */
async function sdks<const indices extends readonly number[]>(f: SdkFixture, path: ClientPath, indices: indices) {
  const clients = await Promise.all(indices.map((i) => sdk(f, path, i)));
  return clients as { [k in keyof indices]: Awaited<ReturnType<typeof sdk>> };
}

/** Both stages of a round of model 1 in `lane`, with agreeing pipeline digests. */
function pair(f: SdkFixture, round = 1n, lane = 0, parents: [Hex, Hex] = [zeroHash, zeroHash]) {
  const cp0 = makeCheckpoint(addr(f, 1), { round, lane, parentRoot: parents[0], ...pipelineDigests(0, 2) });
  const cp1 = makeCheckpoint(addr(f, 2), {
    shard: 1,
    round,
    lane,
    parentRoot: parents[1],
    workUnits: 4321n,
    ...pipelineDigests(1, 2),
  });
  return [cp0, cp1] as const;
}

/** Wallet `ownerIndex` authorizes wallet `keyIndex` as its node key, with the key's consent, through the SDK. */
async function authorize(f: SdkFixture, path: ClientPath, ownerIndex: number, keyIndex = NODE) {
  const [owner, key] = await sdks(f, path, [ownerIndex, keyIndex]);
  const consent = await key.signNodeConsent({ owner: addr(f, ownerIndex) });
  return owner.authorizeNode({ nodeKey: consent.nodeKey, consent });
}

/** Seals `cp` with the node key (authorized by the owner once), relays and reveals it, through the SDK. */
async function commitAndRevealVia(f: SdkFixture, path: ClientPath, cp: Checkpoint) {
  const ownerIndex = f.wallets.findIndex((w) => getAddress(w.account.address) === cp.owner);
  const node = await sdk(f, path, NODE);
  const relayer = await sdk(f, path, RELAYER);
  if (!(await f.ledger.read.isAuthorized([cp.owner, addr(f, NODE)]))) await authorize(f, path, ownerIndex);
  const signed = await node.signSealedCommit({ checkpoint: cp });
  const sealed = await relayer.submitCommit({ commit: signed.commit, signature: signed.signature });
  await networkHelpers.mine(); // a reveal must come in a later block than its seal
  await relayer.reveal({ checkpoint: cp, salt: signed.salt, ...sealed });
  return sealed.commitId;
}

/** Asserts that `promise` rejects with a decoded `errorName`, returning its arguments. */
async function rejectsWith(promise: Promise<unknown>, errorName: string) {
  let args: Readonly<Record<string, unknown>> = {};
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ContractRevertError, `expected ContractRevertError, got ${String(e)}`);
    assert.equal(e.errorName, errorName);
    args = e.args;
    return true;
  });
  return args;
}

const stakeToken = (f: SdkFixture, index: number) => f.stake.read.balanceOf([addr(f, index)]);
const activeTrainerStake = (f: SdkFixture, index: number) =>
  f.staking.read.activeStake([f.modelId, addr(f, index), Role.Trainer]);
const stakeOf = (f: SdkFixture, index: number) => f.staking.read.stakeOf([f.modelId, addr(f, index), Role.Trainer]);

describe("computeCheckpointHash", () => {
  it("equals the ledger's checkpointHash, URIs and extreme values included", async () => {
    const f = await networkHelpers.loadFixture(stakedFixture);
    const checkpoints = [
      makeCheckpoint(addr(f, 1)),
      makeCheckpoint(addr(f, 2), {
        modelId: 2n ** 64n - 1n,
        shard: 2 ** 32 - 1,
        round: 2n ** 64n - 1n,
        lane: 7,
        workUnits: 2n ** 128n - 1n,
        lossMicros: 2n ** 64n - 1n,
        checkpointURI: "ipfs://bafy-ünïcødé-" + "x".repeat(300),
        transcriptURI: "",
      }),
    ];
    for (const cp of checkpoints) {
      assert.equal(computeCheckpointHash({ checkpoint: cp }), await f.ledger.read.checkpointHash([cp]));
    }
    // Every field counts.
    const [a, b] = [makeCheckpoint(addr(f, 1)), makeCheckpoint(addr(f, 1), { transcriptURI: "ipfs://other" })];
    assert.notEqual(computeCheckpointHash({ checkpoint: a }), computeCheckpointHash({ checkpoint: b }));
    assert.equal(
      computeCommitId({ modelId: 1n, shard: 1, round: 3n, lane: 2 }),
      await f.ledger.read.commitIdOf([1n, 1, 3n, 2]),
    );
  });

  it("rejects a malformed checkpoint with InvalidParameterError naming the fields", () => {
    assert.throws(
      () =>
        computeCheckpointHash({
          checkpoint: { ...makeCheckpoint(getAddress("0x" + "11".repeat(20))), root: "0x12", shard: -1 } as never,
        }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidParameterError);
        assert.deepEqual(e.issues.map((i) => i.path).sort(), ["checkpoint.root", "checkpoint.shard"]);
        return true;
      },
    );
  });
});

for (const path of PATHS) {
  describe(`contributions (${path})`, () => {
    it("signs with a node key, relays from a third account, reveals, attests and finalizes", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [node, relayer, verifier] = await sdks(f, path, [NODE, RELAYER, 4]);
      await authorize(f, path, 1);
      await authorize(f, path, 2);
      assert.equal(await f.ledger.read.isAuthorized([addr(f, 1), addr(f, NODE)]), true);

      const [cp0, cp1] = pair(f);
      const salt = digest("my salt");
      const signed0 = await node.signSealedCommit({ checkpoint: cp0, salt });
      assert.equal(signed0.salt, salt);
      assert.equal(signed0.checkpointHash, await f.ledger.read.checkpointHash([cp0]));
      assert.equal(signed0.commit.sealedHash, sealedHash(signed0.checkpointHash, salt));
      assert.equal(signed0.commit.owner, addr(f, 1));
      assert.equal(signed0.commit.parentRoot, cp0.parentRoot);
      assert.equal(signed0.commit.paramsVersion, await f.registry.read.paramsVersionAt([1n, 1n]));
      // The signature is the node key's over the ledger's EIP-712 digest.
      const typedHash = hashTypedData({
        domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
        types: sealedCommitTypes,
        primaryType: "SealedCommit",
        message: signed0.commit,
      });
      assert.equal(await recoverAddress({ hash: typedHash, signature: signed0.signature }), addr(f, NODE));
      // Without a salt, a fresh random one is drawn.
      const signed1 = await node.signSealedCommit({ checkpoint: cp1 });
      const again = await node.signSealedCommit({ checkpoint: cp1 });
      assert.notEqual(signed1.salt, again.salt);
      assert.ok(signed1.commit.deadline > BigInt(await networkHelpers.time.latest()));

      const relayerNonce = await f.publicClient.getTransactionCount({ address: addr(f, RELAYER) });
      const sealed0 = await relayer.submitCommit({ commit: signed0.commit, signature: signed0.signature });
      assert.equal(sealed0.commitId, await f.ledger.read.commitIdOf([1n, 0, 1n, 0]));
      assert.equal(sealed0.commitBlock, sealed0.receipt.blockNumber);
      assert.equal(sealed0.commitTime, (await f.publicClient.getBlock({ blockNumber: sealed0.commitBlock })).timestamp);
      assert.equal(await f.publicClient.getTransactionCount({ address: addr(f, RELAYER) }), relayerNonce + 1);
      assert.equal((await relayer.getCommit({ commitId: sealed0.commitId })).status, "sealed");
      // The seal locks the round's slash amount of the owner's stake until the commit settles.
      assert.equal((await relayer.getStake({ modelId: 1n, account: addr(f, 1) })).trainer.locked, SLASH);
      const sealed1 = await relayer.submitCommit(signed1);

      // Writes are simulated against the pending block, the one they go into: a reveal sent right
      // after its seal lands a block later and goes through (the ledger's RevealTooEarly is for the
      // seal's own block; see the ledger tests).
      const revealed0 = await relayer.reveal({ checkpoint: cp0, salt, ...sealed0 });
      assert.equal(revealed0.commitId, sealed0.commitId);
      await relayer.reveal({ checkpoint: cp1, salt: signed1.salt, ...sealed1 });

      await verifier.attest({ commitId: sealed0.commitId });
      const byKey = await verifier.getCommit({ modelId: 1n, shard: 0, round: 1n, lane: 0 });
      assert.equal(byKey.commitId, sealed0.commitId);
      assert.equal(byKey.status, "pending");
      assert.equal(byKey.attestations, 1);
      assert.equal(byKey.hash, signed0.checkpointHash);
      assert.equal(byKey.owner, addr(f, 1));
      assert.equal(byKey.dispute, null);

      await networkHelpers.time.increase(CHALLENGE);
      const done0 = await relayer.finalize({ checkpoint: cp0 });
      const done1 = await relayer.finalize({ checkpoint: cp1 });
      assert.equal(done0.minted, cp0.workUnits); // one token wei per work unit
      assert.equal(done1.minted, 4321n);
      assert.equal(done0.tokenId, tokenId(1n, 0));
      assert.equal(done0.deferred, false);
      assert.equal((await relayer.getStake({ modelId: 1n, account: addr(f, 1) })).trainer.locked, 0n);
      assert.equal(await f.token.read.balanceOf([addr(f, 1), tokenId(1n, 0)]), cp0.workUnits);
      assert.equal(await f.token.read.balanceOf([addr(f, 2), tokenId(1n, 1)]), 4321n);
      assert.equal(await f.token.read.balanceOf([addr(f, RELAYER), tokenId(1n, 0)]), 0n);
      assert.equal((await relayer.getCommit({ commitId: sealed1.commitId })).status, "finalized");
    });

    it("stakes through the SDK and commits once the stake meets the minimum", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const node = await sdk(f, path, NODE);
      await authorize(f, path, 3);
      const cp = makeCheckpoint(addr(f, 3));
      const signed = await node.signSealedCommit({ checkpoint: cp });
      const args = await rejectsWith(node.submitCommit(signed), "InsufficientTrainerStake");
      assert.deepEqual(args, {
        modelId: 1n,
        owner: addr(f, 3),
        active: 0n,
        required: defaultParams.minTrainerStake,
      });
      await stake((await clientFor(f, path, 3)) as unknown as AnyClient, {
        deployment: f.deployment,
        modelId: 1n,
        role: "trainer",
        amount: defaultParams.minTrainerStake,
      });
      const { commitId } = await node.submitCommit(signed);
      assert.equal((await node.getCommit({ commitId })).status, "sealed");
      // The minimum stake backs one pending commit: a second one needs more free stake.
      const second = await node.signSealedCommit({ checkpoint: makeCheckpoint(addr(f, 3), { lane: 1 }) });
      const free = await rejectsWith(node.submitCommit(second), "InsufficientFreeStake");
      assert.deepEqual(free, {
        modelId: 1n,
        account: addr(f, 3),
        role: Role.Trainer,
        amount: SLASH,
        free: defaultParams.minTrainerStake - SLASH,
      });
      // Nor can the locked stake be unstaked.
      const owner = await clientFor(f, path, 3);
      await rejectsWith(
        owner.requestUnstake({ modelId: 1n, role: "trainer", amount: defaultParams.minTrainerStake }),
        "InsufficientFreeStake",
      );
    });

    it("slashes on an invalid verdict: the challenger pulls bond plus share, voters release their stake", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [cp0, cp1] = pair(f);
      const id0 = await commitAndRevealVia(f, path, cp0);
      await commitAndRevealVia(f, path, cp1);
      const [challenger, v4, v5, anyone] = await sdks(f, path, [7, 4, 5, RELAYER]);
      assert.equal(await f.stake.read.allowance([addr(f, 7), f.ledger.address]), 0n);

      const challengerBefore = await stakeToken(f, 7);
      const stakeBefore = await activeTrainerStake(f, 1);
      const opened = await challenger.challenge({ commitId: id0, evidence: digest("replay diverges") });
      assert.equal(opened.bond, BOND);
      assert.equal(challengerBefore - (await stakeToken(f, 7)), BOND);
      const during = await anyone.getCommit({ commitId: id0 });
      const expected = {
        index: 1,
        challenger: addr(f, 7),
        endsAt: opened.endsAt,
        open: true,
        verdict: "none",
        openedBlock: opened.receipt.blockNumber,
        bond: BOND,
        shareBond: BOND,
        validWeight: 0n,
        invalidWeight: 0n,
        quorum: QUORUM,
        reward: 0n,
      } as const;
      assert.deepEqual(during.dispute, expected);
      assert.deepEqual(await anyone.getDispute({ commitId: id0 }), expected);
      assert.deepEqual(await anyone.getDispute({ commitId: id0, index: 1 }), expected);

      const voted = await v4.vote({ commitId: id0, invalid: true });
      assert.equal(voted.weight, VERIFIER);
      await v5.vote({ commitId: id0, invalid: true });
      assert.equal((await v4.getStake({ modelId: 1n, account: addr(f, 4) })).verifier.locked, VERIFIER);
      await rejectsWith(anyone.resolve({ checkpoint: cp0 }), "DisputeWindowOpen");
      const unresolved = await rejectsWith(challenger.claimDispute({ commitId: id0, index: 1 }), "DisputeNotResolved");
      assert.deepEqual(unresolved, { commitId: id0, index: 1 });
      await rejectsWith(v4.releaseVote({ commitId: id0, index: 1 }), "DisputeNotResolved");
      await networkHelpers.time.increase(DISPUTE);
      const resolved = await anyone.resolve({ checkpoint: cp0 });
      assert.equal(resolved.index, 1);
      assert.equal(resolved.verdict, "invalid");
      assert.equal(resolved.invalid, true);
      assert.equal(resolved.slashed, SLASH);
      assert.equal(resolved.invalidWeight, 2n * VERIFIER);
      assert.equal(resolved.validWeight, 0n);

      assert.equal(stakeBefore - (await activeTrainerStake(f, 1)), SLASH);
      assert.equal((await stakeOf(f, 1)).locked, 0n);
      // Nothing is pushed at resolve: the challenger pulls its bond and its share.
      assert.equal(challengerBefore - (await stakeToken(f, 7)), BOND);
      const dispute = await anyone.getDispute({ commitId: id0, account: addr(f, 7) });
      assert.equal(dispute.verdict, "invalid");
      assert.equal(dispute.reward, CHALLENGER_SHARE);
      assert.deepEqual(dispute.position, {
        account: addr(f, 7),
        challenge: { bond: BOND, own: false, claimed: false },
        vote: { weight: 0n, invalid: false, released: false },
      });
      // Anyone may claim for the challenger; the tokens go to it.
      const claimed = await anyone.claimDispute({ commitId: id0, index: 1, recipient: addr(f, 7) });
      assert.equal(claimed.amount, BOND + CHALLENGER_SHARE);
      assert.equal((await stakeToken(f, 7)) - challengerBefore, CHALLENGER_SHARE);
      const twice = await rejectsWith(challenger.claimDispute({ commitId: id0, index: 1 }), "NothingToClaim");
      assert.deepEqual(twice, { commitId: id0, index: 1, account: addr(f, 7) });
      await rejectsWith(anyone.claimDispute({ commitId: id0, index: 1 }), "NothingToClaim");

      // The voters won: their stake is released whole.
      const released = await v4.releaseVote({ commitId: id0, index: 1 });
      assert.deepEqual([released.weight, released.slashed], [VERIFIER, 0n]);
      assert.equal((await anyone.releaseVote({ commitId: id0, index: 1, voter: addr(f, 5) })).slashed, 0n);
      assert.equal((await v4.getStake({ modelId: 1n, account: addr(f, 4) })).verifier.locked, 0n);
      const again = await rejectsWith(v4.releaseVote({ commitId: id0, index: 1 }), "VoteAlreadyReleased");
      assert.deepEqual(again, { commitId: id0, index: 1, voter: addr(f, 4) });
      await rejectsWith(challenger.releaseVote({ commitId: id0, index: 1 }), "NoVote");

      const after = await anyone.getCommit({ commitId: id0 });
      assert.equal(after.status, "rejected");
      assert.equal(after.dispute?.open, false);
      assert.equal(after.dispute?.verdict, "invalid");
      await rejectsWith(anyone.finalize({ checkpoint: cp0 }), "WrongStatus");
    });

    it("forfeits a frivolous challenger's bond to the trainer, upholds the commit and slashes the losing voter", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [cp0, cp1] = pair(f);
      const id0 = await commitAndRevealVia(f, path, cp0);
      await commitAndRevealVia(f, path, cp1);
      // Verifier 4 weighs twice verifier 5: its "valid" outweighs 5's "invalid".
      await stakeIn(f, f.modelId, 4, Role.Verifier, VERIFIER);
      const [owner, challenger, v4, v5, anyone] = await sdks(f, path, [1, 7, 4, 5, RELAYER]);
      const [trainerBefore, challengerBefore, stakeBefore] = [
        await stakeToken(f, 1),
        await stakeToken(f, 7),
        await activeTrainerStake(f, 1),
      ];
      await challenger.challenge({ commitId: id0 });
      assert.equal((await v4.vote({ commitId: id0, invalid: false })).weight, 2n * VERIFIER);
      await v5.vote({ commitId: id0, invalid: true });
      await rejectsWith(challenger.vote({ commitId: id0, invalid: true }), "ChallengerCannotVote");
      await rejectsWith(v4.vote({ commitId: id0, invalid: true }), "AlreadyVoted");
      await rejectsWith(anyone.finalize({ checkpoint: cp0 }), "DisputeOpen");
      await networkHelpers.time.increase(DISPUTE);
      const resolved = await anyone.resolve({ checkpoint: cp0 });
      assert.equal(resolved.verdict, "valid");
      assert.equal(resolved.invalid, false);
      assert.equal(resolved.slashed, 0n);
      assert.equal(await activeTrainerStake(f, 1), stakeBefore);
      // The owner pulls the forfeited bond; the challenger has nothing to claim.
      await rejectsWith(challenger.claimDispute({ commitId: id0, index: 1 }), "NothingToClaim");
      assert.equal((await owner.claimDispute({ commitId: id0, index: 1 })).amount, BOND);
      assert.equal((await stakeToken(f, 1)) - trainerBefore, BOND);
      assert.equal(challengerBefore - (await stakeToken(f, 7)), BOND);
      // The losing voter loses voterSlashBps of its weight; the winner nothing.
      const lost = await v5.releaseVote({ commitId: id0, index: 1 });
      assert.equal(lost.slashed, (VERIFIER * BigInt(defaultParams.voterSlashBps)) / 10_000n);
      assert.equal((await v4.releaseVote({ commitId: id0, index: 1 })).slashed, 0n);
      const v5Stake = await v5.getStake({ modelId: 1n, account: addr(f, 5) });
      assert.deepEqual([v5Stake.verifier.active, v5Stake.verifier.locked], [VERIFIER - lost.slashed, 0n]);
      const upheld = await anyone.getCommit({ commitId: id0 });
      assert.equal(upheld.upheld, true);
      assert.equal(upheld.status, "pending");
      const { minted } = await anyone.finalize({ checkpoint: cp0 });
      assert.equal(minted, cp0.workUnits);
    });

    it("lets challengers join the open dispute and pays them by bond; a tie or no quorum is inconclusive", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [cp0, cp1] = pair(f);
      const id0 = await commitAndRevealVia(f, path, cp0);
      const id1 = await commitAndRevealVia(f, path, cp1);
      const [owner, first, second, v4, v5, node, anyone] = await sdks(f, path, [1, 7, 6, 4, 5, NODE, RELAYER]);

      // The owner and its node key cannot attest (or vote on) their own commit.
      const own = await rejectsWith(owner.attest({ commitId: id0 }), "OwnCommit");
      assert.deepEqual(own, { commitId: id0, account: addr(f, 1) });
      await rejectsWith(node.attest({ commitId: id0 }), "OwnCommit");

      await first.challenge({ commitId: id0 });
      // The other commit's dispute: a tie.
      await first.challenge({ commitId: id1 });
      await v4.vote({ commitId: id1, invalid: true });
      await v5.vote({ commitId: id1, invalid: false });
      const joined = await second.challenge({ commitId: id0 });
      assert.equal(joined.bond, BOND);
      const already = await rejectsWith(first.challenge({ commitId: id0 }), "AlreadyChallenged");
      assert.deepEqual(already, { commitId: id0, challenger: addr(f, 7) });
      await v4.vote({ commitId: id0, invalid: true });
      await rejectsWith(v4.challenge({ commitId: id0 }), "VoterCannotChallenge");
      // The owner challenging its own commit gets its bond back, never a reward.
      await owner.challenge({ commitId: id0 });
      await rejectsWith(node.vote({ commitId: id0, invalid: false }), "OwnCommit");
      await v5.vote({ commitId: id0, invalid: true });
      const d = await anyone.getDispute({ commitId: id0, account: addr(f, 1) });
      assert.deepEqual([d.index, d.challenger, d.bond, d.shareBond], [1, addr(f, 7), 3n * BOND, 2n * BOND]);
      assert.deepEqual(d.position?.challenge, { bond: BOND, own: true, claimed: false });
      const { endsAt } = d;
      await networkHelpers.time.increaseTo(endsAt);
      await rejectsWith(anyone.challenge({ commitId: id0 }), "DisputeWindowClosed");
      assert.equal((await anyone.resolve({ checkpoint: cp0 })).verdict, "invalid");
      const [a, b, o] = [
        await first.claimDispute({ commitId: id0, index: 1 }),
        await second.claimDispute({ commitId: id0, index: 1 }),
        await owner.claimDispute({ commitId: id0, index: 1 }),
      ];
      assert.equal(a.amount, BOND + CHALLENGER_SHARE / 2n);
      assert.equal(b.amount, BOND + CHALLENGER_SHARE / 2n);
      assert.equal(o.amount, BOND);

      // The other commit: a tie is inconclusive, bonds come back, the commit is not upheld.
      await networkHelpers.time.increase(DISPUTE);
      const tie = await anyone.resolve({ checkpoint: cp1 });
      assert.deepEqual([tie.verdict, tie.invalid, tie.slashed], ["inconclusive", false, 0n]);
      assert.equal((await first.claimDispute({ commitId: id1, index: 1 })).amount, BOND);
      assert.equal((await v5.releaseVote({ commitId: id1, index: 1 })).slashed, 0n);
      const pending = await anyone.getCommit({ commitId: id1 });
      assert.deepEqual([pending.status, pending.upheld, pending.dispute?.verdict], ["pending", false, "inconclusive"]);
      // There is no second dispute (yet).
      const missing = await rejectsWith(anyone.getDispute({ commitId: id1, index: 2 }), "DisputeNotFound");
      assert.deepEqual(missing, { commitId: id1, index: 2 });
      await rejectsWith(anyone.claimDispute({ commitId: id1, index: 2 }), "DisputeNotFound");
      await rejectsWith(anyone.releaseVote({ commitId: id1, index: 2 }), "DisputeNotFound");
      await rejectsWith(anyone.getDispute({ commitId: digest("never challenged") }), "DisputeNotFound");
    });

    it("cascades a rejection down the lineage with rejectOrphan", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [r1] = pair(f, 1n);
      const r2 = makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: r1.root, ...pipelineDigests(0, 2) });
      const r3 = makeCheckpoint(addr(f, 1), { round: 3n, parentRoot: r2.root, ...pipelineDigests(0, 2) });
      const ids: Hex[] = [];
      for (const cp of [r1, r2, r3]) ids.push(await commitAndRevealVia(f, path, cp));
      const [challenger, v4, anyone] = await sdks(f, path, [7, 4, RELAYER]);

      await rejectsWith(anyone.rejectOrphan({ checkpoint: r2 }), "ParentNotRejected");
      await challenger.challenge({ commitId: ids[0]! });
      await v4.vote({ commitId: ids[0]!, invalid: true });
      await networkHelpers.time.increase(DISPUTE);
      await anyone.resolve({ checkpoint: r1 });
      // The grandchild waits for its parent to be rejected first.
      await rejectsWith(anyone.rejectOrphan({ checkpoint: r3 }), "ParentNotRejected");
      assert.equal((await anyone.rejectOrphan({ checkpoint: r2 })).commitId, ids[1]);
      await anyone.rejectOrphan({ checkpoint: r3 });
      for (const commitId of ids) assert.equal((await anyone.getCommit({ commitId })).status, "rejected");
      const args = await rejectsWith(anyone.rejectOrphan({ checkpoint: r3 }), "WrongStatus");
      assert.equal(args.status, 4);
    });

    it("expires an unrevealed seal after the reveal window: frees its slot, burns the deposit, spends the seal", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [node, anyone] = await sdks(f, path, [NODE, RELAYER]);
      await authorize(f, path, 1);
      const cp = makeCheckpoint(addr(f, 1), pipelineDigests(0, 2));
      const signed = await node.signSealedCommit({ checkpoint: cp });
      const sealed = await anyone.submitCommit(signed);
      const expiry = { commit: signed.commit, commitBlock: sealed.commitBlock, commitTime: sealed.commitTime };
      const open = await rejectsWith(anyone.expireSeal(expiry), "RevealWindowOpen");
      assert.equal(open.deadline, sealed.commitTime + REVEAL);

      await networkHelpers.time.increase(REVEAL + 1n);
      await rejectsWith(anyone.reveal({ checkpoint: cp, salt: signed.salt, ...sealed }), "RevealWindowClosed");
      await rejectsWith(
        anyone.expireSeal({ ...expiry, commit: { ...signed.commit, sealedHash: digest("other") } }),
        "SealMismatch",
      );
      await rejectsWith(
        anyone.expireSeal({ ...expiry, commit: { ...signed.commit, owner: addr(f, 2) } }),
        "SealMismatch",
      );
      const before = await stakeOf(f, 1);
      assert.equal(before.locked, SLASH);
      const expired = await anyone.expireSeal(expiry);
      assert.equal(expired.commitId, sealed.commitId);
      const cleared = await anyone.getCommit({ commitId: sealed.commitId });
      assert.equal(cleared.status, "none");
      assert.equal(cleared.hash, zeroHash);
      // The lock is released and the seal deposit burned.
      const after = await stakeOf(f, 1);
      assert.equal(after.locked, 0n);
      assert.equal(before.active - after.active, defaultParams.sealDeposit);
      // The same seal can never seal this slot again.
      const spent = await rejectsWith(anyone.submitCommit(signed), "SealSpent");
      assert.deepEqual(spent, { commitId: sealed.commitId });

      // A new seal (fresh salt) can, and this time is revealed.
      const resigned = await node.signSealedCommit({ checkpoint: cp });
      const resealed = await anyone.submitCommit(resigned);
      await networkHelpers.mine();
      await anyone.reveal({ checkpoint: cp, salt: resigned.salt, ...resealed });
      assert.equal((await anyone.getCommit({ commitId: sealed.commitId })).status, "pending");
    });

    it("allocates genesis tokens until the registrant closes genesis, which round 1 waits for", async () => {
      const f = await networkHelpers.loadFixture(openGenesisFixture);
      const registrant = await sdk(f, path, 0);
      const other = await sdk(f, path, 1);
      const allocations = [
        { to: addr(f, 5), amount: 700n },
        { to: addr(f, 6), amount: 300n },
      ];
      const notRegistrant = await rejectsWith(
        other.allocateGenesis({ modelId: 1n, shard: 0, allocations }),
        "NotRegistrant",
      );
      assert.equal(notRegistrant.caller, addr(f, 1));
      await rejectsWith(registrant.allocateGenesis({ modelId: 1n, shard: 2, allocations }), "ShardOutOfRange");
      await registrant.allocateGenesis({ modelId: 1n, shard: 1, allocations });
      assert.equal(await f.token.read.balanceOf([addr(f, 5), tokenId(1n, 1)]), 700n);
      assert.equal(await f.token.read.balanceOf([addr(f, 6), tokenId(1n, 1)]), 300n);

      // Round 1 cannot open before genesis closes.
      await authorize(f, path, 1);
      const [node] = await sdks(f, path, [NODE]);
      const signed = await node.signSealedCommit({ checkpoint: pair(f)[0] });
      assert.deepEqual(await rejectsWith(node.submitCommit(signed), "GenesisNotClosed"), { modelId: 1n });
      await rejectsWith(other.closeGenesis({ modelId: 1n }), "NotRegistrant");
      await registrant.closeGenesis({ modelId: 1n });
      await rejectsWith(registrant.closeGenesis({ modelId: 1n }), "GenesisAlreadyClosed");
      await rejectsWith(registrant.allocateGenesis({ modelId: 1n, shard: 0, allocations }), "GenesisClosed");
      await node.submitCommit(signed);
    });

    it("decodes the ledger's errors for bad commits, reveals and verifications", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const [owner, node, anyone, verifier] = await sdks(f, path, [1, NODE, RELAYER, 4]);
      const [cp0, cp1] = pair(f);

      // The node key is not yet authorized by the owner.
      const signed = await node.signSealedCommit({ checkpoint: cp0 });
      const notAuthorized = await rejectsWith(anyone.submitCommit(signed), "NodeNotAuthorized");
      assert.deepEqual(notAuthorized, { owner: addr(f, 1), nodeKey: addr(f, NODE) });

      // Authorizing a key needs its consent, for this owner, signed by the key, in time.
      const consent = await node.signNodeConsent({ owner: addr(f, 1) });
      assert.equal(consent.nodeKey, addr(f, NODE));
      assert.equal(consent.owner, addr(f, 1));
      assert.equal(
        await recoverAddress({
          hash: hashTypedData({
            domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
            types: nodeConsentTypes,
            primaryType: "NodeConsent",
            message: { owner: addr(f, 1), nodeKey: addr(f, NODE), deadline: consent.deadline },
          }),
          signature: consent.signature,
        }),
        addr(f, NODE),
      );
      const byOther = await anyone.signNodeConsent({ owner: addr(f, 1) });
      const mismatch = await rejectsWith(
        owner.authorizeNode({ nodeKey: addr(f, NODE), consent: byOther }),
        "NodeConsentMismatch",
      );
      // Signed over another key's consent, it recovers to an unrelated address.
      assert.equal(mismatch.nodeKey, addr(f, NODE));
      assert.notEqual(mismatch.signer, addr(f, NODE));
      // A consent for another owner recovers to another signer.
      const forOther = await node.signNodeConsent({ owner: addr(f, 2) });
      await rejectsWith(owner.authorizeNode({ nodeKey: addr(f, NODE), consent: forOther }), "NodeConsentMismatch");
      const late = await node.signNodeConsent({ owner: addr(f, 1), deadline: 1n });
      assert.deepEqual(
        await rejectsWith(owner.authorizeNode({ nodeKey: addr(f, NODE), consent: late }), "SignatureExpired"),
        {
          deadline: 1n,
        },
      );
      await rejectsWith(
        owner.authorizeNode({ nodeKey: addr(f, NODE), consent: { deadline: consent.deadline, signature: "0x1234" } }),
        "InvalidSignature",
      );
      await owner.authorizeNode({ nodeKey: addr(f, NODE), consent });
      assert.equal(await f.ledger.read.isAuthorized([addr(f, 1), addr(f, NODE)]), true);
      // Revoking needs no consent.
      await owner.authorizeNode({ nodeKey: addr(f, NODE), authorized: false });
      assert.equal(await f.ledger.read.isAuthorized([addr(f, 1), addr(f, NODE)]), false);
      await owner.authorizeNode({ nodeKey: addr(f, NODE), consent });

      // A round-2 seal needs its parent revealed on the shard in round 1.
      const orphan = await node.signSealedCommit({
        checkpoint: makeCheckpoint(addr(f, 1), { round: 2n, parentRoot: digest("no such root") }),
      });
      const parent = await rejectsWith(anyone.submitCommit(orphan), "InvalidParent");
      assert.equal(parent.parentRoot, digest("no such root"));
      // A seal signed for other parameters than the round's is refused.
      const versioned = await node.signSealedCommit({
        checkpoint: cp0,
        paramsVersion: signed.commit.paramsVersion + 1,
      });
      const changed = await rejectsWith(anyone.submitCommit(versioned), "ParamsChanged");
      assert.deepEqual(changed, {
        modelId: 1n,
        round: 1n,
        expected: signed.commit.paramsVersion + 1,
        actual: signed.commit.paramsVersion,
      });

      const now = BigInt(await networkHelpers.time.latest());
      const stale = await node.signSealedCommit({ checkpoint: cp0, deadline: now - 1n });
      assert.deepEqual(await rejectsWith(anyone.submitCommit(stale), "SignatureExpired"), { deadline: now - 1n });

      // A signature by a key that is not the owner's node, and a malformed one.
      const forged = await anyone.signSealedCommit({ checkpoint: cp0 });
      await rejectsWith(
        anyone.submitCommit({ commit: signed.commit, signature: forged.signature }),
        "NodeNotAuthorized",
      );
      await rejectsWith(anyone.submitCommit({ commit: signed.commit, signature: "0x1234" }), "InvalidSignature");

      const sealed = await anyone.submitCommit(signed);
      await rejectsWith(anyone.submitCommit(signed), "CheckpointAlreadyCommitted");
      await rejectsWith(verifier.attest({ commitId: sealed.commitId }), "WrongStatus");
      await rejectsWith(anyone.reveal({ checkpoint: cp0, salt: digest("wrong"), ...sealed }), "SealMismatch");
      await rejectsWith(
        anyone.reveal({ checkpoint: { ...cp0, workUnits: 1n }, salt: signed.salt, ...sealed }),
        "SealMismatch",
      );
      await networkHelpers.mine();
      await anyone.reveal({ checkpoint: cp0, salt: signed.salt, ...sealed });
      await commitAndRevealVia(f, path, cp1);

      const insufficient = await rejectsWith(anyone.attest({ commitId: sealed.commitId }), "InsufficientVerifierStake");
      assert.equal(insufficient.verifier, addr(f, RELAYER));
      await verifier.attest({ commitId: sealed.commitId });
      await rejectsWith(verifier.attest({ commitId: sealed.commitId }), "AlreadyAttested");
      await rejectsWith(anyone.vote({ commitId: sealed.commitId, invalid: true }), "NoOpenDispute");
      await rejectsWith(anyone.resolve({ checkpoint: cp0 }), "NoOpenDispute");
      await rejectsWith(
        anyone.finalize({ checkpoint: { ...cp0, checkpointURI: "ipfs://forged" } }),
        "CheckpointMismatch",
      );
      const open = await rejectsWith(anyone.finalize({ checkpoint: cp0 }), "ChallengeWindowOpen");
      const { revealedAt } = await anyone.getCommit({ commitId: sealed.commitId });
      assert.equal(open.closesAt, BigInt(revealedAt) + CHALLENGE);

      await networkHelpers.time.increase(CHALLENGE);
      await rejectsWith(anyone.challenge({ commitId: sealed.commitId }), "ChallengeWindowClosed");
      await anyone.finalize({ checkpoint: cp0 });
      const finalized = await rejectsWith(anyone.finalize({ checkpoint: cp0 }), "WrongStatus");
      assert.deepEqual(finalized, { commitId: sealed.commitId, status: 3 });
    });

    it("validates inputs with zod before sending anything", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const client = await sdk(f, path, 1);
      const nonce = await f.publicClient.getTransactionCount({ address: addr(f, 1) });
      const issuesOf = async (promise: Promise<unknown>) => {
        let paths: string[] = [];
        await assert.rejects(promise, (e: unknown) => {
          assert.ok(e instanceof InvalidParameterError, `expected InvalidParameterError, got ${String(e)}`);
          paths = e.issues.map((i) => i.path).sort();
          return true;
        });
        return paths;
      };
      const consent = { deadline: 1n, signature: "0x" as Hex };
      assert.deepEqual(await issuesOf(client.authorizeNode({ nodeKey: "0xnot" as Hex, consent })), ["nodeKey"]);
      // Authorizing without the key's consent is refused before sending; revoking needs none.
      assert.deepEqual(await issuesOf(client.authorizeNode({ nodeKey: addr(f, NODE) })), ["consent"]);
      assert.deepEqual(await issuesOf(client.signNodeConsent({ owner: "0x12" as Hex, deadline: -1n })), [
        "deadline",
        "owner",
      ]);
      assert.deepEqual(await issuesOf(client.claimDispute({ commitId: zeroHash, index: 0 })), ["index"]);
      assert.deepEqual(await issuesOf(client.releaseVote({ commitId: zeroHash, index: 256, voter: "0x1" as Hex })), [
        "index",
        "voter",
      ]);
      assert.deepEqual(await issuesOf(client.getDispute({ commitId: "0x12" as Hex, index: 0 })), ["commitId", "index"]);
      assert.deepEqual(
        await issuesOf(
          client.expireSeal({
            commit: { modelId: 1n, shard: 0, round: 1n, lane: 0, owner: addr(f, 1), sealedHash: zeroHash } as never,
            commitBlock: 1n,
            commitTime: 1n,
          }),
        ),
        ["commit.deadline", "commit.paramsVersion", "commit.parentRoot"],
      );
      const cp = makeCheckpoint(addr(f, 1));
      assert.deepEqual(
        await issuesOf(
          client.signSealedCommit({ checkpoint: { ...cp, round: 0n, owner: "0x12" as Hex }, salt: "0x1" }),
        ),
        ["checkpoint.owner", "checkpoint.round", "salt"],
      );
      assert.deepEqual(
        await issuesOf(client.reveal({ checkpoint: cp, salt: zeroHash, commitBlock: -1n, commitTime: 1.5 })),
        ["commitBlock", "commitTime"],
      );
      assert.deepEqual(await issuesOf(client.attest({ commitId: "0x1234" })), ["commitId"]);
      assert.deepEqual(await issuesOf(client.vote({ commitId: zeroHash, invalid: "yes" as never })), ["invalid"]);
      assert.deepEqual(await issuesOf(client.getCommit({ modelId: 1n, shard: 0 })), ["lane", "round"]);
      assert.deepEqual(
        await issuesOf(
          client.allocateGenesis({ modelId: 0n, shard: 0, allocations: [{ to: addr(f, 2), amount: 0n }] }),
        ),
        ["allocations.0.amount", "modelId"],
      );
      assert.deepEqual(await issuesOf(client.finalize({ checkpoint: { ...cp, workUnits: 2n ** 128n } })), [
        "checkpoint.workUnits",
      ]);
      assert.equal(await f.publicClient.getTransactionCount({ address: addr(f, 1) }), nonce);
    });

    it("reads an unknown commit as none, with no dispute", async () => {
      const f = await networkHelpers.loadFixture(stakedFixture);
      const client = await sdk(f, path, 1);
      const commit = await client.getCommit({ commitId: digest("nothing") });
      assert.equal(commit.status, "none");
      assert.equal(commit.owner, zeroAddress);
      assert.equal(commit.hash, zeroHash);
      assert.equal(commit.dispute, null);
    });
  });
}
