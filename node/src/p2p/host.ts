import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import { identify } from "@libp2p/identify";
import { tcp } from "@libp2p/tcp";
import { createLibp2p } from "libp2p";

import { listenAddressError, PeerKeyError } from "./errors.js";
import { type LinkAcceptor, servePipelineLinks } from "./acceptor.js";
import type { Libp2pNode } from "./libp2p.js";

export type { Libp2pNode } from "./libp2p.js";

export type CreateHostParameters = {
  /** Multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/0` (port 0: any free port). */
  listen: string[];
  /** The node's identity: a protobuf-encoded Ed25519 private key (see `loadOrCreatePeerKey`). A fresh one if absent. */
  privateKey?: Uint8Array | undefined;
  /** How long an inbound dialer may take to say hello, and wait for a matching `acceptLink`. Default 10 s. */
  handshakeTimeoutMs?: number | undefined;
  /** Open connections at most, both ways together (libp2p prunes beyond). Default `DEFAULT_MAX_CONNECTIONS`. */
  maxConnections?: number | undefined;
};

/**
 * Connections a host keeps at most: its pipeline neighbours, the content peers it exchanges blocks
 * with, verifiers fetching from it. libp2p's own bounds on connections being opened (10 at once,
 * 5 per second from one address) stay in force.
 */
export const DEFAULT_MAX_CONNECTIONS = 128;

/**
 * A libp2p host that carries pipeline links (`dialLink`, `acceptLink`) and, once a content store
 * is opened on it (`openContentStore({ libp2p })`), IPFS bitswap: TCP, Noise, Yamux and identify.
 */
export interface ShardHost {
  /** The host's peer id (base58btc), derived from its key. */
  readonly peerId: string;
  /** The addresses other stages dial, each ending in `/p2p/<peerId>`. */
  multiaddrs(): string[];
  /** Closes every connection and listener. Safe to call twice. */
  stop(): Promise<void>;
  readonly libp2p: Libp2pNode;
  /** @internal The host's inbound pipeline streams, waiting for `acceptLink` (see acceptor.ts). */
  readonly links: LinkAcceptor;
}

/**
 * Starts a host. There is no bootstrap, DHT or discovery: stages dial each other's multiaddrs
 * directly. Identify runs on every connection so that each side learns which protocols the other
 * serves (bitswap only asks peers that announced it). The connection monitor is off, because its pings abort connections whose
 * event loop is busy (a training step can hold it for seconds); a dead peer still shows up as a
 * closed connection, and a hung one as a `LinkTimeoutError`. Yamux keep-alives stop the TCP
 * socket's inactivity timeout from closing idle links between rounds.
 *
 * @example
 * const host = await createHost({ listen: ["/ip4/0.0.0.0/tcp/4101"], privateKey: await loadOrCreatePeerKey(keyPath) })
 * console.log(host.peerId, host.multiaddrs())
 * await host.stop()
 */
export async function createHost(parameters: CreateHostParameters): Promise<ShardHost> {
  const privateKey = parameters.privateKey === undefined ? undefined : privateKeyFromProtobuf(parameters.privateKey);
  const libp2p = await createLibp2p({
    ...(privateKey ? { privateKey } : {}),
    addresses: { listen: parameters.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { maxConnections: parameters.maxConnections ?? DEFAULT_MAX_CONNECTIONS },
    services: { identify: identify() },
  }).catch((error: unknown) => {
    // A busy port: say which address and what to do, not libp2p's internal text.
    throw listenAddressError(error) ?? error;
  });
  const links = await servePipelineLinks(libp2p, { handshakeTimeoutMs: parameters.handshakeTimeoutMs });
  return {
    peerId: libp2p.peerId.toString(),
    multiaddrs: () => libp2p.getMultiaddrs().map((ma) => ma.toString()),
    stop: async () => {
      links.stop();
      await libp2p.stop();
    },
    libp2p,
    links,
  };
}

/**
 * Reads the node's libp2p identity (a protobuf-encoded Ed25519 private key) from `file`, or
 * creates one there with mode 0600 (directory 0700) if the file does not exist. The same key means
 * the same peer id across restarts, so other stages can pin it in the multiaddr they dial.
 *
 * @example
 * const privateKey = await loadOrCreatePeerKey(path.join(dataDir, "peer.key"))
 */
export async function loadOrCreatePeerKey(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new PeerKeyError(file, "cannot read it", error);
  }
  if (bytes !== undefined) {
    let type: string;
    try {
      type = privateKeyFromProtobuf(bytes).type;
    } catch (error) {
      throw new PeerKeyError(file, "not a protobuf-encoded libp2p private key", error);
    }
    if (type !== "Ed25519") throw new PeerKeyError(file, `a ${type} key, where Ed25519 is expected`);
    return bytes;
  }
  const encoded = privateKeyToProtobuf(await generateKeyPair("Ed25519"));
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // `wx`: never overwrite a key another process wrote in the meantime.
  try {
    await writeFile(file, encoded, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreatePeerKey(file);
    throw new PeerKeyError(file, "cannot write it", error);
  }
  await chmod(file, 0o600); // the mode given to writeFile is masked by the umask
  return encoded;
}
