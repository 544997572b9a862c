import type { Address, Hex } from "viem";
import { z } from "zod";

import { shardTokenAbi } from "../../abis/index.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zAddress, zHex, zModelId, zPositiveAmount, zShard } from "../../utils/schemas.js";

export type TransferShardsParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    shard: number;
    /** The receiver: an account, or a contract that implements `IERC1155Receiver`. */
    to: Address;
    /** Shard tokens to move (they have no decimals: one unit is one token). */
    amount: bigint;
    /** Passed to the receiver's `onERC1155Received` (default empty). */
    data?: Hex | undefined;
  };

export type TransferShardsReturnType = WriteResult & { id: bigint };
export type TransferShardsErrorType = WriteErrorType;

/**
 * Moves `amount` of the sender's tokens of (model, shard) to `to` with `safeTransferFrom`. The
 * revenue accrued so far stays claimable by the sender; the receiver earns from now on. More
 * than the sender holds is refused by the simulation (`ERC1155InsufficientBalance`) before
 * anything is sent.
 *
 * @example
 * await transferShards(client, { deployment, modelId: 1n, shard: 0, to: "0xA0b8…", amount: 500n })
 */
export async function transferShards(
  client: AnyClient,
  parameters: TransferShardsParameters,
): Promise<TransferShardsReturnType> {
  const action = "transferShards";
  const { deployment } = parameters;
  const { modelId, shard, to, amount, data } = validate(
    action,
    z.object({
      modelId: zModelId,
      shard: zShard,
      to: zAddress,
      amount: zPositiveAmount,
      data: zHex.default("0x"),
    }),
    {
      modelId: parameters.modelId,
      shard: parameters.shard,
      to: parameters.to,
      amount: parameters.amount,
      data: parameters.data,
    },
  );
  const account = parameters.account ?? client.account;
  const from = typeof account === "string" ? account : account?.address;
  if (from === undefined) throw new AccountRequiredError(action);
  const id = toTokenId({ modelId, shard });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.token,
      abi: shardTokenAbi,
      functionName: "safeTransferFrom",
      args: [from, to, id, amount, data],
    },
    parameters.account,
  );
  return { hash, receipt, id };
}
