import { parseAbi } from "viem";

import {
  contributionLedgerAbi,
  inferenceSettlementAbi,
  laneDirectoryAbi,
  modelRegistryAbi,
  shardTokenAbi,
  stakingAbi,
} from "./generated.js";

export { contributionLedgerAbi, inferenceSettlementAbi, laneDirectoryAbi, modelRegistryAbi, shardTokenAbi, stakingAbi };

/** OpenZeppelin's ERC-20 errors (IERC6093), which staking tokens and currencies may raise. */
export const erc20ErrorsAbi = parseAbi([
  "error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
  "error ERC20InvalidSender(address sender)",
  "error ERC20InvalidReceiver(address receiver)",
  "error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
  "error ERC20InvalidApprover(address approver)",
  "error ERC20InvalidSpender(address spender)",
]);

/**
 * The mint of `TestERC20` (`contracts/test/TestERC20.sol`), the freely mintable token that
 * `npm run deploy` deploys on local chains (`testTokens` in the deployment file).
 */
export const testTokenAbi = parseAbi(["function mint(address to, uint256 amount)"]);

const errorsOf = <const abi extends readonly { type: string }[]>(abi: abi) =>
  abi.filter((item): item is Extract<abi[number], { type: "error" }> => item.type === "error");

/** Every custom error any protocol contract (or a standard ERC-20 it calls) can revert with. */
export const protocolErrorsAbi = [
  ...errorsOf(modelRegistryAbi),
  ...errorsOf(shardTokenAbi),
  ...errorsOf(stakingAbi),
  ...errorsOf(contributionLedgerAbi),
  ...errorsOf(inferenceSettlementAbi),
  ...errorsOf(laneDirectoryAbi),
  ...erc20ErrorsAbi,
];

/** Name of any custom error of the protocol. */
export type ProtocolErrorName = (typeof protocolErrorsAbi)[number]["name"];
