import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  commitAndReveal,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  protocolFixture,
  stakeAs,
  tokenId,
} from "../helpers/fixture.js";

describe("protocol smoke: train, finalize, pay, claim", () => {
  it("mints for two pipeline stages and pays revenue out by weight", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const [t0, t1] = [f.wallets[1]!.account.address, f.wallets[2]!.account.address];
    await stakeAs(f, 1, 0);
    await stakeAs(f, 2, 0);
    const cp0 = makeCheckpoint(t0, { shard: 0, ...pipelineDigests(0, 2), workUnits: 3000n });
    const cp1 = makeCheckpoint(t1, { shard: 1, ...pipelineDigests(1, 2), workUnits: 1000n });
    await commitAndReveal(f, 1, cp0);
    await commitAndReveal(f, 2, cp1);
    await networkHelpers.time.increase(3601);
    await f.ledger.write.finalize([cp0]);
    await f.ledger.write.finalize([cp1]);
    assert.equal(await f.token.read.balanceOf([t0, tokenId(1n, 0)]), 3000n);
    assert.equal(await f.token.read.balanceOf([t1, tokenId(1n, 1)]), 1000n);

    await f.usdc.write.approve([f.settlement.address, 4_000_000n]);
    await f.settlement.write.pay([1n, f.usdc.address, 4_000_000n]);
    assert.equal(await f.token.read.claimable([tokenId(1n, 0), f.usdc.address, t0]), 3_000_000n);
    assert.equal(await f.token.read.claimable([tokenId(1n, 1), f.usdc.address, t1]), 1_000_000n);
    const before = await f.usdc.read.balanceOf([t0]);
    await f.token.write.claim([[tokenId(1n, 0)], f.usdc.address], { account: f.wallets[1]!.account });
    assert.equal((await f.usdc.read.balanceOf([t0])) - before, 3_000_000n);
  });
});
