import path from "node:path";

import { multiaddr as parseMultiaddr } from "@multiformats/multiaddr";
import { getAddress, isAddress, type Hex } from "viem";
import { z } from "zod";

import { connect, type Connection } from "../chain.js";
import { DEFAULTS } from "../config/defaults.js";
import { configOptionsSchema, globalOptionsSchema, type NodeConfig } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError, onShutdown } from "../exit.js";
import { type Gateway, startGateway } from "../gateway/index.js";
import { initBackend } from "../ml/backend.js";
import { toJson, type Output } from "../output.js";
import { chainAuthority } from "../p2p/auth.js";
import type { ShardHost } from "../p2p/host.js";
import {
  type InferenceServer,
  TicketVerifier,
  createInferenceServer,
  createTicketIssuer,
  encodePrompt,
  loadServeWeights,
} from "../serve/index.js";
import { configOf, openSigner, parseAmount, parseOptions, readModel, tokenInfo, zAmountText } from "./common.js";
import { loadModelSpec, openNodeNetwork } from "./network.js";

export const serveOptionsSchema = globalOptionsSchema
  .extend(configOptionsSchema.shape)
  .extend({
    /** A local copy of the model spec, used when IPFS does not have it; checked against the on-chain digest. */
    spec: z.string().min(1).optional(),
    /** Serve this safetensors checkpoint instead of the shard's latest finalized one. */
    checkpoint: z.string().min(1).optional(),
    /** With --checkpoint: serve it even if its root is not a checkpoint of this shard on-chain. */
    unverified: z.boolean().default(false),
    /** Seconds each hop of the pipeline gets (dial, send, compute, answer). */
    hopTimeout: z.coerce.number().positive().max(3600).default(DEFAULTS.serve.hopTimeout),
    /** Most characters one request may generate. */
    maxTokens: z.coerce.number().int().positive().max(100_000).default(DEFAULTS.serve.maxTokens),
    /** Shard 0: start the paying HTTP gateway (`--no-gateway`: no gateway). */
    gateway: z.boolean().default(true),
    gatewayHost: z.string().min(1).default(DEFAULTS.serve.gatewayHost),
    gatewayPort: z.coerce.number().int().min(0).max(65_535).default(DEFAULTS.serve.gatewayPort),
    /** The ERC-20 receipts are drawn in. */
    currency: z
      .string()
      .refine((v) => isAddress(v, { strict: false }), "must be a token address")
      .optional(),
    /** Price per generated character, in whole tokens of the currency. */
    price: zAmountText.optional(),
    /** Receipts per settlement transaction. */
    settleBatch: z.coerce.number().int().min(1).max(500).default(DEFAULTS.serve.settleBatch),
    /** Seconds between settlements of whatever receipts are pending. */
    settleInterval: z.coerce.number().positive().max(86_400).default(DEFAULTS.serve.settleInterval),
  })
  .refine((o) => !o.unverified || o.checkpoint !== undefined, {
    message: "needs --checkpoint <file>",
    path: ["unverified"],
  });

export type ServeOptions = z.input<typeof serveOptionsSchema>;

export interface ServeResult {
  modelId: bigint;
  shard: number;
  peerId: string;
  multiaddrs: string[];
  /** Merkle root of the weights served. */
  root: Hex;
  /** `chain`: the latest finalized checkpoint; `file`: `--checkpoint`. */
  source: "chain" | "file";
  /** Round of the on-chain checkpoint served (null for an unverified file). */
  round: bigint | null;
  /** The gateway's URL on shard 0, else null. */
  gatewayUrl: string | null;
  served: number;
  rejected: number;
  failed: number;
}

/** For tests and embedders: stop without a signal, and learn where the node listens. */
export interface ServeControl {
  /** Aborting it stops the node, as Ctrl-C does. */
  signal?: AbortSignal | undefined;
  onListening?: ((info: { peerId: string; multiaddrs: string[]; gatewayUrl: string | null }) => void) | undefined;
}

/**
 * `shard-node serve`: hosts this node's shard for inference until Ctrl-C/SIGTERM. Loads the
 * shard's latest finalized checkpoint from the content store, checked against its committed
 * Merkle root (or `--checkpoint <file>`, whose root must be a checkpoint of this shard on-chain
 * unless `--unverified`), serves `/shard-protocol/infer/1.0.0` on its libp2p host, and forwards
 * to `peers.next`. On shard 0 it also starts the paying HTTP gateway (receipts in `--currency`
 * at `--price` per character, settled in batches), unless `--no-gateway`.
 *
 * @example
 * await serve({ config: "shard-node.config.json", currency: usdc, price: "0.001" }, out)
 */
export async function serve(options: ServeOptions, out: Output, control: ServeControl = {}): Promise<ServeResult> {
  const o = parseOptions("serve", serveOptionsSchema, options);
  let config: NodeConfig = await configOf(o);
  const gatewayWanted = config.shard === 0 && o.gateway;
  if (gatewayWanted && (o.currency === undefined || o.price === undefined))
    throw new UsageError("Shard 0 serves the paying gateway: it needs --currency and --price (or --no-gateway).", [
      ...(o.currency === undefined ? [{ path: "--currency", message: "is required on shard 0" }] : []),
      ...(o.price === undefined ? [{ path: "--price", message: "is required on shard 0" }] : []),
    ]);
  let signer: Awaited<ReturnType<typeof openSigner>> | undefined;
  let connection: Connection;
  if (gatewayWanted) {
    // Settling receipts sends transactions: only the gateway needs the key.
    signer = await openSigner(o);
    config = signer.config;
    connection = signer.connection;
  } else connection = await connect(config);
  try {
    return await serveWith(o, config, connection, signer, out, control);
  } finally {
    await connection.close();
  }
}

async function serveWith(
  o: z.output<typeof serveOptionsSchema>,
  config: NodeConfig,
  connection: Connection,
  signer: Awaited<ReturnType<typeof openSigner>> | undefined,
  out: Output,
  control: ServeControl,
): Promise<ServeResult> {
  const { publicClient } = connection;
  const modelId = config.modelId;
  const shard = config.shard;
  const model = await readModel(connection, modelId);
  if (shard >= model.shardCount)
    throw new NodeError(`Model ${modelId} has ${model.shardCount} shards; there is no shard ${shard}.`);
  const isLast = shard === model.shardCount - 1;
  if (!isLast && config.peers.next === undefined)
    throw new UsageError(`Shard ${shard} forwards to shard ${shard + 1}: give its address.`, [
      { path: "--peer-next", message: `the multiaddr of shard ${shard + 1}'s serve node` },
    ]);

  const network = await openNodeNetwork(config, out);
  const { host, store } = network;
  let server: InferenceServer | undefined;
  let gateway: Gateway | undefined;
  const stopped = new AbortController();
  const stopListening = onShutdown(() => stopped.abort());
  const onAbort = () => stopped.abort();
  control.signal?.addEventListener("abort", onAbort);
  if (control.signal?.aborted) stopped.abort();
  try {
    const spec = await loadModelSpec(model, store, o.spec);
    const backend = await initBackend(config.backend);
    const weights = await loadServeWeights({
      client: publicClient,
      modelId,
      shard,
      spec,
      specDigest: model.specDigest,
      store,
      file: o.checkpoint,
      unverified: o.unverified,
    });
    server = await createInferenceServer({
      host,
      spec,
      shard,
      state: weights.state,
      next: isLast ? undefined : config.peers.next,
      timeoutMs: o.hopTimeout * 1000,
      maxGenerateTokens: o.maxTokens,
      // Shards after 0 serve only requests with a ticket from a gateway of the model; shard 0 signs them.
      ...(shard > 0 ? { verifier: ticketVerifier(connection, modelId) } : {}),
      ...(signer
        ? {
            issuer: createTicketIssuer({
              signer: signer.account,
              owner: signer.account.address,
              chainId: connection.chainId,
              modelId,
            }),
          }
        : {}),
    });
    const first = server;

    if (signer) {
      const currency = getAddress(o.currency!);
      const token = await tokenInfo(publicClient, currency);
      gateway = await startGateway({
        modelId,
        currency,
        pricePerUnit: parseAmount(o.price!, token, "--price"),
        maxTokensPerRequest: o.maxTokens,
        chain: {
          client: signer.connection.walletClient as never,
          account: signer.account,
          deployment: connection.deployment,
        },
        dataDir: path.join(config.dataDir, "gateway"),
        listen: { host: o.gatewayHost, port: o.gatewayPort },
        batchSize: o.settleBatch,
        settleIntervalMs: Math.round(o.settleInterval * 1000),
        generate: (request) => first.generate(request),
        // A prompt the model cannot read is refused (400) before any chain read.
        checkPrompt: (prompt) => void encodePrompt(spec, prompt),
        // No more at once than the pipeline takes from shard 0: above that, 503 with Retry-After.
        maxConcurrent: first.capacity,
        onEvent: (e) => (out.json ? out.log(toJson({ event: `gateway.${e.type}`, ...e })) : out.log(gatewayLine(e))),
      });
    }

    const multiaddrs = host.multiaddrs();
    const gatewayUrl = gateway?.url ?? null;
    const source = weights.source === "file" && !weights.checkpoint ? "file (unverified)" : weights.source;
    if (out.json)
      out.log(
        toJson({
          event: "listening",
          modelId,
          shard,
          backend: backend.name,
          peerId: host.peerId,
          multiaddrs,
          root: weights.root,
          source: weights.source,
          round: weights.checkpoint?.round ?? null,
          gatewayUrl,
        }),
      );
    else {
      out.log(`serving shard ${shard} of model ${modelId} · backend ${backend.name} · peer ${host.peerId}`);
      out.log(
        `  weights: ${source}${weights.checkpoint ? `, round ${weights.checkpoint.round} (${weights.checkpoint.status})` : ""}, root ${weights.root}`,
      );
      for (const a of multiaddrs) out.log(`  listening on ${a}`);
      if (shard > 0) out.log(`  shard ${shard - 1} forwards here (its peers.next)`);
      if (gatewayUrl)
        out.log(
          `  gateway: ${gatewayUrl}/v1/generate (quote: ${gatewayUrl}/v1/quote), payee ${signer!.account.address} (escrow must name it)`,
        );
    }
    control.onListening?.({ peerId: host.peerId, multiaddrs, gatewayUrl });

    if (!isLast) void connectNext(host, config.peers.next!, shard, out, stopped.signal);
    await new Promise<void>((resolve) => {
      if (stopped.signal.aborted) return resolve();
      stopped.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    out.log("stopping: finishing the requests in flight");
    const stats = { ...server.stats };
    return {
      modelId,
      shard,
      peerId: host.peerId,
      multiaddrs,
      root: weights.root,
      source: weights.source,
      round: weights.checkpoint?.round ?? null,
      gatewayUrl,
      ...stats,
    };
  } finally {
    stopped.abort();
    stopListening();
    control.signal?.removeEventListener("abort", onAbort);
    await gateway?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await network.close();
  }
}

/**
 * Checks inference tickets against the chain: the node key must be authorized by a trainer with
 * the round's minimum stake in the model (`chainAuthority`, cached).
 */
function ticketVerifier(connection: Connection, modelId: bigint): TicketVerifier {
  const authority = chainAuthority({
    client: connection.publicClient as never,
    deployment: connection.deployment,
    modelId,
  });
  return new TicketVerifier({
    chainId: connection.chainId,
    modelId,
    check: (nodeKey, owner, options) => authority.check(nodeKey, owner, options),
  });
}

/**
 * Dials shard + 1 in the background until it answers (every second), so that the first request
 * does not pay for the connection; requests sent before then fail with `ShardUnavailableError`.
 */
async function connectNext(host: ShardHost, next: string, shard: number, out: Output, signal: AbortSignal) {
  const address = parseMultiaddr(next);
  let warned = false;
  while (!signal.aborted) {
    try {
      await host.libp2p.dial(address, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]) });
      out.log(out.json ? toJson({ event: "connected", next }) : `  connected to shard ${shard + 1} at ${next}`);
      return;
    } catch (err) {
      if (signal.aborted) return;
      if (!warned) out.log(`  shard ${shard + 1} is not reachable yet (${(err as Error).message}); retrying`);
      warned = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function gatewayLine(e: Parameters<NonNullable<Parameters<typeof startGateway>[0]["onEvent"]>>[0]): string {
  switch (e.type) {
    case "served":
      return `served ${e.tokens} characters to ${e.payer} (nonce ${e.nonce}, ${e.amount} charged)`;
    case "refused":
      return `refused a request: ${e.error} (${e.status}) ${e.message}`;
    case "settled":
      return `settled ${e.settled} receipts (${e.skipped} skipped, ${e.deferred} kept to retry) in ${e.tx}`;
    case "settle-failed":
      return `settlement of ${e.receipts} receipts failed: ${e.error} ${e.message}; retrying from ${new Date(e.retryAt).toISOString()}`;
    case "journal-torn":
      return `warning: the receipt journal's last line was cut short by a crash (${e.bytes} bytes${e.key === undefined ? "" : `, receipt ${e.key}`}, never acknowledged); set aside in ${e.savedTo}`;
    case "recovered":
      return `gateway journal: ${e.pending} receipts pending, ${e.settledOnChain} found settled on-chain`;
    default:
      return `gateway listening on ${e.url}`;
  }
}
