import { z } from "zod";

import { counterRandom } from "../ml/data.js";
import { boundaryCodec } from "../ml/pipeline.js";
import { type ModelSpec, boundaryWidth } from "../ml/spec.js";
import { TENSOR_CODECS, payloadBytes, payloadDefect } from "../p2p/codec.js";
import { InferenceRequestError, TICKET_REFUSALS } from "./errors.js";
import type { MessageLimits } from "./wire.js";

/**
 * The inference protocol between shards. Shard i opens a stream to shard i + 1 and sends one
 * request: the session (one per generation) and the first position the request adds to it, the
 * tokens of the new positions, the sampling parameters, and (as the payload) its boundary tensor
 * of those positions `[1, n, W]` encoded with the spec's codec, exactly as a training activation
 * travels. Each shard keeps the session's keys and values (`session.ts`), so a generation sends
 * its prompt once and then one position per token (`nextChunk`). Shard i + 1 runs its stage and either answers with the next token (last shard) or
 * forwards a request of its own to shard i + 2 and relays the answer. An error answer names the
 * shard that failed, so shard 0 can say which one is down.
 */

/** The libp2p protocol id. */
export const INFER_PROTOCOL = "/shard-protocol/infer/2.0.0";
/**
 * Version of the message format, sent in every request. 2: sessions with a KV cache (1, before:
 * every request carried the whole window `[1, context, W]`; a version-1 peer does not speak
 * `/shard-protocol/infer/2.0.0`, so dialing it fails as "does not serve inference").
 */
export const INFER_PROTOCOL_VERSION = 2;
/** Longest error message in a reply, in characters. */
export const MAX_ERROR_MESSAGE_LENGTH = 256;
/** Largest reply header, in bytes. */
export const MAX_REPLY_HEADER_BYTES = 1024;
/** Highest sampling temperature accepted. */
export const MAX_TEMPERATURE = 100;

const zRequestId = z.string().regex(/^[A-Za-z0-9._:-]{1,80}$/, "must be 1 to 80 characters of [A-Za-z0-9._:-]");
const zUint32 = z
  .int()
  .min(0)
  .max(2 ** 32 - 1);

/** Temperature sampling of the next token: `index` is the position in the generated text. */
export const zSampling = z.strictObject({
  temperature: z.number().positive().max(MAX_TEMPERATURE),
  /** Any non-negative safe integer. */
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  index: zUint32,
});
export type Sampling = z.infer<typeof zSampling>;

export const zInferRequest = z.strictObject({
  kind: z.literal("infer"),
  protocol: z.literal(INFER_PROTOCOL_VERSION),
  requestId: zRequestId,
  /** keccak256 of the canonical model spec both shards serve. */
  specDigest: z.string().regex(/^0x[0-9a-f]{64}$/, "must be 0x and 32 bytes of lowercase hex"),
  /** The receiving shard. */
  shard: z.int().min(1).max(255),
  /**
   * The generation's session on the receiving shard: `start` is the position of `tokens[0]`; 0
   * opens (or restarts) it, else the shard must hold exactly `[0, start)` of it. `end`: the
   * generation's last token, after which the shard frees the session.
   */
  session: z.strictObject({ id: zRequestId, start: z.int().min(0).max(4095), end: z.boolean() }),
  /** The tokens of the new positions (`start + n` at most `context`, each below the vocabulary size). */
  tokens: z.array(z.int().min(0).max(0xffff)).min(1).max(4096),
  /** Absent: greedy (argmax). */
  sampling: zSampling.optional(),
  /** How the payload's boundary tensor travels. */
  activation: z.strictObject({ dtype: z.enum(TENSOR_CODECS), shape: z.array(z.int().min(1).max(0xffff_ffff)).max(4) }),
  /**
   * The gateway's ticket (`ticket.ts`), passed on unchanged down the pipeline; checked by the
   * shard's `TicketVerifier` (its schema too), so that a missing one is refused as such.
   */
  ticket: z.unknown().optional(),
});
export type InferRequest = z.infer<typeof zInferRequest>;

export const REPLY_ERROR_CODES = [
  "bad-request",
  "unavailable",
  "busy",
  "internal",
  /** The shard holds no such session (expired, evicted, restarted): the generation must start over. */
  "session-lost",
  ...TICKET_REFUSALS,
] as const;
export type ReplyErrorCode = (typeof REPLY_ERROR_CODES)[number];

export const zInferReply = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("token"), requestId: zRequestId, token: z.int().min(0).max(0xffff) }),
  z.strictObject({
    kind: z.literal("error"),
    requestId: zRequestId.optional(),
    code: z.enum(REPLY_ERROR_CODES),
    /** The shard at fault: the one that refused, or the one that could not be reached. */
    shard: z.int().min(0).max(255),
    message: z.string().max(MAX_ERROR_MESSAGE_LENGTH),
  }),
]);
export type InferReply = z.infer<typeof zInferReply>;

/** The boundary tensor of `positions` positions of one sequence (default: a whole window): `[1, positions, W]`. */
export function inferenceShape(spec: ModelSpec, positions = spec.architecture.context): number[] {
  return [1, positions, boundaryWidth(spec)];
}

/** Size limits of a request to a shard of `spec`. */
export function requestLimits(spec: ModelSpec): MessageLimits {
  return {
    // Fixed fields fit in 1 KiB, the ticket in another; each token costs at most 6 characters ("65535,").
    maxHeaderBytes: 2048 + 6 * spec.architecture.context,
    maxPayloadBytes: payloadBytes(boundaryCodec(spec), inferenceShape(spec)),
  };
}

export const REPLY_LIMITS: MessageLimits = { maxHeaderBytes: MAX_REPLY_HEADER_BYTES, maxPayloadBytes: 0 };

/**
 * Checks a request header and payload from a peer against this shard and its spec: the schema,
 * the spec digest, the shard, the new positions (ending at most at `context`, ids below the
 * vocabulary size), the boundary tensor's dtype and shape (`[1, n, W]` for n tokens), and its payload (length, finite values). Throws
 * `InferenceRequestError` saying what is wrong.
 */
export function validateRequest(
  spec: ModelSpec,
  digest: string,
  shard: number,
  header: unknown,
  payload: Uint8Array,
): InferRequest {
  const parsed = zInferRequest.safeParse(header);
  if (!parsed.success)
    throw new InferenceRequestError("The inference request is malformed.", { details: z.prettifyError(parsed.error) });
  const request = parsed.data;
  const fail = (details: string) => {
    throw new InferenceRequestError("The inference request does not fit this shard.", { details });
  };
  if (request.specDigest !== digest) fail(`spec ${request.specDigest}, this shard serves ${digest}`);
  if (request.shard !== shard) fail(`addressed to shard ${request.shard}, this is shard ${shard}`);
  const { context } = spec.architecture;
  const v = [...spec.architecture.vocab].length;
  const { start } = request.session;
  if (start + request.tokens.length > context)
    fail(`${request.tokens.length} tokens${start > 0 ? ` after position ${start}` : ""}, the context is ${context}`);
  const bad = request.tokens.findIndex((t) => t >= v);
  if (bad !== -1) fail(`token ${request.tokens[bad]} at ${bad} is outside the vocabulary of ${v}`);
  const codec = boundaryCodec(spec);
  const shape = inferenceShape(spec, request.tokens.length);
  if (request.activation.dtype !== codec) fail(`activation dtype ${request.activation.dtype}, expected ${codec}`);
  if (request.activation.shape.join() !== shape.join())
    fail(`activation shape [${request.activation.shape.join(", ")}], expected [${shape.join(", ")}]`);
  const defect = payloadDefect(codec, shape, payload);
  if (defect !== undefined) fail(defect);
  return request;
}

/**
 * The next token from the last position's logits: the argmax (lowest index on ties) without
 * `sampling`; else a draw from softmax(logits / temperature), computed in float64, with the
 * uniform number taken from the counter-based generator at (seed, index): the same request gives
 * the same token on every machine.
 */
export function pickToken(logits: Float32Array, sampling?: Sampling): number {
  if (!sampling) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += weights[i] = Math.exp((logits[i]! - max) / sampling.temperature);
  // The seed's low and high 32 bits are separate counters, so every safe-integer seed counts.
  const { seed, index } = sampling;
  const u = (counterRandom(2 ** 53, seed % 2 ** 32, Math.floor(seed / 2 ** 32), index) / 2 ** 53) * total;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    sum += weights[i]!;
    if (u < sum) return i;
  }
  return weights.length - 1;
}

/** A default sampling seed derived from the prompt (FNV-1a of its UTF-16 code units), so a request without one is reproducible. */
export function promptSeed(prompt: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < prompt.length; i++) h = Math.imul(h ^ prompt.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
