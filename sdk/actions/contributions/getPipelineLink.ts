import type { Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zModelId, zRound, zSmallUint } from "../../utils/schemas.js";

export type GetPipelineLinkParameters = DeploymentParameter & {
  modelId: bigint | number;
  round: bigint | number;
  lane: number;
  /** The pipeline boundary: boundary `b` sits between shards `b` and `b + 1`. */
  boundary: number;
};

/**
 * The ledger's word for one pipeline boundary of a round and lane: zero while unchecked, else the
 * ledger's matched or mismatched marker (see `ContributionLedger.pipelineLink`).
 */
export type GetPipelineLinkReturnType = Hex;
export type GetPipelineLinkErrorType = ReadErrorType;

/**
 * The state of the link between two neighbouring shards' commits of a round and lane
 * (`pipelineLink`): whether the activations one sent are the ones the next received.
 *
 * @example
 * const link = await getPipelineLink(client, { deployment, modelId: 1n, round: 3n, lane: 0, boundary: 0 })
 */
export async function getPipelineLink(
  client: AnyClient,
  parameters: GetPipelineLinkParameters,
): Promise<GetPipelineLinkReturnType> {
  const action = "getPipelineLink";
  const { deployment } = parameters;
  const { modelId, round, lane, boundary } = validate(
    action,
    z.object({ modelId: zModelId, round: zRound, lane: zSmallUint(32), boundary: zSmallUint(32) }),
    { modelId: parameters.modelId, round: parameters.round, lane: parameters.lane, boundary: parameters.boundary },
  );
  return readOne(client, deployment, action, {
    address: deployment.contracts.ledger,
    abi: contributionLedgerAbi,
    functionName: "pipelineLink",
    args: [modelId, round, lane, boundary],
  });
}
