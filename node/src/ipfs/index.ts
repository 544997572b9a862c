/**
 * Content storage for checkpoints: `openContentStore` picks the Kubo daemon when a URL is
 * configured and the embedded Helia store otherwise.
 */
import path from "node:path";

import { HeliaStore } from "./helia.js";
import { KuboStore, type KuboStoreOptions } from "./kubo.js";
import type { ContentStore } from "./store.js";

export * from "./errors.js";
export { HeliaStore } from "./helia.js";
export { KuboStore, type KuboStoreOptions } from "./kubo.js";
export { type ContentStore, type GetContentOptions, ipfsUri, parseCid, parseIpfsUri } from "./store.js";

export interface OpenContentStoreParameters {
  /** The node's data directory; the embedded store lives in `<dataDir>/ipfs`. */
  dataDir: string;
  /** A Kubo RPC URL (e.g. `http://127.0.0.1:5001`); when set, the daemon is used instead. */
  kuboUrl?: string | undefined;
  kubo?: KuboStoreOptions | undefined;
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
 */
export async function openContentStore(parameters: OpenContentStoreParameters): Promise<ContentStore> {
  if (parameters.kuboUrl !== undefined) return KuboStore.connect(parameters.kuboUrl, parameters.kubo);
  return HeliaStore.open(path.join(parameters.dataDir, "ipfs"));
}
