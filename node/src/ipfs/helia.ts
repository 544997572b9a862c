/**
 * The embedded content store: a Helia node with its blocks and pins on disk under one directory.
 *
 * Opened without a libp2p node it runs offline — no block brokers — so it only ever serves what
 * was added to it; `get` of anything else fails at once with `ContentNotFoundError`.
 *
 * Opened on a libp2p node (the `ShardHost`'s), it speaks IPFS bitswap (`/ipfs/bitswap/1.2.0`) on
 * it: it serves every block it holds to connected peers that ask, and `get` fetches missing
 * blocks from connected peers (dial them with `connectContentPeers`). Every fetched block is
 * checked against its CID before it is stored, so peers cannot substitute content; the fetched
 * file is pinned, so it is kept and served on in turn. There is no DHT or other routing: only
 * peers this node is connected to are asked.
 *
 * One process at a time may open a directory (the stores are not locked).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";

import { withBitswap } from "@helia/bitswap";
import { unixfs, type UnixFS } from "@helia/unixfs";
import { FsBlockstore } from "blockstore-fs";
import { FsDatastore } from "datastore-fs";
import { createHeliaLight, type Helia } from "helia";
import type { CID } from "multiformats/cid";

import type { Libp2pNode } from "../p2p/host.js";
import { ContentNotFoundError, ContentStoreError, ContentTooLargeError } from "./errors.js";
import { checkMaxBytes, type ContentStore, type GetContentOptions, parseCid, readBounded } from "./store.js";

/** The default of `HeliaStoreOptions.fetchTimeoutMs`. */
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;

/** The most bytes one bitswap message may carry, either way (a 1 MiB block and its framing fit). */
const MAX_BITSWAP_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface HeliaStoreOptions {
  /**
   * A started libp2p node (`ShardHost.libp2p`) to exchange blocks over with bitswap. Without it
   * the store is offline. The store does not stop it: stop the host after closing the store.
   */
  libp2p?: Libp2pNode | undefined;
  /**
   * Online only: how long `get` waits for the next block from peers before it fails with
   * `ContentNotFoundError` (retryable). Each block that arrives restarts the wait, so large files
   * are not cut short; bound the whole transfer with the `signal` given to `get`. Default 30 s.
   */
  fetchTimeoutMs?: number | undefined;
}

export class HeliaStore implements ContentStore {
  readonly kind = "helia";
  /** The directory holding `blocks/` and `datastore/`. */
  readonly directory: string;
  private readonly helia: Helia;
  private readonly fs: UnixFS;
  private readonly blockstore: FsBlockstore;
  private readonly datastore: FsDatastore;
  private readonly fetchTimeoutMs: number;
  private closed = false;
  /** Whether missing blocks are fetched from peers (a libp2p node was given). */
  readonly online: boolean;

  private constructor(
    directory: string,
    helia: Helia,
    blockstore: FsBlockstore,
    datastore: FsDatastore,
    options: HeliaStoreOptions,
  ) {
    this.directory = directory;
    this.helia = helia;
    this.fs = unixfs(helia);
    this.blockstore = blockstore;
    this.datastore = datastore;
    this.online = options.libp2p !== undefined;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  }

  /**
   * Opens (creating if needed) the store in `directory`; with `options.libp2p`, exchanging blocks
   * with that node's peers over bitswap.
   *
   * @throws ContentStoreError when the directory cannot be used, or `fetchTimeoutMs` is not a positive integer.
   *
   * @example
   * const store = await HeliaStore.open(path.join(dataDir, "ipfs"));
   * const cid = await store.add(bytes);
   * await store.close();
   *
   * @example Online: serves what it holds, fetches what it lacks from connected peers
   * const host = await createHost({ listen: ["/ip4/0.0.0.0/tcp/0"] });
   * const store = await HeliaStore.open(path.join(dataDir, "ipfs"), { libp2p: host.libp2p });
   * await connectContentPeers(host, ["/ip4/10.0.0.2/tcp/4101/p2p/12D3KooW..."]);
   * const bytes = await store.get(cid, { maxBytes: 64 * 1024 * 1024, signal: AbortSignal.timeout(120_000) });
   * await store.close();
   * await host.stop();
   */
  static async open(directory: string, options: HeliaStoreOptions = {}): Promise<HeliaStore> {
    const { fetchTimeoutMs } = options;
    if (fetchTimeoutMs !== undefined && (!Number.isSafeInteger(fetchTimeoutMs) || fetchTimeoutMs <= 0)) {
      throw new ContentStoreError(`fetchTimeoutMs must be a positive integer, got ${fetchTimeoutMs}.`);
    }
    const blockstore = new FsBlockstore(path.join(directory, "blocks"));
    const datastore = new FsDatastore(path.join(directory, "datastore"));
    try {
      await mkdir(directory, { recursive: true });
      await blockstore.open();
      await datastore.open();
      const helia = createHeliaLight({ blockstore, datastore });
      if (options.libp2p !== undefined) {
        // `withBitswap` builds its broker from the Helia node's components when the node starts,
        // reading `helia.libp2p`. The host owns the libp2p node: Helia neither starts nor stops it
        // (no `withLibp2p`), and stopping Helia only removes the bitswap handler from it.
        Object.defineProperty(helia, "libp2p", { value: options.libp2p, enumerable: true });
        withBitswap(helia as unknown as Parameters<typeof withBitswap>[0], {
          maxIncomingMessageSize: MAX_BITSWAP_MESSAGE_BYTES,
          maxOutgoingMessageSize: MAX_BITSWAP_MESSAGE_BYTES,
        });
      }
      await helia.start();
      return new HeliaStore(directory, helia, blockstore, datastore, options);
    } catch (cause) {
      await blockstore.close().catch(() => {});
      await datastore.close().catch(() => {});
      throw new ContentStoreError(`Could not open the IPFS store in ${directory}.`, {
        cause,
        details: cause instanceof Error ? cause.message : String(cause),
      });
    }
  }

  async add(bytes: Uint8Array): Promise<string> {
    this.assertOpen();
    try {
      const cid = await this.fs.addBytes(bytes);
      // Pinned so that a garbage collection (`helia.gc`) never drops a checkpoint.
      if (!(await this.helia.pins.isPinned(cid))) {
        for await (const _ of this.helia.pins.add(cid)) {
          // `pins.add` yields each block it pins; draining it completes the pin.
        }
      }
      return cid.toString();
    } catch (cause) {
      throw new ContentStoreError(`Could not add ${bytes.length} bytes to the IPFS store in ${this.directory}.`, {
        cause,
        details: cause instanceof Error ? cause.message : String(cause),
      });
    }
  }

  /**
   * The bytes of `cid`. Offline, a CID that is not in the store fails at once with
   * `ContentNotFoundError`. Online, missing blocks are fetched from connected peers (and kept,
   * pinned); a CID no peer provides fails with `ContentNotFoundError` (retryable) once no block
   * has arrived for `fetchTimeoutMs`, or once `signal` times out (an `AbortSignal.timeout`). Any
   * other abort of `signal` throws its reason. The declared size is checked against `maxBytes`
   * from the file's root block, before the rest is fetched.
   */
  async get(cid: string, { maxBytes, signal }: GetContentOptions): Promise<Uint8Array> {
    this.assertOpen();
    checkMaxBytes(maxBytes);
    const parsed = parseCid(cid);
    signal?.throwIfAborted();
    if (!this.online) {
      // `offline: true` makes a missing block fail with BlockNotFoundWhileOfflineError right away.
      return this.read(cid, parsed, maxBytes, { offline: true, signal }).catch((error: unknown) => {
        throw toStoreError(cid, error, signal);
      });
    }
    // Online: a stall timer, restarted by every block that arrives, bounds the search.
    const stall = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const restart = () => {
      clearTimeout(timer);
      timer = setTimeout(() => stall.abort(), this.fetchTimeoutMs);
    };
    restart();
    const combined = signal === undefined ? stall.signal : AbortSignal.any([signal, stall.signal]);
    const onProgress = (event: { type: string }) => {
      if (event.type === "blocks:get:blockstore:put") restart(); // a block arrived and was verified
    };
    try {
      const bytes = await this.read(cid, parsed, maxBytes, { offline: false, signal: combined, onProgress });
      await this.pin(parsed, { signal: combined });
      return bytes;
    } catch (error) {
      const timedOut = stall.signal.aborted || (signal?.aborted === true && isTimeout(signal.reason));
      if (timedOut && !(error instanceof ContentTooLargeError)) {
        const why = stall.signal.aborted
          ? `no connected peer provided a block of it within ${this.fetchTimeoutMs} ms`
          : "not retrieved from connected peers before the caller's deadline";
        throw new ContentNotFoundError(cid, { cause: error, details: why, retryable: true });
      }
      throw toStoreError(cid, error, signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the file `cid`, at most `maxBytes` of it, with Helia's block-fetching `options`. */
  private async read(
    cid: string,
    parsed: CID,
    maxBytes: number,
    options: { offline: boolean; signal: AbortSignal | undefined; onProgress?: (event: { type: string }) => void },
  ): Promise<Uint8Array> {
    const stat = await this.fs.stat(parsed, options);
    if (stat.type === "directory") {
      throw new ContentStoreError(`${cid} names a directory, not a file.`);
    }
    // The declared size rejects large content before reading it; the count while reading makes
    // the bound hold even if the declaration is wrong.
    if (stat.size > BigInt(maxBytes)) throw new ContentTooLargeError(cid, maxBytes, stat.size);
    return readBounded(cid, this.fs.cat(parsed, { ...options, length: maxBytes + 1 }), maxBytes);
  }

  /** Pins `cid` (all its blocks are local by now) unless it is pinned already. */
  private async pin(cid: CID, options: { signal: AbortSignal }): Promise<void> {
    if (await this.helia.pins.isPinned(cid, options)) return;
    try {
      for await (const _ of this.helia.pins.add(cid, { ...options, offline: true } as never)) {
        // Draining the generator completes the pin.
      }
    } catch (error) {
      // A concurrent `get` of the same CID pinned it first.
      if ((error as { name?: unknown }).name !== "AlreadyPinnedError") throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      // Online, this unregisters bitswap from the libp2p node (which may already be stopped).
      await this.helia.stop();
    } finally {
      await this.blockstore.close();
      await this.datastore.close();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ContentStoreError(`The IPFS store in ${this.directory} is closed.`);
  }
}

/**
 * Maps what Helia throws onto the store's errors. When the caller aborted, the abort reason is
 * thrown instead, whatever Helia made of it (an aborted `has` check can surface as a missing block).
 */
function toStoreError(cid: string, error: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason;
  if (error instanceof ContentStoreError) return error;
  const name = (error as { name?: unknown } | undefined)?.name;
  const details = error instanceof Error ? error.message : String(error);
  if (name === "BlockNotFoundWhileOfflineError") {
    return new ContentNotFoundError(cid, { cause: error, details: "it is not in the local store" });
  }
  if (name === "LoadBlockFailedError") {
    return new ContentNotFoundError(cid, { cause: error, details, retryable: true });
  }
  if (name === "NotUnixFSError" || name === "NotAFileError" || name === "NoContentError") {
    return new ContentStoreError(`${cid} does not name a UnixFS file.`, { cause: error, details });
  }
  return new ContentStoreError(`Could not read ${cid} from the IPFS store.`, { cause: error, details });
}

/** Whether an abort reason is a deadline (`AbortSignal.timeout`) rather than a cancellation. */
function isTimeout(reason: unknown): boolean {
  return (reason as { name?: unknown } | undefined)?.name === "TimeoutError";
}
