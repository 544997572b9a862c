import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  commitAndReveal,
  defaultParams,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  protocolFixture,
  stakeAs,
  tokenId,
  type Checkpoint,
  type Fixture,
} from "../helpers/fixture.js";

/*
 * The revenue scenario: deposit, transfer part of a shard, deposit, mint to a newcomer through a
 * finalized commit, deposit; every holder's claim (the ERC-20 balance change) must equal the
 * amount computed by hand. Model 1 has two shards with revenue weights 3:1.
 */

const ID0 = tokenId(1n, 0);
const ID1 = tokenId(1n, 1);
const MAGNITUDE = 2n ** 96n; // RevenueMath.MAGNITUDE

// Wallets: A and B train lane 0, C receives a transfer, N is the newcomer, P pays.
const A = 1;
const B = 2;
const N = 3;
const C = 8;
const P = 6;

const addr = (f: Fixture, i: number) => f.wallets[i]!.account.address;

/** Commits and reveals shard 0 of a lane for `owner0` and shard 1 for `owner1` (round 1), digests matched. */
async function trainLane(f: Fixture, lane: number, owner0: number, owner1: number, work: [bigint, bigint]) {
  const cps: Checkpoint[] = [];
  for (const [shard, owner] of [
    [0, owner0],
    [1, owner1],
  ] as const) {
    // A newcomer training both shards has two commits pending at once: twice the slash amount locked.
    if ((await f.staking.read.activeStake([f.modelId, addr(f, owner), 0])) === 0n) {
      await stakeAs(f, owner, 0, defaultParams.minTrainerStake + defaultParams.slashAmount);
    }
    const cp = makeCheckpoint(addr(f, owner), {
      shard,
      lane,
      workUnits: work[shard],
      ...pipelineDigests(shard, 2, `-lane${lane}`),
    });
    await commitAndReveal(f, owner, cp);
    cps.push(cp);
  }
  await networkHelpers.time.increase(defaultParams.challengeWindow + 1);
  for (const cp of cps) await f.ledger.write.finalize([cp]);
}

async function deposit(f: Fixture, amount: bigint) {
  const payer = f.wallets[P]!.account;
  await f.usdc.write.approve([f.settlement.address, amount], { account: payer });
  await f.settlement.write.pay([f.modelId, f.usdc.address, amount], { account: payer });
}

/** Claims both shards in USDC as wallet `i`; returns the actual balance change. */
async function claim(f: Fixture, i: number) {
  const before = await f.usdc.read.balanceOf([addr(f, i)]);
  await f.token.write.claim([[ID0, ID1], f.usdc.address], { account: f.wallets[i]!.account });
  return (await f.usdc.read.balanceOf([addr(f, i)])) - before;
}

const balance = (f: Fixture, i: number, id: bigint) => f.token.read.balanceOf([addr(f, i), id]);

async function transfer(f: Fixture, from: number, to: number, id: bigint, amount: bigint) {
  await f.token.write.safeTransferFrom([addr(f, from), addr(f, to), id, amount, "0x"], {
    account: f.wallets[from]!.account,
  });
}

/** Shard parts of a deposit when both shards have holders: floor(3/4) to shard 0, the rest to shard 1. */
const split = (amount: bigint): [bigint, bigint] => {
  const part0 = (amount * 3n) / 4n;
  return [part0, amount - part0];
};

describe("revenue scenario: deposit, transfer, deposit, mint to a newcomer, deposit", () => {
  it("pays every holder exactly the amount computed by hand (amounts that divide exactly)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    // Lane 0 of round 1: A trains shard 0 (3000 units → 3000 tokens), B shard 1 (1000 tokens).
    await trainLane(f, 0, A, B, [3000n, 1000n]);
    assert.equal(await balance(f, A, ID0), 3000n);
    assert.equal(await balance(f, B, ID1), 1000n);

    // Deposit 1: 4,000,000 → shard 0 3,000,000 / 3000 tokens = 1000 per token (A);
    // shard 1 1,000,000 / 1000 tokens = 1000 per token (B).
    await deposit(f, 4_000_000n);
    // A claims early: claiming at any time changes nothing about the totals.
    assert.equal(await claim(f, A), 3_000_000n);

    // A transfers 1000 of its 3000 shard-0 tokens to C: the past revenue stays with A.
    await transfer(f, A, C, ID0, 1000n);
    assert.equal(await f.token.read.claimable([ID0, f.usdc.address, addr(f, C)]), 0n);

    // Deposit 2: 8,000,000 → shard 0 6,000,000 / 3000 = 2000 per token: A (2000) 4,000,000,
    // C (1000) 2,000,000; shard 1 2,000,000 to B.
    await deposit(f, 8_000_000n);

    // The newcomer N finalizes lane 1: 1000 tokens of each shard; it earns nothing of the past.
    await trainLane(f, 1, N, N, [1000n, 1000n]);
    assert.equal(await balance(f, N, ID0), 1000n);
    assert.equal(await balance(f, N, ID1), 1000n);
    assert.equal(await f.token.read.claimable([ID0, f.usdc.address, addr(f, N)]), 0n);
    assert.equal(await f.token.read.claimable([ID1, f.usdc.address, addr(f, N)]), 0n);

    // Deposit 3: 12,000,000 → shard 0 9,000,000 / 4000 = 2250 per token: A (2000) 4,500,000,
    // C (1000) 2,250,000, N (1000) 2,250,000; shard 1 3,000,000 / 2000 = 1500 per token:
    // B (1000) 1,500,000, N (1000) 1,500,000.
    await deposit(f, 12_000_000n);

    const claimed = {
      A: await claim(f, A),
      B: await claim(f, B),
      C: await claim(f, C),
      N: await claim(f, N),
    };
    assert.deepEqual(claimed, {
      A: 4_000_000n + 4_500_000n, // plus the 3,000,000 claimed early
      B: 1_000_000n + 2_000_000n + 1_500_000n,
      C: 2_000_000n + 2_250_000n,
      N: 2_250_000n + 1_500_000n,
    });
    assert.equal(3_000_000n + claimed.A + claimed.B + claimed.C + claimed.N, 24_000_000n);
    // Nothing is left: no dust with amounts that divide exactly.
    assert.equal(await f.usdc.read.balanceOf([f.token.address]), 0n);
    for (const i of [A, B, C, N]) assert.equal(await claim(f, i), 0n);
  });

  it("with rounding: each claim is the accumulator's exact result, Σ claimed ≤ Σ deposited, shortfall < holders + deposits", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const deposits = [1_000_001n, 777_777n, 1_234_567n];
    await trainLane(f, 0, A, B, [7n, 3n]);

    // Holdings (shard 0, shard 1) of each wallet during each deposit, and the supplies.
    const holdings: Record<number, [bigint, bigint][]> = {
      [A]: [
        [7n, 0n],
        [5n, 0n],
        [5n, 0n],
      ],
      [B]: [
        [0n, 3n],
        [0n, 3n],
        [0n, 3n],
      ],
      [C]: [
        [0n, 0n],
        [2n, 0n],
        [2n, 0n],
      ],
      [N]: [
        [0n, 0n],
        [0n, 0n],
        [5n, 2n],
      ],
    };
    const supplies: [bigint, bigint][] = [
      [7n, 3n],
      [7n, 3n],
      [12n, 5n],
    ];

    const assertSupplies = async ([s0, s1]: [bigint, bigint]) => {
      assert.equal(await f.token.read.totalSupply([ID0]), s0);
      assert.equal(await f.token.read.totalSupply([ID1]), s1);
    };

    await assertSupplies(supplies[0]!);
    await deposit(f, deposits[0]!);
    await transfer(f, A, C, ID0, 2n);
    await assertSupplies(supplies[1]!);
    await deposit(f, deposits[1]!);
    await trainLane(f, 1, N, N, [5n, 2n]);
    await assertSupplies(supplies[2]!);
    assert.equal(await balance(f, N, ID0), 5n);
    await deposit(f, deposits[2]!);

    let totalClaimed = 0n;
    for (const holder of [A, B, C, N]) {
      // The accumulator: per deposit, per-token increase floor(part * 2**128 / supply), summed
      // over the tokens held at that deposit, paid out as floor(sum / 2**128).
      let scaled = 0n;
      // The ideal share Σ part * held / supply, as a fraction over the product of all supplies.
      const denominator = supplies.reduce((d, [s0, s1]) => d * s0 * s1, 1n);
      let idealNumerator = 0n;
      for (const [k, amount] of deposits.entries()) {
        const parts = split(amount);
        for (const shard of [0, 1] as const) {
          const held = holdings[holder]![k]![shard];
          const supply = supplies[k]![shard];
          scaled += ((parts[shard] * MAGNITUDE) / supply) * held;
          idealNumerator += (parts[shard] * held * denominator) / supply;
        }
      }
      const expected = scaled / MAGNITUDE;
      const ideal = idealNumerator / denominator; // floor of the ideal share
      const got = await claim(f, holder);
      assert.equal(got, expected, `holder ${holder}`);
      // Never more than its ideal share, and at most 1 wei less.
      assert.ok(got <= ideal && got + 1n >= ideal, `holder ${holder}: ${got} vs ideal ${ideal}`);
      totalClaimed += got;
    }

    const totalDeposited = deposits.reduce((a, b) => a + b, 0n);
    const shortfall = totalDeposited - totalClaimed;
    assert.ok(totalClaimed <= totalDeposited);
    assert.ok(shortfall < 4n + BigInt(deposits.length), `shortfall ${shortfall}`);
    assert.ok(shortfall > 0n, "these amounts do not divide exactly, so some dust remains");
    // The dust stays in the token contract.
    assert.equal(await f.usdc.read.balanceOf([f.token.address]), shortfall);
  });
});
