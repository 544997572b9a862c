import { multiaddr as parseMultiaddr } from "@multiformats/multiaddr";
import { z } from "zod";

import type { NodeError } from "../errors.js";
import { boundaryCodec } from "../ml/pipeline.js";
import type { ModelSpec } from "../ml/spec.js";
import { encodeTensor } from "../p2p/codec.js";
import type { ShardHost } from "../p2p/host.js";
import { InferenceRemoteError, InferenceRequestError, ShardUnavailableError } from "./errors.js";
import {
  INFER_PROTOCOL,
  INFER_PROTOCOL_VERSION,
  REPLY_LIMITS,
  type InferReply,
  type InferRequest,
  type Sampling,
  inferenceShape,
  zInferReply,
} from "./protocol.js";
import { MessageReadError, type Stream, encodeMessage, readMessage, writeMessage } from "./wire.js";

/** The hop after this shard: who this shard is, and where and how long to ask shard + 1. */
export interface NextHop {
  host: ShardHost;
  spec: ModelSpec;
  /** This shard (the request goes to shard + 1). */
  shard: number;
  /** The spec digest requests carry. */
  digest: string;
  /** Multiaddr of shard + 1. */
  next: string;
  /** Time each hop gets, in ms. */
  timeoutMs: number;
}

/**
 * Sends this shard's boundary tensor of the new positions of `session` to shard + 1 and waits for the token. Failures name the
 * shard at fault: `ShardUnavailableError` for one that cannot be reached, times out or breaks
 * the protocol, `InferenceRemoteError` for one that refused.
 */
export async function forward(
  to: NextHop,
  requestId: string,
  session: InferRequest["session"],
  tokens: number[],
  sampling: Sampling | undefined,
  activation: Float32Array,
  ticket: unknown,
): Promise<number> {
  const target = to.shard + 1;
  const hops = to.spec.shards.length - 1 - to.shard;
  const codec = boundaryCodec(to.spec);
  const shape = inferenceShape(to.spec, tokens.length);
  const header: InferRequest = {
    kind: "infer",
    protocol: INFER_PROTOCOL_VERSION,
    requestId,
    specDigest: to.digest,
    shard: target,
    session,
    tokens,
    ...(sampling ? { sampling } : {}),
    activation: { dtype: codec, shape },
    ...(ticket !== undefined ? { ticket } : {}),
  };
  const message = encodeMessage(header, encodeTensor(codec, shape, activation));
  let stream: Stream;
  try {
    stream = await to.host.libp2p.dialProtocol(parseMultiaddr(to.next), INFER_PROTOCOL, {
      signal: AbortSignal.timeout(to.timeoutMs),
    });
  } catch (error) {
    const name = (error as Error).name;
    const why =
      name === "TimeoutError" || name === "AbortError"
        ? `no connection to ${to.next} within ${to.timeoutMs} ms`
        : name === "UnsupportedProtocolError"
          ? `the peer at ${to.next} does not serve inference`
          : `dialing ${to.next} failed: ${(error as Error).message}`;
    throw new ShardUnavailableError(target, why, error);
  }
  // Start reading before sending, so that a quick answer is not missed.
  const reply = readMessage(stream, REPLY_LIMITS, hops * to.timeoutMs);
  reply.catch(() => {});
  try {
    await writeMessage(stream, message, to.timeoutMs);
  } catch (error) {
    throw new ShardUnavailableError(target, `sending the request failed: ${(error as Error).message}`, error);
  }
  let answer: InferReply;
  try {
    const { header: json } = await reply;
    const parsed = zInferReply.safeParse(json);
    if (!parsed.success) throw new InferenceRequestError("malformed reply", { details: z.prettifyError(parsed.error) });
    answer = parsed.data;
  } catch (error) {
    stream.abort(error as Error);
    const why =
      error instanceof MessageReadError
        ? error.reason === "timeout"
          ? `no answer within ${hops * to.timeoutMs} ms`
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
  if (answer.token >= to.spec.architecture.vocab.length)
    throw new ShardUnavailableError(target, `it answered token ${answer.token}, outside the vocabulary`);
  return answer.token;
}
