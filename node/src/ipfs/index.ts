/**
 * Content storage for checkpoints: `openContentStore` picks the Kubo daemon when a URL is
 * configured and the embedded Helia store otherwise — offline, or exchanging blocks with the
 * peers of a libp2p host (`connectContentPeers`).
 */
import path from "node:path";

import type { Libp2pNode } from "../p2p/host.js";
import { HeliaStore } from "./helia.js";
import { KuboStore, type KuboStoreOptions } from "./kubo.js";
import type { ContentStore } from "./store.js";

export * from "./errors.js";
export { DEFAULT_FETCH_TIMEOUT_MS, HeliaStore, type HeliaStoreOptions } from "./helia.js";
export { type ConnectContentPeersOptions, DEFAULT_CONTENT_DIAL_TIMEOUT_MS, connectContentPeers } from "./peers.js";
export { KuboStore, type KuboStoreOptions } from "./kubo.js";
export { type ContentStore, type GetContentOptions, ipfsUri, parseCid, parseIpfsUri } from "./store.js";

export interface OpenContentStoreParameters {
  /** The node's data directory; the embedded store lives in `<dataDir>/ipfs`. */
  dataDir: string;
  /** A Kubo RPC URL (e.g. `http://127.0.0.1:5001`); when set, the daemon is used instead. */
  kuboUrl?: string | undefined;
  kubo?: KuboStoreOptions | undefined;
  /**
   * The host's libp2p node (`ShardHost.libp2p`): the embedded store then serves its content to,
   * and fetches missing content from, the host's connected peers over bitswap. Without it the
   * embedded store is offline. Ignored with `kuboUrl` (the daemon has its own network).
   */
  libp2p?: Libp2pNode | undefined;
  /** Online embedded store: how long `get` waits for the next block from peers. Default 30 s. */
  fetchTimeoutMs?: number | undefined;
}

/**
 * Opens the node's content store.
 *
 * @throws IpfsUnavailableError (retryable) when `kuboUrl` is set and the daemon does not answer.
 * @throws ContentStoreError when the embedded store cannot be opened.
 *
 * @example
 * const store = await openContentStore({ dataDir: "./data" });
 * const uri = ipfsUri(await store.add(checkpointBytes));
 *
 * @example Serving and fetching over the host's connections; close the store before the host
 * const host = await createHost({ listen: ["/ip4/0.0.0.0/tcp/0"] });
 * const store = await openContentStore({ dataDir: "./data", libp2p: host.libp2p });
 * await connectContentPeers(host, config.ipfs.peers);
 */
export async function openContentStore(parameters: OpenContentStoreParameters): Promise<ContentStore> {
  if (parameters.kuboUrl !== undefined) return KuboStore.connect(parameters.kuboUrl, parameters.kubo);
  return HeliaStore.open(path.join(parameters.dataDir, "ipfs"), {
    libp2p: parameters.libp2p,
    fetchTimeoutMs: parameters.fetchTimeoutMs,
  });
}
