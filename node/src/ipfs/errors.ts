import { NodeError, type NodeErrorParameters } from "../errors.js";

/** Something went wrong storing or fetching content; the base of the errors below. */
export class ContentStoreError extends NodeError {
  override name = "ContentStoreError";
}

/** A string that should be a CID (or an `ipfs://` URI) is not one. */
export class InvalidCidError extends ContentStoreError {
  override name = "InvalidCidError";
  readonly value: string;
  constructor(value: string, parameters: NodeErrorParameters = {}) {
    super(`${JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value)} is not a valid CID.`, parameters);
    this.value = value;
  }
}

/**
 * The content is not available: not in the local store (embedded node, which never fetches from
 * the network), or not retrieved before the timeout (Kubo, retryable).
 */
export class ContentNotFoundError extends ContentStoreError {
  override name = "ContentNotFoundError";
  readonly cid: string;
  constructor(cid: string, parameters: NodeErrorParameters = {}) {
    super(`Content ${cid} is not available.`, parameters);
    this.cid = cid;
  }
}

/** The content is larger than the caller allowed; nothing beyond the limit was kept. */
export class ContentTooLargeError extends ContentStoreError {
  override name = "ContentTooLargeError";
  readonly cid: string;
  readonly maxBytes: number;
  constructor(cid: string, maxBytes: number, size?: bigint) {
    super(`Content ${cid} is larger than the limit of ${maxBytes} bytes.`, {
      details: size === undefined ? undefined : `it is ${size} bytes`,
    });
    this.cid = cid;
    this.maxBytes = maxBytes;
  }
}

/** The IPFS daemon cannot be reached, or does not answer as a Kubo RPC API. Retryable. */
export class IpfsUnavailableError extends ContentStoreError {
  override name = "IpfsUnavailableError";
  readonly url: string;
  constructor(url: string, parameters: Omit<NodeErrorParameters, "retryable"> = {}) {
    super(`The IPFS daemon at ${url} is not available.`, { ...parameters, retryable: true });
    this.url = url;
  }
}

/** A peer to fetch content from could not be dialled. Retryable: it may be starting. */
export class ContentPeerDialError extends ContentStoreError {
  override name = "ContentPeerDialError";
  /** The multiaddrs that failed, in the order given. */
  readonly multiaddrs: string[];
  constructor(multiaddrs: string[], parameters: Omit<NodeErrorParameters, "retryable"> = {}) {
    super(`Could not connect to the content peer${multiaddrs.length === 1 ? "" : "s"} ${multiaddrs.join(", ")}.`, {
      ...parameters,
      retryable: true,
    });
    this.multiaddrs = multiaddrs;
  }
}
