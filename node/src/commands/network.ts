import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";

import { keccak256 } from "viem";

import type { NodeConfig } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { type ContentStore, connectContentPeers, openContentStore } from "../ipfs/index.js";
import { parseIpfsUri } from "../ipfs/store.js";
import { type ModelSpec, canonicalSpecBytes, specDigest, zModelSpec } from "../ml/spec.js";
import type { Output } from "../output.js";
import { type ShardHost, createHost, loadOrCreatePeerKey } from "../p2p/host.js";

/**
 * What the commands that join the network share (`train`, `verify`, `serve`): the libp2p host and
 * the content store opened on it, and the model spec checked against the registry.
 */

export class ModelSpecError extends NodeError {
  override name = "ModelSpecError";
}

/** The node's host and content store; `close` closes the store, then stops the host. */
export interface NodeNetwork {
  host: ShardHost;
  store: ContentStore;
  close(): Promise<void>;
}

/**
 * Creates the node's libp2p host (its key in `<dataDir>/peer.key`) and opens the content store on
 * it, so that the embedded store serves what it holds and fetches what it lacks over bitswap; then
 * dials the configured content peers (`ipfs.peers`). A peer that cannot be reached is a warning:
 * the others, and `--spec`, may still do. If the store cannot open, the host is stopped.
 */
export async function openNodeNetwork(
  config: Pick<NodeConfig, "dataDir" | "listen" | "ipfs">,
  out: Output,
  options: { fetchTimeoutMs?: number } = {},
): Promise<NodeNetwork> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const host = await createHost({
    listen: config.listen,
    privateKey: await loadOrCreatePeerKey(path.join(config.dataDir, "peer.key")),
  });
  const store = await openContentStore({
    dataDir: config.dataDir,
    kuboUrl: config.ipfs.kuboUrl,
    libp2p: host.libp2p,
    ...(options.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: options.fetchTimeoutMs }),
  }).catch(async (err: unknown) => {
    await host.stop().catch(() => {});
    throw err;
  });
  const contentPeers = config.ipfs.peers ?? [];
  if (config.ipfs.kuboUrl === undefined && contentPeers.length > 0) {
    await connectContentPeers(host, contentPeers).catch((err: unknown) =>
      out.log(`warning: ${err instanceof NodeError ? `${err.shortMessage} ${err.details ?? ""}`.trim() : String(err)}`),
    );
  }
  return {
    host,
    store,
    close: async () => {
      await store.close().catch(() => {});
      await host.stop().catch(() => {});
    },
  };
}

/** The registered spec (`fetchSpec`), which must split the model into the registry's shard count. */
export async function loadModelSpec(
  model: { specURI: string; specDigest: `0x${string}`; shardCount: number },
  store: ContentStore,
  file: string | undefined,
): Promise<ModelSpec> {
  const spec = await fetchSpec(model.specURI, model.specDigest, store, file);
  if (spec.shards.length !== model.shardCount)
    throw new ModelSpecError(
      `The spec splits the model into ${spec.shards.length} shards, the registry says ${model.shardCount}.`,
    );
  return spec;
}

/** The spec the model was registered with: from IPFS, or a local file, always checked against the digest. */
export async function fetchSpec(
  uri: string,
  digest: `0x${string}`,
  store: ContentStore,
  file: string | undefined,
): Promise<ModelSpec> {
  let bytes: Uint8Array | undefined;
  let why = "";
  if (file) {
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new ModelSpecError(`Cannot read the model spec file ${file}.`, {
        cause: err,
        details: (err as Error).message,
      });
    }
  } else {
    try {
      bytes = await store.get(parseIpfsUri(uri), { maxBytes: 1024 * 1024, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      why = err instanceof NodeError ? err.shortMessage : String(err);
    }
  }
  if (!bytes)
    throw new ModelSpecError(`The model spec ${uri} is not available.`, {
      details: `${why} Pass a copy with --spec <file> (\`shard-node spec get\` fetches one); it is checked against the on-chain digest.`,
    });
  const spec = checkSpecBytes(bytes, digest);
  if (file) await store.add(canonicalSpecBytes(spec)); // keep (and serve) the registered document
  return spec;
}

/**
 * The spec document in `bytes`, if it is a valid spec whose digest is `digest`: the keccak256 of
 * its canonical form (what `model register` registers) or of these very bytes.
 *
 * @throws ModelSpecError when it is not a spec, or another one.
 */
export function checkSpecBytes(bytes: Uint8Array, digest: `0x${string}`): ModelSpec {
  let spec: ModelSpec;
  try {
    spec = zModelSpec.parse(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (err) {
    throw new ModelSpecError("The model spec is not a valid spec document.", {
      cause: err,
      details: (err as Error).message.slice(0, 800),
    });
  }
  if (specDigest(spec) !== digest && keccak256(bytes) !== digest)
    throw new ModelSpecError("The model spec does not match the digest the model was registered with.", {
      details: `on-chain ${digest}, this document ${specDigest(spec)}`,
    });
  return spec;
}
