import {
  type Account,
  type Address,
  type Chain,
  type Hex,
  type Transport,
  type WalletClient,
  getAddress,
  getContractAddress,
} from "viem";
import { getBlock } from "viem/actions";
import type { HardhatViemHelpers } from "@nomicfoundation/hardhat-viem/types";

import { contributionLedgerAbi } from "../../sdk/abis/index.js";
import { ledgerDomain, nodeConsentTypes } from "../../sdk/constants.js";
import type { ProtocolAddresses } from "../../sdk/deployment.js";

export type { ProtocolAddresses };

/** What `deployProtocol` deploys: every contract, the lane directory included. */
export type DeployedAddresses = ProtocolAddresses & { laneDirectory: Address };

export interface DeployProtocolOptions {
  /** Seconds between an escrow withdrawal request and the withdrawal (default one day). */
  escrowWithdrawalDelay?: bigint;
}

export const DEFAULT_ESCROW_WITHDRAWAL_DELAY = 86_400n;

export { DEFAULT_ROUND_PARAMS, sealedHash } from "../../sdk/constants.js";

/**
 * Deploys the six protocol contracts from the first wallet of `viem`.
 *
 * The contracts refer to each other through immutables (the token and staking trust exactly one
 * ledger, the token exactly one settlement contract), so nothing can be re-pointed after
 * deployment and there is no admin key. The addresses of later contracts are computed from the
 * deployer's nonce before the earlier ones are deployed, and checked afterwards.
 */
export async function deployProtocol(viem: HardhatViemHelpers, options: DeployProtocolOptions = {}) {
  const publicClient = await viem.getPublicClient();
  const [wallet] = await viem.getWalletClients();
  if (wallet === undefined) throw new Error("deployProtocol: the network has no account to deploy from");
  const from = wallet.account.address;
  const nonce = await publicClient.getTransactionCount({ address: from, blockTag: "pending" });
  const at = (offset: number) => getContractAddress({ from, nonce: BigInt(nonce + offset) });
  const predicted: DeployedAddresses = {
    registry: at(0),
    token: at(1),
    staking: at(2),
    ledger: at(3),
    settlement: at(4),
    laneDirectory: at(5),
  };

  const registry = await viem.deployContract("ModelRegistry", [predicted.ledger]);
  const token = await viem.deployContract("ShardToken", [registry.address, predicted.ledger, predicted.settlement]);
  const staking = await viem.deployContract("Staking", [registry.address, predicted.ledger]);
  const ledger = await viem.deployContract("ContributionLedger", [registry.address, staking.address, token.address]);
  const settlement = await viem.deployContract("InferenceSettlement", [
    registry.address,
    token.address,
    options.escrowWithdrawalDelay ?? DEFAULT_ESCROW_WITHDRAWAL_DELAY,
  ]);
  const laneDirectory = await viem.deployContract("LaneDirectory", [registry.address, staking.address]);

  const actual: DeployedAddresses = {
    registry: registry.address,
    token: token.address,
    staking: staking.address,
    ledger: ledger.address,
    settlement: settlement.address,
    laneDirectory: laneDirectory.address,
  };
  for (const key of Object.keys(predicted) as (keyof DeployedAddresses)[]) {
    if (getAddress(predicted[key]) !== getAddress(actual[key])) {
      throw new Error(
        `deployProtocol: ${key} landed at ${actual[key]}, not at the predicted ${predicted[key]}; ` +
          "another transaction from the deployer interleaved. Redeploy from a quiet account.",
      );
    }
  }
  return { registry, token, staking, ledger, settlement, laneDirectory, addresses: actual };
}

export type Protocol = Awaited<ReturnType<typeof deployProtocol>>;

/**
 * The wallet's account authorizes its own key to sign its commits: the key's EIP-712
 * `NodeConsent` (valid for an hour of chain time), then `authorizeNode` from the same account.
 */
export async function authorizeOwnKey(
  wallet: WalletClient<Transport, Chain | undefined, Account>,
  ledger: Address,
): Promise<Hex> {
  const owner = wallet.account.address;
  const deadline = (await getBlock(wallet, { blockTag: "latest" })).timestamp + 3600n;
  const signature = await wallet.signTypedData({
    account: wallet.account,
    domain: ledgerDomain(await wallet.getChainId(), ledger),
    types: nodeConsentTypes,
    primaryType: "NodeConsent",
    message: { owner, nodeKey: owner, deadline },
  });
  return wallet.writeContract({
    address: ledger,
    abi: contributionLedgerAbi,
    functionName: "authorizeNode",
    args: [owner, true, deadline, signature],
    account: wallet.account,
    chain: wallet.chain,
  });
}
