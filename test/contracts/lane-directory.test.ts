import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { bytesToHex, getAddress, type Address, type Hex, zeroAddress } from "viem";

import { defaultParams, networkHelpers, protocolFixture, stakeAs, viem, type Fixture } from "../helpers/fixture.js";

const { assertions } = viem;
const TRAINER = 0;
const VERIFIER = 1;
const MIN = defaultParams.minTrainerStake;
const LEASE = 600n;
const MAX_LEASE = 86_400n;
const PEER: Hex = bytesToHex(new TextEncoder().encode('{"p":"12D3KooWTest","a":["/ip4/127.0.0.1/tcp/4001"]}'));

const addressOf = (f: Fixture, i: number): Address => f.wallets[i]!.account.address;

/** Claims (shard, lane) of model 1 as wallet `i`. */
const claim = (f: Fixture, i: number, shard: number, lane: number, lease = LEASE, peer = PEER) =>
  f.laneDirectory.write.claimSeat([f.modelId, shard, lane, lease, peer], { account: f.wallets[i]!.account });

const leave = (f: Fixture, i: number, shard: number, lane: number) =>
  f.laneDirectory.write.leaveSeat([f.modelId, shard, lane], { account: f.wallets[i]!.account });

const seatOf = async (f: Fixture, shard: number, lane: number) => {
  const [holder, expiresAt, claimedBlock] = await f.laneDirectory.read.seat([f.modelId, shard, lane]);
  return { holder, expiresAt, claimedBlock };
};

const blockOf = async (f: Fixture, hash: Hex) => {
  const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
  const block = await f.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { number: block.number, timestamp: block.timestamp, gasUsed: receipt.gasUsed };
};

/** Model 1 with trainers 1 and 2 staked at the minimum, trainer 3 unstaked. */
async function seatsFixture() {
  const f = await protocolFixture();
  await stakeAs(f, 1, TRAINER);
  await stakeAs(f, 2, TRAINER);
  return f;
}

describe("LaneDirectory.claimSeat", () => {
  it("gives a free seat to a staked trainer, records it and emits SeatClaimed with the peer record", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const hash = await claim(f, 1, 1, 3);
    const block = await blockOf(f, hash);
    console.log(`      claimSeat (first claim) gas: ${block.gasUsed}`);
    await assertions.emitWithArgs(Promise.resolve(hash), f.laneDirectory, "SeatClaimed", [
      f.modelId,
      1,
      3,
      getAddress(addressOf(f, 1)),
      block.timestamp + LEASE,
      PEER,
    ]);
    assert.deepEqual(await seatOf(f, 1, 3), {
      holder: getAddress(addressOf(f, 1)),
      expiresAt: block.timestamp + LEASE,
      claimedBlock: block.number,
    });
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, addressOf(f, 1)]), 1n);
    // Other lanes and shards are untouched.
    assert.equal((await seatOf(f, 0, 3)).holder, zeroAddress);
    assert.equal((await seatOf(f, 1, 2)).holder, zeroAddress);
  });

  it("refuses a seat another account holds with SeatTaken, up to and including its expiresAt", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const { timestamp } = await blockOf(f, await claim(f, 1, 0, 0));
    const expiresAt = timestamp + LEASE;
    await assertions.revertWithCustomErrorWithArgs(claim(f, 2, 0, 0), f.laneDirectory, "SeatTaken", [
      getAddress(addressOf(f, 1)),
      expiresAt,
    ]);
    await networkHelpers.time.setNextBlockTimestamp(expiresAt);
    await assertions.revertWithCustomErrorWithArgs(claim(f, 2, 0, 0), f.laneDirectory, "SeatTaken", [
      getAddress(addressOf(f, 1)),
      expiresAt,
    ]);
  });

  it("lets anyone staked take an expired seat, moving the count of held seats", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const { timestamp } = await blockOf(f, await claim(f, 1, 0, 0));
    await networkHelpers.time.setNextBlockTimestamp(timestamp + LEASE + 1n);
    await assertions.emit(claim(f, 2, 0, 0), f.laneDirectory, "SeatClaimed");
    assert.equal((await seatOf(f, 0, 0)).holder, getAddress(addressOf(f, 2)));
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, addressOf(f, 1)]), 0n);
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, addressOf(f, 2)]), 1n);
    // The former holder lost it: it can neither leave it nor take it back while it is held.
    await assertions.revertWithCustomErrorWithArgs(leave(f, 1, 0, 0), f.laneDirectory, "NotSeatHolder", [
      getAddress(addressOf(f, 1)),
      getAddress(addressOf(f, 2)),
    ]);
    await assertions.revertWithCustomError(claim(f, 1, 0, 0), f.laneDirectory, "SeatTaken");
  });

  it("lets the holder renew at any time, before or after expiry, extending or shortening the lease", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    await claim(f, 1, 0, 0);
    await networkHelpers.time.increase(100);
    const renewed = await blockOf(f, await claim(f, 1, 0, 0, MAX_LEASE));
    assert.deepEqual(await seatOf(f, 0, 0), {
      holder: getAddress(addressOf(f, 1)),
      expiresAt: renewed.timestamp + MAX_LEASE,
      claimedBlock: renewed.number,
    });
    const shortened = await blockOf(f, await claim(f, 1, 0, 0, 10n));
    assert.equal((await seatOf(f, 0, 0)).expiresAt, shortened.timestamp + 10n);
    await networkHelpers.time.increase(60);
    const late = await blockOf(f, await claim(f, 1, 0, 0));
    assert.equal((await seatOf(f, 0, 0)).expiresAt, late.timestamp + LEASE);
    // Renewals hold one seat, not one per renewal.
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, addressOf(f, 1)]), 1n);
  });

  it("refuses an unstaked, under-staked or verifier-only account with InsufficientSeatStake", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const who = getAddress(addressOf(f, 3));
    await assertions.revertWithCustomErrorWithArgs(claim(f, 3, 0, 0), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      who,
      0n,
      MIN,
    ]);
    await stakeAs(f, 3, VERIFIER, MIN * 2n);
    await assertions.revertWithCustomErrorWithArgs(claim(f, 3, 0, 0), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      who,
      0n,
      MIN,
    ]);
    await stakeAs(f, 3, TRAINER, MIN - 1n);
    await assertions.revertWithCustomErrorWithArgs(claim(f, 3, 0, 0), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      who,
      MIN - 1n,
      MIN,
    ]);
    await stakeAs(f, 3, TRAINER, 1n);
    await assertions.emit(claim(f, 3, 0, 0), f.laneDirectory, "SeatClaimed");
  });

  it("no longer counts stake requested for unstaking, for claims and renewals", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    await claim(f, 1, 0, 0);
    await f.staking.write.requestUnstake([f.modelId, TRAINER, 1n], { account: f.wallets[1]!.account });
    await assertions.revertWithCustomErrorWithArgs(claim(f, 1, 0, 0), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      getAddress(addressOf(f, 1)),
      MIN - 1n,
      MIN,
    ]);
    await f.staking.write.requestUnstake([f.modelId, TRAINER, MIN - 1n], { account: f.wallets[2]!.account });
    await assertions.revertWithCustomErrorWithArgs(claim(f, 2, 0, 1), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      getAddress(addressOf(f, 2)),
      1n,
      MIN,
    ]);
  });

  it("charges the minimum trainer stake per seat held, over all shards and lanes of the model", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const who = getAddress(addressOf(f, 1));
    await claim(f, 1, 0, 0);
    // One minimum stake cannot squat a second lane, on this shard or another.
    for (const [shard, lane] of [
      [0, 1],
      [1, 0],
    ] as const) {
      await assertions.revertWithCustomErrorWithArgs(
        claim(f, 1, shard, lane),
        f.laneDirectory,
        "InsufficientSeatStake",
        [f.modelId, who, MIN, 2n * MIN],
      );
    }
    await stakeAs(f, 1, TRAINER, MIN);
    await claim(f, 1, 1, 0);
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, who]), 2n);
    // An expired seat still counts until it is left or taken.
    await networkHelpers.time.increase(LEASE + 1n);
    await assertions.revertWithCustomError(claim(f, 1, 0, 7), f.laneDirectory, "InsufficientSeatStake");
    await leave(f, 1, 0, 0);
    await assertions.emit(claim(f, 1, 0, 7), f.laneDirectory, "SeatClaimed");
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, who]), 2n);
  });

  it("reads the stake minimum of the round after the latest: a raised minimum applies to the next claim", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    await f.registry.write.scheduleParams([f.modelId, { ...defaultParams, minTrainerStake: 2n * MIN }]);
    await assertions.revertWithCustomErrorWithArgs(claim(f, 1, 0, 0), f.laneDirectory, "InsufficientSeatStake", [
      f.modelId,
      getAddress(addressOf(f, 1)),
      MIN,
      2n * MIN,
    ]);
  });

  it("bounds the lease to 1 s ..= MAX_LEASE, so a huge lease cannot squat beyond a day", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    assert.equal(await f.laneDirectory.read.MAX_LEASE(), MAX_LEASE);
    for (const lease of [0n, MAX_LEASE + 1n, 2n ** 64n - 1n]) {
      await assertions.revertWithCustomErrorWithArgs(claim(f, 1, 0, 0, lease), f.laneDirectory, "InvalidLease", [
        lease,
      ]);
    }
    const { timestamp } = await blockOf(f, await claim(f, 1, 0, 0, MAX_LEASE));
    assert.equal((await seatOf(f, 0, 0)).expiresAt, timestamp + MAX_LEASE);
    await networkHelpers.time.setNextBlockTimestamp(timestamp + MAX_LEASE + 1n);
    await assertions.emit(claim(f, 2, 0, 0), f.laneDirectory, "SeatClaimed");
  });

  it("bounds the peer record to 1 ..= 512 bytes", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    assert.equal(await f.laneDirectory.read.MAX_PEER_RECORD(), 512n);
    const bytes = (n: number) => bytesToHex(new Uint8Array(n).fill(0x61));
    await assertions.revertWithCustomErrorWithArgs(
      claim(f, 1, 0, 0, LEASE, "0x"),
      f.laneDirectory,
      "InvalidPeerRecord",
      [0n],
    );
    await assertions.revertWithCustomErrorWithArgs(
      claim(f, 1, 0, 0, LEASE, bytes(513)),
      f.laneDirectory,
      "InvalidPeerRecord",
      [513n],
    );
    const hash = await claim(f, 1, 0, 0, LEASE, bytes(512));
    const { timestamp } = await blockOf(f, hash);
    await assertions.emitWithArgs(Promise.resolve(hash), f.laneDirectory, "SeatClaimed", [
      f.modelId,
      0,
      0,
      getAddress(addressOf(f, 1)),
      timestamp + LEASE,
      bytes(512),
    ]);
  });

  it("refuses an unknown model, a shard out of range and a lane at or above MAX_SEAT_LANES", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    assert.equal(await f.laneDirectory.read.MAX_SEAT_LANES(), 1024);
    const account = f.wallets[1]!.account;
    await assertions.revertWithCustomErrorWithArgs(
      f.laneDirectory.write.claimSeat([2n, 0, 0, LEASE, PEER], { account }),
      f.registry,
      "ModelNotFound",
      [2n],
    );
    await assertions.revertWithCustomErrorWithArgs(claim(f, 1, 2, 0), f.laneDirectory, "ShardOutOfRange", [
      f.modelId,
      2,
    ]);
    for (const lane of [1024, 2 ** 32 - 1]) {
      await assertions.revertWithCustomErrorWithArgs(claim(f, 1, 0, lane), f.laneDirectory, "LaneOutOfRange", [lane]);
    }
    await assertions.emit(claim(f, 1, 1, 1023), f.laneDirectory, "SeatClaimed");
  });
});

describe("LaneDirectory.leaveSeat", () => {
  it("frees the seat at once and emits SeatLeft; only the holder may leave", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    await claim(f, 1, 0, 4);
    await assertions.revertWithCustomErrorWithArgs(leave(f, 2, 0, 4), f.laneDirectory, "NotSeatHolder", [
      getAddress(addressOf(f, 2)),
      getAddress(addressOf(f, 1)),
    ]);
    await assertions.emitWithArgs(leave(f, 1, 0, 4), f.laneDirectory, "SeatLeft", [
      f.modelId,
      0,
      4,
      getAddress(addressOf(f, 1)),
    ]);
    const left = await seatOf(f, 0, 4);
    assert.equal(left.holder, zeroAddress);
    assert.equal(left.expiresAt, 0n);
    assert.equal(await f.laneDirectory.read.seatsHeld([f.modelId, addressOf(f, 1)]), 0n);
    // Leaving twice, or leaving a seat never claimed, is refused.
    await assertions.revertWithCustomErrorWithArgs(leave(f, 1, 0, 4), f.laneDirectory, "NotSeatHolder", [
      getAddress(addressOf(f, 1)),
      zeroAddress,
    ]);
    await assertions.revertWithCustomError(leave(f, 1, 0, 5), f.laneDirectory, "NotSeatHolder");
    // Anyone staked takes it without waiting for the lease.
    await assertions.emit(claim(f, 2, 0, 4), f.laneDirectory, "SeatClaimed");
  });
});

describe("LaneDirectory views", () => {
  it("seats() reads a range of lanes, cut at MAX_SEAT_LANES", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const first = await blockOf(f, await claim(f, 1, 0, 1));
    const second = await blockOf(f, await claim(f, 2, 0, 1022));
    const range = await f.laneDirectory.read.seats([f.modelId, 0, 0, 3]);
    assert.deepEqual(range, [
      { holder: zeroAddress, expiresAt: 0n, claimedBlock: 0n },
      { holder: getAddress(addressOf(f, 1)), expiresAt: first.timestamp + LEASE, claimedBlock: first.number },
      { holder: zeroAddress, expiresAt: 0n, claimedBlock: 0n },
    ]);
    const tail = await f.laneDirectory.read.seats([f.modelId, 0, 1020, 100]);
    assert.equal(tail.length, 4);
    assert.equal(tail[2]!.holder, getAddress(addressOf(f, 2)));
    assert.equal(tail[2]!.claimedBlock, second.number);
    assert.deepEqual(await f.laneDirectory.read.seats([f.modelId, 0, 1024, 10]), []);
    assert.deepEqual(await f.laneDirectory.read.seats([f.modelId, 0, 0, 0]), []);
    assert.equal((await f.laneDirectory.read.seats([f.modelId, 0, 0, 2 ** 32 - 1])).length, 1024);
  });

  it("is deployed with the registry and staking it trusts, and refuses zero addresses", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    assert.equal(getAddress(await f.laneDirectory.read.registry()), getAddress(f.registry.address));
    assert.equal(getAddress(await f.laneDirectory.read.staking()), getAddress(f.staking.address));
    await assertions.revertWithCustomError(
      viem.deployContract("LaneDirectory", [zeroAddress, f.staking.address]),
      f.laneDirectory,
      "ZeroAddress",
    );
    await assertions.revertWithCustomError(
      viem.deployContract("LaneDirectory", [f.registry.address, zeroAddress]),
      f.laneDirectory,
      "ZeroAddress",
    );
  });
});
