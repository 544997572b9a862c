/**
 * Steps 6 and 7 of a verifier pass: resolve disputes whose window ended, pull what resolved
 * disputes owe this verifier (`claimDispute`, `releaseVote`), take down merges of rejected lanes
 * (`rejectMerge`), reject orphans and finalize what can be finalized, parents first.
 */
import { type Hex, zeroHash } from "viem";
import {
  claimDispute,
  finalize,
  getDispute,
  mergedLanesOf,
  rejectMerge,
  rejectOrphan,
  releaseVote,
  resolve,
} from "shard-protocol/sdk";

import { isMergeLane } from "../swarm/merge-plan.js";
import type { RevealedCommit } from "./examine.js";
import type { PassContext } from "./pass.js";

/** A rejected commit (its shard and lane) of a training lane that merge commit `m` merged, if any. */
function rejectedMergedLane(p: PassContext, m: RevealedCommit): { shard: number; lane: number } | undefined {
  let lanes: number[];
  try {
    lanes = mergedLanesOf(m.checkpoint.sentActivations);
  } catch {
    return undefined;
  }
  for (const c of p.state.reveals.values()) {
    const { round, lane, shard } = c.checkpoint;
    if (round === m.checkpoint.round && lanes.includes(lane) && p.statusOf(c.commitId) === "rejected")
      return { shard, lane };
  }
  return undefined;
}

/** Resolves disputes, pulls payouts, rejects orphans and finalizes. */
export async function concludePending(p: PassContext): Promise<void> {
  const { client, deployment, account, state, pass, emit, stopped, statusOf, onChain, now, pending, paramsAt, act } = p;
  // 6. Resolve disputes whose window ended (anyone may).
  for (const c of pending()) {
    const d = onChain.get(c.commitId)!.dispute;
    if (!d?.open || BigInt(d.endsAt) > p.nextBlockTime) continue;
    const info = onChain.get(c.commitId)!;
    const r = await act("resolve", c.commitId, `resolve:${c.commitId}:${info.disputes}`, () =>
      resolve(client, { deployment, account, checkpoint: c.checkpoint }),
    );
    if (r) {
      pass.resolved.push({ commitId: c.commitId, verdict: r.verdict, slashed: r.slashed });
      emit({ type: "resolved", commitId: c.commitId, hash: r.hash, verdict: r.verdict, slashed: r.slashed });
      if (r.verdict === "invalid") state.setTerminal(c.commitId, "rejected");
      // Inconclusive (below quorum, or a tie): bonds returned, the commit neither rejected nor upheld.
      else onChain.set(c.commitId, { ...info, upheld: r.verdict === "valid", dispute: { ...d, open: false } });
    }
  }

  // 6b. Nothing is paid at resolve: from every resolved dispute this verifier opened it pulls its
  // bond (Invalid, Inconclusive) and its share of the slash (Invalid); every vote it cast is
  // released (its locked stake freed, less the loser's cut on the losing side of a verdict).
  for (const k of state.doneKeys()) {
    if (stopped()) break;
    const m = /^(challenge|vote):(0x[0-9a-fA-F]{64}):(\d+)$/.exec(k);
    if (!m || state.did(k)!.startsWith("refused:")) continue;
    const commitId = m[2] as Hex;
    // A challenge opens dispute n + 1 (never while one is open); a vote is cast in the open dispute n.
    const index = m[1] === "challenge" ? Number(m[3]) + 1 : Number(m[3]);
    const doneKey = `${m[1] === "challenge" ? "claim" : "release"}:${commitId}:${index}`;
    if (state.did(doneKey)) continue;
    const d = await getDispute(client, { deployment, commitId, index });
    if (d.verdict === "none") continue;
    if (m[1] === "challenge") {
      if (d.verdict === "valid") {
        // Upheld: the bonds went to the commit's owner; nothing to claim.
        state.record(doneKey, "forfeited");
        await state.save();
        continue;
      }
      const r = await act("claimDispute", commitId, doneKey, () =>
        claimDispute(client, { deployment, account, commitId, index }),
      );
      if (r) {
        pass.claimed.push({ commitId, index, amount: r.amount });
        emit({ type: "claimed", commitId, index, hash: r.hash, amount: r.amount });
      }
    } else {
      const r = await act("releaseVote", commitId, doneKey, () =>
        releaseVote(client, { deployment, account, commitId, index }),
      );
      if (r) {
        pass.released.push({ commitId, index, slashed: r.slashed });
        emit({ type: "released", commitId, index, hash: r.hash, slashed: r.slashed });
      }
    }
  }

  // 7. Merges of rejected lanes, orphans and finalization, parents first (pending() is in round
  // order, a round's merges after its lanes).
  for (const c of pending()) {
    if (stopped()) break;
    // A merge that merged a lane since rejected is taken down without a slash (a correct merge of
    // the rest takes the next attempt); one under dispute, or challenged in this pass, waits for it.
    const merged = isMergeLane(c.checkpoint.lane) ? rejectedMergedLane(p, c) : undefined;
    if (merged) {
      if (onChain.get(c.commitId)!.dispute?.open || pass.challenged.includes(c.commitId)) continue;
      const r = await act("rejectMerge", c.commitId, `rejectMerge:${c.commitId}`, () =>
        rejectMerge(client, { deployment, account, checkpoint: c.checkpoint, ...merged }),
      );
      if (r) {
        state.setTerminal(c.commitId, "rejected");
        pass.mergesRejected.push(c.commitId);
        emit({ type: "mergeRejected", commitId: c.commitId, hash: r.hash, ...merged });
      }
      continue;
    }
    const parentId = c.checkpoint.parentRoot === zeroHash ? undefined : state.byRoot(c.checkpoint.parentRoot)?.commitId;
    const parentStatus = parentId ? statusOf(parentId) : undefined;
    const info = onChain.get(c.commitId)!;
    if (parentStatus === "rejected") {
      const r = await act("rejectOrphan", c.commitId, `reject:${c.commitId}`, () =>
        rejectOrphan(client, { deployment, account, checkpoint: c.checkpoint }),
      );
      if (r) {
        state.setTerminal(c.commitId, "rejected");
        pass.orphansRejected.push(c.commitId);
        emit({ type: "orphanRejected", commitId: c.commitId, hash: r.hash });
      }
      continue;
    }
    if (parentId !== undefined && parentStatus !== "finalized") continue;
    if (c.checkpoint.parentRoot !== zeroHash && parentId === undefined) continue;
    if (info.dispute?.open) continue;
    const params = await paramsAt(c.checkpoint.round);
    if (p.nextBlockTime < BigInt(info.revealedAt + params.challengeWindow)) continue;
    if (info.attestations + (pass.attested.includes(c.commitId) ? 1 : 0) < params.minAttestations) continue;
    // Not what this verifier found invalid, or could not fetch near its deadline, unless a dispute upheld it.
    const v = state.verdict(c.commitId);
    if (v && !v.valid && !info.upheld) continue;
    // Every merge is checked (`merges.ts`): one this verifier has not recomputed is not finalized by it.
    if (isMergeLane(c.checkpoint.lane) && !v?.valid && !info.upheld) continue;
    const u = state.unfetched(c.commitId);
    if (!v && u && u.reason !== "parent-unfetched" && !info.upheld) continue;
    // "Not yet" refusals (a pipeline link unmatched) are retried in later passes: a per-pass key.
    const r = await act("finalize", c.commitId, `finalize:${c.commitId}`, () =>
      finalize(client, { deployment, account, checkpoint: c.checkpoint }),
    );
    if (r) {
      state.setTerminal(c.commitId, "finalized");
      pass.finalized.push({ commitId: c.commitId, minted: r.minted });
      emit({ type: "finalized", commitId: c.commitId, hash: r.hash, minted: r.minted });
    }
  }
}
