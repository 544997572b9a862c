import { getAddress, getContractAddress } from "viem";
import type { HardhatViemHelpers } from "@nomicfoundation/hardhat-viem/types";

import type { ProtocolAddresses } from "../../sdk/deployment.js";

export type { ProtocolAddresses };

export interface DeployProtocolOptions {
  /** Seconds between an escrow withdrawal request and the withdrawal (default one day). */
  escrowWithdrawalDelay?: bigint;
}

export const DEFAULT_ESCROW_WITHDRAWAL_DELAY = 86_400n;

export { DEFAULT_ROUND_PARAMS, sealedHash } from "../../sdk/constants.js";

/**
 * Deploys the five protocol contracts from the first wallet of `viem`.
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
  const predicted: ProtocolAddresses = {
    registry: at(0),
    token: at(1),
    staking: at(2),
    ledger: at(3),
    settlement: at(4),
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

  const actual: ProtocolAddresses = {
    registry: registry.address,
    token: token.address,
    staking: staking.address,
    ledger: ledger.address,
    settlement: settlement.address,
  };
  for (const key of Object.keys(predicted) as (keyof ProtocolAddresses)[]) {
    if (getAddress(predicted[key]) !== getAddress(actual[key])) {
      throw new Error(
        `deployProtocol: ${key} landed at ${actual[key]}, not at the predicted ${predicted[key]}; ` +
          "another transaction from the deployer interleaved. Redeploy from a quiet account.",
      );
    }
  }
  return { registry, token, staking, ledger, settlement, addresses: actual };
}

export type Protocol = Awaited<ReturnType<typeof deployProtocol>>;
