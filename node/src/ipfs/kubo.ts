/**
 * The content store over a Kubo daemon's RPC API (`http://127.0.0.1:5001` by default in Kubo).
 * Content is added pinned, with the same importer settings as the embedded store (CIDv1, raw
 * leaves, 1 MiB chunks), so both give the same CID for the same bytes — for files of up to as many
 * chunks as the daemon's `Import.UnixFSFileMaxLinks` (174 by default, 1024 in Helia).
 * Unlike the embedded store, `get` may fetch from the network, so it runs under a timeout.
 */
import { create, type KuboRPCClient } from "kubo-rpc-client";

import { ContentNotFoundError, ContentStoreError, IpfsUnavailableError } from "./errors.js";
import { checkMaxBytes, type ContentStore, type GetContentOptions, parseCid, readBounded } from "./store.js";

export interface KuboStoreOptions {
  /** How long the daemon may take to answer the connection check. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * How long an `add` may take, and a `get` may search for and fetch content (then
   * `ContentNotFoundError`, retryable). Default 120 s.
   */
  transferTimeoutMs?: number;
}

export class KuboStore implements ContentStore {
  readonly kind = "kubo";
  readonly url: string;
  private readonly client: KuboRPCClient;
  private readonly connectTimeoutMs: number;
  private readonly transferTimeoutMs: number;

  private constructor(url: string, client: KuboRPCClient, options: KuboStoreOptions) {
    this.url = url;
    this.client = client;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.transferTimeoutMs = options.transferTimeoutMs ?? 120_000;
  }

  /**
   * Connects to the daemon at `url` and checks that it answers.
   *
   * @throws IpfsUnavailableError (retryable) when it does not.
   *
   * @example
   * const store = await KuboStore.connect("http://127.0.0.1:5001");
   */
  static async connect(url: string, options: KuboStoreOptions = {}): Promise<KuboStore> {
    let client: KuboRPCClient;
    try {
      client = create({ url });
    } catch (cause) {
      throw new IpfsUnavailableError(url, { cause, details: `not a usable RPC URL: ${String(cause)}` });
    }
    const store = new KuboStore(url, client, options);
    const timeout = AbortSignal.timeout(store.connectTimeoutMs);
    try {
      await client.version({ signal: timeout });
    } catch (error) {
      throw store.toStoreError(undefined, error, timeout, store.connectTimeoutMs);
    }
    return store;
  }

  async add(bytes: Uint8Array): Promise<string> {
    const timeout = AbortSignal.timeout(this.transferTimeoutMs);
    try {
      const { cid } = await this.client.add(bytes, {
        cidVersion: 1,
        rawLeaves: true,
        chunker: "size-1048576",
        pin: true,
        signal: timeout,
      });
      return cid.toV1().toString();
    } catch (error) {
      throw this.toStoreError(undefined, error, timeout, this.transferTimeoutMs);
    }
  }

  async get(cid: string, { maxBytes, signal }: GetContentOptions): Promise<Uint8Array> {
    checkMaxBytes(maxBytes);
    const parsed = parseCid(cid);
    const timeout = AbortSignal.timeout(this.transferTimeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    try {
      // `length` makes the daemon stop one byte past the limit, so too-large content is detected
      // without transferring it.
      const chunks = this.client.cat(parsed, { length: maxBytes + 1, signal: combined });
      return await readBounded(cid, chunks, maxBytes);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.toStoreError(cid, error, timeout, this.transferTimeoutMs);
    }
  }

  async close(): Promise<void> {
    // The RPC client holds no connection of its own between requests.
  }

  /** Maps what the RPC client throws onto the store's errors. */
  private toStoreError(cid: string | undefined, error: unknown, timeout: AbortSignal, timeoutMs: number): Error {
    if (error instanceof ContentStoreError) return error;
    const details = error instanceof Error ? error.message : String(error);
    if (timeout.aborted) {
      if (cid !== undefined) {
        return new ContentNotFoundError(cid, {
          cause: error,
          details: `not retrieved within ${timeoutMs} ms`,
          retryable: true,
        });
      }
      return new IpfsUnavailableError(this.url, { cause: error, details: `no answer within ${timeoutMs} ms` });
    }
    const response = error instanceof Error ? (error as { response?: { status?: unknown } }).response : undefined;
    if (error instanceof Error && error.name === "HTTPError" && typeof response?.status === "number") {
      // Kubo answers command failures with 500 and a message; anything else means the URL is not
      // (or not only) a Kubo RPC API: a proxy, a gateway, a wrong path.
      if (response.status === 500) {
        return new ContentStoreError(`The IPFS daemon at ${this.url} refused the request.`, { cause: error, details });
      }
      return new IpfsUnavailableError(this.url, { cause: error, details: `HTTP ${response.status} ${details}`.trim() });
    }
    return new IpfsUnavailableError(this.url, { cause: error, details: describeCause(error) });
  }
}

/** `fetch failed` says little; the reason (ECONNREFUSED, ...) is in its cause chain. */
function describeCause(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 4; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    parts.push(code ? `${e.message} (${code})` : e.message);
  }
  return parts.join(": ") || String(error);
}
