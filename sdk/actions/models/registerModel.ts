import { type Address, type Hex } from "viem";
import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { minUnbondingDelay, zRoundParams, type RoundParamsInput } from "../../utils/params.js";
import { validate, zAddress, zBytes32, zSmallUint, zUint } from "../../utils/schemas.js";

const schema = z
  .object({
    specDigest: zBytes32,
    specURI: z.string().min(1, "must not be empty").max(2048, "must be at most 2048 characters"),
    shardWeights: z
      .array(zUint(256).refine((w) => w > 0n, "weights must be positive"))
      .min(1)
      .max(1024),
    stakingToken: zAddress,
    currencies: z.array(zAddress).max(8, "a model accepts at most 8 currencies"),
    unbondingDelay: zSmallUint(32),
    params: zRoundParams,
  })
  .superRefine((c, ctx) => {
    const required = minUnbondingDelay(c.params);
    if (c.unbondingDelay < required) {
      ctx.addIssue({
        code: "custom",
        path: ["unbondingDelay"],
        message: `must be at least reveal + challenge + dispute windows + 1 s (${required} s)`,
      });
    }
  });

export type RegisterModelParameters = DeploymentParameter &
  AccountParameter & {
    /** Digest of the spec document (e.g. sha-256 of its bytes). */
    specDigest: Hex;
    /** Where the spec lives, e.g. `ipfs://<cid>`. */
    specURI: string;
    /** Revenue weight per shard (default convention: its parameter count); the length is the shard count. */
    shardWeights: readonly (bigint | number)[];
    /** ERC-20 staked by trainers and verifiers and bonded by challengers. */
    stakingToken: Address;
    /** ERC-20 currencies accepted for revenue (at most 8). */
    currencies: readonly Address[];
    /** Seconds an unstake request waits; more than reveal + challenge + dispute windows. */
    unbondingDelay: number;
    /** Round parameters in force from round 1. */
    params: RoundParamsInput;
  };

export type RegisterModelReturnType = WriteResult & { modelId: bigint };
export type RegisterModelErrorType = WriteErrorType;

/**
 * Registers a model; the sender becomes its registrant. The parameters are checked against the
 * registry's bounds before anything is sent (`InvalidParameterError` naming the field). Round 1
 * opens once the registrant has made any genesis allocations and called `closeGenesis`.
 *
 * @example
 * const { modelId } = await registerModel(client, {
 *   deployment, specDigest, specURI: "ipfs://bafy…", shardWeights: [1_000_000n, 1_000_000n],
 *   stakingToken, currencies: [usdc], unbondingDelay: 7 * 86_400, params: DEFAULT_ROUND_PARAMS,
 * })
 */
export async function registerModel(
  client: AnyClient,
  parameters: RegisterModelParameters,
): Promise<RegisterModelReturnType> {
  const action = "registerModel";
  const { deployment, account, ...rest } = parameters;
  const config = validate(action, schema, rest);
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.registry, abi: modelRegistryAbi, functionName: "registerModel", args: [config] },
    account,
  );
  const event = eventOf(action, receipt, modelRegistryAbi, "ModelRegistered");
  return { hash, receipt, modelId: event.args.modelId };
}
