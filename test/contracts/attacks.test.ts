/**
 * Issue 14: each attack an independent review found on the contracts, run as the attacker would,
 * against the fixed contracts. Every test fails on the contracts before the fix (the attack
 * worked there) and asserts here that it fails with its specific error or leaves every honest
 * party whole.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";

import { encodeFunctionData, getAddress, parseEther, zeroHash, type Address, type Hex } from "viem";

import {
  DEFAULT_ROUND_PARAMS,
  ledgerDomain,
  nodeConsentTypes,
  sealedCommitTypes,
  sealedHash,
  settlementDomain,
  usageReceiptTypes,
} from "../../sdk/constants.js";
import { deployProtocol } from "../../scripts/lib/protocol.js";
import { digest, makeCheckpoint, networkHelpers, pipelineDigests, viem, type Checkpoint } from "../helpers/fixture.js";

const { assertions } = viem;
const P = DEFAULT_ROUND_PARAMS;
const BPS = 10_000n;
const Trainer = 0;
const Verifier = 1;
const Verdict = { Invalid: 1, Valid: 2, Inconclusive: 3 } as const;
const Status = { Pending: 2, Finalized: 3, Rejected: 4 } as const;
const ACCOUNTS = 12;

type Wallet = Awaited<ReturnType<typeof viem.getWalletClients>>[number];
type Params = typeof P;

/** The protocol, two plain tokens (STK staking, USD revenue) and twelve funded accounts. */
async function world() {
  const protocol = await deployProtocol(viem);
  const wallets = await viem.getWalletClients();
  const publicClient = await viem.getPublicClient();
  const stk = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
  const usd = await viem.deployContract("TestERC20", ["USD", "USD", 18]);
  for (const w of wallets.slice(0, ACCOUNTS)) {
    await stk.write.mint([w.account.address, parseEther("100000")]);
    await usd.write.mint([w.account.address, parseEther("100000")]);
  }
  const chainId = await publicClient.getChainId();
  return { ...protocol, wallets, publicClient, stk, usd, chainId };
}
type World = Awaited<ReturnType<typeof world>>;

const w = (f: World, i: number): Wallet => f.wallets[i]!;
const a = (f: World, i: number): Address => getAddress(w(f, i).account.address);
const as = (f: World, i: number) => ({ account: w(f, i).account });
const now = async () => BigInt(await networkHelpers.time.latest());

/**
 * Registers a model from `registrant`, allocates `genesis` (shard 0) and closes genesis. Defaults:
 * one shard, STK staking, USD revenue, default parameters, a week of unbonding.
 */
async function model(
  f: World,
  opts: {
    registrant?: number;
    shards?: number;
    staking?: Address;
    currencies?: Address[];
    params?: Partial<Params>;
    genesis?: [number, bigint][];
  } = {},
) {
  const registrant = opts.registrant ?? 0;
  await f.registry.write.registerModel(
    [
      {
        specDigest: digest("spec"),
        specURI: "ipfs://bafyspec",
        shardWeights: Array.from({ length: opts.shards ?? 1 }, () => 1n),
        stakingToken: opts.staking ?? f.stk.address,
        currencies: opts.currencies ?? [f.usd.address],
        unbondingDelay: 7 * 86_400,
        params: { ...P, ...opts.params },
      },
    ],
    as(f, registrant),
  );
  const modelId = await f.registry.read.modelCount();
  if (opts.genesis?.length) {
    await f.ledger.write.allocateGenesis(
      [modelId, 0, opts.genesis.map(([i]) => a(f, i)), opts.genesis.map(([, v]) => v)],
      as(f, registrant),
    );
  }
  await f.registry.write.closeGenesis([modelId], as(f, registrant));
  return modelId;
}

async function stake(f: World, modelId: bigint, i: number, role: number, amount: bigint, token = f.stk.address) {
  const erc20 = await viem.getContractAt("TestERC20", token);
  await erc20.write.approve([f.staking.address, amount], as(f, i));
  await f.staking.write.stake([modelId, role, amount], as(f, i));
}

/** The node key's EIP-712 consent to serve `owner` (signed by `signer`, default the key itself). */
async function consent(f: World, nodeKey: number, owner: Address, deadline?: bigint, signer = nodeKey) {
  const dl = deadline ?? (await now()) + 3600n;
  const signature = await w(f, signer).signTypedData({
    account: w(f, signer).account,
    domain: ledgerDomain(f.chainId, f.ledger.address),
    types: nodeConsentTypes,
    primaryType: "NodeConsent",
    message: { owner, nodeKey: a(f, nodeKey), deadline: dl },
  });
  return { deadline: dl, signature };
}

/** `owner` authorizes `nodeKey` with its consent (skipped if already authorized). */
async function authorize(f: World, owner: number, nodeKey: number) {
  if (await f.ledger.read.isAuthorized([a(f, owner), a(f, nodeKey)])) return;
  const c = await consent(f, nodeKey, a(f, owner));
  await f.ledger.write.authorizeNode([a(f, nodeKey), true, c.deadline, c.signature], as(f, owner));
}

interface Sealed {
  commit: {
    modelId: bigint;
    shard: number;
    round: bigint;
    lane: number;
    owner: Address;
    parentRoot: Hex;
    sealedHash: Hex;
    paramsVersion: number;
    deadline: bigint;
  };
  signature: Hex;
  salt: Hex;
  commitBlock: bigint;
  commitTime: bigint;
}

/**
 * Seals `cp` signed by node key `signer` for `sealOwner` (default: `cp.owner`; the attacker of
 * item 1 seals for itself and reveals another owner). The signer is authorized by the owner.
 */
async function seal(
  f: World,
  cp: Checkpoint,
  opts: { signer: number; sealOwner?: Address; salt?: Hex; paramsVersion?: number; send?: boolean },
): Promise<Sealed> {
  const salt = opts.salt ?? digest(`salt-${cp.root}`);
  const owner = opts.sealOwner ?? cp.owner;
  const commit = {
    modelId: cp.modelId,
    shard: cp.shard,
    round: cp.round,
    lane: cp.lane,
    owner,
    parentRoot: cp.parentRoot,
    sealedHash: sealedHash(await f.ledger.read.checkpointHash([cp]), salt),
    paramsVersion: opts.paramsVersion ?? (await f.registry.read.paramsVersionAt([cp.modelId, cp.round])),
    deadline: (await now()) + 3600n,
  };
  const signature = await w(f, opts.signer).signTypedData({
    account: w(f, opts.signer).account,
    domain: ledgerDomain(f.chainId, f.ledger.address),
    types: sealedCommitTypes,
    primaryType: "SealedCommit",
    message: commit,
  });
  if (opts.send === false) return { commit, signature, salt, commitBlock: 0n, commitTime: 0n };
  const hash = await f.ledger.write.commit([commit, signature]);
  const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
  const block = await f.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { commit, signature, salt, commitBlock: receipt.blockNumber, commitTime: block.timestamp };
}

const reveal = (f: World, cp: Checkpoint, s: Sealed) =>
  f.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]);

/** A checkpoint of `modelId` by owner `i`; one shard unless digests are given. */
function checkpoint(f: World, modelId: bigint, i: number, overrides: Partial<Checkpoint> = {}): Checkpoint {
  return makeCheckpoint(a(f, i), {
    modelId,
    sentActivations: zeroHash,
    receivedGradients: zeroHash,
    root: digest(`root-${modelId}-${i}-${overrides.shard ?? 0}-${overrides.round ?? 1n}-${overrides.lane ?? 0}`),
    ...overrides,
  });
}

/** Owner `i` (its own key) seals and reveals `cp`; returns the commit id. */
async function commitAndReveal(f: World, i: number, cp: Checkpoint) {
  await authorize(f, i, i);
  const s = await seal(f, cp, { signer: i });
  await reveal(f, cp, s);
  return f.ledger.read.commitIdOf([cp.modelId, cp.shard, cp.round, cp.lane]);
}

const stakeOf = async (f: World, modelId: bigint, i: number, role: number) =>
  f.staking.read.stakeOf([modelId, a(f, i), role]);

async function approveBonds(f: World, ...accounts: number[]) {
  for (const i of accounts) await f.stk.write.approve([f.ledger.address, parseEther("10000")], as(f, i));
}

describe("attack 1: the revealed owner is the sealed owner", () => {
  it("a staked attacker cannot reveal a bad checkpoint naming a staked victim or an unstaked account", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    const [attacker, victim, nobody] = [1, 2, 9];
    await stake(f, m, attacker, Trainer, 2n * P.minTrainerStake);
    await stake(f, m, victim, Trainer, P.minTrainerStake);
    await authorize(f, attacker, attacker);

    for (const named of [victim, nobody]) {
      const cp = checkpoint(f, m, named, { root: digest(`bad-${named}`) });
      const s = await seal(f, cp, { signer: attacker, sealOwner: a(f, attacker) });
      const id = await f.ledger.read.commitIdOf([m, 0, 1n, 0]);
      await assertions.revertWithCustomErrorWithArgs(reveal(f, cp, s), f.ledger, "SealMismatch", [id]);
      // The seal stays the attacker's: its stake is the one locked, the victim's is untouched.
      assert.equal((await stakeOf(f, m, attacker, Trainer)).locked, P.slashAmount);
      await networkHelpers.time.increase(BigInt(P.revealWindow) + 1n);
      await f.ledger.write.expireSeal([s.commit, s.commitBlock, s.commitTime]);
    }
    const v = await stakeOf(f, m, victim, Trainer);
    assert.equal(v.active, P.minTrainerStake);
    assert.equal(v.locked, 0n);
    // Two expired seals cost the attacker two deposits.
    assert.equal((await stakeOf(f, m, attacker, Trainer)).active, 2n * P.minTrainerStake - 2n * P.sealDeposit);
  });

  it("the attacker cannot seal in the victim's name either (its key is not the victim's)", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 2, Trainer, P.minTrainerStake);
    await authorize(f, 1, 1);
    const cp = checkpoint(f, m, 2);
    const s = await seal(f, cp, { signer: 1, send: false });
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([s.commit, s.signature]),
      f.ledger,
      "NodeNotAuthorized",
      [a(f, 2), a(f, 1)],
    );
  });
});

describe("attack 2: votes cannot be bought, the owner does not judge itself, verdicts need a quorum", () => {
  /** An honest one-shard commit by trainer 1, verifiers 4 and 5 at the minimum, challenger 7 bonded. */
  async function honestCommit() {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 7, 8);
    const cp = checkpoint(f, m, 1);
    const id = await commitAndReveal(f, 1, cp);
    return { f, m, cp, id };
  }

  it("stake added after the dispute opened does not count; the honest trainer is upheld", async () => {
    const { f, m, cp, id } = await honestCommit();
    const attacker = 8;
    await stake(f, m, attacker, Verifier, P.minVerifierStake);
    await f.ledger.write.challenge([id, digest("frivolous")], as(f, 7));
    await f.ledger.write.vote([id, false], as(f, 4));
    await f.ledger.write.vote([id, false], as(f, 5));
    // 1,000 STK more in the last second of the dispute.
    await stake(f, m, attacker, Verifier, parseEther("1000"));
    await networkHelpers.time.increase(BigInt(P.disputeWindow) - 10n);
    await f.ledger.write.vote([id, true], as(f, attacker));
    assert.equal((await f.ledger.read.voteOf([id, 1, a(f, attacker)])).weight, P.minVerifierStake);
    // A verifier with no stake before the opening has no weight at all.
    await stake(f, m, 9, Verifier, parseEther("1000"));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id, true], as(f, 9)),
      f.ledger,
      "InsufficientVerifierStake",
      [m, a(f, 9), 0n, P.minVerifierStake],
    );
    await networkHelpers.time.increase(10n);
    await f.ledger.write.resolve([cp]);
    const d = await f.ledger.read.dispute([id]);
    assert.equal(d.verdict, Verdict.Valid);
    assert.equal(d.invalidWeight, P.minVerifierStake);
    assert.equal(d.validWeight, 2n * P.minVerifierStake);
    // The trainer gets the frivolous bond and keeps its whole stake.
    await f.ledger.write.claimDispute([id, 1, a(f, 1)]);
    await networkHelpers.time.increase(BigInt(P.challengeWindow));
    await f.ledger.write.finalize([cp]);
    const t = await stakeOf(f, m, 1, Trainer);
    assert.deepEqual([t.active, t.locked], [P.minTrainerStake, 0n]);
  });

  it("stake that voted stays locked until released, and the losing side loses voterSlashBps of its weight", async () => {
    const { f, m, cp, id } = await honestCommit();
    // Enough honest stake: 4 and 5 hold 1,000 each, the attacker 100.
    for (const v of [4, 5]) await stake(f, m, v, Verifier, parseEther("950"));
    const attacker = 8;
    await stake(f, m, attacker, Verifier, parseEther("100"));
    await f.ledger.write.challenge([id, digest("frivolous")], as(f, 7));
    await f.ledger.write.vote([id, true], as(f, attacker));
    await f.ledger.write.vote([id, false], as(f, 4));
    await assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([m, Verifier, parseEther("100")], as(f, attacker)),
      f.staking,
      "InsufficientFreeStake",
      [m, a(f, attacker), Verifier, parseEther("100"), 0n],
    );
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.releaseVote([id, 1, a(f, attacker)]),
      f.ledger,
      "DisputeNotResolved",
      [id, 1],
    );
    await f.ledger.write.resolve([cp]);
    assert.equal((await f.ledger.read.dispute([id])).verdict, Verdict.Valid);
    await f.ledger.write.releaseVote([id, 1, a(f, attacker)]);
    await f.ledger.write.releaseVote([id, 1, a(f, 4)]);
    const lost = (parseEther("100") * BigInt(P.voterSlashBps)) / BPS;
    const s = await stakeOf(f, m, attacker, Verifier);
    assert.deepEqual([s.active, s.locked], [parseEther("100") - lost, 0n]);
    const honest = await stakeOf(f, m, 4, Verifier);
    assert.deepEqual([honest.active, honest.locked], [parseEther("1000"), 0n]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.releaseVote([id, 1, a(f, attacker)]),
      f.ledger,
      "VoteAlreadyReleased",
      [id, 1, a(f, attacker)],
    );
  });

  it("the owner and its node keys can neither vote on nor attest their own commit", async () => {
    const { f, m, id } = await honestCommit();
    await stake(f, m, 1, Verifier, P.minVerifierStake);
    await stake(f, m, 3, Verifier, P.minVerifierStake);
    await authorize(f, 1, 3);
    for (const self of [1, 3]) {
      await assertions.revertWithCustomErrorWithArgs(f.ledger.write.attest([id], as(f, self)), f.ledger, "OwnCommit", [
        id,
        a(f, self),
      ]);
    }
    await f.ledger.write.challenge([id, digest("x")], as(f, 7));
    for (const self of [1, 3]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.ledger.write.vote([id, false], as(f, self)),
        f.ledger,
        "OwnCommit",
        [id, a(f, self)],
      );
    }
  });

  it("a 0–0 or below-quorum dispute is inconclusive: nothing slashed, bond back, no finalization past a pipeline mismatch", async () => {
    const f = await networkHelpers.loadFixture(world);
    // Disputes shorter than the challenge window, so a second one can open.
    const params = { challengeWindow: 7200, disputeWindow: 1800 };
    const m = await model(f, { shards: 2, params });
    for (const t of [1, 2]) await stake(f, m, t, Trainer, P.minTrainerStake);
    await stake(f, m, 4, Verifier, P.minVerifierStake);
    await stake(f, m, 5, Verifier, parseEther("500"));
    await approveBonds(f, 7);
    const cp0 = checkpoint(f, m, 1, { shard: 0, ...pipelineDigests(0, 2) });
    const cp1 = checkpoint(f, m, 2, { shard: 1, ...pipelineDigests(1, 2, "-forged") });
    const id0 = await commitAndReveal(f, 1, cp0);
    await commitAndReveal(f, 2, cp1);

    // 0–0.
    await f.ledger.write.challenge([id0, digest("x")], as(f, 7));
    await networkHelpers.time.increase(BigInt(params.disputeWindow));
    await f.ledger.write.resolve([cp0]);
    // 50 of 550 (9 %) is below the 30 % quorum.
    await f.ledger.write.challenge([id0, digest("y")], as(f, 7));
    const d2 = await f.ledger.read.dispute([id0]);
    assert.equal(d2.quorum, (parseEther("550") * BigInt(P.quorumBps) + BPS - 1n) / BPS);
    await f.ledger.write.vote([id0, false], as(f, 4));
    await networkHelpers.time.increase(BigInt(params.disputeWindow));
    await f.ledger.write.resolve([cp0]);
    for (const index of [1, 2]) {
      assert.equal((await f.ledger.read.disputeAt([id0, index])).verdict, Verdict.Inconclusive);
      const before = await f.stk.read.balanceOf([a(f, 7)]);
      await f.ledger.write.claimDispute([id0, index, a(f, 7)]);
      assert.equal((await f.stk.read.balanceOf([a(f, 7)])) - before, P.challengeBond);
    }
    await f.ledger.write.releaseVote([id0, 2, a(f, 4)]);
    assert.equal((await stakeOf(f, m, 4, Verifier)).active, P.minVerifierStake);
    assert.equal((await stakeOf(f, m, 1, Trainer)).active, P.minTrainerStake);
    await networkHelpers.time.increase(BigInt(params.challengeWindow));
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "PipelineUnverified", [
      id0,
      0,
    ]);
  });
});

describe("attack 3: every pending commit is backed by its own slash", () => {
  it("one minimum stake backs one pending commit; a second is refused", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    await commitAndReveal(f, 1, checkpoint(f, m, 1, { lane: 0 }));
    const cp = checkpoint(f, m, 1, { lane: 1 });
    await assertions.revertWithCustomErrorWithArgs(seal(f, cp, { signer: 1 }), f.staking, "InsufficientFreeStake", [
      m,
      a(f, 1),
      Trainer,
      P.slashAmount,
      P.minTrainerStake - P.slashAmount,
    ]);
  });

  it("four caught cheats cost four slashes, and locked stake cannot unbond meanwhile", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    const staked = 4n * P.slashAmount;
    await stake(f, m, 1, Trainer, staked);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 7);
    const cps = [0, 1, 2, 3].map((lane) => checkpoint(f, m, 1, { lane }));
    const ids: Hex[] = [];
    for (const cp of cps) ids.push(await commitAndReveal(f, 1, cp));
    assert.equal((await stakeOf(f, m, 1, Trainer)).locked, staked);
    await assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([m, Trainer, 1n], as(f, 1)),
      f.staking,
      "InsufficientFreeStake",
      [m, a(f, 1), Trainer, 1n, 0n],
    );
    for (const id of ids) {
      await f.ledger.write.challenge([id, digest("cheat")], as(f, 7));
      for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    }
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    for (const cp of cps) await f.ledger.write.resolve([cp]);
    const s = await stakeOf(f, m, 1, Trainer);
    assert.deepEqual([s.active, s.locked, s.unbonding], [0n, 0n, 0n]);
    assert.equal((await f.staking.read.totals([m])).slashed, staked);
  });
});

/** A payer's EIP-712 usage receipt. */
async function receipt(
  f: World,
  payer: number,
  r: { modelId: bigint; currency: Address; payee: Address; units: bigint; pricePerUnit: bigint; nonce: bigint },
) {
  const message = { ...r, payer: a(f, payer), deadline: (await now()) + 86_400n };
  const signature = await w(f, payer).signTypedData({
    account: w(f, payer).account,
    domain: settlementDomain(f.chainId, f.settlement.address),
    types: usageReceiptTypes,
    primaryType: "UsageReceipt",
    message,
  });
  return { message, signature };
}

describe("attack 3b: a lock is released once", () => {
  it("an orphan under dispute waits for the verdict, so its slash cannot take another commit's lock", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f, { params: { challengeWindow: 7200, disputeWindow: 1800 } });
    await stake(f, m, 1, Trainer, 3n * P.slashAmount + P.minTrainerStake);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 7);
    const parent = checkpoint(f, m, 1, { root: digest("bad parent") });
    const parentId = await commitAndReveal(f, 1, parent);
    const child = checkpoint(f, m, 1, { round: 2n, parentRoot: parent.root, root: digest("bad child") });
    const childId = await commitAndReveal(f, 1, child);
    const other = checkpoint(f, m, 1, { lane: 1, root: digest("honest other lane") });
    await commitAndReveal(f, 1, other);
    for (const id of [parentId, childId]) {
      await f.ledger.write.challenge([id, digest("cheat")], as(f, 7));
      for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    }
    await networkHelpers.time.increase(1800n);
    await f.ledger.write.resolve([parent]);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.rejectOrphan([child]), f.ledger, "DisputeOpen", [
      childId,
    ]);
    await f.ledger.write.resolve([child]);
    const s = await stakeOf(f, m, 1, Trainer);
    // Two slashes; the honest commit's lock is intact.
    assert.deepEqual([s.active, s.locked], [P.slashAmount + P.minTrainerStake, P.slashAmount]);
  });
});

describe("attack 4: a payer cannot empty escrow that a gateway relies on", () => {
  it("a receipt the gateway accepted settles, whatever the payer does through a model of its own", async () => {
    const f = await networkHelpers.loadFixture(world);
    const [payer, gateway] = [6, 9];
    const m = await model(f, { genesis: [[1, 1000n]] });
    await f.usd.write.approve([f.settlement.address, parseEther("100")], as(f, payer));
    await f.settlement.write.depositEscrow([f.usd.address, a(f, gateway), parseEther("100")], as(f, payer));
    // Service given: the gateway holds a receipt for the whole escrow.
    const honest = await receipt(f, payer, {
      modelId: m,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 100n,
      pricePerUnit: parseEther("1"),
      nonce: 1n,
    });

    // The payer's own model, genesis to itself, and receipts that try to move the escrow there.
    const own = await model(f, { registrant: payer, genesis: [[payer, 1n]] });
    const toGateway = await receipt(f, payer, {
      modelId: own,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 100n,
      pricePerUnit: parseEther("1"),
      nonce: 2n,
    });
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[toGateway.message], [toGateway.signature], true], as(f, payer)),
      f.settlement,
      "NotPayee",
      [a(f, gateway), a(f, payer)],
    );
    const toSelf = await receipt(f, payer, {
      modelId: own,
      currency: f.usd.address,
      payee: a(f, payer),
      units: 100n,
      pricePerUnit: parseEther("1"),
      nonce: 3n,
    });
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[toSelf.message], [toSelf.signature], true], as(f, payer)),
      f.settlement,
      "InsufficientEscrow",
      [a(f, payer), f.usd.address, parseEther("100"), 0n],
    );
    await f.settlement.write.requestEscrowWithdrawal([f.usd.address, a(f, gateway), parseEther("100")], as(f, payer));

    // Within the withdrawal delay, the gateway's receipt settles in full.
    await f.settlement.write.settle([[honest.message], [honest.signature], true], as(f, gateway));
    assert.equal(await f.token.read.claimable([(m << 32n) | 0n, f.usd.address, a(f, 1)]), parseEther("100"));
    await networkHelpers.time.increase(86_400n);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.withdrawEscrow([f.usd.address, a(f, gateway)], as(f, payer)),
      f.settlement,
      "NothingToWithdraw",
      [a(f, payer), f.usd.address],
    );
  });
});

describe("attack 5: challengers join a dispute; a cheater's decoy recovers at most the challengers' share", () => {
  /** Cheater 1 reveals a bad commit; 2 is its unlinked decoy account; 7 an honest challenger. */
  async function cheat() {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 2, 7, 8);
    const cp = checkpoint(f, m, 1, { root: digest("bad") });
    const id = await commitAndReveal(f, 1, cp);
    return { f, m, cp, id };
  }

  it("a decoy opened at the last second of the window is joined; the reward splits by bond", async () => {
    const { f, m, cp, id } = await cheat();
    const revealedAt = BigInt((await f.ledger.read.commitState([id])).revealedAt);
    await networkHelpers.time.setNextBlockTimestamp(revealedAt + BigInt(P.challengeWindow) - 1n);
    await f.ledger.write.challenge([id, digest("decoy")], as(f, 2));
    // The challenge window is over, the dispute is open: honest challengers still join.
    await networkHelpers.time.increase(60n);
    await f.ledger.write.challenge([id, digest("replayed")], as(f, 7));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id, digest("again")], as(f, 7)),
      f.ledger,
      "AlreadyChallenged",
      [id, a(f, 7)],
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.vote([id, true], as(f, 7)),
      f.ledger,
      "ChallengerCannotVote",
      [id],
    );
    for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.challenge([id, digest("voter")], as(f, 4)),
      f.ledger,
      "VoterCannotChallenge",
      [id],
    );
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([cp]);
    const reward = (P.slashAmount * BigInt(P.challengerShareBps)) / BPS;
    for (const c of [2, 7]) {
      const before = await f.stk.read.balanceOf([a(f, c)]);
      await f.ledger.write.claimDispute([id, 1, a(f, c)]);
      assert.equal((await f.stk.read.balanceOf([a(f, c)])) - before, P.challengeBond + reward / 2n);
    }
    assert.equal((await stakeOf(f, m, 1, Trainer)).active, P.minTrainerStake - P.slashAmount);
  });

  it("alone, the decoy recovers the challengers' share: the cheater's net loss is slashAmount × (1 − share), as docs/protocol.md computes", async () => {
    const { f, m, cp, id } = await cheat();
    const cheaterBefore = (await f.stk.read.balanceOf([a(f, 2)])) + (await stakeOf(f, m, 1, Trainer)).active;
    await f.ledger.write.challenge([id, digest("decoy")], as(f, 2));
    for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([cp]);
    await f.ledger.write.claimDispute([id, 1, a(f, 2)]);
    const cheaterAfter = (await f.stk.read.balanceOf([a(f, 2)])) + (await stakeOf(f, m, 1, Trainer)).active;
    const net = (P.slashAmount * (BPS - BigInt(P.challengerShareBps))) / BPS;
    assert.equal(cheaterBefore - cheaterAfter, net);

    // The incentives table of docs/protocol.md: with sampling p and n verifiers a cheat is caught with q = 1 − (1 − p)^n,
    // and loses in expectation while one commit is worth less than net · q / (1 − q).
    const readme = await readFile(new URL("../../docs/protocol.md", import.meta.url), "utf8");
    const netStk = Number(net) / 1e18;
    assert.match(readme, new RegExp(`net slash[^\\n]*${netStk} STK`));
    for (const n of [1, 2, 4, 10]) {
      const q = 1 - 0.75 ** n;
      const breakEven = ((netStk * q) / (1 - q)).toFixed(1);
      assert.match(readme, new RegExp(`\\| ${n} +\\|[^\\n]*\\| ${breakEven.replace(".", "\\.")} STK`), `row n = ${n}`);
    }
  });
});

describe("attack 6: a node key consents to its owner, and 'own' is fixed at the challenge", () => {
  it("a caught cheater cannot authorize the honest challenger's address to zero its reward", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 7);
    const cp = checkpoint(f, m, 1, { root: digest("bad") });
    const id = await commitAndReveal(f, 1, cp);
    await f.ledger.write.challenge([id, digest("replayed")], as(f, 7));

    // Without the challenger's signature: its own signature does not do.
    const forged = await consent(f, 7, a(f, 1), undefined, 1);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([a(f, 7), true, forged.deadline, forged.signature], as(f, 1)),
      f.ledger,
      "NodeConsentMismatch",
      [a(f, 7), a(f, 1)],
    );
    const stale = await consent(f, 7, a(f, 1), (await now()) - 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.authorizeNode([a(f, 7), true, stale.deadline, stale.signature], as(f, 1)),
      f.ledger,
      "SignatureExpired",
      [stale.deadline],
    );
    // Even a real consent given after the challenge does not change what the challenger was.
    await authorize(f, 1, 7);
    for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([cp]);
    assert.equal((await f.ledger.read.challengerOf([id, 1, a(f, 7)])).own, false);
    const before = await f.stk.read.balanceOf([a(f, 7)]);
    await f.ledger.write.claimDispute([id, 1, a(f, 7)]);
    const reward = (P.slashAmount * BigInt(P.challengerShareBps)) / BPS;
    assert.equal((await f.stk.read.balanceOf([a(f, 7)])) - before, P.challengeBond + reward);
  });
});

describe("attack 7: fee-on-transfer tokens are credited what arrives", () => {
  it("as revenue currency: every holder's claim succeeds and claims never exceed what the token received", async () => {
    const f = await networkHelpers.loadFixture(world);
    const fee = await viem.deployContract("HostileERC20", ["Fee", "FEE", 100n]);
    const [payer, gateway] = [6, 9];
    await fee.write.mint([a(f, payer), parseEther("1000")]);
    const m = await model(f, {
      currencies: [fee.address],
      genesis: [
        [1, parseEther("1")],
        [2, parseEther("1")],
        [3, parseEther("1")],
      ],
    });
    await fee.write.approve([f.settlement.address, parseEther("1000")], as(f, payer));
    await f.settlement.write.depositEscrow([fee.address, a(f, gateway), parseEther("1000")], as(f, payer));
    assert.equal(
      (await f.settlement.read.escrowOf([a(f, payer), a(f, gateway), fee.address])).balance,
      parseEther("990"),
    );
    const r = await receipt(f, payer, {
      modelId: m,
      currency: fee.address,
      payee: a(f, gateway),
      units: 900n,
      pricePerUnit: parseEther("1"),
      nonce: 1n,
    });
    await f.settlement.write.settle([[r.message], [r.signature], true], as(f, gateway));
    const arrived = await fee.read.balanceOf([f.token.address]);
    assert.equal(arrived, parseEther("891"));
    let claimed = 0n;
    for (const h of [1, 2, 3]) {
      const owed = await f.token.read.claimable([(m << 32n) | 0n, fee.address, a(f, h)]);
      await f.token.write.claim([[(m << 32n) | 0n], fee.address], as(f, h));
      claimed += owed;
    }
    assert.ok(claimed <= arrived && arrived - claimed < 3n, `claimed ${claimed} of ${arrived}`);
  });

  it("as staking token: bonds and the challengers' share are measured, so resolve, claims and finalize never revert", async () => {
    const f = await networkHelpers.loadFixture(world);
    const fee = await viem.deployContract("HostileERC20", ["Fee", "FEE", 100n]);
    for (const i of [1, 4, 5, 7]) {
      await fee.write.mint([a(f, i), parseEther("1000")]);
      await fee.write.approve([f.ledger.address, parseEther("1000")], as(f, i));
    }
    const m = await model(f, { staking: fee.address });
    await stake(f, m, 1, Trainer, parseEther("200"), fee.address);
    assert.equal((await stakeOf(f, m, 1, Trainer)).active, parseEther("198"));
    for (const v of [4, 5]) await stake(f, m, v, Verifier, parseEther("100"), fee.address);

    // A cheat, caught: the reward arrives at the ledger less the fee and is paid out as arrived.
    const bad = checkpoint(f, m, 1, { lane: 0, root: digest("bad") });
    const badId = await commitAndReveal(f, 1, bad);
    await f.ledger.write.challenge([badId, digest("x")], as(f, 7));
    const bond = (P.challengeBond * 99n) / 100n;
    assert.equal((await f.ledger.read.dispute([badId])).bond, bond);
    for (const v of [4, 5]) await f.ledger.write.vote([badId, true], as(f, v));
    // An honest commit, challenged frivolously: the bond forfeited to its owner is what arrived.
    const good = checkpoint(f, m, 1, { lane: 1 });
    const goodId = await commitAndReveal(f, 1, good);
    await f.ledger.write.challenge([goodId, digest("y")], as(f, 7));
    for (const v of [4, 5]) await f.ledger.write.vote([goodId, false], as(f, v));
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([bad]);
    await f.ledger.write.resolve([good]);
    const reward = (((P.slashAmount * BigInt(P.challengerShareBps)) / BPS) * 99n) / 100n;
    assert.equal((await f.ledger.read.dispute([badId])).reward, reward);
    await f.ledger.write.claimDispute([badId, 1, a(f, 7)]);
    await f.ledger.write.claimDispute([goodId, 1, a(f, 1)]);
    await networkHelpers.time.increase(BigInt(P.challengeWindow));
    await f.ledger.write.finalize([good]);
    assert.equal((await f.ledger.read.commitState([goodId])).status, Status.Finalized);
    assert.equal(await fee.read.balanceOf([f.ledger.address]), 0n);
  });
});

describe("attack 8: the registrant cannot change the parameters under a commit in flight", () => {
  it("a commit signed for one parameter version is refused after a change; absurd parameters are refused", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    await authorize(f, 1, 1);
    const cp = checkpoint(f, m, 1);
    const signed = await seal(f, cp, { signer: 1, send: false });
    await assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([m, { ...P, minAttestations: 65_535 }]),
      f.registry,
      "InvalidParams",
      ["minAttestations"],
    );
    // The front-run: the largest sane value still changes the version the commit names.
    await f.registry.write.scheduleParams([m, { ...P, minAttestations: 16 }]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([signed.commit, signed.signature]),
      f.registry,
      "ParamsChanged",
      [m, 1n, signed.commit.paramsVersion, signed.commit.paramsVersion + 1],
    );
  });
});

describe("attack 9: the smaller ones", () => {
  it("a challenger that cannot receive the token freezes nothing: payments are pulled", async () => {
    const f = await networkHelpers.loadFixture(world);
    const tok = await viem.deployContract("HostileERC20", ["Block", "BLK", 0n]);
    for (const i of [1, 4, 5, 7, 8]) {
      await tok.write.mint([a(f, i), parseEther("1000")]);
      await tok.write.approve([f.ledger.address, parseEther("1000")], as(f, i));
    }
    const m = await model(f, { staking: tok.address });
    await stake(f, m, 1, Trainer, P.minTrainerStake, tok.address);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake, tok.address);
    const cp = checkpoint(f, m, 1, { root: digest("bad") });
    const id = await commitAndReveal(f, 1, cp);
    await f.ledger.write.challenge([id, digest("x")], as(f, 7));
    await f.ledger.write.challenge([id, digest("y")], as(f, 8));
    for (const v of [4, 5]) await f.ledger.write.vote([id, true], as(f, v));
    await tok.write.setBlocked([a(f, 7), true]);
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([cp]);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.Rejected);
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.claimDispute([id, 1, a(f, 7)]), tok, "Blocked", [
      a(f, 7),
    ]);
    await f.ledger.write.claimDispute([id, 1, a(f, 8)]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDispute([id, 1, a(f, 8)]),
      f.ledger,
      "NothingToClaim",
      [id, 1, a(f, 8)],
    );
  });

  it("unbonding must strictly outlast the windows", async () => {
    const f = await networkHelpers.loadFixture(world);
    const sum = P.revealWindow + P.challengeWindow + P.disputeWindow;
    const config = {
      specDigest: digest("spec"),
      specURI: "ipfs://x",
      shardWeights: [1n],
      stakingToken: f.stk.address,
      currencies: [f.usd.address],
      unbondingDelay: sum,
      params: P,
    };
    await assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([config]),
      f.registry,
      "UnbondingTooShort",
      [sum, BigInt(sum + 1)],
    );
    await f.registry.write.registerModel([{ ...config, unbondingDelay: sum + 1 }]);
  });

  it("an unrevealed seal forfeits its deposit, and its signature cannot seal again", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    await stake(f, m, 1, Trainer, P.minTrainerStake);
    await authorize(f, 1, 1);
    const cp = checkpoint(f, m, 1);
    const s = await seal(f, cp, { signer: 1 });
    await networkHelpers.time.increase(BigInt(P.revealWindow) + 1n);
    await f.ledger.write.expireSeal([s.commit, s.commitBlock, s.commitTime], as(f, 9));
    const st = await stakeOf(f, m, 1, Trainer);
    assert.deepEqual([st.active, st.locked], [P.minTrainerStake - P.sealDeposit, 0n]);
    const id = await f.ledger.read.commitIdOf([m, 0, 1n, 0]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([{ ...s.commit, deadline: s.commit.deadline }, s.signature]),
      f.ledger,
      "SealSpent",
      [id],
    );
  });

  it("roots are unique per model: a replayer squatting an honest root in a throwaway model blocks nothing", async () => {
    const f = await networkHelpers.loadFixture(world);
    const honest = await model(f);
    const throwaway = await model(f, { registrant: 8 });
    for (const [m, t] of [
      [honest, 1],
      [throwaway, 8],
    ] as const)
      await stake(f, m, t, Trainer, P.minTrainerStake);
    const root = digest("the honest root");
    await commitAndReveal(f, 8, checkpoint(f, throwaway, 8, { root }));
    const id = await commitAndReveal(f, 1, checkpoint(f, honest, 1, { root }));
    assert.equal(await f.ledger.read.commitOfRoot([honest, root]), id);
  });

  it("a seal opens a round only on a revealed parent, and never before genesis is closed", async () => {
    const f = await networkHelpers.loadFixture(world);
    await f.registry.write.registerModel([
      {
        specDigest: digest("spec"),
        specURI: "ipfs://x",
        shardWeights: [1n],
        stakingToken: f.stk.address,
        currencies: [f.usd.address],
        unbondingDelay: 7 * 86_400,
        params: P,
      },
    ]);
    const m = await f.registry.read.modelCount();
    await stake(f, m, 1, Trainer, 2n * P.minTrainerStake);
    await authorize(f, 1, 1);
    await assertions.revertWithCustomErrorWithArgs(
      seal(f, checkpoint(f, m, 1), { signer: 1 }),
      f.registry,
      "GenesisNotClosed",
      [m],
    );
    await f.ledger.write.allocateGenesis([m, 0, [a(f, 2)], [5n]]);
    await f.registry.write.closeGenesis([m]);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([m, 0, [a(f, 2)], [5n]]),
      f.ledger,
      "GenesisClosed",
      [m],
    );
    const orphan = checkpoint(f, m, 1, { round: 2n, parentRoot: digest("never revealed") });
    const id2 = await f.ledger.read.commitIdOf([m, 0, 2n, 0]);
    await assertions.revertWithCustomErrorWithArgs(seal(f, orphan, { signer: 1 }), f.ledger, "InvalidParent", [
      id2,
      digest("never revealed"),
    ]);
    assert.equal((await f.registry.read.modelInfo([m])).latestRound, 0n);
    const first = checkpoint(f, m, 1);
    await commitAndReveal(f, 1, first);
    await commitAndReveal(f, 1, checkpoint(f, m, 1, { round: 2n, parentRoot: first.root }));
    assert.equal((await f.registry.read.modelInfo([m])).latestRound, 2n);
  });

  it("a mint that cannot happen is deferred, and the owner mints it elsewhere", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    const owner = await viem.deployContract("ContractOwner", [], { client: { wallet: w(f, 1) } });
    const call = (target: Address, data: Hex) => owner.write.exec([target, data], as(f, 1));
    await f.stk.write.transfer([owner.address, P.minTrainerStake], as(f, 1));
    await call(
      f.stk.address,
      encodeFunctionData({ abi: f.stk.abi, functionName: "approve", args: [f.staking.address, P.minTrainerStake] }),
    );
    await call(
      f.staking.address,
      encodeFunctionData({ abi: f.staking.abi, functionName: "stake", args: [m, Trainer, P.minTrainerStake] }),
    );
    const c = await consent(f, 3, owner.address);
    await call(
      f.ledger.address,
      encodeFunctionData({
        abi: f.ledger.abi,
        functionName: "authorizeNode",
        args: [a(f, 3), true, c.deadline, c.signature],
      }),
    );
    const cp = makeCheckpoint(owner.address, { modelId: m, sentActivations: zeroHash, receivedGradients: zeroHash });
    const s = await seal(f, cp, { signer: 3 });
    await reveal(f, cp, s);
    const id = await f.ledger.read.commitIdOf([m, 0, 1n, 0]);
    await networkHelpers.time.increase(BigInt(P.challengeWindow));
    await assertions.emitWithArgs(f.ledger.write.finalize([cp]), f.ledger, "MintDeferred", [
      id,
      getAddress(owner.address),
      cp.workUnits,
    ]);
    assert.equal((await f.ledger.read.commitState([id])).status, Status.Finalized);
    await assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.claimDeferredMint([cp, a(f, 1)], as(f, 1)),
      f.ledger,
      "NotOwner",
      [id, a(f, 1)],
    );
    await call(
      f.ledger.address,
      encodeFunctionData({ abi: f.ledger.abi, functionName: "claimDeferredMint", args: [cp, a(f, 1)] }),
    );
    assert.equal(await f.token.read.balanceOf([a(f, 1), (m << 32n) | 0n]), cp.workUnits);
    assert.equal(await f.ledger.read.deferredMint([id]), 0n);
    // The owner contract's stake is free again.
    assert.equal((await f.staking.read.stakeOf([m, owner.address, Trainer])).locked, 0n);
  });

  it("a lenient batch skips the receipts of a model whose distribution reverts, and settles the rest", async () => {
    const f = await networkHelpers.loadFixture(world);
    const [payer, gateway] = [6, 9];
    const good = await model(f, { genesis: [[1, 1000n]] });
    // One token wei of supply: 5 USD of revenue per token wei passes the accumulator's cap.
    const capped = await model(f, { genesis: [[2, 1n]] });
    await f.usd.write.approve([f.settlement.address, parseEther("100")], as(f, payer));
    await f.settlement.write.depositEscrow([f.usd.address, a(f, gateway), parseEther("100")], as(f, payer));
    const r1 = await receipt(f, payer, {
      modelId: capped,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 5n,
      pricePerUnit: parseEther("1"),
      nonce: 1n,
    });
    const r2 = await receipt(f, payer, {
      modelId: good,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 7n,
      pricePerUnit: parseEther("1"),
      nonce: 2n,
    });
    const hash = await f.settlement.write.settle(
      [[r1.message, r2.message], [r1.signature, r2.signature], false],
      as(f, gateway),
    );
    await assertions.emitWithArgs(Promise.resolve(hash), f.settlement, "ReceiptSkipped", [a(f, payer), 1n, 8]);
    assert.equal(await f.settlement.read.nonceUsed([a(f, payer), a(f, gateway), 1n]), false);
    assert.equal(await f.settlement.read.nonceUsed([a(f, payer), a(f, gateway), 2n]), true);
    assert.equal(
      (await f.settlement.read.escrowOf([a(f, payer), a(f, gateway), f.usd.address])).balance,
      parseEther("93"),
    );
    assert.equal(await f.token.read.claimable([(good << 32n) | 0n, f.usd.address, a(f, 1)]), parseEther("7"));
  });
});

// Found by an independent review of the fixes above, and fixed.

describe("review R1: a payer cannot void a gateway's receipt by spending its nonce through another payee", () => {
  it("a receipt the gateway accepted while escrow covered it still settles after the payer burns its nonce elsewhere", async () => {
    const f = await networkHelpers.loadFixture(world);
    const [payer, gateway] = [6, 9];
    const m = await model(f, { genesis: [[1, 1000n]] });
    await f.usd.write.approve([f.settlement.address, parseEther("101")], as(f, payer));
    await f.settlement.write.depositEscrow([f.usd.address, a(f, gateway), parseEther("100")], as(f, payer));
    // Service given: the gateway holds a receipt for the whole escrow (nonce 1, unused on-chain).
    const honest = await receipt(f, payer, {
      modelId: m,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 100n,
      pricePerUnit: parseEther("1"),
      nonce: 1n,
    });
    assert.equal(await f.settlement.read.nonceUsed([a(f, payer), a(f, gateway), 1n]), false);

    // The payer escrows 1 wei with itself as payee, signs a 1-wei receipt with the SAME nonce and
    // settles it (it is its own payee): the nonce is spent for every payee.
    await f.settlement.write.depositEscrow([f.usd.address, a(f, payer), 1n], as(f, payer));
    const burn = await receipt(f, payer, {
      modelId: m,
      currency: f.usd.address,
      payee: a(f, payer),
      units: 1n,
      pricePerUnit: 1n,
      nonce: 1n,
    });
    await f.settlement.write.settle([[burn.message], [burn.signature], true], as(f, payer));
    await f.settlement.write.requestEscrowWithdrawal([f.usd.address, a(f, gateway), parseEther("100")], as(f, payer));

    // SAFE: within the withdrawal delay the gateway's receipt still settles in full.
    await f.settlement.write.settle([[honest.message], [honest.signature], true], as(f, gateway));
    assert.ok(
      (await f.token.read.claimable([(m << 32n) | 0n, f.usd.address, a(f, 1)])) >= parseEther("100"),
      "the gateway's receipt was paid",
    );
  });
});

describe("review R2: a neighbour revealed after the challenge window cannot freeze an honest commit", () => {
  it("an honest commit whose pipeline link is made to mismatch after its window can still be upheld and finalized", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f, { shards: 2 });
    const [honest, attacker] = [1, 2];
    for (const t of [honest, attacker]) await stake(f, m, t, Trainer, P.minTrainerStake);
    for (const v of [4, 5]) await stake(f, m, v, Verifier, P.minVerifierStake);
    await approveBonds(f, 7);

    const cp0 = checkpoint(f, m, honest, { shard: 0, ...pipelineDigests(0, 2) });
    const id0 = await commitAndReveal(f, honest, cp0);
    const revealedAt = BigInt((await f.ledger.read.commitState([id0])).revealedAt);
    const closesAt = revealedAt + BigInt(P.challengeWindow);

    // The attacker holds the neighbour slot (shard 1, same lane) and reveals garbage digests at the
    // first second after the honest commit's challenge window, within its own reveal window.
    await authorize(f, attacker, attacker);
    const cp1 = checkpoint(f, m, attacker, { shard: 1, ...pipelineDigests(1, 2, "-garbage") });
    await networkHelpers.time.setNextBlockTimestamp(closesAt - BigInt(P.revealWindow) + 10n);
    const s1 = await seal(f, cp1, { signer: attacker });
    await networkHelpers.time.setNextBlockTimestamp(closesAt);
    await reveal(f, cp1, s1);

    // The honest commit cannot finalize (boundary mismatched) ...
    await assertions.revertWithCustomErrorWithArgs(f.ledger.write.finalize([cp0]), f.ledger, "PipelineUnverified", [
      id0,
      0,
    ]);
    // ... and SAFE: a dispute can still uphold it (today: ChallengeWindowClosed, and nothing else
    // can ever move it: its lock and its mint are frozen, and so is every descendant).
    await f.ledger.write.challenge([id0, digest("uphold me")], as(f, 7));
    for (const v of [4, 5]) await f.ledger.write.vote([id0, false], as(f, v));
    await networkHelpers.time.increase(BigInt(P.disputeWindow));
    await f.ledger.write.resolve([cp0]);
    await f.ledger.write.finalize([cp0]);
    assert.equal((await f.ledger.read.commitState([id0])).status, Status.Finalized);
    assert.equal((await stakeOf(f, m, honest, Trainer)).locked, 0n);
  });
});

describe("review R3: a copier that sees a pending reveal cannot take the root", () => {
  it("the earlier seal of a root wins over a later seal that revealed it first", async () => {
    const f = await networkHelpers.loadFixture(world);
    const m = await model(f);
    const [honest, copier] = [1, 2];
    for (const t of [honest, copier]) await stake(f, m, t, Trainer, P.minTrainerStake);
    await authorize(f, honest, honest);
    await authorize(f, copier, copier);
    const root = digest("honest work");
    const cp = checkpoint(f, m, honest, { lane: 0, root });
    const s = await seal(f, cp, { signer: honest });
    // The honest reveal is broadcast but not mined in the next block (congestion, a builder that
    // leaves it out): the copier reads the checkpoint from it, seals a copy in its own name on
    // another lane, and reveals the copy first.
    const copy = { ...cp, owner: a(f, copier), lane: 1 };
    const sc = await seal(f, copy, { signer: copier });
    await reveal(f, copy, sc);

    // SAFE: the honest reveal (sealed blocks earlier) still goes through and owns the root.
    await reveal(f, cp, s);
    const id = await f.ledger.read.commitIdOf([m, 0, 1n, 0]);
    assert.equal(await f.ledger.read.commitOfRoot([m, root]), id);
  });
});

describe("review R4: a failed bucket's undo restores each escrow exactly", () => {
  it("after a lenient batch, the escrow is as if the undone receipt had never been booked", async () => {
    const f = await networkHelpers.loadFixture(world);
    const [payer, gateway] = [6, 9];
    const good = await model(f, { genesis: [[1, 1000n]] });
    // One token wei of supply: 10 USD per token wei passes the accumulator's cap, so its bucket fails.
    const capped = await model(f, { genesis: [[2, 1n]] });
    await f.usd.write.approve([f.settlement.address, parseEther("20")], as(f, payer));
    await f.settlement.write.depositEscrow([f.usd.address, a(f, gateway), parseEther("20")], as(f, payer));
    await f.settlement.write.requestEscrowWithdrawal([f.usd.address, a(f, gateway), parseEther("10")], as(f, payer));
    const r1 = await receipt(f, payer, {
      modelId: capped,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 10n,
      pricePerUnit: parseEther("1"),
      nonce: 1n,
    });
    const r2 = await receipt(f, payer, {
      modelId: good,
      currency: f.usd.address,
      payee: a(f, gateway),
      units: 5n,
      pricePerUnit: parseEther("1"),
      nonce: 2n,
    });
    await f.settlement.write.settle([[r1.message, r2.message], [r1.signature, r2.signature], false], as(f, gateway));
    assert.equal(await f.settlement.read.nonceUsed([a(f, payer), a(f, gateway), 1n]), false);
    const e = await f.settlement.read.escrowOf([a(f, payer), a(f, gateway), f.usd.address]);
    // SAFE: r2 alone draws on the free balance; the 10 awaiting withdrawal stay there.
    assert.deepEqual([e.balance, e.withdrawing], [parseEther("5"), parseEther("10")]);
  });
});
