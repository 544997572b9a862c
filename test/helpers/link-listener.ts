/**
 * A pipeline listener in its own process, for memory measurements (test/node/link-memory.test.ts):
 * `node --expose-gc --import tsx test/helpers/link-listener.ts`. It starts a host on 127.0.0.1,
 * prints `{"ready": multiaddr}`, samples its RSS every 20 ms, and answers commands on stdin, one
 * JSON line each:
 *
 * - `accept`: from now on an `acceptLink` waits (authenticated, with an authority that accepts
 *   nobody), as a trainer listening for its previous shard does; before it, dialers are parked as
 *   on a host that never accepts a link (a serve node).
 * - `measure`: collects garbage twice and prints `{ rss, peak, heapUsed, arrayBuffers, external }`
 *   (bytes; `peak` is the highest RSS sampled since the last `measure`).
 */
import { createInterface } from "node:readline";

import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import type { PeerAuthority } from "../../node/src/p2p/auth.js";
import { UnauthorizedPeerError } from "../../node/src/p2p/errors.js";
import { createHost } from "../../node/src/p2p/host.js";
import { acceptLink } from "../../node/src/p2p/link.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"], handshakeTimeoutMs: 5_000 });
const signer = privateKeyToAccount(generatePrivateKey());
const nobody: PeerAuthority = {
  async check() {
    throw new UnauthorizedPeerError("not-authorized", "this listener authorizes nobody");
  },
};
let refused = 0;
let stopping = false;
const accept = async () => {
  while (!stopping) {
    await acceptLink(host, {
      hello: { modelId: 1n, specDigest: `0x${"ab".repeat(32)}`, shard: 1, lane: 0, round: 1 },
      timeoutMs: 600_000,
      maxTensorBytes: 64 * 1024,
      auth: { signer, owner: signer.address, authority: nobody },
      onRefused: () => refused++,
    }).catch(() => {});
  }
};

let peak = process.memoryUsage.rss();
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
sampler.unref();

const print = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
print({ ready: host.multiaddrs()[0] });

for await (const line of createInterface({ input: process.stdin })) {
  const command = line.trim();
  if (command === "accept") {
    void accept();
    print({ accepting: true });
  } else if (command === "measure") {
    for (let i = 0; i < 2; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    const m = process.memoryUsage();
    print({ rss: m.rss, peak: Math.max(peak, m.rss), heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, refused });
    peak = m.rss;
  } else if (command === "exit") break;
}
stopping = true;
await host.stop();
process.exit(0);
