import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Account, Hex } from "viem";
import { getBlockNumber, getChainId } from "viem/actions";
import {
  type AnyClient,
  type Checkpoint,
  type Deployment,
  ContractRevertError,
  getCommit,
  getCommitSeal,
  reveal,
  signSealedCommit,
  submitCommit,
} from "shard-protocol/sdk";

import { NodeError } from "../errors.js";
import type { ContentStore } from "../ipfs/store.js";
import { ipfsUri } from "../ipfs/store.js";
import type { Journal, RoundRecord } from "./journal.js";

/**
 * Carries a decided round on-chain: files to IPFS, a sealed commit signed by the node key, and
 * the reveal one block later. Every step is journaled before it is taken and checked against the
 * chain on the way, so a node restarted at any point finishes the same commit: never a second
 * seal, never a different salt. The seal names the checkpoint's parent and the registry's
 * parameter version for the round; a seal the ledger refuses because that version changed
 * (`ParamsChanged`) or its signature lapsed is signed again with the same salt.
 */

export interface CommitContext {
  client: AnyClient;
  account: Account;
  deployment: Deployment;
  journal: Journal;
  store: ContentStore;
  modelId: bigint;
  shard: number;
  lane: number;
}

export function checkpointOf(ctx: CommitContext, rec: RoundRecord): Checkpoint {
  return {
    modelId: ctx.modelId,
    shard: ctx.shard,
    round: BigInt(rec.round),
    lane: ctx.lane,
    owner: ctx.account.address,
    parentRoot: rec.parentRoot,
    root: rec.root,
    transcriptDigest: rec.transcriptDigest,
    sentActivations: rec.sentActivations,
    receivedActivations: rec.receivedActivations,
    sentGradients: rec.sentGradients,
    receivedGradients: rec.receivedGradients,
    workUnits: BigInt(rec.workUnits),
    lossMicros: BigInt(rec.lossMicros),
    checkpointURI: rec.checkpointURI!,
    transcriptURI: rec.transcriptURI!,
  };
}

/** Finds the block and time of an on-chain seal from its `CheckpointSealed` event. */
async function findSeal(ctx: CommitContext, commitId: Hex): Promise<{ commitBlock: bigint; commitTime: bigint }> {
  const seal = await getCommitSeal(ctx.client, { deployment: ctx.deployment, commitId });
  if (!seal) throw new Error(`commit ${commitId} is sealed on-chain but its CheckpointSealed event was not found`);
  return { commitBlock: seal.blockNumber, commitTime: seal.timestamp };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Local development chains (Hardhat, anvil) mine only when a transaction arrives. */
export const DEV_CHAIN_IDS = new Set([31337, 1337]);

/**
 * Waits until the chain is past `block`: a reveal must be in a later block than its seal. On a
 * local development chain that mines only on demand, asks it to mine one (`evm_mine`) at once.
 */
async function waitForBlockAfter(client: AnyClient, block: bigint, timeoutMs = 120_000): Promise<void> {
  const dev = DEV_CHAIN_IDS.has(await getChainId(client));
  const started = Date.now();
  for (;;) {
    if ((await getBlockNumber(client, { cacheTime: 0 })) > block) return;
    if (Date.now() - started > timeoutMs)
      throw new Error(`the chain did not get past block ${block} within ${timeoutMs / 1000} s`);
    if (dev) await client.request({ method: "evm_mine" } as never).catch(() => {});
    await sleep(dev ? 50 : 250);
  }
}

/** The journal's form of a signed seal (numbers as strings). */
export function sealRecord(signed: Awaited<ReturnType<typeof signSealedCommit>>): NonNullable<RoundRecord["seal"]> {
  const c = signed.commit;
  return {
    commit: {
      modelId: String(c.modelId),
      shard: c.shard,
      round: String(c.round),
      lane: c.lane,
      owner: c.owner,
      parentRoot: c.parentRoot,
      sealedHash: c.sealedHash,
      paramsVersion: c.paramsVersion,
      deadline: String(c.deadline),
    },
    signature: signed.signature,
  };
}

/** Signs the journaled seal again, with its salt, the parameter version in force and a new deadline. */
async function resign(ctx: CommitContext, round: number, checkpoint: Checkpoint, rec: RoundRecord) {
  const signed = await signSealedCommit(ctx.client, {
    deployment: ctx.deployment,
    account: ctx.account,
    checkpoint,
    salt: rec.salt!,
  });
  return ctx.journal.advance(round, "sealing", { seal: sealRecord(signed) });
}

/** Sends the journaled seal. */
function submitSeal(ctx: CommitContext, rec: RoundRecord) {
  const s = rec.seal!.commit;
  return submitCommit(ctx.client, {
    deployment: ctx.deployment,
    account: ctx.account,
    commit: {
      modelId: BigInt(s.modelId),
      shard: s.shard,
      round: BigInt(s.round),
      lane: s.lane,
      owner: s.owner as Hex,
      parentRoot: s.parentRoot!,
      sealedHash: s.sealedHash,
      paramsVersion: s.paramsVersion!,
      deadline: BigInt(s.deadline),
    },
    signature: rec.seal!.signature as Hex,
  });
}

/** The ledger's refusal of a seal, said in the node's terms where it is one a trainer can act on. */
function commitRefused(err: unknown, round: number): unknown {
  if (!(err instanceof ContractRevertError)) return err;
  const a = err.args as Record<string, unknown>;
  switch (err.errorName) {
    case "ParamsChanged":
      return new NodeError(
        `The round parameters of round ${round} changed again while this node sealed it (version ${a.expected} signed, ${a.actual} in force).`,
        { cause: err, retryable: true, details: "Restart the node: it signs the same seal again for the new version." },
      );
    case "InsufficientFreeStake":
      return new NodeError(`Not enough free trainer stake to commit round ${round}.`, {
        cause: err,
        retryable: true,
        details: `each pending commit locks slashAmount of the owner's trainer stake until it is finalized (free ${a.free}, needed ${a.amount}); stake more, or wait for pending commits to finalize`,
      });
    default:
      return err;
  }
}

export type CommitProgress = (phase: RoundRecord["phase"] | "publishing", rec: RoundRecord) => void;

/** Takes a decided round to `revealed`, resuming from whatever phase the journal says. */
export async function commitRound(
  ctx: CommitContext,
  round: number,
  onProgress?: CommitProgress,
): Promise<RoundRecord> {
  const { journal } = ctx;
  let rec = journal.record(round);
  if (!rec || rec.phase === "prepared") throw new Error(`round ${round} is not decided`);
  if (rec.phase === "revealed") return rec;

  if (!rec.checkpointURI || !rec.transcriptURI) {
    onProgress?.("publishing", rec);
    const [cp, tr] = await Promise.all([
      readFile(join(journal.dir, rec.checkpointFile)),
      readFile(join(journal.dir, rec.transcriptFile)),
    ]);
    const checkpointURI = ipfsUri(await ctx.store.add(cp));
    const transcriptURI = ipfsUri(await ctx.store.add(tr));
    rec = await journal.advance(round, rec.phase, { checkpointURI, transcriptURI });
  }
  const checkpoint = checkpointOf(ctx, rec);
  const onChain = await getCommit(ctx.client, {
    deployment: ctx.deployment,
    modelId: ctx.modelId,
    shard: ctx.shard,
    round: BigInt(round),
    lane: ctx.lane,
  });

  if (onChain.status === "none") {
    if (!rec.seal || !rec.salt) {
      const signed = await signSealedCommit(ctx.client, {
        deployment: ctx.deployment,
        account: ctx.account,
        checkpoint,
      });
      rec = await journal.advance(round, "sealing", { salt: signed.salt, seal: sealRecord(signed) });
      onProgress?.("sealing", rec);
    }
    let sent: Awaited<ReturnType<typeof submitCommit>>;
    try {
      // A seal journaled before parents and parameter versions were sealed cannot commit: re-sign it.
      if (rec.seal!.commit.parentRoot === undefined || rec.seal!.commit.paramsVersion === undefined)
        rec = await resign(ctx, round, checkpoint, rec);
      sent = await submitSeal(ctx, rec);
    } catch (err) {
      // The registrant scheduled new parameters for the round, or the signature lapsed while the
      // node was down: sign the same seal (same salt) again with the version and deadline of now.
      const name = err instanceof ContractRevertError ? err.errorName : undefined;
      if (name !== "ParamsChanged" && name !== "SignatureExpired") throw commitRefused(err, round);
      rec = await resign(ctx, round, checkpoint, rec);
      try {
        sent = await submitSeal(ctx, rec);
      } catch (again) {
        throw commitRefused(again, round);
      }
    }
    rec = await journal.advance(round, "sealed", {
      commitBlock: String(sent.commitBlock),
      commitTime: String(sent.commitTime),
      commitId: sent.commitId,
    });
    onProgress?.("sealed", rec);
  } else if (onChain.status === "sealed") {
    if (!rec.salt)
      throw new Error(`round ${round} is sealed on-chain, but this node has no salt for it: another key sealed it`);
    if (!rec.commitBlock) {
      const found = await findSeal(ctx, onChain.commitId);
      rec = await journal.advance(round, "sealed", {
        commitBlock: String(found.commitBlock),
        commitTime: String(found.commitTime),
        commitId: onChain.commitId,
      });
    }
  } else {
    // Pending, finalized or rejected: the reveal already happened (by this node before a crash).
    return journal.advance(round, "revealed", { commitId: onChain.commitId });
  }

  await waitForBlockAfter(ctx.client, BigInt(rec.commitBlock!));
  await reveal(ctx.client, {
    deployment: ctx.deployment,
    account: ctx.account,
    checkpoint,
    salt: rec.salt!,
    commitBlock: BigInt(rec.commitBlock!),
    commitTime: BigInt(rec.commitTime!),
  });
  rec = await journal.advance(round, "revealed");
  onProgress?.("revealed", rec);
  return rec;
}
