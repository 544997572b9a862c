import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { network } from "hardhat";
import { getAddress } from "viem";

import { main } from "../../sdk/examples/dapp.js";
import { exampleChain } from "./example-chain.js";
import { privateKeyOf } from "./helpers.js";

/**
 * Runs sdk/README.md's dApp example against a real JSON-RPC server (Hardhat's node, over HTTP on
 * loopback) with the protocol deployed and a model whose holders came from a genesis allocation.
 */
describe("sdk/README.md's dApp example (sdk/examples/dapp.ts)", () => {
  let server: Awaited<ReturnType<typeof network.createServer>>;
  let rpcUrl: string;

  before(async () => {
    server = await network.createServer({ network: "default" }, "127.0.0.1", 0);
    const { port } = await server.listen();
    rpcUrl = `http://127.0.0.1:${port}`;
  });
  after(async () => server.close());

  it("runs the five calls and gets exact figures", async () => {
    const { connection, deploymentsDir: dir, usdc, user, registrant } = await exampleChain(network, rpcUrl);
    const result = await main({
      rpcUrl,
      privateKey: privateKeyOf(1),
      // The gateway that the user's escrow is with, and that alone settles its receipt.
      gatewayPrivateKey: privateKeyOf(2),
      modelId: 1n,
      currency: usdc,
      deploymentsDir: dir,
    });
    const me = getAddress(user);
    assert.deepEqual(
      result.table.shards.map((s) => s.holders.map((h) => [h.holder, h.percentage])),
      [
        [[me, 100]],
        [
          [getAddress(registrant), 75],
          [me, 25],
        ],
      ],
    );
    assert.equal(result.percentage, 62.5); // ½ × 100% + ½ × 25%
    assert.equal(result.settled, 200_000n);
    // 1.2 USDC paid; shard 0 (0.6) all to the user, shard 1 (0.6) a quarter: 0.75.
    assert.equal(result.due[getAddress(usdc)], 750_000n);
    assert.equal(result.claimed[getAddress(usdc)], 750_000n);
    await connection.close();
  });
});
