import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createClient, custom, getAddress, hexToBigInt, type Address, type Hex } from "viem";

import { type CapTableCursor, parseCursor, serializeCursor } from "../../sdk/actions/ownership/cursor.js";
import { CapTableInconsistentError, CursorMismatchError } from "../../sdk/actions/ownership/errors.js";
import { syncCapTable } from "../../sdk/actions/ownership/syncCapTable.js";
import { capTableActions } from "../../sdk/decorators/ownership-events.js";
import { defineDeployment } from "../../sdk/deployment.js";
import { ContractRevertError } from "../../sdk/errors/contract.js";
import { InvalidParameterError } from "../../sdk/errors/validation.js";
import type { AnyClient } from "../../sdk/utils/client.js";
import { connection, defaultParams, networkHelpers, tokenId } from "../helpers/fixture.js";
import { addr, as, registerModel, revealPair, stakeEveryone } from "../helpers/ledger.js";
import { type ClientPath, clientFor, PATHS, type SdkFixture, sdkFixture } from "./helpers.js";

/** The SDK client of `path`, with the cap-table actions (until they are part of `shardActions`). */
async function capTableClient(f: SdkFixture, path: ClientPath) {
  const client = (await clientFor(f, path, 0)) as AnyClient;
  return client.extend(capTableActions(f.deployment));
}

/** A three-shard model (weights 5:3:2) with genesis allocations, and finalized mints on model 1. */
async function mintEverywhere(f: SdkFixture) {
  const m = await registerModel(f, { shardWeights: [5n, 3n, 2n] });
  await f.ledger.write.allocateGenesis([m, 0, [addr(f, 1), addr(f, 2), addr(f, 3)], [1000n, 2000n, 3000n]]);
  await f.ledger.write.allocateGenesis([m, 1, [addr(f, 1), addr(f, 4)], [500n, 500n]]);
  await f.ledger.write.allocateGenesis([m, 2, [addr(f, 5)], [700n]]);
  await stakeEveryone(f);
  const { cp0, cp1 } = await revealPair(f);
  await networkHelpers.time.increase(BigInt(defaultParams.challengeWindow) + 1n);
  await f.ledger.write.finalize([cp0]);
  await f.ledger.write.finalize([cp1]);
  const ids = [tokenId(m, 0), tokenId(m, 1), tokenId(m, 2), tokenId(1n, 0), tokenId(1n, 1)];
  return { m, ids };
}

/** Single and batch transfers, burns and batch burns across shards of both models. */
async function moveAround(f: SdkFixture, m: bigint) {
  const t = f.token.write;
  await t.safeTransferFrom([addr(f, 1), addr(f, 6), tokenId(m, 0), 250n, "0x"], as(f, 1));
  await t.safeTransferFrom([addr(f, 3), addr(f, 1), tokenId(m, 0), 3000n, "0x"], as(f, 3));
  await t.safeBatchTransferFrom(
    [addr(f, 1), addr(f, 7), [tokenId(m, 0), tokenId(m, 1), tokenId(1n, 0)], [100n, 500n, 400n], "0x"],
    as(f, 1),
  );
  await t.safeTransferFrom([addr(f, 5), addr(f, 8), tokenId(m, 2), 700n, "0x"], as(f, 5));
  await t.burn([addr(f, 2), tokenId(m, 0), 500n], as(f, 2));
  await t.burnBatch([addr(f, 7), [tokenId(m, 1), tokenId(1n, 0)], [200n, 400n]], as(f, 7));
  await t.safeBatchTransferFrom([addr(f, 2), addr(f, 9), [tokenId(1n, 1)], [999n], "0x"], as(f, 2));
}

async function moreMoves(f: SdkFixture, m: bigint) {
  const t = f.token.write;
  await t.safeTransferFrom([addr(f, 9), addr(f, 2), tokenId(1n, 1), 99n, "0x"], as(f, 9));
  await t.burn([addr(f, 8), tokenId(m, 2), 700n], as(f, 8));
  await t.safeBatchTransferFrom([addr(f, 4), addr(f, 6), [tokenId(m, 1), tokenId(m, 1)], [100n, 50n], "0x"], as(f, 4));
}

/** Asserts that `cursor` holds exactly the chain's balances (at `blockNumber`, default latest). */
async function assertMatchesChain(f: SdkFixture, cursor: CapTableCursor, ids: bigint[], blockNumber?: bigint) {
  const holders = f.wallets.map((w) => getAddress(w.account.address));
  const options = blockNumber === undefined ? {} : { blockNumber };
  for (const id of cursor.balances.keys()) assert.ok(ids.includes(id), `unexpected token id ${id} in the cap table`);
  for (const holder of [...cursor.balances.values()].flatMap((m) => [...m.keys()])) {
    assert.ok(holders.includes(holder), `unexpected holder ${holder}`);
  }
  for (const id of ids) {
    const onChain = await f.token.read.balanceOfBatch([holders, holders.map(() => id)], options);
    const sdk = holders.map((h) => cursor.balances.get(id)?.get(h) ?? 0n);
    assert.deepEqual(sdk, [...onChain], `balances of token ${id}`);
    const supply = [...(cursor.balances.get(id)?.values() ?? [])].reduce((a, b) => a + b, 0n);
    assert.equal(supply, await f.token.read.totalSupply([id], options), `supply of token ${id}`);
    for (const balance of cursor.balances.get(id)?.values() ?? []) assert.ok(balance > 0n, "zero balance kept");
  }
}

const head = async (f: SdkFixture) => f.publicClient.getBlockNumber({ cacheTime: 0 });

for (const path of PATHS) {
  describe(`cap table (${path})`, () => {
    it("builds every balance from mints, transfers, batch transfers and burns", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      await moveAround(f, m);
      const { cursor, reorged, logs } = await client.syncCapTable({ confirmations: 0 });
      assert.equal(reorged, false);
      assert.ok(logs >= 12, `only ${logs} transfer logs`);
      assert.equal(cursor.blockNumber, await head(f));
      assert.equal(cursor.blockHash, (await f.publicClient.getBlock({ blockNumber: cursor.blockNumber })).hash);
      assert.equal(cursor.chainId, f.deployment.chainId);
      assert.equal(cursor.token, getAddress(f.token.address));
      await assertMatchesChain(f, cursor, ids);
      // Wallet 3 sent all of its shard-0 tokens away: no zero balance is kept.
      assert.equal(cursor.balances.get(tokenId(m, 0))?.has(addr(f, 3)), false);
      // Shard 2 was transferred once then is whole at wallet 8.
      assert.deepEqual([...cursor.balances.get(tokenId(m, 2))!], [[addr(f, 8), 700n]]);
    });

    it("reads the same balances in ranges of 3 blocks, reporting each range in order", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      await moveAround(f, m);
      const ranges: { fromBlock: bigint; toBlock: bigint; logs: number }[] = [];
      const chunked = await client.syncCapTable({
        confirmations: 0,
        blockRange: 3,
        concurrency: 3,
        onProgress: ({ fromBlock, toBlock, logs, head: h }) => {
          assert.ok(h >= toBlock);
          ranges.push({ fromBlock, toBlock, logs });
        },
      });
      assert.ok(ranges.length > 5, `${ranges.length} ranges`);
      assert.equal(ranges[0]!.fromBlock, 0n);
      assert.equal(ranges.at(-1)!.toBlock, chunked.cursor.blockNumber);
      for (const [i, r] of ranges.entries()) {
        assert.ok(r.toBlock - r.fromBlock + 1n <= 3n);
        if (i > 0) assert.equal(r.fromBlock, ranges[i - 1]!.toBlock + 1n);
      }
      assert.equal(
        ranges.reduce((sum, r) => sum + r.logs, 0),
        chunked.logs,
      );
      const whole = await client.syncCapTable({ confirmations: 0 });
      assert.deepEqual(chunked.cursor, whole.cursor);
      await assertMatchesChain(f, chunked.cursor, ids);
    });

    it("halves the block range when the RPC refuses a range as too large", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      await moveAround(f, m);
      const asked: bigint[] = [];
      // A node that answers at most 4 blocks per eth_getLogs, through the path's own client.
      const picky = createClient({
        transport: custom({
          async request({ method, params }: { method: string; params?: unknown }) {
            if (method === "eth_getLogs") {
              const [{ fromBlock, toBlock }] = params as [{ fromBlock: Hex; toBlock: Hex }];
              const size = hexToBigInt(toBlock) - hexToBigInt(fromBlock) + 1n;
              asked.push(size);
              if (size > 4n) throw Object.assign(new Error("query exceeds max block range 4"), { code: -32602 });
            }
            return client.request({ method, params } as never);
          },
        }),
      });
      const result = await syncCapTable(picky, { deployment: f.deployment, confirmations: 0, blockRange: 50 });
      assert.ok(asked.some((size) => size > 4n));
      assert.ok(asked.at(-1)! <= 4n);
      await assertMatchesChain(f, result.cursor, ids);
      assert.deepEqual(result.cursor, (await client.syncCapTable({ confirmations: 0 })).cursor);
    });

    it("resumes from a serialized cursor and ends where a sync from scratch ends", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      await moveAround(f, m);
      const first = await client.syncCapTable({ confirmations: 0, blockRange: 4 });
      const stored = serializeCursor(first.cursor);
      const before = serializeCursor(first.cursor);
      await moreMoves(f, m);
      const resumed = await client.syncCapTable({ cursor: parseCursor(stored), confirmations: 0, blockRange: 4 });
      assert.equal(resumed.reorged, false);
      assert.equal(resumed.fromBlock, first.cursor.blockNumber + 1n);
      assert.equal(resumed.logs, 3);
      assert.equal(serializeCursor(first.cursor), before, "the given cursor was changed");
      const scratch = await client.syncCapTable({ confirmations: 0 });
      assert.deepEqual(resumed.cursor, scratch.cursor);
      assert.deepEqual(parseCursor(serializeCursor(resumed.cursor)), resumed.cursor);
      await assertMatchesChain(f, resumed.cursor, ids);
      // Nothing new: the cursor comes back unchanged.
      const again = await client.syncCapTable({ cursor: resumed.cursor, confirmations: 0 });
      assert.equal(again.logs, 0);
      assert.deepEqual(again.cursor, resumed.cursor);
    });

    it("leaves the last `confirmations` blocks out", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      await moveAround(f, m);
      await moreMoves(f, m); // three transfers, in the three newest blocks
      const latest = await head(f);
      const confirmed = await client.syncCapTable({ confirmations: 3 });
      assert.equal(confirmed.cursor.blockNumber, latest - 3n);
      await assertMatchesChain(f, confirmed.cursor, ids, latest - 3n);
      const everything = await client.syncCapTable({ confirmations: 0 });
      assert.notDeepEqual(confirmed.cursor.balances, everything.cursor.balances);
      const caughtUp = await client.syncCapTable({ cursor: confirmed.cursor, confirmations: 0 });
      assert.equal(caughtUp.logs, 3);
      assert.deepEqual(caughtUp.cursor, everything.cursor);
      await assertMatchesChain(f, caughtUp.cursor, ids);
    });

    it("rebuilds from the deployment block when the cursor's block was reorganised away", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const { m, ids } = await mintEverywhere(f);
      const snapshot = await connection.provider.request({ method: "evm_snapshot" });
      await moveAround(f, m);
      const stale = await client.syncCapTable({ confirmations: 0 });
      await connection.provider.request({ method: "evm_revert", params: [snapshot] });
      // Another history: the block at the cursor's number now holds other transfers.
      const t = f.token.write;
      await t.safeTransferFrom([addr(f, 2), addr(f, 6), tokenId(m, 0), 123n, "0x"], as(f, 2));
      await t.burnBatch([addr(f, 4), [tokenId(m, 1)], [77n]], as(f, 4));
      while ((await head(f)) < stale.cursor.blockNumber) {
        await t.safeTransferFrom([addr(f, 1), addr(f, 2), tokenId(m, 0), 1n, "0x"], as(f, 1));
      }
      const block = await f.publicClient.getBlock({ blockNumber: stale.cursor.blockNumber });
      assert.notEqual(block.hash, stale.cursor.blockHash);
      const resumed = await client.syncCapTable({
        cursor: parseCursor(serializeCursor(stale.cursor)),
        confirmations: 0,
      });
      assert.equal(resumed.reorged, true);
      assert.equal(resumed.fromBlock, f.deployment.blockNumber);
      await assertMatchesChain(f, resumed.cursor, ids);
      assert.deepEqual(resumed.cursor, (await client.syncCapTable({ confirmations: 0 })).cursor);
      // Gone entirely (the chain is now shorter than the cursor): also a reorg.
      const ahead = { ...resumed.cursor, blockNumber: (await head(f)) + 5n };
      const shorter = await client.syncCapTable({ cursor: ahead, confirmations: 0 });
      assert.equal(shorter.reorged, true);
      assert.deepEqual(shorter.cursor, resumed.cursor);
    });

    it("gives the cap table of a model: holders by balance, percentages and revenue shares", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      const m = await registerModel(f, { shardWeights: [5n, 3n, 2n] });
      const [a, b] = [addr(f, 1), addr(f, 2)];
      await f.ledger.write.allocateGenesis([m, 0, [a, b], [100n, 300n]]);
      await f.ledger.write.allocateGenesis([m, 1, [a], [50n]]);
      // Shard 2 has no supply: revenue is split over shards 0 and 1 only (weights 5 and 3).
      const table = await client.getCapTable({ modelId: m, confirmations: 0 });
      assert.equal(table.modelId, m);
      assert.equal(table.blockNumber, await head(f));
      assert.equal(table.reorged, false);
      assert.deepEqual(
        table.shards.map((s) => [s.shard, s.tokenId, s.weight, s.supply]),
        [
          [0, tokenId(m, 0), 5n, 400n],
          [1, tokenId(m, 1), 3n, 50n],
          [2, tokenId(m, 2), 2n, 0n],
        ],
      );
      assert.deepEqual(table.shards[0]!.holders, [
        { holder: b, balance: 300n, supply: 400n, percentage: 75 },
        { holder: a, balance: 100n, supply: 400n, percentage: 25 },
      ]);
      assert.deepEqual(table.shards[1]!.holders, [{ holder: a, balance: 50n, supply: 50n, percentage: 100 }]);
      assert.deepEqual(table.shards[2]!.holders, []);
      // a: (5 × 100/400 + 3 × 50/50) / 8 = 0.53125; b: 5 × 300/400 / 8 = 0.46875.
      assert.deepEqual(table.revenueShares, [
        { holder: a, shareWad: 531_250_000_000_000_000n, percentage: 53.125 },
        { holder: b, shareWad: 468_750_000_000_000_000n, percentage: 46.875 },
      ]);

      // From the cursor alone (no log scan), after more transfers were synced into it.
      await f.token.write.safeTransferFrom([b, addr(f, 3), tokenId(m, 0), 300n, "0x"], as(f, 2));
      await f.token.write.safeTransferFrom([a, addr(f, 3), tokenId(m, 1), 25n, "0x"], as(f, 1));
      const { cursor } = await client.syncCapTable({ cursor: table.cursor, confirmations: 0 });
      const next = await client.getCapTable({ modelId: m, cursor });
      assert.equal(next.cursor, cursor);
      assert.deepEqual(
        next.shards[1]!.holders.map((h) => [h.holder, h.balance, h.percentage]),
        [
          [a, 25n, 50],
          [addr(f, 3), 25n, 50],
        ].sort((x, y) => ((x[0] as Address) < (y[0] as Address) ? -1 : 1)),
      );
      // 3: (5 × 300/400 + 3 × 25/50) / 8 = 0.65625; a: (5 × 100/400 + 3 × 25/50) / 8 = 0.34375.
      assert.deepEqual(
        next.revenueShares.map((s) => [s.holder, s.shareWad]),
        [
          [addr(f, 3), 656_250_000_000_000_000n],
          [a, 343_750_000_000_000_000n],
        ],
      );
      for (const s of next.shards) assert.equal(s.supply, await f.token.read.totalSupply([s.tokenId]));
    });

    it("says the events do not add up when the scan starts after the mints", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const { m } = await mintEverywhere(f);
      const late = defineDeployment({ ...f.deployment, blockNumber: (await head(f)) + 1n });
      await f.token.write.safeTransferFrom([addr(f, 1), addr(f, 6), tokenId(m, 0), 250n, "0x"], as(f, 1));
      const client = (await clientFor(f, path, 0)) as AnyClient;
      await assert.rejects(syncCapTable(client, { deployment: late, confirmations: 0 }), (e: unknown) => {
        assert.ok(e instanceof CapTableInconsistentError);
        assert.equal(e.holder, addr(f, 1));
        assert.equal(e.tokenId, tokenId(m, 0));
        assert.equal(e.blockNumber, late.blockNumber);
        return true;
      });
    });

    it("rejects an unknown model with a decoded ModelNotFound", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      await assert.rejects(
        client.getCapTable({ modelId: 9n, confirmations: 0 }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "ModelNotFound",
      );
    });

    it("rejects invalid parameters and a cursor of another chain or token", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await capTableClient(f, path);
      await assert.rejects(client.syncCapTable({ blockRange: -1, confirmations: -2 }), (e: unknown) => {
        assert.ok(e instanceof InvalidParameterError);
        assert.deepEqual(e.issues.map((i) => i.path).sort(), ["blockRange", "confirmations"]);
        return true;
      });
      await assert.rejects(
        client.getCapTable({ modelId: 0n, confirmations: 0 }),
        (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "modelId",
      );
      const { cursor } = await client.syncCapTable({ confirmations: 0 });
      for (const other of [
        { ...cursor, chainId: 1 },
        { ...cursor, token: getAddress(f.addresses.registry) },
      ]) {
        await assert.rejects(client.syncCapTable({ cursor: other, confirmations: 0 }), (e: unknown) => {
          assert.ok(e instanceof CursorMismatchError);
          assert.match(e.shortMessage, /the cursor is for token 0x[0-9a-fA-F]{40} on chain \d+/);
          return true;
        });
        await assert.rejects(
          client.getCapTable({ modelId: 1n, cursor: other }),
          (e: unknown) => e instanceof CursorMismatchError,
        );
      }
      assert.throws(() => parseCursor("{"), InvalidParameterError);
      assert.throws(
        () => parseCursor(serializeCursor(cursor).replace(`"blockNumber":"`, `"blockNumber":"-`)),
        (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "blockNumber",
      );
    });
  });
}
