import { randomUUID } from "node:crypto";

import { multiaddr as parseMultiaddr } from "@multiformats/multiaddr";
import type { Hex } from "viem";
import { z } from "zod";

import { NodeError } from "../errors.js";
import { decodeTokens } from "../ml/data.js";
import { boundaryCodec } from "../ml/pipeline.js";
import { type ModelSpec, specDigest } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { decodeTensor, encodeTensor } from "../p2p/codec.js";
import { AuthorityUnavailableError } from "../p2p/errors.js";
import type { ShardHost } from "../p2p/host.js";
import {
  InferenceBusyError,
  InferenceRemoteError,
  InferenceRequestError,
  InvalidGenerateParameterError,
  PromptError,
  ShardUnavailableError,
  TicketError,
} from "./errors.js";
import {
  INFER_PROTOCOL,
  INFER_PROTOCOL_VERSION,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_TEMPERATURE,
  REPLY_LIMITS,
  type InferReply,
  type InferRequest,
  type ReplyErrorCode,
  type Sampling,
  inferenceShape,
  pickToken,
  promptSeed,
  requestLimits,
  validateRequest,
  zInferReply,
} from "./protocol.js";
import { InferenceStage } from "./stage.js";
import type { TicketGrant, TicketIssuer, TicketVerifier } from "./ticket.js";
import { MessageReadError, type Stream, encodeMessage, readMessage, writeMessage } from "./wire.js";

/** Default time each hop of the pipeline gets, in ms. */
export const DEFAULT_HOP_TIMEOUT_MS = 30_000;
/** Default bound on requests a shard works on at once (its slots); more are answered `busy`. */
export const DEFAULT_MAX_CONCURRENT = 8;
/**
 * Default bound on the slots one remote peer may hold at once: half of the default slots, so that
 * one peer (one gateway) never holds them all. It is also how many generations shard 0 runs at
 * once, and so what its gateway admits.
 */
export const DEFAULT_MAX_PER_PEER = 4;
/** Default time a request stream has to deliver its whole request, before it takes a slot. */
export const DEFAULT_READ_TIMEOUT_MS = 5_000;
/** Default bound on request streams being read and checked at once, from one peer. */
export const DEFAULT_MAX_PENDING_PER_PEER = 8;
/** Default bound on request streams being read and checked at once, from every peer together. */
export const DEFAULT_MAX_PENDING = 64;
/** Default bound on `maxTokens`. */
export const DEFAULT_MAX_GENERATE_TOKENS = 1024;
/** Longest prompt accepted, in characters. */
export const MAX_PROMPT_CHARACTERS = 65_536;

export interface CreateInferenceServerParameters {
  /** The shard's libp2p host; the inference protocol is registered on it (shards after 0). */
  host: ShardHost;
  spec: ModelSpec;
  shard: number;
  /** The shard's checkpoint state (only `params` is used), or `weights`. */
  state?: StageState | undefined;
  /** The shard's tensors by name, when no `state` is given. */
  weights?: Record<string, Float32Array> | undefined;
  /** Multiaddr of shard + 1 (every shard but the last), ideally ending in `/p2p/<peerId>`. */
  next?: string | undefined;
  /**
   * Time each hop gets to dial, take the request, compute and answer, in ms (default 30 s). A shard
   * waits `hops × timeoutMs` for the answer from downstream, so the shard nearest a failure
   * times out first and the error names the shard that failed.
   */
  timeoutMs?: number | undefined;
  /**
   * Shards after 0: checks every request's ticket (`ticket.ts`) before it takes a slot or anything
   * is computed. Required unless `open`.
   */
  verifier?: TicketVerifier | undefined;
  /** Shards after 0: serve requests without a ticket (tests, a private network). Default false. */
  open?: boolean | undefined;
  /** Shard 0: signs the ticket each generation carries down the pipeline (its node key). */
  issuer?: TicketIssuer | undefined;
  /** Requests worked on at once (slots); more are answered `busy` (default 8). */
  maxConcurrent?: number | undefined;
  /**
   * Slots one remote peer may hold at once (default 4, at most `maxConcurrent`). On shard 0: the
   * generations run at once (more throw `InferenceBusyError`); every downstream shard must allow
   * shard 0's peer (and each shard its predecessor) at least this many.
   */
  maxPerPeer?: number | undefined;
  /** Time a request stream has to deliver its whole request, in ms (default 5 s); a slower one is dropped without taking a slot. */
  readTimeoutMs?: number | undefined;
  /** Request streams being read and checked at once from one peer (default 8); more are reset. */
  maxPendingPerPeer?: number | undefined;
  /** Request streams being read and checked at once from every peer (default 64); more are reset. */
  maxPending?: number | undefined;
  /** Bound on `generate`'s `maxTokens` (default 1024). */
  maxGenerateTokens?: number | undefined;
}

export interface GenerateRequest {
  /** Text in the model's vocabulary (at least one character). */
  prompt: string;
  /** Characters to generate (1 to `maxGenerateTokens`). */
  maxTokens: number;
  /** Absent or 0: greedy. Otherwise softmax sampling at this temperature (at most 100). */
  temperature?: number | undefined;
  /** Sampling seed (a non-negative safe integer); default: derived from the prompt, so the same request gives the same text. */
  seed?: number | undefined;
  /**
   * The EIP-712 digest of the usage receipt that pays for this generation, written into its ticket
   * (absent: the zero digest, the operator's own unpaid use).
   */
  receiptDigest?: Hex | undefined;
  signal?: AbortSignal | undefined;
}

export interface GenerateResult {
  /** The generated characters (the prompt not included). */
  text: string;
  /** How many characters were generated. */
  tokens: number;
  seconds: number;
}

export interface InferenceServerStats {
  /** Requests answered with a token. */
  served: number;
  /** Requests refused as malformed, for another shard or spec, or over a bound (slots, streams being read). */
  rejected: number;
  /** Requests refused for their ticket (none, forged, unauthorized, expired, used up): nothing was computed for them. */
  unauthorized: number;
  /** Requests that failed downstream or internally. */
  failed: number;
  /** Passes of this shard's stage (one per hop served, one per character generated on shard 0). */
  computed: number;
}

export interface InferenceServer {
  readonly shard: number;
  readonly stats: InferenceServerStats;
  /** Generations shard 0 runs at once (`maxPerPeer`): what a gateway in front of it should admit. */
  readonly capacity: number;
  /**
   * Shard 0 only: generates `maxTokens` characters after `prompt`, one pass through the pipeline
   * per character. All or nothing: a failure rejects without partial text.
   *
   * @throws PromptError (a character outside the vocabulary, an empty or too long prompt),
   *   InvalidGenerateParameterError, ShardUnavailableError (naming the shard), InferenceRemoteError
   */
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /**
   * Unregisters the protocol, lets the requests in flight finish (a generation stops before its
   * next character and rejects), and frees the weights; the host stays up. Safe to call twice.
   */
  stop(): Promise<void>;
}

const zGenerate = z.object({
  prompt: z.string(),
  maxTokens: z.int().min(1),
  temperature: z.number().min(0).max(MAX_TEMPERATURE).optional(),
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  receiptDigest: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be 0x and 32 bytes of hex")
    .optional(),
});

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
  const server = new Server(
    host,
    spec,
    shard,
    new InferenceStage(spec, shard, weights),
    parameters.next,
    timeoutMs,
    limits,
    parameters.maxGenerateTokens ?? DEFAULT_MAX_GENERATE_TOKENS,
    parameters.open ? undefined : parameters.verifier,
    parameters.issuer,
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
    private readonly next: string | undefined,
    private readonly timeoutMs: number,
    private readonly limits: Limits,
    private readonly maxGenerateTokens: number,
    private readonly verifier: TicketVerifier | undefined,
    private readonly issuer: TicketIssuer | undefined,
  ) {
    this.digest = specDigest(spec);
    this.vocab = [...spec.architecture.vocab];
  }

  get capacity(): number {
    return this.limits.maxPerPeer;
  }

  private get isLast(): boolean {
    return this.shard === this.spec.shards.length - 1;
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    if (this.shard !== 0) throw new NodeError(`Only shard 0 takes prompts; this is shard ${this.shard}.`);
    if (this.stopped) throw new NodeError("The inference server is stopped.");
    const parsed = zGenerate.safeParse(request);
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
    for (let k = 0; k < maxTokens; k++) {
      signal?.throwIfAborted();
      if (this.stopped) throw new NodeError("The inference server stopped while generating.");
      const window = tokens.slice(-context);
      const sampling = temperature ? { temperature, seed, index: k } : undefined;
      this.stats.computed++;
      const out = await this.stage.run(window);
      const token = this.isLast
        ? pickToken(out, sampling)
        : await this.forward(`${id}.${k}`, window, sampling, out, ticket);
      generated.push(token);
      tokens.push(token);
    }
    return {
      text: decodeTokens(generated, this.spec.architecture.vocab),
      tokens: generated.length,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /**
   * Sends this shard's boundary tensor to shard + 1 and waits for the token. Failures name the
   * shard at fault: `ShardUnavailableError` for one that cannot be reached, times out or breaks
   * the protocol, `InferenceRemoteError` for one that refused.
   */
  private async forward(
    requestId: string,
    window: number[],
    sampling: Sampling | undefined,
    activation: Float32Array,
    ticket: unknown,
  ): Promise<number> {
    const target = this.shard + 1;
    const hops = this.spec.shards.length - 1 - this.shard;
    const codec = boundaryCodec(this.spec);
    const shape = inferenceShape(this.spec);
    const header: InferRequest = {
      kind: "infer",
      protocol: INFER_PROTOCOL_VERSION,
      requestId,
      specDigest: this.digest,
      shard: target,
      tokens: window,
      ...(sampling ? { sampling } : {}),
      activation: { dtype: codec, shape },
      ...(ticket !== undefined ? { ticket } : {}),
    };
    const message = encodeMessage(header, encodeTensor(codec, shape, activation));
    let stream: Stream;
    try {
      stream = await this.host.libp2p.dialProtocol(parseMultiaddr(this.next!), INFER_PROTOCOL, {
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const name = (error as Error).name;
      const why =
        name === "TimeoutError" || name === "AbortError"
          ? `no connection to ${this.next} within ${this.timeoutMs} ms`
          : name === "UnsupportedProtocolError"
            ? `the peer at ${this.next} does not serve inference`
            : `dialing ${this.next} failed: ${(error as Error).message}`;
      throw new ShardUnavailableError(target, why, error);
    }
    // Start reading before sending, so that a quick answer is not missed.
    const reply = readMessage(stream, REPLY_LIMITS, hops * this.timeoutMs);
    reply.catch(() => {});
    try {
      await writeMessage(stream, message, this.timeoutMs);
    } catch (error) {
      throw new ShardUnavailableError(target, `sending the request failed: ${(error as Error).message}`, error);
    }
    let answer: InferReply;
    try {
      const { header: json } = await reply;
      const parsed = zInferReply.safeParse(json);
      if (!parsed.success)
        throw new InferenceRequestError("malformed reply", { details: z.prettifyError(parsed.error) });
      answer = parsed.data;
    } catch (error) {
      stream.abort(error as Error);
      const why =
        error instanceof MessageReadError
          ? error.reason === "timeout"
            ? `no answer within ${hops * this.timeoutMs} ms`
            : error.reason === "closed"
              ? "it closed the stream without answering"
              : `it sent an invalid reply: ${error.message}`
          : `it sent an invalid reply: ${(error as NodeError).details ?? (error as Error).message}`;
      throw new ShardUnavailableError(target, why, error);
    }
    if (answer.kind === "error") {
      // Only shards downstream can be blamed by a downstream shard.
      const shard = answer.shard >= target ? answer.shard : target;
      if (answer.code === "unavailable") throw new ShardUnavailableError(shard, answer.message);
      throw new InferenceRemoteError(shard, answer.code, answer.message);
    }
    if (answer.requestId !== requestId)
      throw new ShardUnavailableError(target, `it answered request ${answer.requestId}, not ${requestId}`);
    if (answer.token >= this.vocab.length)
      throw new ShardUnavailableError(target, `it answered token ${answer.token}, outside the vocabulary`);
    return answer.token;
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
    if (grant) {
      try {
        this.verifier!.consume(grant);
      } catch (error) {
        this.stats.unauthorized++;
        const e = error as TicketError;
        return this.answer(stream, this.error(e.code, this.shard, e.details ?? e.shortMessage, requestId));
      }
    }
    this.inflight++;
    increment(this.inflightBy, peer);
    let reply: InferReply;
    try {
      const activation = decodeTensor(boundaryCodec(this.spec), inferenceShape(this.spec), payload);
      this.stats.computed++;
      const out = await this.stage.run(request.tokens, activation);
      const token = this.isLast
        ? pickToken(out, request.sampling)
        : await this.forward(requestId, request.tokens, request.sampling, out, request.ticket);
      reply = { kind: "token", requestId, token };
      this.stats.served++;
    } catch (error) {
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
    this.stage.dispose();
  }
}

/**
 * The token ids of a prompt. Unlike training's `encodeText`, a character outside the vocabulary
 * is an error (`PromptError` listing them), not token 0.
 */
export function encodePrompt(spec: ModelSpec, prompt: string): number[] {
  const chars = [...prompt];
  if (chars.length === 0) throw new PromptError("The prompt is empty: give at least one character.");
  if (chars.length > MAX_PROMPT_CHARACTERS)
    throw new PromptError(`The prompt has ${chars.length} characters; at most ${MAX_PROMPT_CHARACTERS} are accepted.`);
  const index = new Map<string, number>();
  [...spec.architecture.vocab].forEach((c, i) => index.set(c, i));
  const unknown = [...new Set(chars.filter((c) => !index.has(c)))];
  if (unknown.length > 0)
    throw new PromptError(
      `The prompt has ${unknown.length} character${unknown.length === 1 ? "" : "s"} the model does not know.`,
      {
        details: `unknown: ${unknown
          .slice(0, 20)
          .map((c) => JSON.stringify(c))
          .join(", ")}${unknown.length > 20 ? ", …" : ""}`,
        unknown,
      },
    );
  return chars.map((c) => index.get(c)!);
}
