import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { network } from "hardhat";
import { getAddress, zeroHash } from "viem";

import { main } from "../../sdk/examples/dapp.js";
import { DEFAULT_ROUND_PARAMS, deployProtocol } from "../../scripts/lib/protocol.js";
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
    const connection = await network.create({ network: "localhost", override: { url: rpcUrl } });
    const { viem } = connection;
    const protocol = await deployProtocol(viem);
    const [registrant, user] = await viem.getWalletClients();
    const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
    const usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
    await usdc.write.mint([user!.account.address, 10_000_000n]);
    await protocol.registry.write.registerModel([
      {
        specDigest: zeroHash,
        specURI: "ipfs://bafyexample",
        shardWeights: [1n, 1n],
        stakingToken: stake.address,
        currencies: [usdc.address],
        unbondingDelay: 7 * 86_400,
        params: DEFAULT_ROUND_PARAMS,
      },
    ]);
    // The user holds all of shard 0 and a quarter of shard 1 (supplies that divide the payments
    // exactly, so the figures carry no rounding dust).
    await protocol.ledger.write.allocateGenesis([1n, 0, [user!.account.address], [4n]]);
    await protocol.ledger.write.allocateGenesis([
      1n,
      1,
      [user!.account.address, registrant!.account.address],
      [1n, 3n],
    ]);
    const dir = await mkdtemp(path.join(tmpdir(), "deployments-"));
    await writeFile(
      path.join(dir, "31337.json"),
      JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: protocol.addresses }),
    );

    const result = await main({
      rpcUrl,
      privateKey: privateKeyOf(1),
      // The gateway that the user's escrow is with, and that alone settles its receipt.
      gatewayPrivateKey: privateKeyOf(2),
      modelId: 1n,
      currency: usdc.address,
      deploymentsDir: dir,
    });
    const me = getAddress(user!.account.address);
    assert.deepEqual(
      result.table.shards.map((s) => s.holders.map((h) => [h.holder, h.percentage])),
      [
        [[me, 100]],
        [
          [getAddress(registrant!.account.address), 75],
          [me, 25],
        ],
      ],
    );
    assert.equal(result.percentage, 62.5); // ½ × 100% + ½ × 25%
    assert.equal(result.settled, 200_000n);
    // 1.2 USDC paid; shard 0 (0.6) all to the user, shard 1 (0.6) a quarter: 0.75.
    assert.equal(result.due[getAddress(usdc.address)], 750_000n);
    assert.equal(result.claimed[getAddress(usdc.address)], 750_000n);
    await connection.close();
  });
});
