import type { network } from "hardhat";
import {
  type Address,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  keccak256,
  parseEther,
  publicActions,
  toHex,
  zeroHash,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { DEFAULT_ROUND_PARAMS, type Deployment, defineDeployment, shardActions } from "shard-protocol/sdk";

import type { AppConfig } from "../../app/config-plugin.js";
import { deployProtocol } from "../../scripts/lib/protocol.js";

/** Private key of Hardhat's default account `index` (the test mnemonic). */
export const privateKeyOf = (index: number): Hex =>
  toHex(
    mnemonicToAccount("test test test test test test test test test test test junk", { addressIndex: index }).getHdKey()
      .privateKey!,
  );

/** An SDK client signing with Hardhat account `index` over HTTP. */
export function sdkClient(rpcUrl: string, deployment: Deployment, index: number) {
  return createWalletClient({
    account: privateKeyToAccount(privateKeyOf(index)),
    chain: hardhat,
    transport: http(rpcUrl),
  })
    .extend(publicActions)
    .extend(shardActions(deployment));
}

export type Scenario = Awaited<ReturnType<typeof scenario>>;

/**
 * The chain the browser tests open: the protocol deployed, a two-shard model paid in USDC (6
 * decimals) and DAI (18 decimals), genesis mints to three holders (accounts 1, 2, 3), a transfer
 * of shard tokens, two rounds trained by accounts 1 (shard 0) and 3 (shard 1) and finalized, a
 * third round of shard 1 attested and under an open dispute, direct payments in both currencies, and a trainer stake partly unbonding. The browser's wallet
 * is holder 1. Amounts divide the supplies exactly.
 */
export async function scenario(net: typeof network, rpcUrl: string) {
  const connection = await net.create({ network: "localhost", override: { url: rpcUrl } });
  const { viem } = connection;
  const protocol = await deployProtocol(viem);
  const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
  const usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
  const dai = await viem.deployContract("TestERC20", ["Dai", "DAI", 18]);
  const deployment = defineDeployment({ chainId: 31337, contracts: protocol.addresses, blockNumber: 0n });
  const [registrant, holder, second, third, payer] = [0, 1, 2, 3, 4].map((i) => sdkClient(rpcUrl, deployment, i));
  const who = (c: ReturnType<typeof sdkClient>) => getAddress(c.account.address) as Address;

  const { modelId } = await registrant!.registerModel({
    specDigest: zeroHash,
    specURI: "ipfs://bafybrowserspec",
    shardWeights: [1n, 1n],
    stakingToken: stake.address,
    currencies: [usdc.address, dai.address],
    unbondingDelay: 7 * 86_400,
    params: DEFAULT_ROUND_PARAMS,
  });
  // Shard 0: 600 to holder 1, 300 to holder 2; shard 1: 100 to holder 1, 300 to holder 3.
  await registrant!.allocateGenesis({
    modelId,
    shard: 0,
    allocations: [
      { to: who(holder!), amount: 600n },
      { to: who(second!), amount: 300n },
    ],
  });
  await registrant!.allocateGenesis({
    modelId,
    shard: 1,
    allocations: [
      { to: who(holder!), amount: 100n },
      { to: who(third!), amount: 300n },
    ],
  });
  // Holder 1 sells 150 shard-0 tokens to holder 2: 450 / 450.
  await holder!.transferShards({ modelId, shard: 0, to: who(second!), amount: 150n });
  await registrant!.closeGenesis({ modelId });

  // Two rounds of one pipeline, each finalized: 150 shard-0 tokens to holder 1 and 100 shard-1
  // tokens to holder 3 per round (shard 0: 750 / 450; shard 1: 100 / 500), the loss falling.
  const trainers = [holder!, third!];
  for (const t of trainers) {
    await stake.write.mint([who(t), parseEther("100")]);
    await t.stake({ modelId, role: "trainer", amount: parseEther("100") });
    const consent = await t.signNodeConsent({ owner: who(t) });
    await t.authorizeNode({ nodeKey: consent.nodeKey, consent });
  }
  const digest = (label: string) => keccak256(new TextEncoder().encode(label));
  const roots = [zeroHash, zeroHash] as Hex[];
  /** Shard `shard`'s checkpoint of `round` by its trainer, sealed and revealed. */
  async function commitAndReveal(shard: number, round: bigint, lossMicros: bigint) {
    const checkpoint = {
      modelId,
      shard,
      round,
      lane: 0,
      owner: who(trainers[shard]!),
      parentRoot: roots[shard]!,
      root: digest(`root-${shard}-${round}`),
      transcriptDigest: digest(`transcript-${shard}-${round}`),
      sentActivations: shard === 0 ? digest(`act-${round}`) : zeroHash,
      receivedActivations: shard === 1 ? digest(`act-${round}`) : zeroHash,
      sentGradients: shard === 1 ? digest(`grad-${round}`) : zeroHash,
      receivedGradients: shard === 0 ? digest(`grad-${round}`) : zeroHash,
      workUnits: shard === 0 ? 150n : 100n,
      lossMicros: shard === 1 ? lossMicros : 0n,
      checkpointURI: `ipfs://bafybrowserckpt${shard}r${round}`,
      transcriptURI: `ipfs://bafybrowsertranscript${shard}r${round}`,
    };
    const signed = await trainers[shard]!.signSealedCommit({ checkpoint });
    const { commitId, commitBlock, commitTime } = await trainers[shard]!.submitCommit(signed);
    await registrant!.reveal({ checkpoint, salt: signed.salt, commitBlock, commitTime });
    roots[shard] = checkpoint.root;
    return { checkpoint, commitId };
  }
  for (const [round, loss] of [
    [1n, 2_400_000n],
    [2n, 1_850_000n],
  ] as const) {
    const revealed = [await commitAndReveal(0, round, loss), await commitAndReveal(1, round, loss)];
    await connection.networkHelpers.time.increase(3601);
    for (const { checkpoint } of revealed) await registrant!.finalize({ checkpoint });
  }

  // Holder 1 takes 40 of its 100 STK trainer stake out: unbonding for the model's 7 days.
  await holder!.requestUnstake({ modelId, role: "trainer", amount: parseEther("40") });

  // Round 3 of shard 1 is revealed, attested by a verifier (account 6) and challenged by account 7:
  // an open dispute.
  const [verifier, challenger] = [6, 7].map((i) => sdkClient(rpcUrl, deployment, i));
  await stake.write.mint([who(verifier!), parseEther("50")]);
  await stake.write.mint([who(challenger!), parseEther("10")]);
  await verifier!.stake({ modelId, role: "verifier", amount: parseEther("50") });
  const disputed = await commitAndReveal(1, 3n, 1_600_000n);
  await verifier!.attest({ commitId: disputed.commitId });
  await challenger!.challenge({ commitId: disputed.commitId });

  // 1.8 USDC and 3 DAI paid in, half to each shard.
  await usdc.write.mint([who(payer!), 10_000_000n]);
  await dai.write.mint([who(payer!), parseEther("10")]);
  await payer!.pay({ modelId, currency: getAddress(usdc.address), amount: 1_800_000n });
  await payer!.pay({ modelId, currency: getAddress(dai.address), amount: parseEther("3") });

  const config: AppConfig = {
    rpcUrl,
    deployment: { chainId: deployment.chainId, contracts: deployment.contracts, blockNumber: "0" },
  };
  return {
    connection,
    deployment,
    config,
    modelId,
    usdc: getAddress(usdc.address) as Address,
    dai: getAddress(dai.address) as Address,
    holder: holder!,
    other: sdkClient(rpcUrl, deployment, 5),
    disputed: { commitId: disputed.commitId, challenger: who(challenger!) },
  };
}
