import { bytesToHex, hexToBytes, isHex, type Hex } from "viem";

/** How a seat holder can be reached: its libp2p peer id and the multiaddrs it listens on. */
export type SeatPeer = { peerId: string; addrs: string[] };

/** Longest peer record a seat takes, in bytes (the lane directory's `MAX_PEER_RECORD`). */
export const MAX_SEAT_PEER_BYTES = 512;

/** Longest peer id accepted (a libp2p peer id in base58 or a CID is well under it). */
const MAX_PEER_ID = 128;
/** Longest multiaddr accepted. */
const MAX_ADDR = 256;
/** A peer id: base58 / base32 / base36 characters only. */
const PEER_ID = /^[A-Za-z0-9]+$/;
/** A multiaddr: starts with `/`, printable ASCII without spaces. */
const MULTIADDR = /^\/[\x21-\x7e]*$/;

const validPeerId = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_PEER_ID && PEER_ID.test(v);
const validAddr = (v: unknown): v is string => typeof v === "string" && v.length <= MAX_ADDR && MULTIADDR.test(v);

/**
 * The peer record of a seat claim: UTF-8 JSON `{"p":peerId,"a":[...addrs]}`. Throws `TypeError`
 * when the peer id or an address is malformed or the record exceeds `MAX_SEAT_PEER_BYTES` (pass
 * fewer addresses).
 *
 * @example
 * const peer = encodeSeatPeer({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
 */
export function encodeSeatPeer(peer: SeatPeer): Hex {
  if (!validPeerId(peer.peerId)) {
    throw new TypeError(
      `seat peer id must be 1 to ${MAX_PEER_ID} letters and digits; got ${JSON.stringify(peer.peerId)}`,
    );
  }
  if (!Array.isArray(peer.addrs)) throw new TypeError("seat peer addrs must be an array of multiaddr strings");
  for (const addr of peer.addrs) {
    if (!validAddr(addr)) {
      throw new TypeError(
        `seat peer address ${JSON.stringify(addr)} is not a multiaddr of at most ${MAX_ADDR} characters`,
      );
    }
  }
  const bytes = new TextEncoder().encode(JSON.stringify({ p: peer.peerId, a: peer.addrs }));
  if (bytes.length > MAX_SEAT_PEER_BYTES) {
    throw new TypeError(
      `seat peer record is ${bytes.length} bytes; at most ${MAX_SEAT_PEER_BYTES} fit: announce fewer addresses`,
    );
  }
  return bytesToHex(bytes);
}

/**
 * The peer record of a `SeatClaimed` log, or `undefined` when it is not one `encodeSeatPeer`
 * could have written (wrong encoding, not JSON, wrong shape, malformed peer id or address, too
 * long). The record is whatever the claimant sent, so nothing else about it is trusted: fields
 * other than `p` and `a` are dropped.
 */
export function decodeSeatPeer(data: Hex | Uint8Array): SeatPeer | undefined {
  let bytes: Uint8Array;
  if (data instanceof Uint8Array) bytes = data;
  else if (typeof data === "string" && isHex(data, { strict: true }) && data.length % 2 === 0) bytes = hexToBytes(data);
  else return undefined;
  if (bytes.length === 0 || bytes.length > MAX_SEAT_PEER_BYTES) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  const { p, a } = json as { p?: unknown; a?: unknown };
  if (!validPeerId(p) || !Array.isArray(a) || !a.every(validAddr)) return undefined;
  return { peerId: p, addrs: [...(a as string[])] };
}
