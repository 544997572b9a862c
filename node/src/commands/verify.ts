import { getStake, MERGE_LANES, RpcUnavailableError } from "shard-protocol/sdk";
import { z } from "zod";

import { DEFAULTS } from "../config/defaults.js";
import { configOptionsSchema, globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { isShuttingDown, onShutdown } from "../exit.js";
import { initBackend } from "../ml/backend.js";
import { connectContentPeers } from "../ipfs/index.js";
import { toJson, type Output } from "../output.js";
import { isMergeLane } from "../swarm/merge-plan.js";
import { seatHolderAddrs } from "../swarm/seats.js";
import { type VerifierEvent, type VerifierPass, runVerifier, verifyOnce } from "../verify/verifier.js";
import { formatAmount, openSigner, parseOptions, readModel, tokenInfo } from "./common.js";
import { loadModelSpec, openNodeNetwork } from "./network.js";
import { InsufficientStakeError } from "./train.js";

/**
 * Default `--sample`. A replay costs about one round of training of the whole lane, so a verifier
 * checking everything needs the compute of every lane it watches; at a quarter it needs a quarter.
 * Detection does not rest on one verifier: with n verifiers sampling independently (keyed by their
 * address and the reveal's block hash, unknown when the trainer seals) a forged commit escapes all
 * of them with probability 0.75^n (5.6% at n = 10), and a single detection costs the cheater the
 * slash, which the protocol sets well above one commit's reward. Where a model requires
 * attestations (`minAttestations`), raise it so that enough verifiers attest every commit.
 */
export const DEFAULT_SAMPLE_RATE = DEFAULTS.verify.sample;

export const verifyOptionsSchema = globalOptionsSchema.extend(configOptionsSchema.shape).extend({
  /** A local copy of the model spec, used when IPFS does not have it; checked against the on-chain digest. */
  spec: z.string().min(1).optional(),
  /** Fraction of reveals to replay, in [0, 1]; disputes opened by others are always replayed. */
  sample: z.coerce.number().min(0).max(1).default(DEFAULT_SAMPLE_RATE),
  /** One pass, then exit. */
  once: z.boolean().default(false),
  /** Stop once every commit of lane 0 (and of the other lanes seen) up to this round is finalized or rejected. */
  untilRound: z.coerce.number().int().min(1).max(1_000_000_000).optional(),
  /** Seconds between passes. */
  poll: z.coerce.number().positive().max(3600).default(DEFAULTS.verify.poll),
  /**
   * Seconds to wait for a checkpoint or transcript in one try. A round not fetched in time is
   * tried again with backoff until its commits' deadlines are near (`verify/retry.ts`).
   */
  fetchTimeout: z.coerce.number().positive().max(3600).default(DEFAULTS.verify.fetchTimeout),
});

export type VerifyOptions = z.input<typeof verifyOptionsSchema>;

export interface VerifyResult {
  account: string;
  modelId: bigint;
  backend: string;
  sampleRate: number;
  passes: number;
  attested: number;
  challenged: number;
  voted: number;
  resolved: number;
  finalized: number;
  orphansRejected: number;
  /** Commits reported as not fetched near or after their deadline (each report once). */
  notFetched: number;
  /** Every commit of the model the verifier knows, with its status and this verifier's verdict. */
  commits: VerifierPass["commits"];
  stopped: boolean;
}

/**
 * Every commit of lane 0 up to `round`, all shards, is finalized or rejected; and so is every
 * shard's commit of each round up to `round` in which another lane revealed anything (a replica
 * lane may start late or stop early; one not seen at all is not waited for). In a round with merge
 * commits, every merge seen is settled too, and once a lane is finalized on every shard each
 * shard has a finalized merge (a merge taken down waits for its corrected attempt).
 */
export function laneSettled(pass: VerifierPass, shards: number, round: number): boolean {
  // `<lane>:<round>` of every training (lane, round) that must be settled.
  const rounds = new Set<string>();
  for (let r = 1; r <= round; r++) rounds.add(`0:${r}`);
  for (const c of pass.commits) if (c.round <= round && !isMergeLane(c.lane)) rounds.add(`${c.lane}:${c.round}`);
  for (let r = 1; r <= round; r++) {
    const merges = pass.commits.filter((c) => c.round === r && isMergeLane(c.lane));
    if (merges.length === 0) continue;
    if (merges.some((c) => c.status === "pending")) return false;
    const finalized = (lane: number, s: number) =>
      pass.commits.some((c) => c.round === r && c.lane === lane && c.shard === s && c.status === "finalized");
    const lanes = new Set(pass.commits.filter((c) => c.round === r && !isMergeLane(c.lane)).map((c) => c.lane));
    const mergeable = [...lanes].some((lane) =>
      Array.from({ length: shards }, (_, s) => s).every((s) => finalized(lane, s)),
    );
    for (let s = 0; mergeable && s < shards; s++)
      if (!merges.some((c) => c.shard === s && c.status === "finalized")) return false;
  }
  for (const key of rounds) {
    const [lane, r] = key.split(":").map(Number) as [number, number];
    for (let s = 0; s < shards; s++) {
      const c = pass.commits.find((x) => x.lane === lane && x.round === r && x.shard === s);
      if (!c || c.status === "pending") return false;
    }
  }
  return true;
}

/**
 * `shard-node verify`: watches the model's reveals, replays a sample of rounds (and every dispute
 * others open), attests valid commits, challenges invalid ones, votes, resolves, finalizes and
 * rejects orphans. Needs the verifier stake. Ctrl-C stops between actions; a restarted verifier
 * never repeats what it did (its state lives under `<dataDir>/verify/`).
 *
 * @throws InsufficientStakeError without the model's minimum verifier stake (nothing else is done).
 *
 * @example
 * await verify({ config: "shard-node.config.json", sample: "0.5", untilRound: "3" }, out)
 */
export async function verify(options: VerifyOptions, out: Output): Promise<VerifyResult> {
  const o = parseOptions("verify", verifyOptionsSchema, options);
  // A verifier checks every shard: the config's shard (required for trainers) does not matter here.
  const { config, account, connection } = await openSigner({ ...o, shard: o.shard ?? "0" });
  try {
    const { publicClient, walletClient, deployment } = connection;
    const modelId = config.modelId;
    const model = await readModel(connection, modelId);
    const stake = await getStake(publicClient, { deployment, modelId, account: account.address });
    const token = await tokenInfo(publicClient, model.stakingToken);
    if (stake.verifier.active === 0n || stake.verifier.active < model.params.minVerifierStake)
      throw new InsufficientStakeError(
        `Insufficient verifier stake: ${formatAmount(stake.verifier.active, token)} active, ${formatAmount(model.params.minVerifierStake, token)} required.`,
        { details: "Stake with `shard-node stake <amount> --role verifier`." },
      );

    // The host lets the embedded store fetch checkpoints and transcripts from the trainers (bitswap).
    const network = await openNodeNetwork(config, out, { fetchTimeoutMs: o.fetchTimeout * 1000 });
    const { host, store } = network;
    const stopListening = onShutdown(() => out.log("stopping after the current action (Ctrl-C again to quit at once)"));
    const controller = new AbortController();
    const poll = setInterval(() => isShuttingDown() && controller.abort(), 100);
    // The trainers announce their addresses in the lane directory: the store fetches from them.
    const seatPeers = { client: publicClient as never, deployment, modelId, shardCount: model.shardCount };
    const dialTrainers = () =>
      void seatHolderAddrs(seatPeers)
        .then((addrs) => connectContentPeers(host, addrs, { timeoutMs: 5000 }))
        .catch(() => {});
    dialTrainers();
    const dialing = setInterval(dialTrainers, 5000);
    try {
      const spec = await loadModelSpec(model, store, o.spec);
      const backend = await initBackend(config.backend);
      out.log(
        out.json
          ? toJson({ event: "verifying", modelId, backend: backend.name, sampleRate: o.sample, peerId: host.peerId })
          : `verifying model ${modelId} · backend ${backend.name} · sampling ${(o.sample * 100).toFixed(0)}% · peer ${host.peerId}`,
      );
      const totals = {
        attested: 0,
        challenged: 0,
        voted: 0,
        resolved: 0,
        finalized: 0,
        orphansRejected: 0,
        notFetched: 0,
      };
      let passes = 0;
      const cfg = {
        modelId,
        spec,
        specDigest: model.specDigest,
        chain: { client: walletClient as never, account, deployment },
        store,
        backend,
        sampleRate: o.sample,
        fetchTimeoutMs: o.fetchTimeout * 1000,
        dataDir: config.dataDir,
        signal: controller.signal,
        onEvent: renderer(out),
      };
      const count = (p: VerifierPass) => {
        passes++;
        totals.attested += p.attested.length;
        totals.challenged += p.challenged.length;
        totals.voted += p.voted.length;
        totals.resolved += p.resolved.length;
        totals.finalized += p.finalized.length;
        totals.orphansRejected += p.orphansRejected.length;
        totals.notFetched += p.notFetched.length;
      };
      let last: VerifierPass | undefined;
      if (o.once) count((last = await verifyOnce(cfg)));
      else
        last = await runVerifier({
          ...cfg,
          pollMs: o.poll * 1000,
          until: (p) => {
            count(p);
            return o.untilRound !== undefined && laneSettled(p, spec.shards.length, o.untilRound);
          },
          onPassError: (err) => {
            // A chain or store that is down is retried; anything else is fatal.
            if (!(err instanceof NodeError && err.retryable) && !isRpcDown(err)) throw err;
            out.log(`pass failed (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); retrying`);
          },
        });
      const commits = last?.commits ?? [];
      out.print(
        `${passes} pass${passes === 1 ? "" : "es"} · attested ${totals.attested} · challenged ${totals.challenged} · voted ${totals.voted} · resolved ${totals.resolved} · finalized ${totals.finalized} · orphans rejected ${totals.orphansRejected} · not fetched ${totals.notFetched}`,
      );
      for (const c of commits.slice(-20))
        out.print(
          `  round ${c.round} lane ${c.lane} shard ${c.shard}  ${c.status.padEnd(9)}  ${c.verdict ? (c.verdict.valid ? "valid" : `invalid: ${c.verdict.reason}`) : c.notFetched ? `not fetched (${c.notFetched.reason}, ${c.notFetched.attempts} tries)` : "not checked"}`,
        );
      return {
        account: account.address,
        modelId,
        backend: backend.name,
        sampleRate: o.sample,
        passes,
        ...totals,
        commits,
        stopped: controller.signal.aborted,
      };
    } finally {
      clearInterval(poll);
      clearInterval(dialing);
      stopListening();
      await network.close(); // the store first: it is bound to the host's libp2p node
    }
  } finally {
    await connection.close();
  }
}

const isRpcDown = (err: unknown) => err instanceof RpcUnavailableError;

/** Progress lines (JSON lines on stderr with --json). */
function renderer(out: Output): (e: VerifierEvent) => void {
  const short = (id: string) => `${id.slice(0, 10)}…`;
  return (e) => {
    if (out.json) return out.log(toJson({ event: e.type, ...e }));
    switch (e.type) {
      case "replayed":
        return out.log(
          `lane ${e.lane} round ${e.round} replayed (${e.why}) in ${e.seconds.toFixed(2)} s (+ ${e.fetchSeconds.toFixed(2)} s fetching)`,
        );
      case "unverifiable":
        return out.log(`lane ${e.lane} round ${e.round} not verifiable yet: ${e.detail}`);
      case "fetchRetry":
        return out.log(
          `lane ${e.lane} round ${e.round} not fetched (try ${e.attempt}); trying again in ${e.retryInSeconds.toFixed(0)} s: ${e.detail}`,
        );
      case "notFetched":
        return out.log(
          `lane ${e.lane} round ${e.round} shard ${e.shard} NOT FETCHED (${e.reason}) after ${e.attempts} tries, ${e.kind} deadline ${e.deadline}${e.action === "none" ? "" : `: will ${e.action} as withheld`} — ${e.detail}`,
        );
      case "verdict":
        return out.log(
          `  shard ${e.verdict.shard}: ${e.verdict.valid ? "valid" : `INVALID (${e.verdict.reason})`} — ${e.verdict.detail}`,
        );
      case "attested":
        return out.log(`attested ${short(e.commitId)}`);
      case "challenged":
        return out.log(`challenged ${short(e.commitId)} (finding ${e.finding})`);
      case "voted":
        return out.log(`voted ${e.invalid ? "invalid" : "valid"} on ${short(e.commitId)}`);
      case "resolved":
        return out.log(
          `resolved ${short(e.commitId)}: ${e.verdict === "invalid" ? `invalid, slashed ${e.slashed}` : e.verdict === "valid" ? "upheld" : "inconclusive (no quorum or a tie)"}`,
        );
      case "claimed":
        return out.log(`claimed ${e.amount} from dispute ${e.index} of ${short(e.commitId)}`);
      case "released":
        return out.log(
          `released the vote in dispute ${e.index} of ${short(e.commitId)}${e.slashed > 0n ? ` (lost ${e.slashed} on the losing side)` : ""}`,
        );
      case "finalized":
        return out.log(`finalized ${short(e.commitId)}: minted ${e.minted}`);
      case "orphanRejected":
        return out.log(`rejected orphan ${short(e.commitId)}`);
      case "recomputed":
        return out.log(
          `merge attempt ${e.lane - MERGE_LANES} of round ${e.round} shard ${e.shard} recomputed in ${e.seconds.toFixed(2)} s`,
        );
      case "mergeRejected":
        return out.log(`rejected merge ${short(e.commitId)}: lane ${e.lane} of shard ${e.shard} was rejected`);
      case "refused":
        return out.log(`${e.action} ${short(e.commitId)} refused by the ledger: ${e.error}`);
      default:
        return;
    }
  };
}
