import { allocateGenesis } from "../actions/contributions/allocateGenesis.js";
import { attest } from "../actions/contributions/attest.js";
import { authorizeNode } from "../actions/contributions/authorizeNode.js";
import { challenge } from "../actions/contributions/challenge.js";
import { claimDispute } from "../actions/contributions/claimDispute.js";
import { computeCheckpointHash } from "../actions/contributions/computeCheckpointHash.js";
import { expireSeal } from "../actions/contributions/expireSeal.js";
import { finalize } from "../actions/contributions/finalize.js";
import { getCommit } from "../actions/contributions/getCommit.js";
import { getCommitSeal } from "../actions/contributions/getCommitSeal.js";
import { getDispute } from "../actions/contributions/getDispute.js";
import { getPipelineLink } from "../actions/contributions/getPipelineLink.js";
import { getRevealedCheckpoints } from "../actions/contributions/getRevealedCheckpoints.js";
import { isNodeAuthorized } from "../actions/contributions/isNodeAuthorized.js";
import { rejectMerge } from "../actions/contributions/rejectMerge.js";
import { rejectOrphan } from "../actions/contributions/rejectOrphan.js";
import { releaseVote } from "../actions/contributions/releaseVote.js";
import { resolve } from "../actions/contributions/resolve.js";
import { reveal } from "../actions/contributions/reveal.js";
import { signNodeConsent } from "../actions/contributions/signNodeConsent.js";
import { signSealedCommit } from "../actions/contributions/signSealedCommit.js";
import { submitCommit } from "../actions/contributions/submitCommit.js";
import { vote } from "../actions/contributions/vote.js";
import { getLineage } from "../actions/lineage/getLineage.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/**
 * Contributions and lineage: `client.extend(contributionActions(deployment))`. Node keys and
 * their consent, sealed commits and reveals, verification (attest, challenge, vote, resolve),
 * dispute payouts (claimDispute, releaseVote), finalization, orphans, expired seals, genesis
 * allocations, and reads of commits, seals, reveals, pipeline links, node authorizations, disputes and lineages. `computeCheckpointHash`
 * is pure and needs no client; it is included for convenience.
 *
 * @example
 * const node = createWalletClient({ account: nodeKey, chain, transport }).extend(contributionActions(deployment))
 * const signed = await node.signSealedCommit({ checkpoint })
 */
export const contributionActions = (deployment: Deployment) => (client: AnyClient) => ({
  ...bindActions(client, deployment, {
    signNodeConsent,
    authorizeNode,
    signSealedCommit,
    submitCommit,
    reveal,
    attest,
    challenge,
    vote,
    resolve,
    claimDispute,
    releaseVote,
    finalize,
    rejectOrphan,
    rejectMerge,
    expireSeal,
    allocateGenesis,
    getCommit,
    getDispute,
    getCommitSeal,
    getRevealedCheckpoints,
    getPipelineLink,
    isNodeAuthorized,
    getLineage,
  }),
  computeCheckpointHash,
});

export type ContributionActions = ReturnType<ReturnType<typeof contributionActions>>;
