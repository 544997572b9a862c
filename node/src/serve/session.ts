import { type KVCache, disposeKV } from "../ml/model.js";

/**
 * What a generation sends down the pipeline for its next token when the shards keep a KV cache:
 * while the sequence fits the context, only the positions the shards have not seen yet (the
 * prompt once, then one per token); once it is longer, the last `context` tokens from position 0
 * (a fresh session), every token. That is exactly what the pipeline computed without a cache
 * (the window is the last `context` tokens at positions 0 to context − 1, so once it slides,
 * every position's embedding changes and nothing cached can be reused).
 */
export function nextChunk(
  seen: number,
  tokens: readonly number[],
  context: number,
): { start: number; tokens: number[] } {
  if (tokens.length > context) return { start: 0, tokens: tokens.slice(-context) };
  return { start: seen, tokens: tokens.slice(seen) };
}

/** Bounds on the KV caches a shard keeps for its inbound sessions (one per generation). */
export interface SessionLimits {
  /** Sessions kept at once, from every peer together. */
  maxSessions: number;
  /** Sessions one peer may hold; a new one beyond it frees that peer's least recently used one. */
  maxSessionsPerPeer: number;
  /** Bytes reserved for sessions: each reserves a full-context cache (`kvBytes(context)`). */
  maxBytes: number;
  /** A session unused this long is freed, in ms. */
  idleMs: number;
  /** A session older than this is freed (once its request in flight, if any, is answered), in ms. */
  maxAgeMs: number;
}

/** Why a session could not be opened: the shard is full (`busy`) or it has no such session (`session-lost`). */
export class SessionRefusal extends Error {
  override name = "SessionRefusal";
  constructor(
    readonly code: "busy" | "session-lost",
    message: string,
  ) {
    super(message);
  }
}

export interface Session {
  readonly key: string;
  readonly peer: string;
  cache: KVCache | undefined;
  /** A request of this session is being computed. */
  busy: boolean;
  created: number;
  used: number;
}

/**
 * The KV caches of a shard's sessions, keyed by (peer, session id), so one peer can neither read
 * nor end another's. Memory is bounded by `maxBytes` (each session reserves a full-context cache)
 * and `maxSessions`; expired sessions are freed on every `open` and by `sweep`.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly limits: SessionLimits,
    /** Bytes one session reserves. */
    private readonly reserve: number,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Bytes reserved by the sessions kept. */
  get bytes(): number {
    return this.sessions.size * this.reserve;
  }

  /**
   * The session `id` of `peer` for new positions from `start`, marked busy: a new (or restarted)
   * one at 0, else the one whose cache holds exactly `[0, start)`. Throws `SessionRefusal`.
   */
  open(peer: string, id: string, start: number, now = Date.now()): Session {
    this.sweep(now);
    const key = `${peer} ${id}`;
    const existing = this.sessions.get(key);
    if (existing?.busy) throw new SessionRefusal("busy", `session ${id} has a request in flight`);
    if (start > 0) {
      if (!existing || (existing.cache?.length ?? 0) !== start)
        throw new SessionRefusal("session-lost", `no session ${id} holding positions [0, ${start})`);
      existing.busy = true;
      return existing;
    }
    if (existing) this.drop(existing);
    const mine = [...this.sessions.values()].filter((s) => s.peer === peer);
    if (mine.length >= this.limits.maxSessionsPerPeer) {
      const idle = mine.filter((s) => !s.busy).sort((a, b) => a.used - b.used)[0];
      if (!idle) throw new SessionRefusal("busy", `${mine.length} sessions of this peer in flight`);
      this.drop(idle);
    }
    if (this.sessions.size >= this.limits.maxSessions || this.bytes + this.reserve > this.limits.maxBytes)
      throw new SessionRefusal(
        "busy",
        `${this.sessions.size} sessions kept (${this.bytes} bytes reserved), at most ${this.limits.maxSessions} (${this.limits.maxBytes} bytes)`,
      );
    const session: Session = { key, peer, cache: undefined, busy: true, created: now, used: now };
    this.sessions.set(key, session);
    return session;
  }

  /** Stores the session's new cache; `end` (the generation's last token) frees it. */
  done(session: Session, cache: KVCache, end: boolean, now = Date.now()): void {
    session.cache = cache;
    session.busy = false;
    session.used = now;
    if (end || this.sessions.get(session.key) !== session) this.drop(session);
  }

  /** Frees a session whose request failed: its cache may be ahead of what the requester believes. */
  fail(session: Session): void {
    session.busy = false;
    this.drop(session);
  }

  /** Frees the idle sessions unused for `idleMs` and those older than `maxAgeMs` once idle. */
  sweep(now = Date.now()): void {
    for (const s of [...this.sessions.values()])
      if (!s.busy && (now - s.used > this.limits.idleMs || now - s.created > this.limits.maxAgeMs)) this.drop(s);
  }

  clear(): void {
    for (const s of [...this.sessions.values()]) this.drop(s);
  }

  private drop(session: Session): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.cache && !session.busy) {
      disposeKV(session.cache);
      session.cache = undefined;
    }
  }
}
