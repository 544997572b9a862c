import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Account, Hex } from "viem";
import { zeroHash } from "viem";
import {
  type AnyClient,
  ContractRevertError,
  type Deployment,
  MERGE_LANES,
  type VerdictName,
} from "shard-protocol/sdk";

import { NodeError } from "../errors.js";
import { connectContentPeers } from "../ipfs/peers.js";
import type { ContentStore } from "../ipfs/store.js";
import type { BackendInfo } from "../ml/backend.js";
import { loadCorpus } from "../ml/data.js";
import { stageLayout } from "../ml/model.js";
import { boundaryCodec, boundaryShape } from "../ml/pipeline.js";
import type { ModelSpec } from "../ml/spec.js";
import { type StageState, StageTrainer } from "../ml/stage.js";
import { payloadBytes } from "../p2p/codec.js";
import {
  HandshakeError,
  LinkClosedError,
  LinkTimeoutError,
  MalformedFrameError,
  OversizedFrameError,
  PeerAbortedError,
  PeerGoneError,
  UnexpectedTensorError,
} from "../p2p/errors.js";
import { type PeerAuthority, chainAuthority } from "../p2p/auth.js";
import { type LinkAuth, type LinkHello, type PipelineLink, acceptLink, dialLink, pinnedPeerId } from "../p2p/link.js";
import type { ShardHost } from "../p2p/host.js";
import { appealIfMismatched, claimAppeal } from "./appeal.js";
import { decodeCheckpoint } from "./checkpoint.js";
import { commitRound } from "./commit.js";
import { Journal, type RoundRecord } from "./journal.js";
import { adoptMerge, newestAcceptedMerge } from "./join.js";
import { type MergeEvent, MergeLog, RevealScanner, mergeRound } from "./merge-step.js";
import type { Seat } from "./seats.js";
import { type Neighbours, type RoundOutcome, RoundStoppedError, runSwarmRound } from "./round.js";
import type { RoundTamper } from "./tamper.js";

/**
 * A swarm node's life: finish any decided round not yet on-chain, load the newest decided
 * checkpoint (or genesis), connect to the neighbouring shards, agree on the round, and train
 * round after round. A neighbour that fails mid-round makes every shard of the lane drop the
 * round and retry it from the last decided checkpoint once the links are back.
 *
 * In merging mode (the spec sets `training.merge`), each revealed round is followed by the merge
 * step (`merge-step.ts`): the links are closed, the node merges its shard's lanes of the round
 * (committing the merge if it is the merger), and the next round starts from the merge.
 */

export class SwarmDivergedError extends NodeError {
  override name = "SwarmDivergedError";
}

export class NeighboursUnavailableError extends NodeError {
  override name = "NeighboursUnavailableError";
  constructor(what: string, waitedMs: number, cause?: unknown) {
    super(`The neighbouring shards did not come back within ${Math.round(waitedMs / 1000)} s (${what}).`, {
      cause,
      retryable: true,
    });
  }
}

export type SwarmEvent =
  | { type: "resumed"; round: number; from: "genesis" | "checkpoint" }
  | { type: "connecting"; round: number }
  | { type: "connected"; round: number; prev?: string | undefined; next?: string | undefined }
  | { type: "step"; round: number; step: number; steps: number; loss: number | undefined; samplesPerSecond: number }
  | { type: "round"; round: number; outcome: RoundOutcome }
  | { type: "retry"; round: number; reason: string }
  | { type: "commit"; round: number; phase: string; commitId?: Hex | undefined; seconds?: number | undefined }
  | { type: "stopped"; round: number; reason: string }
  /** Merging mode: the merge step of a round, and its outcome (`merge-step.ts`). */
  | MergeEvent
  /** Merging mode: the lane went on from the accepted merge of `round` without training it (joined, or came back late; `join.ts`). */
  | { type: "joined"; round: number; root: Hex; lanes: number[] }
  /** The owner claimed its part of an appeal's resolved dispute (or the ledger refused: `error`). */
  | {
      type: "appealClaimed";
      round: number;
      commitId: Hex;
      verdict?: VerdictName | undefined;
      amount?: bigint | undefined;
      error?: string | undefined;
    }
  /** A revealed round's pipeline links were settled: matched, or mismatched (and appealed, or the appeal failed). */
  | {
      type: "link";
      round: number;
      state: "matched" | "mismatched";
      appealed?: boolean | undefined;
      commitId?: Hex | undefined;
      error?: string | undefined;
    };

export interface SwarmNodeOptions {
  spec: ModelSpec;
  specDigest: Hex;
  modelId: bigint;
  shard: number;
  lane: number;
  dataDir: string;
  backend: BackendInfo;
  host: ShardHost;
  /**
   * Multiaddrs of shard − 1 (not dialed: it dials us; where it ends in `/p2p/<peerId>`, only that
   * peer is accepted) and shard + 1 (dialed; its `/p2p/<peerId>`, if any, is checked by libp2p).
   */
  peers: { prev?: string | undefined; next?: string | undefined };
  /**
   * This node's seat in the lane directory (`seats.ts`): where `peers` names no neighbour, the
   * neighbours of the lane are read from their seats; the seat is renewed while the node runs, and
   * content is fetched from every seat holder.
   */
  seat?: Seat | undefined;
  chain: { client: AnyClient; account: Account; deployment: Deployment };
  /**
   * Who may be a neighbour: a node key authorized by a staked trainer of the model. Default: the
   * chain's word (`chainAuthority`); the links' hellos are signed by `chain.account`.
   */
  linkAuthority?: PeerAuthority | undefined;
  store: ContentStore;
  /**
   * Stop once the lane's round `rounds` is decided (rounds decided before a restart count), and,
   * in merging mode, merged.
   */
  rounds?: number | undefined;
  /** Bound on each wait for a neighbour's tensor (default 60 s). */
  peerTimeoutMs?: number | undefined;
  /** How long to keep trying to (re)connect to the neighbours (default 5 min). */
  reconnectMs?: number | undefined;
  onEvent?: (e: SwarmEvent) => void;
  /** Set to stop after the current step. */
  signal?: AbortSignal | undefined;
  /**
   * Appeal a mismatched pipeline link by challenging this node's own commit (see `appeal.ts`).
   * Default: true, false for a node given a `tamper` hook.
   */
  appeal?: boolean | undefined;
  /**
   * Merging mode without the merge step (default false): the node commits its rounds and leaves
   * merging to others, going on from its own checkpoint. For a node that only trains one round, or
   * tools and tests that commit merges themselves.
   */
  noMergeStep?: boolean | undefined;
  /** Merging mode: after the merge deadline, how long to wait for the merger's reveal (default: the reveal window). */
  mergeWaitMs?: number | undefined;
  /** Merging mode: bound on fetching another lane's checkpoint (default 30 s). */
  mergeFetchTimeoutMs?: number | undefined;
  /** Before returning, how long to wait for the neighbours' reveals to settle the links (default 15 s). */
  appealWaitMs?: number | undefined;
  /**
   * Tests and benchmarks only, never set by the CLI: change what this node commits, to show a lie
   * being caught (see `tamper.ts`).
   */
  tamper?: RoundTamper | undefined;
}

export interface SwarmRunResult {
  journal: Journal;
  roundsTrained: number;
  /** Newest decided round. */
  head: number;
  stopped: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Loads the trainer for the round after `head` (genesis when there is none): in merging mode, the
 * head round's merge once it is merged.
 */
async function loadTrainer(
  opts: SwarmNodeOptions,
  journal: Journal,
  merges?: MergeLog | undefined,
): Promise<{ trainer: StageTrainer; parentRoot: Hex }> {
  const round = journal.headRound;
  if (round === 0) return { trainer: new StageTrainer(opts.spec, opts.shard), parentRoot: zeroHash };
  const merged = merges?.get(round);
  if (merged) {
    const state = await merges!.load(opts.spec, opts.shard, expectOf(opts), merged);
    return { trainer: new StageTrainer(opts.spec, opts.shard, state), parentRoot: merged.root };
  }
  const head = journal.head;
  if (!head || head.round !== round)
    throw new SwarmDivergedError(`The lane went on from the merge of round ${round}, which its merge log lacks.`);
  const bytes = await readFile(join(journal.dir, head.checkpointFile));
  const { state, root } = decodeCheckpoint(new StageTrainer(opts.spec, opts.shard).layout, bytes, {
    ...expectOf(opts),
    stepsPerRound: opts.spec.training.stepsPerRound,
    round: head.round,
  });
  if (root !== head.root)
    throw new SwarmDivergedError(
      `The checkpoint of round ${head.round} on disk does not match the journal (root ${root}, expected ${head.root}).`,
    );
  return { trainer: new StageTrainer(opts.spec, opts.shard, state), parentRoot: head.root };
}

const expectOf = (opts: SwarmNodeOptions) => ({ modelId: String(opts.modelId), specDigest: opts.specDigest });

/** The states a merge of `round` may use without fetching: the lane's own checkpoint of it, and the merge it started from. */
async function knownStates(opts: SwarmNodeOptions, journal: Journal, merges: MergeLog, round: number) {
  const known = new Map<Hex, StageState>();
  const rec = journal.record(round)!;
  const { state } = decodeCheckpoint(
    stageLayout(opts.spec, opts.shard),
    await readFile(join(journal.dir, rec.checkpointFile)),
    { ...expectOf(opts), stepsPerRound: opts.spec.training.stepsPerRound, round },
  );
  known.set(rec.root, state);
  const before = merges.get(round - 1);
  if (before) known.set(before.root, await merges.load(opts.spec, opts.shard, expectOf(opts), before));
  return known;
}

export async function runSwarmNode(opts: SwarmNodeOptions): Promise<SwarmRunResult> {
  if (opts.lane >= MERGE_LANES)
    throw new NodeError(`Lane ${opts.lane} is a merge lane: a trainer's lane is below ${MERGE_LANES}.`);
  const dir = Journal.directory(opts.dataDir, String(opts.modelId), opts.shard, opts.lane);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const journal = await Journal.open(dir, {
    modelId: String(opts.modelId),
    shard: opts.shard,
    lane: opts.lane,
    specDigest: opts.specDigest,
    owner: opts.chain.account.address,
  });
  const commitCtx = {
    ...opts.chain,
    journal,
    store: opts.store,
    modelId: opts.modelId,
    shard: opts.shard,
    lane: opts.lane,
  };
  const emit = opts.onEvent ?? (() => {});
  const isLast = opts.shard === opts.spec.shards.length - 1;
  if (!isLast && !opts.peers.next && !opts.seat)
    throw new NodeError(`Shard ${opts.shard} feeds shard ${opts.shard + 1}: configure peers.next with its multiaddr.`);
  const peerTimeoutMs = opts.peerTimeoutMs ?? 60_000;
  const reconnectMs = opts.reconnectMs ?? 300_000;
  const linkAuth = swarmLinkAuth(opts);

  // Rounds decided before a crash are carried on-chain first, oldest first.
  const commitAll = async () => {
    for (const rec of journal.unfinished) {
      const t0 = performance.now();
      const store = opts.tamper?.store?.(rec.round, opts.store) ?? opts.store;
      const ctx = store === opts.store ? commitCtx : { ...commitCtx, store };
      const done = await commitRound(ctx, rec.round, (phase, r) => emit({ type: "commit", round: r.round, phase }));
      emit({
        type: "commit",
        round: rec.round,
        phase: "done",
        commitId: done.commitId,
        seconds: (performance.now() - t0) / 1000,
      });
    }
  };
  await commitAll();

  // Revealed rounds whose links are not settled yet; true once none is left.
  const appeal = opts.appeal ?? opts.tamper === undefined;
  const shardCount = opts.spec.shards.length;
  const settleLinks = async (): Promise<boolean> => {
    if (!appeal || shardCount < 2) return true;
    let settled = true;
    for (const rec of journal.rounds) {
      if (rec.phase !== "revealed" || rec.link) continue;
      try {
        const out = await appealIfMismatched(commitCtx, rec, shardCount);
        if (out.link === "waiting") {
          settled = false;
          continue;
        }
        if (out.link === "matched") await journal.advance(rec.round, "revealed", { link: "matched" });
        else
          await journal.advance(rec.round, "revealed", {
            link: out.appealed ? "appealed" : "mismatched",
            ...(out.appealed && out.dispute ? { appeal: { dispute: out.dispute, claimed: false } } : {}),
          });
        emit(
          out.link === "matched"
            ? { type: "link", round: rec.round, state: "matched" }
            : { type: "link", round: rec.round, state: "mismatched", appealed: out.appealed, commitId: out.commitId },
        );
      } catch (err) {
        // An appeal that fails must not stop training. The ledger's refusal (window closed, no
        // bond) is final; anything else (RPC down) is retried at the next settlement.
        const refused = err instanceof ContractRevertError;
        if (refused) await journal.advance(rec.round, "revealed", { link: "mismatched" });
        else settled = false;
        emit({ type: "link", round: rec.round, state: "mismatched", appealed: false, error: (err as Error).message });
      }
    }
    await claimAppeals();
    return settled;
  };
  // Appeals whose dispute was resolved: the owner pulls its part (bonds) from the ledger.
  const claimAppeals = async () => {
    for (const rec of journal.rounds) {
      if (!rec.appeal || rec.appeal.claimed || !rec.commitId) continue;
      try {
        const got = await claimAppeal(commitCtx, rec.commitId, rec.appeal.dispute);
        if (!got) continue;
        await journal.advance(rec.round, "revealed", { appeal: { ...rec.appeal, claimed: true } });
        emit({
          type: "appealClaimed",
          round: rec.round,
          commitId: rec.commitId,
          verdict: got.verdict,
          amount: got.amount,
        });
      } catch (err) {
        // The ledger's refusal (nothing to claim: someone claimed it for the owner) is final;
        // anything else (RPC down) is retried at the next settlement.
        if (!(err instanceof ContractRevertError)) continue;
        await journal.advance(rec.round, "revealed", { appeal: { ...rec.appeal, claimed: true } });
        emit({ type: "appealClaimed", round: rec.round, commitId: rec.commitId, error: (err as Error).message });
      }
    }
  };
  const commitAndSettle = async () => {
    await commitAll();
    await settleLinks();
  };
  await settleLinks();

  // Merging mode: after each revealed round, the merge step; the next round starts from the merge.
  const merges = opts.spec.training.merge && !opts.noMergeStep ? await MergeLog.open(dir) : undefined;
  const mergeCtx = merges && {
    spec: opts.spec,
    specDigest: opts.specDigest,
    modelId: opts.modelId,
    shard: opts.shard,
    lane: opts.lane,
    chain: opts.chain,
    store: opts.store,
    journal,
    merges,
    scanner: new RevealScanner(opts.chain.client, opts.chain.deployment, opts.modelId),
    fetchTimeoutMs: opts.mergeFetchTimeoutMs ?? 30_000,
    mergerWaitMs: opts.mergeWaitMs,
    shouldStop: () => opts.signal?.aborted === true,
    emit,
  };
  const unmerged = () => {
    const h = journal.head;
    return merges && h && h.round > (journal.base?.round ?? 0) && !merges.get(h.round) ? h.round : undefined;
  };
  // Merging mode: rounds the other lanes merged while this one was not there (a node joining, or
  // back from a crash) are skipped: the lane goes on from the newest accepted merge (`join.ts`).
  let nextCatchUp = 0;
  const catchUp = async (round: number, force = false): Promise<boolean> => {
    if (!mergeCtx || (!force && Date.now() < nextCatchUp)) return false;
    nextCatchUp = Date.now() + 2000;
    const newest = await newestAcceptedMerge(opts.chain.client, {
      deployment: opts.chain.deployment,
      shardCount,
      reveals: await mergeCtx.scanner.scan(),
      after: round - 1,
    });
    if (!newest) return false;
    await connectSeatHolders();
    const { merged } = await adoptMerge(mergeCtx, newest.round, newest.commits[opts.shard]!);
    emit({ type: "joined", round: newest.round, root: merged.root, lanes: merged.lanes });
    return true;
  };
  // Content (other lanes' checkpoints, merges) comes from the seat holders of the model.
  const connectSeatHolders = async () => {
    if (!opts.seat) return;
    const addrs = await opts.seat.contentPeers().catch(() => [] as string[]);
    await connectContentPeers(opts.host, addrs, { timeoutMs: 5000 }).catch(() => {});
  };

  const corpus = loadCorpus(opts.spec);
  let { trainer, parentRoot } = await loadTrainer(opts, journal, merges);
  emit({ type: "resumed", round: journal.headRound + 1, from: journal.headRound > 0 ? "checkpoint" : "genesis" });
  let commits: Promise<void> = Promise.resolve();
  let commitError: unknown;
  let trained = 0;
  let links: Neighbours | undefined;
  const closeLinks = async (reason?: string) => {
    for (const l of [links?.prev, links?.next]) if (l) await (reason ? l.abort(reason) : l.close()).catch(() => {});
    links = undefined;
  };
  const stopping = () => opts.signal?.aborted === true;

  try {
    let waitingSince: number | undefined;
    let mergingSince: number | undefined;
    while (!stopping() && (opts.rounds === undefined || journal.headRound < opts.rounds || unmerged() !== undefined)) {
      if (commitError) throw commitError;
      const toMerge = unmerged();
      if (toMerge !== undefined && mergeCtx) {
        // The round must be revealed before it can be merged; the links idle meanwhile: closed.
        await closeLinks();
        await commits;
        if (commitError) throw commitError;
        if (journal.record(toMerge)?.phase !== "revealed") await commitAll();
        let done;
        try {
          await connectSeatHolders();
          done = await mergeRound(mergeCtx, toMerge, await knownStates(opts, journal, mergeCtx.merges, toMerge));
        } catch (err) {
          // A lane's checkpoint not fetched yet, the RPC down: tried again for as long as neighbours are.
          if (!(err instanceof NodeError) || !err.retryable) throw err;
          mergingSince ??= Date.now();
          if (Date.now() - mergingSince > reconnectMs) throw err;
          emit({ type: "retry", round: toMerge, reason: `merge: ${err.shortMessage}` });
          await sleep(1000);
          continue;
        }
        mergingSince = undefined;
        if (!done) break; // stopping
        trainer.dispose();
        ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
        continue;
      }
      const round = journal.headRound + 1;
      if (!links) {
        emit({ type: "connecting", round });
        waitingSince ??= Date.now();
        try {
          if (await catchUp(round)) {
            await journal.discardPending();
            trainer.dispose();
            ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
            waitingSince = undefined;
            continue;
          }
          await opts.seat?.keep();
          links = await connectNeighbours(
            { ...opts, peers: await neighbourAddresses(opts) },
            round,
            Math.min(peerTimeoutMs, 30_000),
            linkAuth,
          );
        } catch (err) {
          if (Date.now() - (waitingSince ?? Date.now()) > reconnectMs)
            throw new NeighboursUnavailableError((err as Error).message, reconnectMs, err);
          emit({ type: "retry", round, reason: (err as Error).message });
          await sleep(250);
          continue;
        }
        // Agree on the round: a neighbour one round ahead decided the round this node prepared.
        const ahead = [links.prev, links.next].filter((l): l is PipelineLink => !!l).map((l) => l.remote.round);
        const pending = journal.pending;
        if (ahead.some((r) => r === round + 1) && (await catchUp(round, true))) {
          // The neighbour went on from a merge of this round (it came back late): so does this node.
          await journal.discardPending();
          trainer.dispose();
          ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
          await closeLinks();
          continue;
        }
        if (ahead.some((r) => r === round + 1) && pending?.round === round) {
          await journal.advance(round, "decided");
          commits = commits.then(commitAndSettle).catch((e) => void (commitError = e));
          trainer.dispose();
          ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
          await closeLinks();
          continue; // reconnect announcing the new round
        }
        const apart = ahead.find((r) => r !== round && r !== round - 1);
        if (apart !== undefined) {
          // An (authenticated) neighbour whose round this one cannot follow: refused for now, never
          // fatal here: one side may be restarting from an older data directory, or misbehave.
          const reason = `a neighbouring shard is at round ${apart}, this node at round ${round}`;
          await closeLinks(`retry: ${reason}`);
          if (Date.now() - (waitingSince ?? Date.now()) > reconnectMs)
            throw new NeighboursUnavailableError(reason, reconnectMs);
          emit({ type: "retry", round, reason });
          await sleep(1000);
          continue;
        }
        if (ahead.some((r) => r === round - 1)) {
          // The neighbour is behind and will catch up on seeing our round; reconnect.
          await closeLinks();
          await sleep(100);
          continue;
        }
        if (pending) await journal.discardPending();
        waitingSince = undefined;
        emit({ type: "connected", round, prev: links.prev?.remotePeer, next: links.next?.remotePeer });
      }
      const stepBefore = trainer.step; // to know, if the round fails, whether the weights moved
      try {
        const outcome = await runSwarmRound({
          spec: opts.spec,
          trainer,
          corpus,
          backend: opts.backend,
          journal,
          modelId: String(opts.modelId),
          specDigest: opts.specDigest,
          shard: opts.shard,
          lane: opts.lane,
          round,
          parentRoot,
          neighbours: links,
          shouldStop: stopping,
          tamper: opts.tamper,
          onStep: (s) => emit({ type: "step", ...s, steps: opts.spec.training.stepsPerRound }),
        });
        trained++;
        parentRoot = outcome.record.root;
        emit({ type: "round", round, outcome });
        commits = commits.then(commitAndSettle).catch((e) => void (commitError = e));
        if (outcome.stateTampered) {
          // Train on from the weights it committed, as a real cheater would have to.
          trainer.dispose();
          ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
        }
      } catch (err) {
        if (err instanceof RoundStoppedError) break;
        if (!(err instanceof NodeError) || !isLinkFailure(err)) throw err;
        // A neighbour failed or went away: drop the round here too and retry it from the last
        // decided checkpoint once the links are back. A prepared round stays pending until the
        // neighbours say whether it was decided.
        emit({ type: "retry", round, reason: err.shortMessage });
        await closeLinks(`shard ${opts.shard} lost round ${round}: ${err.shortMessage}`);
        if (trainer.step === stepBefore && journal.headRound === round - 1) {
          // No optimizer step was applied: the weights are still the last decided ones.
          trainer.resetStep();
        } else {
          trainer.dispose();
          ({ trainer, parentRoot } = await loadTrainer(opts, journal, merges));
        }
      }
    }
  } finally {
    if (stopping()) await closeLinks(`shard ${opts.shard} is stopping`);
    else await closeLinks();
    trainer.dispose();
    await commits;
  }
  if (commitError) throw commitError;
  // The neighbours reveal at about the same time: give their reveals a bounded while to settle
  // the links of this run's rounds (and appeal a mismatch) before returning.
  const settleBy = Date.now() + (opts.appealWaitMs ?? 15_000);
  while (!(await settleLinks()) && !stopping() && Date.now() < settleBy) await sleep(250);
  const head = journal.headRound;
  if (stopping()) emit({ type: "stopped", round: head + 1, reason: "interrupted" });
  return { journal, roundsTrained: trained, head, stopped: stopping() };
}

/**
 * The lane's neighbours: the configured addresses, else those announced in their seats (the
 * previous shard's pinned to its peer id). A next shard whose seat is free is not there yet.
 */
async function neighbourAddresses(opts: SwarmNodeOptions): Promise<SwarmNodeOptions["peers"]> {
  const isLast = opts.shard === opts.spec.shards.length - 1;
  const peers = { ...opts.peers };
  if (opts.seat) {
    peers.prev ??= await opts.seat.prev();
    if (!isLast) peers.next ??= await opts.seat.next();
  }
  if (!isLast && !peers.next)
    throw new NodeError(`Shard ${opts.shard + 1} of lane ${opts.lane} has no node yet (its seat is free).`, {
      retryable: true,
    });
  return peers;
}

const LINK_FAILURES = [
  PeerGoneError,
  PeerAbortedError,
  LinkTimeoutError,
  LinkClosedError,
  MalformedFrameError,
  OversizedFrameError,
  UnexpectedTensorError,
  HandshakeError,
];

function isLinkFailure(err: NodeError): boolean {
  return LINK_FAILURES.some((failure) => err instanceof failure);
}

/** Opens the links of this shard for `round`: accepts shard − 1, dials shard + 1 (retrying while it is not up). */
export async function connectNeighbours(
  opts: Pick<
    SwarmNodeOptions,
    "spec" | "modelId" | "specDigest" | "shard" | "lane" | "host" | "peers" | "peerTimeoutMs"
  >,
  round: number,
  timeoutMs: number,
  /** Authenticate both links (a swarm node always does); without it, any peer that agrees on the facts links. */
  auth?: LinkAuth | undefined,
): Promise<Neighbours> {
  const hello: LinkHello = {
    modelId: opts.modelId,
    specDigest: opts.specDigest,
    shard: opts.shard,
    lane: opts.lane,
    round,
  };
  const isFirst = opts.shard === 0;
  const isLast = opts.shard === opts.spec.shards.length - 1;
  const deadline = Date.now() + timeoutMs;
  // Tensors between shards are exactly the boundary shape in the spec's codec; a stage may run a
  // whole step of micro-batches ahead of its neighbour, so the links buffer that much.
  const tensorBytes = payloadBytes(boundaryCodec(opts.spec), boundaryShape(opts.spec));
  const limits = {
    maxTensorBytes: tensorBytes,
    bufferBytes: (opts.spec.training.microBatches + 2) * (tensorBytes + 8192),
    // A neighbour a round ahead or behind is reconciled by the caller; further apart, refused for now.
    roundWindow: 1,
  };
  // Each end pins the peer id its configured address names, if any.
  const authOf = (address: string | undefined) => auth && { ...auth, peer: pinnedPeerId(address) };
  const dialNext = async (): Promise<PipelineLink | undefined> => {
    if (isLast) return undefined;
    for (;;) {
      try {
        return await dialLink(opts.host, {
          multiaddr: opts.peers.next!,
          hello,
          timeoutMs: Math.max(1000, Math.min(5000, deadline - Date.now())),
          matchRound: false,
          ...limits,
          auth: authOf(opts.peers.next),
        });
      } catch (err) {
        if (Date.now() > deadline || !(err instanceof NodeError) || !err.retryable) throw err;
        await sleep(200);
      }
    }
  };
  const [prev, next] = await Promise.allSettled([
    isFirst
      ? Promise.resolve(undefined)
      : acceptLink(opts.host, { hello, timeoutMs, matchRound: false, ...limits, auth: authOf(opts.peers.prev) }),
    dialNext(),
  ]);
  if (prev.status === "rejected" || next.status === "rejected") {
    for (const r of [prev, next]) if (r.status === "fulfilled" && r.value) await r.value.close().catch(() => {});
    throw (prev.status === "rejected" ? prev.reason : (next as PromiseRejectedResult).reason) as Error;
  }
  return { prev: prev.value, next: next.value, timeoutMs: opts.peerTimeoutMs ?? 60_000 };
}

/**
 * How this node's links are authenticated: hellos signed by its node key (`chain.account`, which
 * signs its commits), for the owner it trains for; neighbours checked against the chain (or
 * `linkAuthority`). `connectNeighbours` pins the peer ids that `peers` name.
 */
function swarmLinkAuth(opts: SwarmNodeOptions): LinkAuth {
  const account = opts.chain.account;
  if (typeof account.signMessage !== "function")
    throw new NodeError("The node key cannot sign: a swarm node needs a local account (its private key).");
  return {
    signer: { address: account.address, signMessage: (args) => account.signMessage!(args) },
    owner: account.address,
    authority:
      opts.linkAuthority ??
      chainAuthority({ client: opts.chain.client, deployment: opts.chain.deployment, modelId: opts.modelId }),
  };
}
