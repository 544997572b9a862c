/**
 * The embedded content store: a Helia node with its blocks and pins on disk under one directory.
 * It runs offline — no libp2p, no block brokers — so it only ever serves what was added to it;
 * `get` of anything else fails at once with `ContentNotFoundError` instead of searching a network.
 * One process at a time may open a directory (the stores are not locked).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";

import { unixfs, type UnixFS } from "@helia/unixfs";
import { FsBlockstore } from "blockstore-fs";
import { FsDatastore } from "datastore-fs";
import { createHeliaLight, type Helia } from "helia";

import { ContentNotFoundError, ContentStoreError, ContentTooLargeError } from "./errors.js";
import { checkMaxBytes, type ContentStore, type GetContentOptions, parseCid, readBounded } from "./store.js";

export class HeliaStore implements ContentStore {
  readonly kind = "helia";
  /** The directory holding `blocks/` and `datastore/`. */
  readonly directory: string;
  private readonly helia: Helia;
  private readonly fs: UnixFS;
  private readonly blockstore: FsBlockstore;
  private readonly datastore: FsDatastore;
  private closed = false;

  private constructor(directory: string, helia: Helia, blockstore: FsBlockstore, datastore: FsDatastore) {
    this.directory = directory;
    this.helia = helia;
    this.fs = unixfs(helia);
    this.blockstore = blockstore;
    this.datastore = datastore;
  }

  /**
   * Opens (creating if needed) the store in `directory`.
   *
   * @throws ContentStoreError when the directory cannot be used.
   *
   * @example
   * const store = await HeliaStore.open(path.join(dataDir, "ipfs"));
   * const cid = await store.add(bytes);
   * await store.close();
   */
  static async open(directory: string): Promise<HeliaStore> {
    const blockstore = new FsBlockstore(path.join(directory, "blocks"));
    const datastore = new FsDatastore(path.join(directory, "datastore"));
    try {
      await mkdir(directory, { recursive: true });
      await blockstore.open();
      await datastore.open();
      const helia = createHeliaLight({ blockstore, datastore });
      await helia.start();
      return new HeliaStore(directory, helia, blockstore, datastore);
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

  async get(cid: string, { maxBytes, signal }: GetContentOptions): Promise<Uint8Array> {
    this.assertOpen();
    checkMaxBytes(maxBytes);
    const parsed = parseCid(cid);
    // `offline: true` makes a missing block fail with BlockNotFoundWhileOfflineError right away.
    // (Without it, Helia light with no block brokers throws InvalidConfigurationError; still prompt.)
    const options = { offline: true, signal };
    try {
      const stat = await this.fs.stat(parsed, options);
      if (stat.type === "directory") {
        throw new ContentStoreError(`${cid} names a directory, not a file.`);
      }
      // The declared size rejects large content before reading it; the count while reading makes
      // the bound hold even if the declaration is wrong.
      if (stat.size > BigInt(maxBytes)) throw new ContentTooLargeError(cid, maxBytes, stat.size);
      return await readBounded(cid, this.fs.cat(parsed, { ...options, length: maxBytes + 1 }), maxBytes);
    } catch (error) {
      throw toStoreError(cid, error, signal);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.helia.stop();
    await this.blockstore.close();
    await this.datastore.close();
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
  if (name === "NotUnixFSError" || name === "NotAFileError" || name === "NoContentError") {
    return new ContentStoreError(`${cid} does not name a UnixFS file.`, { cause: error, details });
  }
  return new ContentStoreError(`Could not read ${cid} from the IPFS store.`, { cause: error, details });
}
