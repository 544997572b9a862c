/** The content store the node keeps checkpoints in, and helpers shared by its implementations. */
import { CID } from "multiformats/cid";

import { ContentStoreError, ContentTooLargeError, InvalidCidError } from "./errors.js";

/** Options for `ContentStore.get`. */
export interface GetContentOptions {
  /** The most bytes to accept; larger content fails with `ContentTooLargeError`. */
  maxBytes: number;
  signal?: AbortSignal | undefined;
}

/**
 * Content-addressed storage of byte strings (UnixFS files). `add` returns the CIDv1 (base32) of
 * the bytes; adding the same bytes to either implementation gives the same CID (1 MiB chunks, raw
 * leaves, balanced layout).
 */
export interface ContentStore {
  readonly kind: "helia" | "kubo";
  /** Stores `bytes` (pinned) and returns their CIDv1 string. */
  add(bytes: Uint8Array): Promise<string>;
  /**
   * The bytes of `cid`, at most `maxBytes` of them.
   *
   * @throws InvalidCidError, ContentNotFoundError, ContentTooLargeError, IpfsUnavailableError
   */
  get(cid: string, options: GetContentOptions): Promise<Uint8Array>;
  /** Releases the store; safe to call twice. */
  close(): Promise<void>;
}

/** Parses a CID string. @throws InvalidCidError */
export function parseCid(value: string): CID {
  try {
    return CID.parse(value);
  } catch (cause) {
    throw new InvalidCidError(value, { cause, details: cause instanceof Error ? cause.message : String(cause) });
  }
}

/** `ipfs://<cid>` for a CID string. @throws InvalidCidError */
export function ipfsUri(cid: string): string {
  return `ipfs://${parseCid(cid).toString()}`;
}

/**
 * The CID string of an `ipfs://<cid>` URI (no path, no query).
 *
 * @throws InvalidCidError when `uri` is not such a URI.
 *
 * @example
 * parseIpfsUri("ipfs://bafkreiadsbmmn4waznesyuz3bjgrj33xzqhxrk6mz3ksq7meugrachh3qe")
 */
export function parseIpfsUri(uri: string): string {
  const match = /^ipfs:\/\/([^/?#]+)$/.exec(uri);
  if (match === null) {
    throw new InvalidCidError(uri, { details: "expected an ipfs://<cid> URI with no path, query or fragment" });
  }
  return parseCid(match[1]!).toString();
}

/** Checks `maxBytes` given to `get`. */
export function checkMaxBytes(maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new ContentStoreError(`maxBytes must be a non-negative integer, got ${maxBytes}.`);
  }
}

/**
 * Collects a stream of chunks into one array, failing with `ContentTooLargeError` as soon as it
 * passes `maxBytes` (leaving the loop closes the stream).
 */
export async function readBounded(
  cid: string,
  chunks: AsyncIterable<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of chunks) {
    total += chunk.length;
    if (total > maxBytes) throw new ContentTooLargeError(cid, maxBytes);
    parts.push(chunk);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
