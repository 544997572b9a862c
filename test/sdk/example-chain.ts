import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import type { network } from "hardhat";
import { zeroHash, type Address } from "viem";

import { DEFAULT_ROUND_PARAMS, deployProtocol } from "../../scripts/lib/protocol.js";

/**
 * What the README's dApp example (sdk/examples/dapp.ts) needs on a chain reached at `rpcUrl`: the
 * protocol deployed (its deployment file in `deploymentsDir`), USDC minted to wallet 1, and model 1
 * whose shard 0 wallet 1 holds whole and shard 1 a quarter of (wallet 0 the rest).
 */
export async function exampleChain(net: typeof network, rpcUrl: string) {
  const connection = await net.create({ network: "localhost", override: { url: rpcUrl } });
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
  // Supplies that divide the payments exactly, so the figures carry no rounding dust.
  await protocol.ledger.write.allocateGenesis([1n, 0, [user!.account.address], [4n]]);
  await protocol.ledger.write.allocateGenesis([1n, 1, [user!.account.address, registrant!.account.address], [1n, 3n]]);
  const deploymentsDir = await mkdtemp(path.join(tmpdir(), "deployments-"));
  await writeFile(
    path.join(deploymentsDir, "31337.json"),
    JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: protocol.addresses }),
  );
  return {
    connection,
    deploymentsDir,
    usdc: usdc.address as Address,
    user: user!.account.address as Address,
    registrant: registrant!.account.address as Address,
  };
}
