import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";

import { keccak256, type Hex } from "viem";
import { z } from "zod";

import { connect } from "../chain.js";
import { DEFAULTS } from "../config/defaults.js";
import { globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";
import { type ContentStore, openContentStore, parseIpfsUri } from "../ipfs/index.js";
import type { Output } from "../output.js";
import { parseOptions, readModel } from "./common.js";
import { ModelSpecError, checkSpecBytes, openNodeNetwork } from "./network.js";
import { chainConfigOf, zModelIdText } from "./registrant.js";

/** `spec get [modelId]`: the model's registered spec, from IPFS, checked against the on-chain digest. */

/** The largest spec document accepted. */
const MAX_SPEC_BYTES = 1024 * 1024;

export const specGetOptionsSchema = globalOptionsSchema.extend({
  /** The model (default: the configured one, `--model` / SHARD_NODE_MODEL_ID / `modelId`). */
  modelId: zModelIdText.optional(),
  out: z.string().min(1).optional(),
  timeout: z.coerce
    .number({ error: "must be a number of seconds" })
    .positive("must be a positive number of seconds")
    .max(3_600)
    .default(DEFAULTS.spec.timeout),
  deployment: z.string().optional(),
  kuboUrl: z.string().optional(),
  ipfsPeer: z.array(z.string()).optional(),
  listen: z.array(z.string()).optional(),
});

export type SpecGetOptions = z.input<typeof specGetOptionsSchema>;

export interface SpecGetResult {
  chainId: number;
  modelId: bigint;
  name: string;
  specURI: string;
  specDigest: Hex;
  /** keccak256 of the bytes written (equal to `specDigest` for a spec registered by `model register`). */
  bytesDigest: Hex;
  bytes: number;
  /** The file written, absolute. */
  file: string;
}

/**
 * Fetches the spec a model was registered with by its on-chain `ipfs://` URI, from the embedded
 * IPFS node (its own blocks, and peers given with `--ipfs-peer`) or Kubo, checks it against the
 * on-chain digest and writes the exact bytes to `--out` (default `model-<id>.spec.json`): the file
 * `train`, `verify` and `serve` take as `--spec`. Needs no key.
 *
 * @example
 * await specGet({ modelId: "1", out: "spec.json", ipfsPeer: ["/ip4/10.0.0.2/tcp/4101/p2p/12D3Koo…"] }, out)
 */
export async function specGet(options: SpecGetOptions, out: Output): Promise<SpecGetResult> {
  const o = parseOptions("spec get", specGetOptionsSchema, options, ["modelId"]);
  const config = await chainConfigOf(o);
  const modelId = o.modelId ?? config.modelId;
  if (modelId === undefined) {
    throw new UsageError("No model given.", [
      { path: "<modelId>", message: "give it, or set --model, SHARD_NODE_MODEL_ID or modelId in the config" },
    ]);
  }
  const connection = await connect(config);
  try {
    const model = await readModel(connection, modelId);
    const cid = parseIpfsUri(model.specURI);
    const file = path.resolve(o.out ?? `model-${modelId}.spec.json`);

    // Peers to ask: an embedded node on a libp2p host (bitswap); otherwise only local blocks or Kubo.
    const peers = config.ipfs.peers ?? [];
    const online = config.ipfs.kuboUrl === undefined && peers.length > 0;
    let store: ContentStore;
    let close: () => Promise<void>;
    if (online) {
      const network = await openNodeNetwork(config, out, { fetchTimeoutMs: o.timeout * 1000 });
      store = network.store;
      close = network.close;
    } else {
      store = await openContentStore({ dataDir: config.dataDir, kuboUrl: config.ipfs.kuboUrl });
      close = () => store.close();
    }
    let bytes: Uint8Array;
    try {
      out.log(`fetching ${model.specURI} (${store.kind}${online ? `, ${peers.length} peer(s)` : ""})…`);
      bytes = await store.get(cid, { maxBytes: MAX_SPEC_BYTES, signal: AbortSignal.timeout(o.timeout * 1000) });
    } catch (error) {
      const remote = online || config.ipfs.kuboUrl !== undefined;
      throw new ModelSpecError(`The model spec ${model.specURI} is not available.`, {
        cause: error,
        // Peers or a daemon may have it later; an embedded node without peers never will.
        retryable: remote && error instanceof NodeError && error.retryable,
        details:
          `${error instanceof NodeError ? error.shortMessage : String(error)} ` +
          (remote
            ? "No peer had it in time: ask the registrant or a trainer of the model for a peer that has it."
            : "The embedded IPFS node has no peers: give one that has the spec with --ipfs-peer <multiaddr> (a trainer's or the registrant's node), or a Kubo daemon with --kubo-url."),
      });
    } finally {
      await close();
    }

    const spec = checkSpecBytes(bytes, model.specDigest);
    if (spec.shards.length !== model.shardCount) {
      throw new ModelSpecError(
        `The spec splits the model into ${spec.shards.length} shards, the registry says ${model.shardCount}.`,
      );
    }
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, bytes);
    await rename(`${file}.tmp`, file);
    out.print(`model ${modelId} spec "${spec.name}" written to ${path.relative(process.cwd(), file) || file}`);
    out.print(`  ${model.specURI}, digest ${model.specDigest} (checked)`);
    return {
      chainId: connection.chainId,
      modelId,
      name: spec.name,
      specURI: model.specURI,
      specDigest: model.specDigest,
      bytesDigest: keccak256(bytes),
      bytes: bytes.length,
      file,
    };
  } finally {
    await connection.close();
  }
}
