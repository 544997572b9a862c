import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { bytesToHex, getAddress, stringToHex, zeroAddress, type Hex } from "viem";

import { decodeSeatPeer, encodeSeatPeer, MAX_SEAT_PEER_BYTES, type SeatPeer } from "../../sdk/actions/seats/peer.js";
import { getSeats } from "../../sdk/actions/seats/getSeats.js";
import { claimSeat } from "../../sdk/actions/seats/claimSeat.js";
import { MAX_SEAT_LANES } from "../../sdk/actions/seats/directory.js";
import { connection, defaultParams, networkHelpers } from "../helpers/fixture.js";
import { ContractRevertError } from "../../sdk/errors/contract.js";
import { ContractNotDeployedError, InvalidParameterError } from "../../sdk/errors/validation.js";
import { defineDeployment } from "../../sdk/deployment.js";
import { clientFor, PATHS, sdkFixture, type SdkFixture } from "./helpers.js";

const PEER: SeatPeer = {
  peerId: "12D3KooWGzh8d1kLNu6wBbF1hKx9y3Zc4Ry7sGZk3jRfJxP7VxQm",
  addrs: ["/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"],
};
const OTHER: SeatPeer = { peerId: "12D3KooWOther", addrs: ["/dns4/node.example/tcp/443/wss"] };

/** Model 1 with trainers 1 and 2 staked at the minimum. */
async function seatsFixture() {
  const f = await sdkFixture();
  for (const i of [1, 2]) {
    const w = f.wallets[i]!;
    await f.stake.write.approve([f.staking.address, defaultParams.minTrainerStake], { account: w.account });
    await f.staking.write.stake([f.modelId, 0, defaultParams.minTrainerStake], { account: w.account });
  }
  return f;
}

const holderOf = (f: SdkFixture, i: number) => getAddress(f.wallets[i]!.account.address);

for (const path of PATHS) {
  describe(`seats (${path})`, () => {
    it("claims a seat; getSeats shows the holder, the lease and the peer record", async () => {
      const f = await networkHelpers.loadFixture(seatsFixture);
      const client = await clientFor(f, path, 1);
      const { expiresAt, receipt } = await client.claimSeat({
        modelId: 1n,
        shard: 1,
        lane: 2,
        leaseSeconds: 600,
        peer: PEER,
      });
      const block = await f.publicClient.getBlock({ blockNumber: receipt.blockNumber });
      assert.equal(expiresAt, block.timestamp + 600n);

      const seats = await client.getSeats({ modelId: 1n, shard: 1, count: 4 });
      assert.equal(seats.length, 4);
      assert.deepEqual(
        seats.map((s) => [s.lane, s.free]),
        [
          [0, true],
          [1, true],
          [2, false],
          [3, true],
        ],
      );
      assert.deepEqual(seats[2], {
        lane: 2,
        holder: holderOf(f, 1),
        expiresAt,
        claimedBlock: receipt.blockNumber,
        free: false,
        peer: PEER,
      });
      assert.equal(seats[0]!.holder, zeroAddress);
      assert.equal(seats[0]!.peer, undefined);
      assert.deepEqual(await client.getSeat({ modelId: 1n, shard: 1, lane: 2 }), seats[2]);
      // The other shard's lane 2 is untouched.
      assert.equal((await client.getSeat({ modelId: 1n, shard: 0, lane: 2 })).free, true);
    });

    it("a renewal announces the new peer record; another account gets a decoded SeatTaken", async () => {
      const f = await networkHelpers.loadFixture(seatsFixture);
      const holder = await clientFor(f, path, 1);
      const other = await clientFor(f, path, 2);
      const first = await holder.claimSeat({ modelId: 1n, shard: 0, lane: 0, leaseSeconds: 600, peer: PEER });
      await assert.rejects(
        other.claimSeat({ modelId: 1n, shard: 0, lane: 0, leaseSeconds: 600, peer: OTHER }),
        (e: unknown) => {
          assert.ok(e instanceof ContractRevertError);
          assert.equal(e.errorName, "SeatTaken");
          assert.equal(e.args.holder, holderOf(f, 1));
          assert.equal(e.args.expiresAt, first.expiresAt);
          assert.match(e.shortMessage, /The seat is held by 0x[0-9a-fA-F]{40} until .*pick another lane/);
          return true;
        },
      );
      const renewed = await holder.claimSeat({ modelId: 1n, shard: 0, lane: 0, leaseSeconds: 900, peer: OTHER });
      const seat = await other.getSeat({ modelId: 1n, shard: 0, lane: 0 });
      assert.equal(seat.expiresAt, renewed.expiresAt);
      assert.equal(seat.claimedBlock, renewed.receipt.blockNumber);
      assert.deepEqual(seat.peer, OTHER);
    });

    it("a seat is free after its lease, and after its holder leaves", async () => {
      const f = await networkHelpers.loadFixture(seatsFixture);
      const client = await clientFor(f, path, 1);
      const { expiresAt } = await client.claimSeat({ modelId: 1n, shard: 0, lane: 5, leaseSeconds: 60, peer: PEER });
      await networkHelpers.time.setNextBlockTimestamp(expiresAt);
      await networkHelpers.mine();
      assert.equal((await client.getSeat({ modelId: 1n, shard: 0, lane: 5 })).free, false, "held up to expiresAt");
      await networkHelpers.time.increase(1);
      const expired = await client.getSeat({ modelId: 1n, shard: 0, lane: 5 });
      assert.equal(expired.free, true);
      assert.equal(expired.holder, holderOf(f, 1));
      assert.equal(expired.peer, undefined, "no peer record for a free seat");

      const other = await clientFor(f, path, 2);
      await other.claimSeat({ modelId: 1n, shard: 0, lane: 6, leaseSeconds: 600, peer: OTHER });
      await assert.rejects(client.leaveSeat({ modelId: 1n, shard: 0, lane: 6 }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "NotSeatHolder");
        return true;
      });
      await other.leaveSeat({ modelId: 1n, shard: 0, lane: 6 });
      const left = await client.getSeat({ modelId: 1n, shard: 0, lane: 6 });
      assert.equal(left.free, true);
      assert.equal(left.holder, zeroAddress);
    });
  });
}

describe("seats: validation and malformed records", () => {
  it("a malformed peer record on chain reads as a held seat without a peer", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const account = f.wallets[1]!.account;
    await f.laneDirectory.write.claimSeat([1n, 0, 3, 600n, stringToHex('{"p":"x y","a":[]}')], { account });
    const [seat] = await getSeats(f.publicClient, {
      deployment: f.deployment,
      modelId: 1n,
      shard: 0,
      fromLane: 3,
      count: 1,
    });
    assert.equal(seat!.free, false);
    assert.equal(seat!.holder, holderOf(f, 1));
    assert.equal(seat!.peer, undefined);
  });

  it("takes the holder's latest record of the claim block, ignoring other lanes' and accounts' logs", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const [one, two] = [f.wallets[1]!.account, f.wallets[2]!.account];
    await connection.provider.request({ method: "evm_setAutomine", params: [false] });
    try {
      // One block: holder 1 claims lane 0 and renews with a second record; holder 2 claims lane 1.
      await f.laneDirectory.write.claimSeat([1n, 0, 0, 600n, encodeSeatPeer(PEER)], { account: one, gas: 200_000n });
      await f.laneDirectory.write.claimSeat([1n, 0, 1, 600n, encodeSeatPeer(PEER)], { account: two, gas: 200_000n });
      await f.laneDirectory.write.claimSeat([1n, 0, 0, 600n, encodeSeatPeer(OTHER)], { account: one, gas: 200_000n });
      await networkHelpers.mine();
    } finally {
      await connection.provider.request({ method: "evm_setAutomine", params: [true] });
    }
    const seats = await getSeats(f.publicClient, { deployment: f.deployment, modelId: 1n, shard: 0, count: 2 });
    assert.equal(seats[0]!.claimedBlock, seats[1]!.claimedBlock);
    assert.deepEqual(seats[0]!.peer, OTHER);
    assert.deepEqual(seats[1]!.peer, PEER);
    assert.equal(seats[1]!.holder, holderOf(f, 2));
  });

  it("reads lanes up to MAX_SEAT_LANES only, and refuses a lane beyond it", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const client = await clientFor(f, "viem", 1);
    assert.equal(MAX_SEAT_LANES, 1024);
    const tail = await client.getSeats({ modelId: 1n, shard: 0, fromLane: 1020 });
    assert.deepEqual(
      tail.map((s) => s.lane),
      [1020, 1021, 1022, 1023],
    );
    await assert.rejects(client.getSeat({ modelId: 1n, shard: 0, lane: 1024 }), InvalidParameterError);
    await assert.rejects(
      client.claimSeat({ modelId: 1n, shard: 0, lane: 0, leaseSeconds: 86_401, peer: PEER }),
      (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "leaseSeconds",
    );
  });

  it("refuses a peer record over 512 bytes before sending anything", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const big: SeatPeer = {
      peerId: PEER.peerId,
      addrs: Array.from({ length: 20 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`),
    };
    assert.throws(
      () => encodeSeatPeer(big),
      (e: unknown) => e instanceof TypeError && /at most 512 fit/.test(e.message),
    );
    const address = f.wallets[1]!.account.address;
    const before = await f.publicClient.getTransactionCount({ address });
    await assert.rejects(
      claimSeat(f.wallets[1]!, {
        deployment: f.deployment,
        modelId: 1n,
        shard: 0,
        lane: 0,
        leaseSeconds: 60,
        peer: big,
      }),
      (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "peer",
    );
    assert.equal(await f.publicClient.getTransactionCount({ address }), before);
  });

  it("a deployment without a lane directory stays valid, and seat actions say what is missing", async () => {
    const f = await networkHelpers.loadFixture(seatsFixture);
    const { laneDirectory: _, ...contracts } = f.deployment.contracts;
    const old = defineDeployment({ chainId: f.deployment.chainId, contracts });
    assert.equal(old.contracts.laneDirectory, undefined);
    await assert.rejects(getSeats(f.publicClient, { deployment: old, modelId: 1n, shard: 0 }), (e: unknown) => {
      assert.ok(e instanceof ContractNotDeployedError);
      assert.equal(e.contract, "laneDirectory");
      assert.match(
        e.shortMessage,
        /getSeats needs the laneDirectory contract, but the deployment for chain \d+ has none/,
      );
      return true;
    });
    await assert.rejects(
      claimSeat(f.wallets[1]!, { deployment: old, modelId: 1n, shard: 0, lane: 0, leaseSeconds: 60, peer: PEER }),
      ContractNotDeployedError,
    );
  });
});

describe("seat peer records", () => {
  it("round-trip through encodeSeatPeer and decodeSeatPeer, as hex or bytes", () => {
    const hex = encodeSeatPeer(PEER);
    assert.equal(Buffer.from(hex.slice(2), "hex").toString("utf8"), JSON.stringify({ p: PEER.peerId, a: PEER.addrs }));
    assert.deepEqual(decodeSeatPeer(hex), PEER);
    assert.deepEqual(decodeSeatPeer(Buffer.from(hex.slice(2), "hex")), PEER);
    assert.deepEqual(decodeSeatPeer(encodeSeatPeer({ peerId: "Qm1", addrs: [] })), { peerId: "Qm1", addrs: [] });
    // Unknown fields are dropped, not passed on.
    assert.deepEqual(decodeSeatPeer(stringToHex('{"p":"Qm1","a":[],"x":{"__proto__":1}}')), {
      peerId: "Qm1",
      addrs: [],
    });
  });

  it("decode malformed bytes to undefined", () => {
    const cases: [string, Hex][] = [
      ["empty", "0x"],
      ["odd hex", "0x7b7"],
      ["not hex", "0xzz" as Hex],
      ["invalid UTF-8", "0xff7b7d"],
      ["not JSON", stringToHex("p=Qm1")],
      ["JSON null", stringToHex("null")],
      ["JSON array", stringToHex('["Qm1",[]]')],
      ["JSON string", stringToHex('"Qm1"')],
      ["no peer id", stringToHex('{"a":[]}')],
      ["empty peer id", stringToHex('{"p":"","a":[]}')],
      ["peer id a number", stringToHex('{"p":12,"a":[]}')],
      ["peer id with a space", stringToHex('{"p":"Qm 1","a":[]}')],
      ["peer id too long", stringToHex(JSON.stringify({ p: "a".repeat(129), a: [] }))],
      ["addrs missing", stringToHex('{"p":"Qm1"}')],
      ["addrs an object", stringToHex('{"p":"Qm1","a":{"0":"/ip4/1.2.3.4"}}')],
      ["addr a number", stringToHex('{"p":"Qm1","a":[1]}')],
      ["addr not a multiaddr", stringToHex('{"p":"Qm1","a":["http://x"]}')],
      ["addr with a newline", stringToHex('{"p":"Qm1","a":["/ip4/1.2.3.4\\n"]}')],
      ["addr too long", stringToHex(JSON.stringify({ p: "Qm1", a: [`/${"a".repeat(256)}`] }))],
      [
        "over 512 bytes",
        bytesToHex(new TextEncoder().encode(JSON.stringify({ p: "Qm1", a: [], pad: "x".repeat(MAX_SEAT_PEER_BYTES) }))),
      ],
    ];
    for (const [name, data] of cases) assert.equal(decodeSeatPeer(data), undefined, name);
  });

  it("encodeSeatPeer refuses a malformed peer id or address with a TypeError", () => {
    assert.throws(() => encodeSeatPeer({ peerId: "", addrs: [] }), TypeError);
    assert.throws(() => encodeSeatPeer({ peerId: "Qm 1", addrs: [] }), TypeError);
    assert.throws(() => encodeSeatPeer({ peerId: "Qm1", addrs: ["1.2.3.4:4001"] }), TypeError);
    assert.throws(() => encodeSeatPeer({ peerId: "Qm1", addrs: "/ip4/1.2.3.4" as unknown as string[] }), TypeError);
  });
});
