/** Connecting a host to the peers its content store fetches from. */
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";

import type { ShardHost } from "../p2p/host.js";
import { ContentPeerDialError } from "./errors.js";

/** The default of `ConnectContentPeersOptions.timeoutMs`. */
export const DEFAULT_CONTENT_DIAL_TIMEOUT_MS = 10_000;

export interface ConnectContentPeersOptions {
  /** How long each dial may take. Default 10 s. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Dials `multiaddrs` (each best ending in `/p2p/<peerId>`) from `host`, all at once, so that a
 * content store opened on the host (`openContentStore({ libp2p: host.libp2p })`) can fetch from
 * them over bitswap. A store only asks peers it is connected to: there is no DHT. Connections to
 * the peers that answered are kept even when another fails. Returns the connected peers' ids, in
 * the order given.
 *
 * @throws ContentPeerDialError (retryable) naming every address that is not a multiaddr or could
 *   not be dialled, with each reason in `details`.
 *
 * @example
 * const host = await createHost({ listen: ["/ip4/0.0.0.0/tcp/0"] });
 * const store = await openContentStore({ dataDir, libp2p: host.libp2p });
 * await connectContentPeers(host, ["/ip4/10.0.0.2/tcp/4101/p2p/12D3KooWQm..."]);
 * const bytes = await store.get(cid, { maxBytes: 1 << 26, signal: AbortSignal.timeout(60_000) });
 */
export async function connectContentPeers(
  host: ShardHost,
  multiaddrs: readonly string[],
  options: ConnectContentPeersOptions = {},
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONTENT_DIAL_TIMEOUT_MS;
  const results = await Promise.allSettled(
    multiaddrs.map(async (address) => {
      let ma: Multiaddr;
      try {
        ma = multiaddr(address);
      } catch (error) {
        throw new Error(`not a multiaddr (${error instanceof Error ? error.message : String(error)})`, {
          cause: error,
        });
      }
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
      try {
        const connection = await host.libp2p.dial(ma, { signal });
        return connection.remotePeer.toString();
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        const why = timeout.aborted ? `no connection within ${timeoutMs} ms` : describe(error);
        throw new Error(why, { cause: error });
      }
    }),
  );
  options.signal?.throwIfAborted();
  const failed = results.flatMap((result, i) =>
    result.status === "rejected" ? [{ address: multiaddrs[i]!, error: result.reason as Error }] : [],
  );
  if (failed.length > 0) {
    throw new ContentPeerDialError(
      failed.map((f) => f.address),
      {
        details: failed.map((f) => `${f.address}: ${f.error.message}`).join("; "),
        cause: failed.length === 1 ? failed[0]!.error : new AggregateError(failed.map((f) => f.error)),
      },
    );
  }
  return results.map((result) => (result as PromiseFulfilledResult<string>).value);
}

/** An error's message, with the codes of its causes (`ECONNREFUSED`, ...). */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 3; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    parts.push(code ? `${e.message} (${code})` : e.message);
  }
  return parts.join(": ") || String(error);
}
