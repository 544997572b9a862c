import type { Hex } from "viem";
import { z } from "zod";

import { DEFAULTS } from "../config/defaults.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import type { ShardHost } from "../p2p/host.js";
import { MAX_TEMPERATURE } from "./protocol.js";
import type { TicketIssuer, TicketVerifier } from "./ticket.js";

/* What an inference server takes and gives: its parameters, bounds, requests and results (server.ts). */
/** Default time each hop of the pipeline gets, in ms. */
export const DEFAULT_HOP_TIMEOUT_MS = DEFAULTS.serve.hopTimeout * 1000;
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
/** Default bound on the sessions (KV caches of generations) a shard keeps at once. */
export const DEFAULT_MAX_SESSIONS = 64;
/** Default bound on the memory sessions reserve, in bytes (each reserves a full-context cache). */
export const DEFAULT_MAX_SESSION_BYTES = 1024 * 1024 * 1024;
/** Default time an unused session is kept, in ms. */
export const DEFAULT_SESSION_IDLE_MS = 60_000;
/** Default longest life of a session, in ms. */
export const DEFAULT_SESSION_MAX_AGE_MS = 600_000;
/** Default bound on `maxTokens`. */
export const DEFAULT_MAX_GENERATE_TOKENS = DEFAULTS.serve.maxTokens;
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
  /**
   * Shards after 0: sessions kept at once (default 64). A session is one generation's keys and
   * values on this shard; it is freed after the generation's last token, after `sessionIdleMs`
   * unused, or `sessionMaxAgeMs` after it opened. A peer holds at most `maxPerPeer` (a new one
   * frees its least recently used); beyond the bounds a new session is answered `busy`.
   */
  maxSessions?: number | undefined;
  /** Bytes sessions may reserve, each a full-context cache (default 1 GiB). */
  maxSessionBytes?: number | undefined;
  /** Time an unused session is kept, in ms (default 60 s). */
  sessionIdleMs?: number | undefined;
  /** Longest life of a session, in ms (default 10 min). */
  sessionMaxAgeMs?: number | undefined;
  /**
   * Shard 0: send only the positions the shards have not seen (default true). False sends the
   * whole window every token, as version 1 did (the same tokens; for benchmarks).
   */
  kvCache?: boolean | undefined;
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

/** `GenerateRequest` as `generate` checks it. */
export const zGenerateRequest = z.object({
  prompt: z.string(),
  maxTokens: z.int().min(1),
  temperature: z.number().min(0).max(MAX_TEMPERATURE).optional(),
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  receiptDigest: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "must be 0x and 32 bytes of hex")
    .optional(),
});

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
  /**
   * Passes of this shard's stage (one per hop served, one per character generated on shard 0);
   * each covers only the positions the shard has not seen (`session.ts`).
   */
  computed: number;
}

export interface InferenceServer {
  readonly shard: number;
  readonly stats: InferenceServerStats;
  /** Generations shard 0 runs at once (`maxPerPeer`): what a gateway in front of it should admit. */
  readonly capacity: number;
  /**
   * Shard 0 only: generates `maxTokens` characters after `prompt`, one pass through the pipeline
   * per character; every shard keeps the generation's keys and values, so the prompt crosses each
   * hop once and then one position per character (the whole window again once it slides). All or nothing: a failure rejects without partial text.
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
