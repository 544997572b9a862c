import { randomUUID } from "node:crypto";

import { multiaddr as parseMultiaddr } from "@multiformats/multiaddr";
import type { Hex } from "viem";
import { z } from "zod";

import { NodeError } from "../errors.js";
import { decodeTokens } from "../ml/data.js";
import { boundaryCodec } from "../ml/pipeline.js";
import { type ModelSpec, specDigest } from "../ml/spec.js";
import { decodeTensor } from "../p2p/codec.js";
import { AuthorityUnavailableError } from "../p2p/errors.js";
import type { ShardHost } from "../p2p/host.js";
import {
  type CreateInferenceServerParameters,
  DEFAULT_HOP_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT,
  DEFAULT_MAX_GENERATE_TOKENS,
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_PER_PEER,
  DEFAULT_MAX_PER_PEER,
  DEFAULT_READ_TIMEOUT_MS,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSION_BYTES,
  DEFAULT_SESSION_IDLE_MS,
  DEFAULT_SESSION_MAX_AGE_MS,
  type GenerateRequest,
  type GenerateResult,
  type InferenceServer,
  type InferenceServerStats,
  zGenerateRequest,
} from "./api.js";
import {
  InferenceBusyError,
  InferenceRemoteError,
  InvalidGenerateParameterError,
  ShardUnavailableError,
  TicketError,
} from "./errors.js";
import { type NextHop, forward } from "./forward.js";
import { encodePrompt } from "./prompt.js";
import { type KVCache, disposeKV, kvBytes } from "../ml/model.js";
import { type Session, SessionRefusal, SessionStore, nextChunk } from "./session.js";
import {
  MAX_ERROR_MESSAGE_LENGTH,
  type InferReply,
  type InferRequest,
  type ReplyErrorCode,
  INFER_PROTOCOL,
  inferenceShape,
  pickToken,
  promptSeed,
  requestLimits,
  validateRequest,
} from "./protocol.js";
import { InferenceStage } from "./stage.js";
import type { TicketGrant, TicketIssuer, TicketVerifier } from "./ticket.js";
import { MessageReadError, type Stream, encodeMessage, readMessage, writeMessage } from "./wire.js";

/*
 * The inference server of one shard: `createInferenceServer` checks its parameters (api.ts) and
 * starts a `Server`, which admits and bounds inbound requests (shards after 0), drives the
 * pipeline for `generate` (shard 0) and hands each boundary tensor to the next shard (forward.ts).
 */

const positiveInt = (name: string, value: number) => {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, not ${value}`);
  return value;
};

/**
 * Hosts one shard for inference. On shards after 0 it registers `INFER_PROTOCOL` on the host:
 * each request (token window + boundary tensor from shard − 1) is validated and bounded, run
 * through this shard (batch 1), and either answered with the next token (last shard) or forwarded
 * to `next` with the answer relayed back. On shard 0, `generate` drives the pipeline.
 *
 * @example
 * const last = await createInferenceServer({ host: h1, spec, shard: 1, state: s1 })
 * const first = await createInferenceServer({ host: h0, spec, shard: 0, state: s0, next: h1.multiaddrs()[0] })
 * const { text } = await first.generate({ prompt: "Call me ", maxTokens: 20 })
 */
export async function createInferenceServer(parameters: CreateInferenceServerParameters): Promise<InferenceServer> {
  const { host, spec, shard } = parameters;
  const shards = spec.shards.length;
  if (!Number.isInteger(shard) || shard < 0 || shard >= shards)
    throw new RangeError(`shard ${shard} is out of range: the model has ${shards} shards`);
  const timeoutMs = parameters.timeoutMs ?? DEFAULT_HOP_TIMEOUT_MS;
  if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1))
    throw new RangeError(`timeoutMs must be positive, not ${timeoutMs}`);
  const isLast = shard === shards - 1;
  if (!isLast) {
    if (parameters.next === undefined) throw new RangeError(`shard ${shard} needs the address of shard ${shard + 1}`);
    parseMultiaddr(parameters.next); // throws on a malformed address, now rather than per request
  }
  const weights = parameters.state?.params ?? parameters.weights;
  if (!weights) throw new RangeError("createInferenceServer needs the shard's state or weights");
  if (shard > 0 && !parameters.verifier && !parameters.open)
    throw new RangeError(`shard ${shard} needs a ticket verifier (or open: true to serve anyone)`);
  const maxConcurrent = positiveInt("maxConcurrent", parameters.maxConcurrent ?? DEFAULT_MAX_CONCURRENT);
  const limits: Limits = {
    maxConcurrent,
    maxPerPeer: Math.min(maxConcurrent, positiveInt("maxPerPeer", parameters.maxPerPeer ?? DEFAULT_MAX_PER_PEER)),
    readTimeoutMs: Math.min(
      timeoutMs,
      positiveInt("readTimeoutMs", parameters.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS),
    ),
    maxPendingPerPeer: positiveInt("maxPendingPerPeer", parameters.maxPendingPerPeer ?? DEFAULT_MAX_PENDING_PER_PEER),
    maxPending: positiveInt("maxPending", parameters.maxPending ?? DEFAULT_MAX_PENDING),
  };
  const stage = new InferenceStage(spec, shard, weights);
  const sessions = new SessionStore(
    {
      maxSessions: positiveInt("maxSessions", parameters.maxSessions ?? DEFAULT_MAX_SESSIONS),
      // A peer (the previous shard) runs at most `maxPerPeer` generations at once.
      maxSessionsPerPeer: limits.maxPerPeer,
      maxBytes: positiveInt("maxSessionBytes", parameters.maxSessionBytes ?? DEFAULT_MAX_SESSION_BYTES),
      idleMs: positiveInt("sessionIdleMs", parameters.sessionIdleMs ?? DEFAULT_SESSION_IDLE_MS),
      maxAgeMs: positiveInt("sessionMaxAgeMs", parameters.sessionMaxAgeMs ?? DEFAULT_SESSION_MAX_AGE_MS),
    },
    kvBytes(spec, stage.layout, spec.architecture.context),
  );
  const server = new Server(
    host,
    spec,
    shard,
    stage,
    sessions,
    parameters.next,
    timeoutMs,
    limits,
    parameters.maxGenerateTokens ?? DEFAULT_MAX_GENERATE_TOKENS,
    parameters.open ? undefined : parameters.verifier,
    parameters.issuer,
    parameters.kvCache ?? true,
  );
  if (shard > 0) {
    await host.libp2p.handle(
      INFER_PROTOCOL,
      (stream, connection) => void server.inbound(stream, connection.remotePeer.toString()),
      // Streams of one connection: those being read, those holding a slot, and a few answering.
      { maxInboundStreams: limits.maxPendingPerPeer + limits.maxPerPeer + 4 },
    );
  }
  return server;
}

interface Limits {
  maxConcurrent: number;
  maxPerPeer: number;
  readTimeoutMs: number;
  maxPendingPerPeer: number;
  maxPending: number;
}

/** A request read, valid, and (unless open) with a ticket verified: it may take a slot. */
interface Admitted {
  request: InferRequest;
  payload: Uint8Array;
  grant: TicketGrant | undefined;
}

const increment = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
const decrement = (counts: Map<string, number>, key: string) => {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
};

class Server implements InferenceServer {
  readonly stats: InferenceServerStats = { served: 0, rejected: 0, unauthorized: 0, failed: 0, computed: 0 };
  private readonly digest: string;
  private readonly vocab: string[];
  /** Slots taken, in all and by remote peer. */
  private inflight = 0;
  private readonly inflightBy = new Map<string, number>();
  /** Request streams being read or checked, in all and by remote peer. */
  private pending = 0;
  private readonly pendingBy = new Map<string, number>();
  private generating = 0;
  private stopped = false;

  constructor(
    private readonly host: ShardHost,
    private readonly spec: ModelSpec,
    readonly shard: number,
    private readonly stage: InferenceStage,
    readonly sessions: SessionStore,
    private readonly next: string | undefined,
    private readonly timeoutMs: number,
    private readonly limits: Limits,
    private readonly maxGenerateTokens: number,
    private readonly verifier: TicketVerifier | undefined,
    private readonly issuer: TicketIssuer | undefined,
    private readonly kvCache: boolean,
  ) {
    this.digest = specDigest(spec);
    this.vocab = [...spec.architecture.vocab];
    this.sweeper = setInterval(() => this.sessions.sweep(), 1000);
    this.sweeper.unref();
  }

  private readonly sweeper: NodeJS.Timeout;

  get capacity(): number {
    return this.limits.maxPerPeer;
  }

  private nextHop(): NextHop {
    const { host, spec, shard, digest, timeoutMs } = this;
    return { host, spec, shard, digest, next: this.next!, timeoutMs };
  }

  private get isLast(): boolean {
    return this.shard === this.spec.shards.length - 1;
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    if (this.shard !== 0) throw new NodeError(`Only shard 0 takes prompts; this is shard ${this.shard}.`);
    if (this.stopped) throw new NodeError("The inference server is stopped.");
    const parsed = zGenerateRequest.safeParse(request);
    if (!parsed.success)
      throw new InvalidGenerateParameterError("Invalid generation parameters.", {
        details: z.prettifyError(parsed.error),
      });
    const { prompt, maxTokens, temperature } = parsed.data;
    if (maxTokens > this.maxGenerateTokens)
      throw new InvalidGenerateParameterError(
        `maxTokens ${maxTokens} is above the limit of ${this.maxGenerateTokens}.`,
      );
    const tokens = encodePrompt(this.spec, prompt);
    const seed = parsed.data.seed ?? promptSeed(prompt);
    // The next shard takes at most `maxPerPeer` requests from this one at once: run no more.
    if (this.generating >= this.limits.maxPerPeer)
      throw new InferenceBusyError(`${this.generating} generations running, at most ${this.limits.maxPerPeer}`);
    this.generating++;
    try {
      return await this.run(tokens, maxTokens, temperature, seed, parsed.data.receiptDigest as Hex, request.signal);
    } finally {
      this.generating--;
    }
  }

  private async run(
    tokens: number[],
    maxTokens: number,
    temperature: number | undefined,
    seed: number,
    receiptDigest: Hex | undefined,
    signal: AbortSignal | undefined,
  ): Promise<GenerateResult> {
    const started = performance.now();
    const id = randomUUID();
    // One ticket for the whole generation: hop k is `${id}.${k}`, k < maxTokens.
    const ticket =
      this.isLast || !this.issuer
        ? undefined
        : await this.issuer.issue({ receipt: receiptDigest, request: id, tokens: maxTokens });
    const generated: number[] = [];
    const { context } = this.spec.architecture;
    // This shard's own cache of the generation (the others keep theirs in sessions `id`).
    let cache: KVCache | undefined;
    let seen = 0;
    try {
      for (let k = 0; k < maxTokens; k++) {
        signal?.throwIfAborted();
        if (this.stopped) throw new NodeError("The inference server stopped while generating.");
        const chunk = this.kvCache ? nextChunk(seen, tokens, context) : { start: 0, tokens: tokens.slice(-context) };
        if (chunk.start === 0 && cache) {
          disposeKV(cache);
          cache = undefined;
        }
        const sampling = temperature ? { temperature, seed, index: k } : undefined;
        this.stats.computed++;
        const r = await this.stage.runCached(cache, chunk.tokens);
        cache = r.cache;
        seen = chunk.start + chunk.tokens.length;
        const session = { id, start: chunk.start, end: k === maxTokens - 1 };
        const token = this.isLast
          ? pickToken(r.out, sampling)
          : await forward(this.nextHop(), `${id}.${k}`, session, chunk.tokens, sampling, r.out, ticket);
        generated.push(token);
        tokens.push(token);
      }
    } finally {
      if (cache) disposeKV(cache);
    }
    return {
      text: decodeTokens(generated, this.spec.architecture.vocab),
      tokens: generated.length,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /**
   * Serves one inbound request stream from `peer`. Never throws: every failure is answered or the
   * stream aborted. A stream first counts as pending (bounded per peer and in all; beyond, it is
   * reset) while its whole request is read (within `readTimeoutMs`, size-bounded), validated and
   * its ticket checked; only then does it take a slot (bounded per peer and in all; beyond, it is
   * answered `busy`), consume its ticket's hop, and compute. The slot is freed before the answer
   * is written, so the next hop of the same generation finds it free.
   */
  async inbound(stream: Stream, peer: string): Promise<void> {
    if (this.stopped) {
      this.stats.rejected++;
      return this.answer(stream, this.error("busy", this.shard, "the shard is stopping"));
    }
    const { limits } = this;
    if (this.pending >= limits.maxPending || (this.pendingBy.get(peer) ?? 0) >= limits.maxPendingPerPeer) {
      this.stats.rejected++;
      return stream.abort(new Error("too many inference requests being read"));
    }
    this.pending++;
    increment(this.pendingBy, peer);
    let admitted: Admitted | undefined;
    try {
      admitted = await this.admit(stream);
    } finally {
      this.pending--;
      decrement(this.pendingBy, peer);
    }
    if (!admitted) return;
    const { request, payload, grant } = admitted;
    const { requestId } = request;
    // Nothing awaited since the checks: taking the slot and the hop cannot race another request.
    const mine = this.inflightBy.get(peer) ?? 0;
    if (this.stopped || this.inflight >= limits.maxConcurrent || mine >= limits.maxPerPeer) {
      this.stats.rejected++;
      const why = this.stopped
        ? "the shard is stopping"
        : mine >= limits.maxPerPeer
          ? `${mine} requests of this peer in flight, at most ${limits.maxPerPeer}`
          : `${this.inflight} requests in flight, at most ${limits.maxConcurrent}`;
      return this.answer(stream, this.error("busy", this.shard, why, requestId));
    }
    // A session that fits (or room for a new one) before the ticket's hop is spent.
    let session: Session;
    try {
      session = this.sessions.open(peer, request.session.id, request.session.start);
    } catch (error) {
      if (!(error instanceof SessionRefusal)) throw error;
      this.stats.rejected++;
      return this.answer(stream, this.error(error.code, this.shard, error.message, requestId));
    }
    if (grant) {
      try {
        this.verifier!.consume(grant);
      } catch (error) {
        this.sessions.fail(session);
        this.stats.unauthorized++;
        const e = error as TicketError;
        return this.answer(stream, this.error(e.code, this.shard, e.details ?? e.shortMessage, requestId));
      }
    }
    this.inflight++;
    increment(this.inflightBy, peer);
    let reply: InferReply;
    try {
      const n = request.tokens.length;
      const activation = decodeTensor(boundaryCodec(this.spec), inferenceShape(this.spec, n), payload);
      this.stats.computed++;
      const r = await this.stage.runCached(session.cache, request.tokens, activation);
      session.cache = r.cache;
      const token = this.isLast
        ? pickToken(r.out, request.sampling)
        : await forward(
            this.nextHop(),
            requestId,
            request.session,
            request.tokens,
            request.sampling,
            r.out,
            request.ticket,
          );
      this.sessions.done(session, r.cache, request.session.end);
      reply = { kind: "token", requestId, token };
      this.stats.served++;
    } catch (error) {
      this.sessions.fail(session);
      this.stats.failed++;
      if (error instanceof ShardUnavailableError)
        reply = this.error("unavailable", error.shard, error.details ?? error.shortMessage, requestId);
      else if (error instanceof InferenceRemoteError)
        reply = this.error(error.code as ReplyErrorCode, error.shard, error.details ?? "", requestId);
      else reply = this.error("internal", this.shard, (error as Error).message, requestId);
    } finally {
      this.inflight--;
      decrement(this.inflightBy, peer);
    }
    await this.answer(stream, reply);
  }

  /**
   * Reads, validates and (unless open) checks the ticket of one request, taking no slot. Answers
   * or aborts the stream itself and returns undefined when the request is refused.
   */
  private async admit(stream: Stream): Promise<Admitted | undefined> {
    let request: InferRequest;
    let payload: Uint8Array;
    try {
      const message = await readMessage(stream, requestLimits(this.spec), this.limits.readTimeoutMs);
      payload = message.payload;
      request = validateRequest(this.spec, this.digest, this.shard, message.header, payload);
    } catch (error) {
      this.stats.rejected++;
      if (error instanceof MessageReadError && error.reason !== "invalid") {
        stream.abort(error);
        return undefined;
      }
      const message =
        error instanceof NodeError ? `${error.shortMessage} ${error.details ?? ""}` : (error as Error).message;
      await this.answer(stream, this.error("bad-request", this.shard, message));
      return undefined;
    }
    if (!this.verifier) return { request, payload, grant: undefined };
    const { requestId } = request;
    try {
      const grant = await this.verifier.verify(request.ticket, requestId);
      return { request, payload, grant };
    } catch (error) {
      let reply: InferReply;
      if (error instanceof TicketError) {
        this.stats.unauthorized++;
        reply = this.error(error.code, this.shard, error.details ?? error.shortMessage, requestId);
      } else if (error instanceof InferenceBusyError) {
        this.stats.rejected++;
        reply = this.error("busy", this.shard, error.details ?? error.shortMessage, requestId);
      } else {
        this.stats.failed++;
        const why =
          error instanceof AuthorityUnavailableError
            ? `cannot check the ticket: ${error.details ?? error.shortMessage}`
            : `checking the ticket failed: ${(error as Error).message}`;
        reply = this.error("unavailable", this.shard, why, requestId);
      }
      await this.answer(stream, reply);
      return undefined;
    }
  }

  private error(code: ReplyErrorCode, shard: number, message: string, requestId?: string): InferReply {
    return {
      kind: "error",
      ...(requestId ? { requestId } : {}),
      code,
      shard,
      message: message.trim().slice(0, MAX_ERROR_MESSAGE_LENGTH),
    };
  }

  private async answer(stream: Stream, reply: InferReply): Promise<void> {
    try {
      await writeMessage(stream, encodeMessage(reply), this.timeoutMs);
    } catch {
      // The requester is gone; writeMessage aborted the stream.
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.shard > 0) await this.host.libp2p.unhandle(INFER_PROTOCOL).catch(() => {});
    // Let the requests in flight finish (each is bounded by its hop timeouts) before freeing the weights.
    const deadline = Date.now() + this.spec.shards.length * this.timeoutMs;
    while ((this.inflight > 0 || this.generating > 0) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    clearInterval(this.sweeper);
    this.sessions.clear();
    this.stage.dispose();
  }
}
