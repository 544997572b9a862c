import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther, type Address } from "viem";

import {
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  protocolFixture,
  stakeAs,
  viem,
  type Fixture,
} from "../helpers/fixture.js";

const TRAINER = 0;
const VERIFIER = 1;
const UNBONDING = 7n * 86_400n;
const ZERO: Address = "0x0000000000000000000000000000000000000000";

/** Lets a test send transactions as a contract (the ledger), to reach checks behind its guard. */
async function impersonate(address: Address) {
  await networkHelpers.impersonateAccount(address);
  await networkHelpers.setBalance(address, parseEther("10"));
  return address;
}

async function assertConserved(f: Fixture) {
  const t = await f.staking.read.totals([f.modelId]);
  assert.equal(
    t.deposited,
    t.active + t.unbonding + t.slashed + t.withdrawn,
    "deposited = active + unbonding + slashed + withdrawn",
  );
  return t;
}

const timestampOf = async (f: Fixture, hash: `0x${string}`) => {
  const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
  return (await f.publicClient.getBlock({ blockNumber: receipt.blockNumber })).timestamp;
};

describe("Staking.stake", () => {
  it("pulls the tokens, credits the role and emits Staked", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    const amount = parseEther("123");
    await f.stake.write.approve([f.staking.address, amount], { account: w.account });
    const before = await f.stake.read.balanceOf([w.account.address]);

    await viem.assertions.emitWithArgs(
      f.staking.write.stake([f.modelId, TRAINER, amount], { account: w.account }),
      f.staking,
      "Staked",
      [f.modelId, w.account.address, TRAINER, amount],
    );

    assert.equal(before - (await f.stake.read.balanceOf([w.account.address])), amount);
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), amount);
    assert.deepEqual(await f.staking.read.stakeOf([f.modelId, w.account.address, TRAINER]), {
      active: amount,
      unbonding: 0n,
      unbondingReadyAt: 0n,
      locked: 0n,
    });
    assert.equal(await f.staking.read.activeStake([f.modelId, w.account.address, TRAINER]), amount);
    assert.equal(await f.staking.read.activeStake([f.modelId, w.account.address, VERIFIER]), 0n);
    assert.deepEqual(await f.staking.read.totals([f.modelId]), {
      deposited: amount,
      active: amount,
      unbonding: 0n,
      slashed: 0n,
      withdrawn: 0n,
    });
  });

  it("keeps roles, accounts and models apart and adds up repeated stakes", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await f.registry.write.registerModel([{ ...f.config, specURI: "ipfs://other" }]);
    const [a, b] = [f.wallets[1]!.account.address, f.wallets[2]!.account.address];
    await stakeAs(f, 1, TRAINER, 100n);
    await stakeAs(f, 1, TRAINER, 50n);
    await stakeAs(f, 1, VERIFIER, 7n);
    await stakeAs(f, 2, VERIFIER, 9n);
    await f.stake.write.approve([f.staking.address, 1000n], { account: f.wallets[2]!.account });
    await f.staking.write.stake([2n, TRAINER, 1000n], { account: f.wallets[2]!.account });

    assert.equal(await f.staking.read.activeStake([1n, a, TRAINER]), 150n);
    assert.equal(await f.staking.read.activeStake([1n, a, VERIFIER]), 7n);
    assert.equal(await f.staking.read.activeStake([1n, b, VERIFIER]), 9n);
    assert.equal(await f.staking.read.activeStake([1n, b, TRAINER]), 0n);
    assert.equal(await f.staking.read.activeStake([2n, b, TRAINER]), 1000n);
    assert.equal((await f.staking.read.totals([1n])).deposited, 166n);
    assert.equal((await f.staking.read.totals([1n])).active, 166n);
    assert.equal((await f.staking.read.totals([2n])).deposited, 1000n);
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), 1166n);
  });

  it("reverts ZeroAmount, ModelNotFound for an unknown model, and without allowance", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    await f.stake.write.approve([f.staking.address, parseEther("1")], { account: w.account });
    await viem.assertions.revertWithCustomError(
      f.staking.write.stake([f.modelId, TRAINER, 0n], { account: w.account }),
      f.staking,
      "ZeroAmount",
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.stake([9n, TRAINER, 1n], { account: w.account }),
      f.registry,
      "ModelNotFound",
      [9n],
    );
    await viem.assertions.revertWithCustomError(
      f.staking.write.stake([f.modelId, TRAINER, parseEther("2")], { account: w.account }),
      f.stake,
      "ERC20InsufficientAllowance",
    );
    assert.equal((await f.staking.read.totals([f.modelId])).deposited, 0n);
  });
});

describe("Staking.requestUnstake", () => {
  it("moves stake from active to unbonding, ready after the model's unbonding delay", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    await stakeAs(f, 1, TRAINER, parseEther("100"));
    const amount = parseEther("40");
    assert.equal((await f.registry.read.modelInfo([f.modelId])).unbondingDelay, Number(UNBONDING));

    const next = BigInt(await networkHelpers.time.latest()) + 100n;
    await networkHelpers.time.setNextBlockTimestamp(next);
    await viem.assertions.emitWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, amount], { account: w.account }),
      f.staking,
      "UnstakeRequested",
      [f.modelId, w.account.address, TRAINER, amount, next + UNBONDING],
    );
    assert.deepEqual(await f.staking.read.stakeOf([f.modelId, w.account.address, TRAINER]), {
      active: parseEther("60"),
      unbonding: amount,
      unbondingReadyAt: next + UNBONDING,
      locked: 0n,
    });
    assert.equal(await f.staking.read.activeStake([f.modelId, w.account.address, TRAINER]), parseEther("60"));
    const t = await assertConserved(f);
    assert.equal(t.active, parseEther("60"));
    assert.equal(t.unbonding, amount);
    // Nothing left the contract.
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), parseEther("100"));
  });

  it("a new request restarts the delay for the whole unbonding amount", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    await stakeAs(f, 1, TRAINER, 100n);
    const first = await timestampOf(
      f,
      await f.staking.write.requestUnstake([f.modelId, TRAINER, 30n], { account: w.account }),
    );
    await networkHelpers.time.increase(3n * 86_400n);
    const second = await timestampOf(
      f,
      await f.staking.write.requestUnstake([f.modelId, TRAINER, 20n], { account: w.account }),
    );
    const info = await f.staking.read.stakeOf([f.modelId, w.account.address, TRAINER]);
    assert.equal(info.unbonding, 50n);
    assert.equal(info.unbondingReadyAt, second + UNBONDING);
    assert.ok(second + UNBONDING > first + UNBONDING);

    // At the first request's ready time the (restarted) delay still runs.
    await networkHelpers.time.setNextBlockTimestamp(first + UNBONDING);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "StillUnbonding",
      [f.modelId, w.account.address, TRAINER, second + UNBONDING],
    );
  });

  it("reverts InsufficientStake beyond the active stake of that role, and ZeroAmount", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    const who = w.account.address;
    await stakeAs(f, 1, TRAINER, 100n);
    await stakeAs(f, 1, VERIFIER, 500n);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 101n], { account: w.account }),
      f.staking,
      "InsufficientStake",
      [f.modelId, who, TRAINER, 101n, 100n],
    );
    // Unbonding stake is no longer active.
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 60n], { account: w.account });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 41n], { account: w.account }),
      f.staking,
      "InsufficientStake",
      [f.modelId, who, TRAINER, 41n, 40n],
    );
    // Another account has nothing.
    const other = f.wallets[2]!.account;
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, VERIFIER, 1n], { account: other }),
      f.staking,
      "InsufficientStake",
      [f.modelId, other.address, VERIFIER, 1n, 0n],
    );
    await viem.assertions.revertWithCustomError(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 0n], { account: w.account }),
      f.staking,
      "ZeroAmount",
    );
    // The whole remaining active stake can be requested.
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 40n], { account: w.account });
    assert.equal(await f.staking.read.activeStake([f.modelId, who, TRAINER]), 0n);
    assert.equal(await f.staking.read.activeStake([f.modelId, who, VERIFIER]), 500n);
  });
});

describe("Staking.withdraw", () => {
  it("reverts NothingUnbonding without a request", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "NothingUnbonding",
      [f.modelId, w.account.address, TRAINER],
    );
    await stakeAs(f, 1, TRAINER, 100n);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "NothingUnbonding",
      [f.modelId, w.account.address, TRAINER],
    );
  });

  it("reverts StillUnbonding until readyAt, then pays out the unbonding amount once", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const w = f.wallets[1]!;
    const who = w.account.address;
    await stakeAs(f, 1, TRAINER, parseEther("100"));
    const requested = await timestampOf(
      f,
      await f.staking.write.requestUnstake([f.modelId, TRAINER, parseEther("30")], { account: w.account }),
    );
    const readyAt = requested + UNBONDING;

    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "StillUnbonding",
      [f.modelId, who, TRAINER, readyAt],
    );
    await networkHelpers.time.setNextBlockTimestamp(readyAt - 1n);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "StillUnbonding",
      [f.modelId, who, TRAINER, readyAt],
    );
    // The verifier role of the same account has nothing unbonding.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, VERIFIER], { account: w.account }),
      f.staking,
      "NothingUnbonding",
      [f.modelId, who, VERIFIER],
    );

    await networkHelpers.time.increaseTo(readyAt);
    const before = await f.stake.read.balanceOf([who]);
    assert.equal(
      (await f.staking.simulate.withdraw([f.modelId, TRAINER], { account: w.account.address })).result,
      parseEther("30"),
    );
    await viem.assertions.emitWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "Withdrawn",
      [f.modelId, who, TRAINER, parseEther("30")],
    );
    assert.equal((await f.stake.read.balanceOf([who])) - before, parseEther("30"));
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), parseEther("70"));
    const info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.equal(info.active, parseEther("70"));
    assert.equal(info.unbonding, 0n);
    const t = await assertConserved(f);
    assert.equal(t.withdrawn, parseEther("30"));
    assert.equal(t.unbonding, 0n);

    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "NothingUnbonding",
      [f.modelId, who, TRAINER],
    );
  });
});

describe("Staking.slash", () => {
  it("reverts NotLedger for any caller but the ledger", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await stakeAs(f, 1, TRAINER);
    const trainer = f.wallets[1]!.account.address;
    assert.equal(getAddress(await f.staking.read.ledger()), getAddress(f.ledger.address));
    for (const w of [f.wallets[0]!, f.wallets[1]!, f.wallets[7]!]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.staking.write.slash([f.modelId, trainer, TRAINER, 0n, 1n, w.account.address, 10_000n], {
          account: w.account,
        }),
        f.staking,
        "NotLedger",
        [w.account.address],
      );
    }
    assert.equal((await f.staking.read.totals([f.modelId])).slashed, 0n);
  });

  it("as the ledger: takes active stake first, then unbonding, capped at the stake, paying the beneficiary's share", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    const w = f.wallets[1]!;
    const who = w.account.address;
    const beneficiary = f.wallets[7]!.account.address;
    await stakeAs(f, 1, TRAINER, 1000n);
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 700n], { account: w.account });
    const beneficiaryBefore = await f.stake.read.balanceOf([beneficiary]);

    // 500 = 300 active + 200 unbonding; 25% of 500 = 125 to the beneficiary.
    assert.equal(
      (await f.staking.simulate.slash([f.modelId, who, TRAINER, 0n, 500n, beneficiary, 2500n], { account: ledger }))
        .result,
      500n,
    );
    await viem.assertions.emitWithArgs(
      f.staking.write.slash([f.modelId, who, TRAINER, 0n, 500n, beneficiary, 2500n], { account: ledger }),
      f.staking,
      "Slashed",
      [f.modelId, who, TRAINER, 500n, beneficiary, 125n],
    );
    assert.equal((await f.stake.read.balanceOf([beneficiary])) - beneficiaryBefore, 125n);
    let info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.equal(info.active, 0n);
    assert.equal(info.unbonding, 500n);
    let t = await assertConserved(f);
    assert.equal(t.slashed, 500n);
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), 1000n - 125n);

    // More than is left: capped at the remaining 500; no beneficiary, nothing paid out.
    await viem.assertions.emitWithArgs(
      f.staking.write.slash([f.modelId, who, TRAINER, 0n, 10_000n, ZERO, 5000n], { account: ledger }),
      f.staking,
      "Slashed",
      [f.modelId, who, TRAINER, 500n, ZERO, 0n],
    );
    info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.equal(info.active + info.unbonding, 0n);
    t = await assertConserved(f);
    assert.equal(t.slashed, 1000n);
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), 1000n - 125n);

    // Nothing left: returns 0, no event.
    assert.equal(
      (await f.staking.simulate.slash([f.modelId, who, TRAINER, 0n, 1n, beneficiary, 10_000n], { account: ledger }))
        .result,
      0n,
    );
    const hash = await f.staking.write.slash([f.modelId, who, TRAINER, 0n, 1n, beneficiary, 10_000n], {
      account: ledger,
    });
    const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.logs.length, 0);

    // The emptied unbonding slot cannot be withdrawn.
    await networkHelpers.time.increase(UNBONDING + 1n);
    await viem.assertions.revertWithCustomError(
      f.staking.write.withdraw([f.modelId, TRAINER], { account: w.account }),
      f.staking,
      "NothingUnbonding",
    );
  });
});

describe("Staking conservation through a real dispute", () => {
  it("deposited = active + unbonding + slashed + withdrawn after stake, unstake, slash by dispute and withdraw", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const trainerW = f.wallets[1]!;
    const trainer = trainerW.account.address;
    const verifierW = f.wallets[4]!;
    const challengerW = f.wallets[7]!;
    const challenger = challengerW.account.address;
    const otherW = f.wallets[2]!;

    // Trainer stakes 100, a verifier 50, another trainer 150.
    await stakeAs(f, 1, TRAINER);
    await stakeAs(f, 4, VERIFIER);
    await stakeAs(f, 2, TRAINER, parseEther("150"));
    await assertConserved(f);

    // Trainer commits work (locking the slash amount, 60, of its 100), then tries to leave with
    // 80: only the 40 not locked can unbond.
    const cp = makeCheckpoint(trainer, { shard: 0 });
    const commitId = await commitAndReveal(f, 1, cp);
    assert.equal((await f.staking.read.stakeOf([f.modelId, trainer, TRAINER])).locked, defaultParams.slashAmount);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, parseEther("80")], { account: trainerW.account }),
      f.staking,
      "InsufficientFreeStake",
      [f.modelId, trainer, TRAINER, parseEther("80"), parseEther("40")],
    );
    await f.staking.write.requestUnstake([f.modelId, TRAINER, parseEther("40")], { account: trainerW.account });
    // The other trainer unstakes 50 and will withdraw it.
    await f.staking.write.requestUnstake([f.modelId, TRAINER, parseEther("50")], { account: otherW.account });
    await assertConserved(f);

    // Challenge with the bond, an invalid vote by the staked verifier, resolve after the window.
    await f.stake.write.approve([f.ledger.address, defaultParams.challengeBond], { account: challengerW.account });
    const challengerBefore = await f.stake.read.balanceOf([challenger]);
    await f.ledger.write.challenge([commitId, digest("evidence")], { account: challengerW.account });
    await f.ledger.write.vote([commitId, true], { account: verifierW.account });
    await networkHelpers.time.increase(BigInt(defaultParams.disputeWindow) + 1n);
    const slash = defaultParams.slashAmount; // 60: the locked active stake
    const share = (slash * BigInt(defaultParams.challengerShareBps)) / 10_000n;
    // The challengers' share goes to the ledger, which the challenger pulls it from.
    await viem.assertions.emitWithArgs(f.ledger.write.resolve([cp]), f.staking, "Slashed", [
      f.modelId,
      trainer,
      TRAINER,
      slash,
      getAddress(f.ledger.address),
      share,
    ]);
    await f.ledger.write.claimDispute([commitId, 1, challenger]);
    // The verifier's vote (on the winning side) is released whole.
    await f.ledger.write.releaseVote([commitId, 1, verifierW.account.address]);
    assert.equal((await f.staking.read.stakeOf([f.modelId, verifierW.account.address, VERIFIER])).locked, 0n);

    // Challenger: bond back plus its share of the slash.
    assert.equal((await f.stake.read.balanceOf([challenger])) - challengerBefore, share);
    const info = await f.staking.read.stakeOf([f.modelId, trainer, TRAINER]);
    assert.equal(info.active, 0n);
    assert.equal(info.locked, 0n);
    assert.equal(info.unbonding, parseEther("40"));
    let t = await assertConserved(f);
    assert.deepEqual(t, {
      deposited: parseEther("300"),
      active: parseEther("50") + parseEther("100"),
      unbonding: parseEther("40") + parseEther("50"),
      slashed: slash,
      withdrawn: 0n,
    });

    // After the delay both unbonding amounts are withdrawn.
    await networkHelpers.time.increase(UNBONDING);
    const trainerBefore = await f.stake.read.balanceOf([trainer]);
    await f.staking.write.withdraw([f.modelId, TRAINER], { account: trainerW.account });
    assert.equal((await f.stake.read.balanceOf([trainer])) - trainerBefore, parseEther("40"));
    await f.staking.write.withdraw([f.modelId, TRAINER], { account: otherW.account });
    t = await assertConserved(f);
    assert.deepEqual(t, {
      deposited: parseEther("300"),
      active: parseEther("150"),
      unbonding: 0n,
      slashed: slash,
      withdrawn: parseEther("90"),
    });
    // The contract holds what is active plus the burned part of the slash.
    assert.equal(await f.stake.read.balanceOf([f.staking.address]), t.active + t.slashed - share);
  });
});

describe("Staking.lock / unlock", () => {
  it("reverts NotLedger for any caller but the ledger", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await stakeAs(f, 1, TRAINER);
    const trainer = f.wallets[1]!.account.address;
    for (const w of [f.wallets[0]!, f.wallets[1]!]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.staking.write.lock([f.modelId, trainer, TRAINER, 1n], { account: w.account }),
        f.staking,
        "NotLedger",
        [w.account.address],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.staking.write.unlock([f.modelId, trainer, TRAINER, 1n], { account: w.account }),
        f.staking,
        "NotLedger",
        [w.account.address],
      );
    }
    assert.equal((await f.staking.read.stakeOf([f.modelId, trainer, TRAINER])).locked, 0n);
  });

  it("as the ledger: a trainer's lock must fit its free stake, locked stake cannot unbond, unlock releases it", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    const w = f.wallets[1]!;
    const who = w.account.address;
    await stakeAs(f, 1, TRAINER, 100n);
    await f.staking.write.lock([f.modelId, who, TRAINER, 60n], { account: ledger });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.lock([f.modelId, who, TRAINER, 41n], { account: ledger }),
      f.staking,
      "InsufficientFreeStake",
      [f.modelId, who, TRAINER, 41n, 40n],
    );
    await f.staking.write.lock([f.modelId, who, TRAINER, 40n], { account: ledger });
    assert.equal((await f.staking.read.stakeOf([f.modelId, who, TRAINER])).locked, 100n);

    // Locked stake stays active and cannot unbond; more than the active stake is InsufficientStake.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 1n], { account: w.account }),
      f.staking,
      "InsufficientFreeStake",
      [f.modelId, who, TRAINER, 1n, 0n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 101n], { account: w.account }),
      f.staking,
      "InsufficientStake",
      [f.modelId, who, TRAINER, 101n, 100n],
    );
    assert.equal(await f.staking.read.activeStake([f.modelId, who, TRAINER]), 100n);

    // Unlocking frees exactly that much.
    await f.staking.write.unlock([f.modelId, who, TRAINER, 30n], { account: ledger });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, TRAINER, 31n], { account: w.account }),
      f.staking,
      "InsufficientFreeStake",
      [f.modelId, who, TRAINER, 31n, 30n],
    );
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 30n], { account: w.account });
    assert.deepEqual(
      [
        (await f.staking.read.stakeOf([f.modelId, who, TRAINER])).active,
        (await f.staking.read.stakeOf([f.modelId, who, TRAINER])).locked,
      ],
      [70n, 70n],
    );
    // An unlock beyond the lock clears it, no further.
    await f.staking.write.unlock([f.modelId, who, TRAINER, 1000n], { account: ledger });
    assert.equal((await f.staking.read.stakeOf([f.modelId, who, TRAINER])).locked, 0n);
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 70n], { account: w.account });
    await assertConserved(f);
  });

  it("as the ledger: verifier locks add up beyond the active stake (one stake backs several votes)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    const w = f.wallets[4]!;
    const who = w.account.address;
    await stakeAs(f, 4, VERIFIER, 50n);
    await f.staking.write.lock([f.modelId, who, VERIFIER, 50n], { account: ledger });
    await f.staking.write.lock([f.modelId, who, VERIFIER, 50n], { account: ledger });
    assert.equal((await f.staking.read.stakeOf([f.modelId, who, VERIFIER])).locked, 100n);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.staking.write.requestUnstake([f.modelId, VERIFIER, 1n], { account: w.account }),
      f.staking,
      "InsufficientFreeStake",
      [f.modelId, who, VERIFIER, 1n, 0n],
    );
    // Releasing one vote leaves the other's lock: still nothing free.
    await f.staking.write.unlock([f.modelId, who, VERIFIER, 50n], { account: ledger });
    await viem.assertions.revertWithCustomError(
      f.staking.write.requestUnstake([f.modelId, VERIFIER, 1n], { account: w.account }),
      f.staking,
      "InsufficientFreeStake",
    );
    await f.staking.write.unlock([f.modelId, who, VERIFIER, 50n], { account: ledger });
    await f.staking.write.requestUnstake([f.modelId, VERIFIER, 50n], { account: w.account });
  });

  it("as the ledger: slash releases unlockAmount of the lock first, then slashes", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    const who = f.wallets[1]!.account.address;
    await stakeAs(f, 1, TRAINER, 150n);
    await f.staking.write.lock([f.modelId, who, TRAINER, 60n], { account: ledger });
    await f.staking.write.lock([f.modelId, who, TRAINER, 60n], { account: ledger });
    await viem.assertions.emitWithArgs(
      f.staking.write.slash([f.modelId, who, TRAINER, 60n, 60n, ZERO, 0n], { account: ledger }),
      f.staking,
      "Slashed",
      [f.modelId, who, TRAINER, 60n, ZERO, 0n],
    );
    let info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.deepEqual([info.active, info.locked], [90n, 60n]);
    // A seal deposit: the whole lock released, a smaller amount slashed.
    await f.staking.write.slash([f.modelId, who, TRAINER, 60n, 5n, ZERO, 0n], { account: ledger });
    info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.deepEqual([info.active, info.locked], [85n, 0n]);
    // Nothing to slash: the lock is released all the same.
    await f.staking.write.lock([f.modelId, who, TRAINER, 85n], { account: ledger });
    await f.staking.write.slash([f.modelId, who, TRAINER, 85n, 0n, ZERO, 0n], { account: ledger });
    info = await f.staking.read.stakeOf([f.modelId, who, TRAINER]);
    assert.deepEqual([info.active, info.locked], [85n, 0n]);
    const t = await assertConserved(f);
    assert.equal(t.slashed, 65n);
  });
});

describe("Staking verifier stake history", () => {
  const blockOf = async (f: Fixture, hash: `0x${string}`) =>
    (await f.publicClient.waitForTransactionReceipt({ hash })).blockNumber;

  it("records each verifier's and the model's active verifier stake per block", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    const [v4, v5] = [f.wallets[4]!, f.wallets[5]!];
    const [a4, a5] = [v4.account.address, v5.account.address];
    const at = (who: Address, block: bigint) => f.staking.read.verifierStakeAt([f.modelId, who, block]);
    const totalAt = (block: bigint) => f.staking.read.totalVerifierStakeAt([f.modelId, block]);

    await f.stake.write.approve([f.staking.address, 1000n], { account: v4.account });
    await f.stake.write.approve([f.staking.address, 1000n], { account: v5.account });
    const b1 = await blockOf(f, await f.staking.write.stake([f.modelId, VERIFIER, 50n], { account: v4.account }));
    const b2 = await blockOf(f, await f.staking.write.stake([f.modelId, VERIFIER, 30n], { account: v5.account }));
    const b3 = await blockOf(
      f,
      await f.staking.write.requestUnstake([f.modelId, VERIFIER, 20n], { account: v4.account }),
    );
    // Trainer stake and another model's verifier stake are not verifier stake of this model.
    await f.staking.write.stake([f.modelId, TRAINER, 100n], { account: v4.account });
    await f.registry.write.registerModel([{ ...f.config, specURI: "ipfs://other" }]);
    await f.staking.write.stake([2n, VERIFIER, 70n], { account: v5.account });
    const b4 = await blockOf(
      f,
      await f.staking.write.slash([f.modelId, a5, VERIFIER, 0n, 10n, ZERO, 0n], { account: ledger }),
    );
    await networkHelpers.mine();

    assert.deepEqual(await Promise.all([b1 - 1n, b1, b2, b3, b4].map((b) => at(a4, b))), [0n, 50n, 50n, 30n, 30n]);
    assert.deepEqual(await Promise.all([b1, b2, b3, b4].map((b) => at(a5, b))), [0n, 30n, 30n, 20n]);
    assert.deepEqual(await Promise.all([b1 - 1n, b1, b2, b3, b4].map(totalAt)), [0n, 50n, 80n, 60n, 50n]);
    assert.equal(await f.staking.read.totalVerifierStakeAt([2n, b4]), 70n);
    assert.equal((await f.staking.read.totals([f.modelId])).active, 50n + 100n);
  });

  it("reverts FutureLookup for the block being built (the latest, for a call) and later", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await stakeAs(f, 4, VERIFIER);
    const staked = await f.publicClient.getBlockNumber();
    // A call runs in the context of the latest block: its own block is not over yet.
    for (const b of [staked, staked + 1n, staked + 1000n]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.staking.read.verifierStakeAt([f.modelId, f.wallets[4]!.account.address, b]),
        f.staking,
        "FutureLookup",
        [b, staked],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.staking.read.totalVerifierStakeAt([f.modelId, b]),
        f.staking,
        "FutureLookup",
        [b, staked],
      );
    }
    assert.equal(await f.staking.read.totalVerifierStakeAt([f.modelId, staked - 1n]), 0n);
    // Once another block is mined, the staking block is history.
    await networkHelpers.mine();
    assert.equal(await f.staking.read.totalVerifierStakeAt([f.modelId, staked]), defaultParams.minVerifierStake);
    assert.equal(
      await f.staking.read.verifierStakeAt([f.modelId, f.wallets[4]!.account.address, staked]),
      defaultParams.minVerifierStake,
    );
  });
});
