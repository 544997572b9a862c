import { bytesToHex, type Account, type Address, type Hex } from "viem";
import { getBlock, signTypedData } from "viem/actions";
import { z } from "zod";

import { ledgerDomain, sealedCommitTypes, sealedHash } from "../../constants.js";
import { toShardError } from "../../errors/contract.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  assertChain,
  type SignErrorType,
} from "../../utils/client.js";
import { validate, zBytes32, zSmallUint, zUint } from "../../utils/schemas.js";
import { getParamsVersion } from "../models/getParamsVersion.js";
import { type CheckpointInput, type SealedCommit, zCheckpoint } from "./checkpoint.js";
import { computeCheckpointHash } from "./computeCheckpointHash.js";

export type SignSealedCommitParameters = DeploymentParameter &
  AccountParameter & {
    /** The checkpoint to seal; its model, shard, round, lane and owner make the commit's key. */
    checkpoint: CheckpointInput;
    /** 32 secret bytes that hide the checkpoint until reveal (default: random). Keep it for `reveal`. */
    salt?: Hex | undefined;
    /** Unix time after which the signature is void (default: the latest block's time + 1 hour). */
    deadline?: bigint | number | undefined;
    /**
     * The registry's parameter version for the checkpoint's round (default: read with
     * `getParamsVersion` just before signing). The commit is refused (`ParamsChanged`) if the
     * registrant schedules other parameters for the round before it lands.
     */
    paramsVersion?: number | undefined;
  };

export interface SignSealedCommitReturnType {
  /** The signed struct (with `parentRoot` and `paramsVersion`), ready for `submitCommit` and `expireSeal`. */
  commit: SealedCommit;
  /** EIP-712 signature of `commit` by the node key. */
  signature: Hex;
  /** The salt sealed in `commit.sealedHash`, needed to reveal. */
  salt: Hex;
  /** `computeCheckpointHash(checkpoint)`. */
  checkpointHash: Hex;
}

export type SignSealedCommitErrorType = SignErrorType;

/** Default validity of a signature, in seconds. */
const DEFAULT_VALIDITY = 3600n;

const schema = z.object({
  checkpoint: zCheckpoint,
  salt: zBytes32.optional(),
  deadline: zUint(64).optional(),
  paramsVersion: zSmallUint(32).optional(),
});

/** 32 bytes from the platform's cryptographic random source. */
const randomSalt = (): Hex => bytesToHex(globalThis.crypto.getRandomValues(new Uint8Array(32)));

/**
 * Seals a checkpoint and signs the `SealedCommit` (EIP-712, the ledger's domain) with the
 * client's account: the node key, which the owner authorized with `authorizeNode`. The commit
 * binds the checkpoint's owner and parent root (the reveal must name the same) and the round's
 * parameter version. Nothing is sent; anyone can relay the result with `submitCommit`.
 *
 * @example
 * const signed = await signSealedCommit(nodeClient, { deployment, checkpoint })
 * const { commitBlock, commitTime } = await submitCommit(relayer, { deployment, ...signed })
 * await reveal(relayer, { deployment, checkpoint, salt: signed.salt, commitBlock, commitTime })
 */
export async function signSealedCommit(
  client: AnyClient,
  parameters: SignSealedCommitParameters,
): Promise<SignSealedCommitReturnType> {
  const action = "signSealedCommit";
  const { deployment } = parameters;
  const input = validate(action, schema, {
    checkpoint: parameters.checkpoint,
    salt: parameters.salt,
    deadline: parameters.deadline,
    paramsVersion: parameters.paramsVersion,
  });
  const signer: Account | Address | undefined = parameters.account ?? client.account;
  if (signer === undefined) throw new AccountRequiredError(action);
  const { checkpoint } = input;
  const salt = input.salt ?? randomSalt();
  const checkpointHash = computeCheckpointHash({ checkpoint });
  const paramsVersion =
    input.paramsVersion ??
    (await getParamsVersion(client, { deployment, modelId: checkpoint.modelId, round: checkpoint.round }));
  try {
    await assertChain(client, deployment, action);
    const deadline = input.deadline ?? (await getBlock(client, { blockTag: "latest" })).timestamp + DEFAULT_VALIDITY;
    const commit: SealedCommit = {
      modelId: checkpoint.modelId,
      shard: checkpoint.shard,
      round: checkpoint.round,
      lane: checkpoint.lane,
      owner: checkpoint.owner,
      parentRoot: checkpoint.parentRoot,
      sealedHash: sealedHash(checkpointHash, salt),
      paramsVersion,
      deadline,
    };
    const signature = await signTypedData(client, {
      account: signer,
      domain: ledgerDomain(deployment.chainId, deployment.contracts.ledger),
      types: sealedCommitTypes,
      primaryType: "SealedCommit",
      message: commit,
    });
    return { commit, signature, salt, checkpointHash };
  } catch (error) {
    throw toShardError(error, action);
  }
}
