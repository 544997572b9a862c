import { readFile, stat } from "node:fs/promises";

import type { Hex } from "viem";
import { type LineageNode, getLineage } from "shard-protocol/sdk";

import type { ShardPublicClient } from "../chain.js";
import { NodeError } from "../errors.js";
import { type ContentStore, parseIpfsUri } from "../ipfs/index.js";
import { stageLayout } from "../ml/model.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeCheckpoint } from "../swarm/checkpoint.js";
import { CheckpointRootMismatchError, NoFinalizedCheckpointError, ServeWeightsError } from "./errors.js";

/** Default time to fetch a checkpoint from the content store. */
export const DEFAULT_CHECKPOINT_FETCH_TIMEOUT_MS = 120_000;

export interface LoadServeWeightsParameters {
  /** A public client (reads the ledger's lineage). */
  client: ShardPublicClient;
  modelId: bigint;
  shard: number;
  spec: ModelSpec;
  /** The spec digest registered on-chain (checked against the checkpoint's metadata). */
  specDigest: Hex;
  /** Where checkpoints are fetched from (needed unless `file` is given). */
  store?: ContentStore | undefined;
  /** A local safetensors checkpoint instead of the latest finalized one. */
  file?: string | undefined;
  /** With `file`: skip the check that its root is a checkpoint of this shard on-chain. */
  unverified?: boolean | undefined;
  /** Only consider checkpoints of this lane (default: every lane). */
  lane?: number | undefined;
  fetchTimeoutMs?: number | undefined;
}

export interface ServeWeights {
  state: StageState;
  /** Merkle root of the checkpoint's tensors. */
  root: Hex;
  /** `chain`: the latest finalized checkpoint, fetched; `file`: a local file. */
  source: "chain" | "file";
  /** The on-chain checkpoint it matched (absent for `--unverified` files). */
  checkpoint?: Pick<LineageNode, "commitId" | "round" | "lane" | "status" | "checkpointURI" | "loss"> | undefined;
}

/**
 * The weights a shard serves, checked against the chain.
 *
 * - Default: the shard's latest finalized checkpoint (highest round; `getLineage`), fetched from
 *   the content store by its `checkpointURI` and accepted only if its Merkle root is the committed
 *   root (`CheckpointRootMismatchError` otherwise; `NoFinalizedCheckpointError` if there is none).
 * - `file`: a local safetensors checkpoint whose root must be a revealed, not rejected checkpoint
 *   of this shard (`CheckpointRootMismatchError` otherwise), or anything that decodes for this
 *   shard and spec with `unverified`.
 *
 * Either way the file must hold exactly this shard's tensors and name this model, shard and spec
 * (`CheckpointMismatchError`).
 */
export async function loadServeWeights(parameters: LoadServeWeightsParameters): Promise<ServeWeights> {
  const { client, modelId, shard, spec, specDigest } = parameters;
  const layout = stageLayout(spec, shard);
  const maxBytes = layout.parameterCount * 3 * 4 + 1024 * 1024;
  // Serving reads weights only: the file's round is not checked against the chain's here (the root is).
  const expect = {
    modelId: modelId.toString(),
    specDigest,
    stepsPerRound: spec.training.stepsPerRound,
    round: undefined,
  };
  const lineage = () =>
    getLineage(client, {
      deployment: client.deployment,
      modelId,
      shard,
      ...(parameters.lane !== undefined ? { lane: parameters.lane } : {}),
    });
  const summary = (n: LineageNode): ServeWeights["checkpoint"] => ({
    commitId: n.commitId,
    round: n.round,
    lane: n.lane,
    status: n.status,
    checkpointURI: n.checkpointURI,
    loss: n.loss,
  });

  if (parameters.file !== undefined) {
    const file = parameters.file;
    let bytes: Uint8Array;
    try {
      const size = (await stat(file)).size;
      if (size > maxBytes)
        throw new ServeWeightsError(`The checkpoint ${file} is ${size} bytes, more than shard ${shard} can hold.`);
      bytes = await readFile(file);
    } catch (error) {
      if (error instanceof NodeError) throw error;
      throw new ServeWeightsError(`Cannot read the checkpoint ${file}.`, {
        cause: error,
        details: (error as Error).message,
      });
    }
    const { state, root } = decodeCheckpoint(layout, bytes, expect);
    if (parameters.unverified) return { state, root, source: "file" };
    const match = (await lineage()).find((n) => n.root === root);
    if (!match || match.status === "rejected" || match.status === "none" || match.status === "sealed")
      throw new CheckpointRootMismatchError(
        `The checkpoint ${file} is not a checkpoint of shard ${shard} of model ${modelId} on-chain.`,
        {
          details: `its Merkle root ${root} ${match ? `was ${match.status}` : "was never revealed for this shard"}; pass --unverified to serve it anyway (local experiments)`,
        },
      );
    return { state, root, source: "file", checkpoint: summary(match) };
  }

  const finalized = (await lineage()).filter((n) => n.status === "finalized");
  const head = finalized.reduce<LineageNode | undefined>((a, n) => (!a || n.round > a.round ? n : a), undefined);
  if (!head)
    throw new NoFinalizedCheckpointError(`Shard ${shard} of model ${modelId} has no finalized checkpoint yet.`, {
      details: "serve a local file with --checkpoint <file.safetensors> (and --unverified if it is not on-chain)",
    });
  if (!parameters.store) throw new ServeWeightsError("A content store is needed to fetch the checkpoint.");
  const bytes = await parameters.store.get(parseIpfsUri(head.checkpointURI), {
    maxBytes,
    signal: AbortSignal.timeout(parameters.fetchTimeoutMs ?? DEFAULT_CHECKPOINT_FETCH_TIMEOUT_MS),
  });
  const { state, root } = decodeCheckpoint(layout, bytes, expect);
  if (root !== head.root)
    throw new CheckpointRootMismatchError(
      `The checkpoint fetched for shard ${shard} (round ${head.round}) does not match its committed root.`,
      { details: `committed ${head.root}, fetched content ${root} (${head.checkpointURI})` },
    );
  return { state, root, source: "chain", checkpoint: summary(head) };
}
