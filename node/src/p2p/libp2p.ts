import type { createLibp2p } from "libp2p";

/** The libp2p node inside a `ShardHost`, for the link layer (and tests). */
export type Libp2pNode = Awaited<ReturnType<typeof createLibp2p>>;

/** A libp2p stream, as `dialProtocol` and protocol handlers give it. */
export type Stream = Awaited<ReturnType<Libp2pNode["dialProtocol"]>>;
