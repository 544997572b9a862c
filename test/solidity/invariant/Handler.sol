// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ContributionLedger} from "../../../contracts/ContributionLedger.sol";
import {InferenceSettlement} from "../../../contracts/InferenceSettlement.sol";
import {ModelRegistry} from "../../../contracts/ModelRegistry.sol";
import {ShardToken} from "../../../contracts/ShardToken.sol";
import {Staking} from "../../../contracts/Staking.sol";
import {
    ChallengerStake,
    Checkpoint,
    CommitState,
    CommitStatus,
    Dispute,
    IContributionLedger,
    SealedCommit,
    Verdict,
    VoteRecord
} from "../../../contracts/interfaces/IContributionLedger.sol";
import {
    Escrow,
    IInferenceSettlement,
    SkipReason,
    UsageReceipt
} from "../../../contracts/interfaces/IInferenceSettlement.sol";
import {RoundParams} from "../../../contracts/interfaces/IModelRegistry.sol";
import {Role, StakeInfo} from "../../../contracts/interfaces/IStaking.sol";
import {IShardToken} from "../../../contracts/interfaces/IShardToken.sol";
import {TestERC20} from "../../../contracts/test/TestERC20.sol";

import {Protocol} from "../utils/Deploy.sol";
import {LedgerDigests} from "../utils/LedgerDigests.sol";
import {Test} from "../utils/Test.sol";
import {Vm} from "../utils/Vm.sol";

/// @title Handler
/// @notice Drives the whole protocol for the invariant runner through its real paths: staking,
/// node keys that consent to their owner, sealed commits signed by those keys (revealed at once,
/// later, or left to expire), disputes that several challengers join and verifiers vote on with
/// the stake they had when it opened, pull payments of bonds, rewards and vote locks,
/// finalization (the only minting, possibly deferred), shard transfers and burns, direct
/// payments, escrowed receipts bound to a payee, and claims. Every action picks its actors and
/// targets from seeds and bounds its amounts, so most calls do something. Ghost variables record
/// what the invariants compare the contracts against.
/// @dev The handler decides which checkpoints are bad: only actors `HONEST` and above ever sign
/// one. Verifiers vote the truth on good checkpoints (the protocol's honest-majority assumption,
/// docs/threat-model.md) and either way on bad ones, so an honest owner is never slashed and voters
/// still end up on a losing side. Assertions inside a handler would be lost (reverted calls are
/// discarded), so a handler that sees something wrong increments `violations` and records why; an
/// invariant checks it.
contract Handler is Test {
    uint256 internal constant SHARDS = 3;
    uint256 internal constant ACTORS = 4;
    /// @notice Actors below this index never sign a bad checkpoint.
    uint256 internal constant HONEST = 2;
    uint256 internal constant PAYEES = 2;
    uint256 internal constant BPS = 10_000;
    /// @notice Room a near-cap genesis allocation leaves under the supply cap: one or two
    /// finalizations later the next mint on that shard is deferred.
    uint256 internal constant CAP_ROOM = 500e18;

    ModelRegistry internal immutable registry;
    ShardToken internal immutable token;
    Staking internal immutable staking;
    ContributionLedger internal immutable ledger;
    InferenceSettlement internal immutable settlement;
    TestERC20 internal immutable stakingToken;
    address internal immutable registrant;
    uint64 internal immutable modelId;

    uint256[] internal actorKeys;
    address[] public actors;
    /// @notice Each actor's node key (not an actor: it never stakes or votes), which signs its seals.
    uint256[] internal nodeKeyPks;
    address[] public nodeKeys;
    /// @notice Gateways that settle receipts; escrow is bound to one of them.
    address[] public payees;
    address[] public currencies;
    uint256[] public ids;

    /* COMMIT RECORDS */

    /// @notice Every revealed checkpoint, in reveal order.
    Checkpoint[] internal checkpoints;
    bytes32[] public commitIds;
    mapping(uint32 shard => mapping(uint64 round => uint256[] indexes)) internal byShardRound;
    mapping(uint64 round => uint32) internal nextLane;
    uint256 internal rootNonce;
    mapping(address payer => uint256) internal nextReceiptNonce;

    /// @notice A seal not revealed in the action that made it: revealed later, or expired.
    struct PendingSeal {
        Checkpoint cp;
        bytes32 salt;
        SealedCommit c;
        bytes signature;
        uint64 commitBlock;
        uint64 commitTime;
        bool closed;
    }
    PendingSeal[] internal seals;

    /// @notice Every sealed commit (revealed or not), with the owner whose stake it locks.
    struct Record {
        bytes32 commitId;
        address owner;
        uint64 round;
    }
    Record[] public records;
    mapping(bytes32 commitId => bool) public isBad;

    /// @notice Every dispute opened, with its challengers and voters.
    struct DisputeRef {
        uint256 cpIndex;
        bytes32 commitId;
        uint8 index;
    }
    DisputeRef[] internal disputeRefs;
    mapping(bytes32 disputeKey => address[]) internal disputeChallengers;
    mapping(bytes32 disputeKey => address[]) internal disputeVoters;
    /// @notice Commits whose mint was deferred (indexes into `checkpoints`).
    uint256[] internal deferred;

    /* GHOSTS */

    bytes32[] public finalizedIds;
    mapping(bytes32 commitId => bytes32) public finalizedHash;
    bytes32[] public rejectedIds;

    mapping(uint256 id => uint256) public ghostMinted;
    mapping(uint256 id => uint256) public ghostBurned;
    mapping(uint256 id => mapping(address currency => uint256)) public ghostDeposited;
    mapping(uint256 id => mapping(address currency => uint256)) public ghostDepositCount;
    mapping(uint256 id => mapping(address currency => uint256)) public ghostClaimed;
    mapping(uint256 id => uint256) public everHeldCount;
    mapping(uint256 id => mapping(address holder => bool)) internal everHeld;
    mapping(address currency => uint256) public ghostRevenue;
    mapping(address currency => uint256) public ghostClaimedTotal;

    uint256 public ghostStaked;
    uint256 public ghostStakeWithdrawn;
    /// @notice Slash shares Staking paid out (to the ledger, as challengers' rewards).
    uint256 public ghostSlashPaidOut;
    /// @notice Staking tokens the ledger received (bonds, rewards) and paid (`claimDispute`).
    uint256 public ghostLedgerIn;
    uint256 public ghostLedgerOut;

    mapping(address actor => uint256) public ghostTrainerStaked;
    mapping(address actor => uint256) public ghostTrainerWithdrawn;
    /// @notice Seal deposits burned from the actor's trainer stake by `expireSeal`.
    mapping(address actor => uint256) public ghostSealBurned;
    /// @notice The actor's node key sealed a checkpoint the handler made bad.
    mapping(address actor => bool) public signedBad;

    uint256 public violations;
    string public lastViolation;

    /// @notice Successful calls per action, for checking that the campaign reaches every path.
    mapping(string action => uint256) public successes;

    constructor(Protocol memory p) {
        registry = p.registry;
        token = p.token;
        staking = p.staking;
        ledger = p.ledger;
        settlement = p.settlement;
        stakingToken = p.stakingToken;
        registrant = p.registrant;
        modelId = p.modelId;
        currencies.push(address(p.usdc));
        currencies.push(address(p.weth));
        for (uint256 s; s < SHARDS; ++s) ids.push(p.token.tokenId(p.modelId, uint32(s)));
        for (uint256 a; a < ACTORS; ++a) {
            uint256 key = 0xAC7 + a;
            actorKeys.push(key);
            actors.push(vm.addr(key));
            vm.label(vm.addr(key), string.concat("actor", _digit(a)));
            uint256 nodeKey = 0xD0DE + a;
            nodeKeyPks.push(nodeKey);
            nodeKeys.push(vm.addr(nodeKey));
            vm.label(vm.addr(nodeKey), string.concat("nodeKey", _digit(a)));
        }
        for (uint256 g; g < PAYEES; ++g) {
            payees.push(vm.addr(0x6A7E + g));
            vm.label(vm.addr(0x6A7E + g), string.concat("gateway", _digit(g)));
        }
    }

    /* STAKING */

    function stake(uint256 actorSeed, bool verifier, uint256 amount) external {
        address actor = _actor(actorSeed);
        _stake(actor, verifier ? Role.Verifier : Role.Trainer, bound(amount, 1, 300e18));
        ++successes["stake"];
    }

    /// @notice Unstakes part of the free (unlocked) stake; first checks that a request for more
    /// than the free stake is refused.
    function requestUnstake(uint256 actorSeed, bool verifier, uint256 amount) external {
        address actor = _actor(actorSeed);
        Role role = verifier ? Role.Verifier : Role.Trainer;
        StakeInfo memory info = staking.stakeOf(modelId, actor, role);
        uint256 free = info.locked < info.active ? info.active - info.locked : 0;
        if (free < info.active) {
            vm.prank(actor);
            try staking.requestUnstake(modelId, role, free + 1) {
                _violation("locked stake was unstaked");
            } catch {
                ++successes["unstakeLockedRefused"];
            }
        }
        if (free == 0) return;
        vm.prank(actor);
        staking.requestUnstake(modelId, role, bound(amount, 1, free));
        ++successes["requestUnstake"];
    }

    function withdrawStake(uint256 actorSeed, bool verifier) external {
        address actor = _actor(actorSeed);
        Role role = verifier ? Role.Verifier : Role.Trainer;
        StakeInfo memory info = staking.stakeOf(modelId, actor, role);
        if (info.unbonding == 0) return;
        _warpTo(info.unbondingReadyAt);
        vm.prank(actor);
        uint256 amount = staking.withdraw(modelId, role);
        if (amount != info.unbonding) _violation("withdraw paid other than the unbonding amount");
        ghostStakeWithdrawn += amount;
        if (role == Role.Trainer) ghostTrainerWithdrawn[actor] += amount;
        ++successes["withdrawStake"];
    }

    /* TRAINING: COMMIT, REVEAL, EXPIRE, FINALIZE */

    /// @notice Commits and reveals all shards of one lane of a round, each sealed by its owner's
    /// node key. With `mismatch` (and an odd `workSeed`: a quarter of the calls), shard 0 reports
    /// activations that shard 1 never received, so the boundary between them is unverified and
    /// only an upheld dispute lets those two finalize. Bit `s` of `ownerSeed >> 128` makes shard
    /// `s` bad if its owner is not one of the honest actors.
    function commitPipeline(uint256 ownerSeed, uint256 roundSeed, uint256 workSeed, bool mismatch) external {
        _commitPipeline(ownerSeed, roundSeed, workSeed, mismatch && workSeed % 2 == 1);
    }

    function _commitPipeline(uint256 ownerSeed, uint256 roundSeed, uint256 workSeed, bool mismatch) internal {
        (Checkpoint[] memory cps, bytes32[] memory salts, uint64 commitBlock, uint64 commitTime) = _sealLane(
            ownerSeed,
            roundSeed,
            workSeed,
            mismatch
        );
        // Revealed right away: these seals need no later reveal or expiry.
        for (uint256 s; s < SHARDS; ++s) seals.pop();
        vm.roll(_blockNumber() + 1);
        for (uint256 s; s < SHARDS; ++s) _reveal(cps[s], salts[s], commitBlock, commitTime);
        ++successes[mismatch ? "commitPipelineMismatched" : "commitPipeline"];
    }

    /// @notice Seals all shards of one lane without revealing them: `revealSeal` reveals them
    /// later (while the reveal window is open), `expireSeal` expires them after it.
    function sealPipeline(uint256 ownerSeed, uint256 roundSeed, uint256 workSeed) external {
        (Checkpoint[] memory cps, bytes32[] memory salts, uint64 commitBlock, uint64 commitTime) = _sealLane(
            ownerSeed,
            roundSeed,
            workSeed,
            false
        );
        uint256 first = seals.length - SHARDS;
        for (uint256 s; s < SHARDS; ++s) {
            PendingSeal storage ps = seals[first + s];
            ps.cp = cps[s];
            ps.salt = salts[s];
            ps.commitBlock = commitBlock;
            ps.commitTime = commitTime;
        }
        ++successes["sealPipeline"];
    }

    /// @notice Reveals a pending seal whose reveal window is still open.
    function revealSeal(uint256 seed) external {
        uint256 n = seals.length;
        for (uint256 k; k < n && k < 16; ++k) {
            PendingSeal storage ps = seals[(seed + k) % n];
            if (ps.closed || ps.commitTime == 0) continue;
            bytes32 commitId = ledger.commitIdOf(modelId, ps.c.shard, ps.c.round, ps.c.lane);
            if (ledger.commitState(commitId).status != CommitStatus.Sealed) {
                ps.closed = true;
                continue;
            }
            if (_now() > uint256(ps.commitTime) + registry.paramsAt(modelId, ps.c.round).revealWindow) continue;
            if (_blockNumber() <= ps.commitBlock) vm.roll(ps.commitBlock + 1);
            ps.closed = true;
            _reveal(ps.cp, ps.salt, ps.commitBlock, ps.commitTime);
            ++successes["revealSeal"];
            return;
        }
    }

    /// @notice Expires a pending seal after its reveal window: the owner's lock is released and
    /// the seal deposit burned; the same signature can then never seal the slot again.
    function expireSeal(uint256 seed) external {
        uint256 n = seals.length;
        for (uint256 k; k < n && k < 16; ++k) {
            PendingSeal storage ps = seals[(seed + k) % n];
            if (ps.closed || ps.commitTime == 0) continue;
            bytes32 commitId = ledger.commitIdOf(modelId, ps.c.shard, ps.c.round, ps.c.lane);
            if (ledger.commitState(commitId).status != CommitStatus.Sealed) {
                ps.closed = true;
                continue;
            }
            RoundParams memory params = registry.paramsAt(modelId, ps.c.round);
            _warpTo(uint256(ps.commitTime) + params.revealWindow + 1);
            address owner = ps.c.owner;
            StakeInfo memory before = staking.stakeOf(modelId, owner, Role.Trainer);
            ledger.expireSeal(ps.c, ps.commitBlock, ps.commitTime);
            ps.closed = true;
            StakeInfo memory afterwards = staking.stakeOf(modelId, owner, Role.Trainer);
            uint256 burned = uint256(before.active) + before.unbonding - afterwards.active - afterwards.unbonding;
            uint256 held = uint256(before.active) + before.unbonding;
            if (burned != (params.sealDeposit < held ? params.sealDeposit : held)) {
                _violation("expireSeal burned other than the seal deposit");
            }
            if (afterwards.locked != before.locked - params.slashAmount) _violation("expireSeal kept the lock");
            ghostSealBurned[owner] += burned;
            if (ledger.commitState(commitId).status != CommitStatus.None) _violation("expired seal still sealed");
            // The slot is free, but this seal is spent: replaying its signature must fail.
            try ledger.commit(ps.c, ps.signature) {
                _violation("an expired seal sealed again");
            } catch (bytes memory err) {
                if (_now() <= ps.c.deadline && bytes4(err) != IContributionLedger.SealSpent.selector) {
                    _violation("replayed expired seal not refused as spent");
                }
            }
            ++successes["expireSeal"];
            return;
        }
    }

    /// @notice Finalizes the first finalizable commit at or after a random index (waiting out
    /// its challenge window), and checks the mint (or its deferral) and the released lock.
    function finalize(uint256 indexSeed) external {
        uint256 n = checkpoints.length;
        if (n == 0) return;
        uint256 start = indexSeed % n;
        for (uint256 k; k < n && k < 12; ++k) {
            uint256 i = (start + k) % n;
            bytes32 commitId = commitIds[i];
            CommitState memory st = ledger.commitState(commitId);
            if (st.status != CommitStatus.Pending || ledger.dispute(commitId).open) continue;
            Checkpoint memory cp = checkpoints[i];
            if (cp.parentRoot != 0) {
                CommitStatus parent = ledger.commitState(ledger.commitOfRoot(modelId, cp.parentRoot)).status;
                if (parent != CommitStatus.Finalized) continue;
            }
            RoundParams memory params = registry.paramsAt(modelId, cp.round);
            _warpTo(uint256(st.revealedAt) + params.challengeWindow);
            uint256 id = ids[cp.shard];
            uint256 balanceBefore = token.balanceOf(cp.owner, id);
            uint256 lockedBefore = staking.stakeOf(modelId, cp.owner, Role.Trainer).locked;
            try ledger.finalize(cp) returns (uint256 minted) {
                if (minted != (uint256(cp.workUnits) * params.workToTokenRate) / 1e18) {
                    _violation("minted != work * rate");
                }
                uint256 got = token.balanceOf(cp.owner, id) - balanceBefore;
                uint256 deferredAmount = ledger.deferredMint(commitId);
                if (deferredAmount != 0) {
                    if (deferredAmount != minted || got != 0) _violation("deferred mint other than minted");
                    deferred.push(i);
                    ++successes["finalizeDeferred"];
                } else {
                    if (got != minted) _violation("owner got other than minted");
                    ghostMinted[id] += minted;
                    _markHolder(cp.owner, id, minted);
                }
                if (staking.stakeOf(modelId, cp.owner, Role.Trainer).locked != lockedBefore - params.slashAmount) {
                    _violation("finalize did not release the lock");
                }
                finalizedIds.push(commitId);
                finalizedHash[commitId] = ledger.commitHash(commitId);
                ++successes["finalize"];
                return;
            } catch {
                // Unverified pipeline link: only an upheld dispute lets it finalize.
                continue;
            }
        }
    }

    /// @notice The owner of a deferred mint claims it to a random actor, once the shard's
    /// supply has room (burning from the largest holder first if it has not).
    function claimDeferredMint(uint256 seed, uint256 toSeed) external {
        uint256 n = deferred.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = deferred[(seed + k) % n];
            Checkpoint memory cp = checkpoints[i];
            uint256 amount = ledger.deferredMint(commitIds[i]);
            if (amount == 0) continue;
            uint256 id = ids[cp.shard];
            uint256 room = token.MAX_SUPPLY() - token.totalSupply(id);
            if (amount > room && !_burnLargest(id, amount - room)) continue;
            address to = _actor(toSeed);
            uint256 before = token.balanceOf(to, id);
            vm.prank(cp.owner);
            uint256 minted = ledger.claimDeferredMint(cp, to);
            if (minted != amount || token.balanceOf(to, id) - before != amount) {
                _violation("deferred mint claimed other than deferred");
            }
            if (ledger.deferredMint(commitIds[i]) != 0) _violation("deferred mint left after its claim");
            ghostMinted[id] += amount;
            _markHolder(to, id, amount);
            ++successes["claimDeferredMint"];
            return;
        }
    }

    /// @notice Rejects a pending commit whose parent was rejected; its lock is released.
    function rejectOrphan(uint256 indexSeed) external {
        uint256 n = checkpoints.length;
        if (n == 0) return;
        uint256 start = indexSeed % n;
        for (uint256 k; k < n; ++k) {
            uint256 i = (start + k) % n;
            Checkpoint memory cp = checkpoints[i];
            if (cp.parentRoot == 0 || ledger.commitState(commitIds[i]).status != CommitStatus.Pending) continue;
            if (ledger.commitState(ledger.commitOfRoot(modelId, cp.parentRoot)).status != CommitStatus.Rejected) {
                continue;
            }
            StakeInfo memory before = staking.stakeOf(modelId, cp.owner, Role.Trainer);
            ledger.rejectOrphan(cp);
            StakeInfo memory afterwards = staking.stakeOf(modelId, cp.owner, Role.Trainer);
            if (afterwards.locked != before.locked - registry.paramsAt(modelId, cp.round).slashAmount) {
                _violation("rejectOrphan did not release the lock");
            }
            if (afterwards.active != before.active) _violation("rejectOrphan slashed");
            rejectedIds.push(commitIds[i]);
            ++successes["rejectOrphan"];
            return;
        }
    }

    /// @notice The registrant tries a genesis allocation: allowed only until it closes genesis.
    /// One call in four fills the shard up to `CAP_ROOM` under the supply cap, so later mints on
    /// it are deferred.
    function allocateGenesis(uint256 actorSeed, uint256 shardSeed, uint256 amount) external {
        address to = _actor(actorSeed);
        uint256 shard = shardSeed % SHARDS;
        uint256 room = token.MAX_SUPPLY() - token.totalSupply(ids[shard]);
        amount = amount % 4 == 0 && room > CAP_ROOM + 1 ? room - CAP_ROOM : bound(amount, 1, 1_000);
        _allocateGenesis(to, shard, amount);
    }

    function _allocateGenesis(address to, uint256 shard, uint256 amount) internal {
        address[] memory recipients = new address[](1);
        recipients[0] = to;
        uint256[] memory amounts = new uint256[](1);
        amounts[0] = amount;
        bool open = !registry.modelInfo(modelId).genesisClosed;
        vm.prank(registrant);
        try ledger.allocateGenesis(modelId, uint32(shard), recipients, amounts) {
            if (!open) _violation("genesis allocated after it closed");
            ghostMinted[ids[shard]] += amount;
            _markHolder(to, ids[shard], amount);
            ++successes["allocateGenesis"];
        } catch {
            if (open) _violation("genesis refused before it closed");
        }
    }

    /// @notice The registrant closes genesis (round 1 waits for it; sealing round 1 closes it too).
    function closeGenesis() external {
        if (registry.modelInfo(modelId).genesisClosed) return;
        vm.prank(registrant);
        registry.closeGenesis(modelId);
        ++successes["closeGenesis"];
    }

    /// @notice The registrant changes the next round's slash, seal deposit, quorum, loser slash
    /// and challengers' share (a new parameters version: seals name the version they expect).
    function scheduleParams(uint256 seed) external {
        uint64 next = registry.modelInfo(modelId).latestRound + 1;
        RoundParams memory params = registry.paramsAt(modelId, next);
        params.slashAmount = uint128(bound(seed, 10e18, params.minTrainerStake));
        params.sealDeposit = uint96(bound(seed >> 128, 0, params.slashAmount));
        params.quorumBps = uint16(bound(seed >> 64, 1_000, 5_000));
        params.voterSlashBps = uint16(bound(seed >> 96, 0, 5_000));
        params.challengerShareBps = uint16(bound(seed >> 160, 0, 5_000));
        uint32 versionBefore = registry.paramsVersionAt(modelId, next);
        vm.prank(registrant);
        registry.scheduleParams(modelId, params);
        if (registry.paramsVersionAt(modelId, next) == versionBefore) _violation("params version unchanged");
        ++successes["scheduleParams"];
    }

    /* VERIFICATION AND DISPUTES */

    function attest(uint256 indexSeed, uint256 verifierSeed) external {
        (bool found, uint256 i) = _findPending(indexSeed);
        if (!found) return;
        address verifier = _actor(verifierSeed);
        if (verifier == checkpoints[i].owner) verifier = _actor(verifierSeed + 1);
        if (ledger.hasAttested(commitIds[i], verifier)) return;
        _ensureStake(verifier, Role.Verifier, registry.paramsAt(modelId, checkpoints[i].round).minVerifierStake);
        vm.prank(verifier);
        ledger.attest(commitIds[i]);
        ++successes["attest"];
    }

    /// @notice Challenges a pending commit, posting the bond: opens a dispute inside the
    /// challenge window (after making sure two verifiers other than the owner had stake in the
    /// block before), or joins the open one while its vote runs. With `own`, the challenger is
    /// the owner's node key (bond back, never a reward). Bad commits are looked for first half
    /// the time; with none to challenge, a fresh pipeline is committed to challenge.
    function challenge(uint256 indexSeed, uint256 challengerSeed, bool own) external {
        _challenge(indexSeed, challengerSeed, own);
    }

    function _challenge(uint256 indexSeed, uint256 challengerSeed, bool own) internal {
        (bool found, uint256 i) = _findChallengeable(indexSeed);
        if (!found) {
            _commitPipeline(indexSeed >> 64, type(uint256).max, indexSeed >> 96, false);
            (found, i) = _findChallengeable(indexSeed & ~uint256(1));
            if (!found) return;
        }
        bytes32 commitId = commitIds[i];
        Checkpoint memory cp = checkpoints[i];
        CommitState memory st = ledger.commitState(commitId);
        bool joining = st.disputes != 0 && ledger.dispute(commitId).open;
        uint8 index = joining ? st.disputes : st.disputes + 1;
        address challenger = own ? nodeKeys[_indexOf(cp.owner)] : address(0);
        for (uint256 k; challenger == address(0) && k < ACTORS; ++k) {
            address candidate = _actor(challengerSeed + k);
            if (!joining || _canChallenge(commitId, index, candidate)) challenger = candidate;
        }
        if (challenger == address(0) || (joining && !_canChallenge(commitId, index, challenger))) return;
        RoundParams memory params = registry.paramsAt(modelId, cp.round);
        if (!joining) {
            // Votes weigh the stake of the block before the dispute opens.
            _ensureStake(_actor(challengerSeed + 1), Role.Verifier, params.minVerifierStake);
            _ensureStake(_actor(challengerSeed + 2), Role.Verifier, params.minVerifierStake);
            vm.roll(_blockNumber() + 1);
        }
        stakingToken.mint(challenger, params.challengeBond);
        vm.prank(challenger);
        stakingToken.approve(address(ledger), params.challengeBond);
        vm.prank(challenger);
        ledger.challenge(commitId, keccak256("evidence"));
        ghostLedgerIn += params.challengeBond;
        bytes32 key = _disputeKey(commitId, index);
        if (!joining) disputeRefs.push(DisputeRef({cpIndex: i, commitId: commitId, index: index}));
        disputeChallengers[key].push(challenger);
        ChallengerStake memory c = ledger.challengerOf(commitId, index, challenger);
        bool expectOwn = challenger == cp.owner || challenger == nodeKeys[_indexOf(cp.owner)];
        if (c.bond != params.challengeBond || c.own != expectOwn) _violation("challenger stake misrecorded");
        if (expectOwn) ++successes["challengeOwn"];
        ++successes[joining ? "challengeJoin" : "challenge"];
    }

    /// @notice A verifier that had stake when the dispute opened votes: the truth on a good
    /// commit, `invalid` on a bad one. Its weight is the stake it had then (capped by now).
    function vote(uint256 indexSeed, uint256 voterSeed, bool invalid) external {
        (bool found, uint256 k) = _openDisputeToVote(indexSeed, voterSeed);
        if (!found) return;
        DisputeRef memory ref = disputeRefs[k];
        Dispute memory d = ledger.disputeAt(ref.commitId, ref.index);
        uint256 minimum = registry.paramsAt(modelId, checkpoints[ref.cpIndex].round).minVerifierStake;
        invalid = invalid && isBad[ref.commitId];
        for (uint256 a; a < ACTORS; ++a) {
            address voter = _actor(voterSeed + a);
            if (!_canVote(ref, voter)) continue;
            uint256 before = staking.verifierStakeAt(modelId, voter, d.openedBlock - 1);
            uint256 active = staking.activeStake(modelId, voter, Role.Verifier);
            uint256 weight = before < active ? before : active;
            if (weight < minimum || weight == 0) continue;
            vm.prank(voter);
            ledger.vote(ref.commitId, invalid);
            _recordVote(ref, voter, weight);
            ++successes[invalid ? "voteInvalid" : "voteValid"];
            return;
        }
    }

    /// @notice A verifier adds stake after the dispute opened, then votes: only the stake it had
    /// before the opening counts (a vote with too little of it is refused).
    function lateStakeVote(uint256 indexSeed, uint256 voterSeed, uint256 amount, bool invalid) external {
        (bool found, uint256 k) = _openDisputeToVote(indexSeed, voterSeed);
        if (!found) return;
        DisputeRef memory ref = disputeRefs[k];
        Dispute memory d = ledger.disputeAt(ref.commitId, ref.index);
        uint256 minimum = registry.paramsAt(modelId, checkpoints[ref.cpIndex].round).minVerifierStake;
        invalid = invalid && isBad[ref.commitId];
        for (uint256 a; a < ACTORS; ++a) {
            address voter = _actor(voterSeed + a);
            if (!_canVote(ref, voter)) continue;
            uint256 before = staking.verifierStakeAt(modelId, voter, d.openedBlock - 1);
            _stake(voter, Role.Verifier, bound(amount, minimum, 300e18));
            uint256 active = staking.activeStake(modelId, voter, Role.Verifier);
            uint256 weight = before < active ? before : active;
            vm.prank(voter);
            try ledger.vote(ref.commitId, invalid) {
                if (weight < minimum || weight == 0) _violation("stake added after the opening let a vote count");
                _recordVote(ref, voter, weight);
                ++successes["lateStakeVoteCounted"];
            } catch {
                if (weight >= minimum && weight != 0) _violation("vote with stake from before the opening refused");
                ++successes["lateStakeVoteRefused"];
            }
            return;
        }
    }

    /// @notice Resolves an open dispute after its window and checks the verdict, the slash and
    /// the challengers' reward (paid to the ledger).
    function resolve(uint256 indexSeed) external {
        (bool found, uint256 k) = _findOpenDispute(indexSeed, false);
        if (!found) return;
        DisputeRef memory ref = disputeRefs[k];
        Checkpoint memory cp = checkpoints[ref.cpIndex];
        Dispute memory d = ledger.disputeAt(ref.commitId, ref.index);
        _warpTo(d.endsAt);
        RoundParams memory params = registry.paramsAt(modelId, cp.round);
        StakeInfo memory before = staking.stakeOf(modelId, cp.owner, Role.Trainer);
        uint256 ledgerBefore = stakingToken.balanceOf(address(ledger));
        ledger.resolve(cp);
        StakeInfo memory afterwards = staking.stakeOf(modelId, cp.owner, Role.Trainer);
        uint256 slashed = uint256(before.active) + before.unbonding - afterwards.active - afterwards.unbonding;
        d = ledger.disputeAt(ref.commitId, ref.index);
        uint256 received = stakingToken.balanceOf(address(ledger)) - ledgerBefore;
        uint256 votes = uint256(d.validWeight) + d.invalidWeight;
        Verdict expected = Verdict.Inconclusive;
        if (votes != 0 && votes >= d.quorum && d.validWeight != d.invalidWeight) {
            expected = d.invalidWeight > d.validWeight ? Verdict.Invalid : Verdict.Valid;
        }
        if (d.verdict != expected || d.open) _violation("verdict other than the votes decide");
        CommitStatus status = ledger.commitState(ref.commitId).status;
        if (d.verdict == Verdict.Invalid) {
            if (status != CommitStatus.Rejected) _violation("invalid verdict did not reject");
            if (slashed != params.slashAmount) _violation("invalid verdict slashed other than slashAmount");
            if (afterwards.locked != before.locked - params.slashAmount) _violation("slash kept the lock");
            uint256 reward = d.shareBond != 0 ? (slashed * params.challengerShareBps) / BPS : 0;
            if (d.reward != reward || received != reward) _violation("challengers' reward other than their share");
            ghostSlashPaidOut += received;
            ghostLedgerIn += received;
            rejectedIds.push(ref.commitId);
            ++successes["resolveInvalid"];
        } else {
            if (slashed != 0 || received != 0) _violation("slashed without an invalid verdict");
            if (status != CommitStatus.Pending) _violation("commit not pending after a non-invalid verdict");
            if (ledger.commitState(ref.commitId).upheld != (d.verdict == Verdict.Valid)) {
                _violation("upheld other than by a valid verdict");
            }
            ++successes[d.verdict == Verdict.Valid ? "resolveValid" : "resolveInconclusive"];
        }
    }

    /// @notice Releases an unreleased vote of a resolved dispute (anyone may): a voter on the
    /// losing side of a verdict loses `voterSlashBps` of its weight, burned.
    function releaseVote(uint256 seed) external {
        uint256 n = disputeRefs.length;
        for (uint256 k; k < n; ++k) {
            DisputeRef memory ref = disputeRefs[(seed + k) % n];
            Dispute memory d = ledger.disputeAt(ref.commitId, ref.index);
            if (d.verdict == Verdict.None) continue;
            address[] storage voters = disputeVoters[_disputeKey(ref.commitId, ref.index)];
            for (uint256 j; j < voters.length; ++j) {
                address voter = voters[(seed + j) % voters.length];
                VoteRecord memory v = ledger.voteOf(ref.commitId, ref.index, voter);
                if (v.released) continue;
                bool lost = (d.verdict == Verdict.Invalid && !v.invalid) || (d.verdict == Verdict.Valid && v.invalid);
                uint256 penalty =
                    lost
                        ? (uint256(v.weight) *
                            registry.paramsAt(modelId, checkpoints[ref.cpIndex].round).voterSlashBps) / BPS
                        : 0;
                StakeInfo memory before = staking.stakeOf(modelId, voter, Role.Verifier);
                uint256 held = uint256(before.active) + before.unbonding;
                vm.prank(_actor(seed >> 8));
                uint256 slashed = ledger.releaseVote(ref.commitId, ref.index, voter);
                StakeInfo memory afterwards = staking.stakeOf(modelId, voter, Role.Verifier);
                if (slashed != (penalty < held ? penalty : held))
                    _violation("releaseVote slashed other than the penalty");
                if (held - afterwards.active - afterwards.unbonding != slashed) _violation("releaseVote took more");
                if (afterwards.locked != before.locked - v.weight) _violation("releaseVote kept the lock");
                if (!ledger.voteOf(ref.commitId, ref.index, voter).released) _violation("vote not marked released");
                ++successes[slashed != 0 ? "releaseVoteSlashed" : "releaseVote"];
                return;
            }
        }
    }

    /// @notice Pays a party of a resolved dispute (anyone may call): a challenger its bond back
    /// (plus its reward share on an invalid verdict unless it is the owner's own), the owner every
    /// bond on a valid verdict.
    function claimDispute(uint256 seed) external {
        uint256 n = disputeRefs.length;
        for (uint256 k; k < n; ++k) {
            DisputeRef memory ref = disputeRefs[(seed + k) % n];
            Dispute memory d = ledger.disputeAt(ref.commitId, ref.index);
            if (d.verdict == Verdict.None) continue;
            address owner = ledger.commitOwner(ref.commitId);
            (address account, uint256 amount) = _nextClaim(ref, d, owner, seed);
            if (amount == 0) continue;
            uint256 before = stakingToken.balanceOf(account);
            vm.prank(_actor(seed >> 8));
            uint256 paid = ledger.claimDispute(ref.commitId, ref.index, account);
            if (paid != amount || stakingToken.balanceOf(account) - before != amount) {
                _violation("claimDispute paid other than owed");
            }
            ghostLedgerOut += paid;
            if (account == owner && d.verdict == Verdict.Valid) ++successes["claimDisputeOwner"];
            else if (amount > ledger.challengerOf(ref.commitId, ref.index, account).bond) {
                ++successes["claimDisputeReward"];
            } else ++successes["claimDisputeBond"];
            // A second claim finds nothing.
            try ledger.claimDispute(ref.commitId, ref.index, account) {
                _violation("claimDispute paid twice");
            } catch {}
            return;
        }
    }

    /* SHARD TOKENS */

    function transferShards(uint256 fromSeed, uint256 toSeed, uint256 shardSeed, uint256 amount) external {
        address from = _actor(fromSeed);
        address to = _actor(toSeed);
        uint256 id = ids[shardSeed % SHARDS];
        uint256 balance = token.balanceOf(from, id);
        if (balance == 0) return;
        amount = bound(amount, 1, balance);
        vm.prank(from);
        token.safeTransferFrom(from, to, id, amount, "");
        _markHolder(to, id, amount);
        ++successes["transferShards"];
    }

    function batchTransferShards(uint256 fromSeed, uint256 toSeed, uint256 amountSeed) external {
        address from = _actor(fromSeed);
        address to = _actor(toSeed);
        uint256[] memory values = new uint256[](SHARDS);
        bool any;
        for (uint256 s; s < SHARDS; ++s) {
            uint256 balance = token.balanceOf(from, ids[s]);
            values[s] = balance == 0 ? 0 : bound(amountSeed >> (32 * s), 0, balance);
            any = any || values[s] != 0;
        }
        if (!any) return;
        uint256[] memory batchIds = ids;
        vm.prank(from);
        token.safeBatchTransferFrom(from, to, batchIds, values, "");
        for (uint256 s; s < SHARDS; ++s) _markHolder(to, ids[s], values[s]);
        ++successes["batchTransferShards"];
    }

    function burnShards(uint256 fromSeed, uint256 shardSeed, uint256 amount) external {
        address from = _actor(fromSeed);
        uint256 id = ids[shardSeed % SHARDS];
        uint256 balance = token.balanceOf(from, id);
        if (balance == 0) return;
        amount = bound(amount, 1, balance);
        vm.prank(from);
        token.burn(from, id, amount);
        ghostBurned[id] += amount;
        ++successes["burnShards"];
    }

    /* REVENUE */

    /// @notice Pays revenue directly (up to 1e24 wei: about 1e3 wei per token unit for the
    /// 1e18 units a work unit mints here, far inside the accumulator's range).
    function pay(uint256 payerSeed, uint256 currencySeed, uint256 amount) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        amount = bound(amount, 1, 1e24);
        if (!_anySupply()) return;
        TestERC20(currency).mint(payer, amount);
        vm.prank(payer);
        TestERC20(currency).approve(address(settlement), amount);
        vm.recordLogs();
        vm.prank(payer);
        settlement.pay(modelId, currency, amount);
        _bookRevenue(currency, amount);
        ++successes["pay"];
    }

    /// @notice Deposits escrow with one of the gateways (the payee that alone can draw on it).
    function depositEscrow(uint256 payerSeed, uint256 currencySeed, uint256 payeeSeed, uint256 amount) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        address payee = payees[payeeSeed % PAYEES];
        amount = bound(amount, 1, 1e22);
        TestERC20(currency).mint(payer, amount);
        vm.prank(payer);
        TestERC20(currency).approve(address(settlement), amount);
        vm.prank(payer);
        settlement.depositEscrow(currency, payee, amount);
        ++successes["depositEscrow"];
    }

    function requestEscrowWithdrawal(
        uint256 payerSeed,
        uint256 currencySeed,
        uint256 payeeSeed,
        uint256 amount
    ) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        address payee = payees[payeeSeed % PAYEES];
        uint256 balance = settlement.escrowOf(payer, payee, currency).balance;
        if (balance == 0) return;
        vm.prank(payer);
        settlement.requestEscrowWithdrawal(currency, payee, bound(amount, 1, balance));
        ++successes["requestEscrowWithdrawal"];
    }

    function withdrawEscrow(uint256 payerSeed, uint256 currencySeed, uint256 payeeSeed) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        address payee = payees[payeeSeed % PAYEES];
        Escrow memory e = settlement.escrowOf(payer, payee, currency);
        if (e.withdrawing == 0) return;
        _warpTo(e.unlockAt);
        uint256 before = TestERC20(currency).balanceOf(payer);
        vm.prank(payer);
        uint256 amount = settlement.withdrawEscrow(currency, payee);
        if (amount != e.withdrawing || TestERC20(currency).balanceOf(payer) - before != amount) {
            _violation("escrow withdrawal paid other than the requested amount");
        }
        ++successes["withdrawEscrow"];
    }

    /// @notice A gateway settles a lenient batch of one to three receipts signed by random
    /// payers: some exceed the escrow, replay a used nonce, or name the other gateway as payee,
    /// and are skipped (the other gateway's escrows are untouched). Revenue per currency is what
    /// left the payers' escrows with the settling gateway.
    function settleReceipts(uint256 seed, uint256 count) external {
        if (!_anySupply()) return;
        count = bound(count, 1, 3);
        address payee = payees[seed % PAYEES];
        address other = payees[(seed + 1) % PAYEES];
        UsageReceipt[] memory receipts = new UsageReceipt[](count);
        bytes[] memory signatures = new bytes[](count);
        uint256 wrongPayee;
        for (uint256 k; k < count; ++k) {
            uint256 r = uint256(keccak256(abi.encode(seed, k)));
            (uint256 payerIndex, address currency, uint256 available) = _fundedEscrow(payee, r);
            address payer = actors[payerIndex];
            // One receipt in eight replays the payer's previous nonce.
            uint256 nonce = nextReceiptNonce[payer];
            if ((r >> 8) % 8 == 0 && nonce != 0) nonce -= 1;
            else nextReceiptNonce[payer] = nonce + 1;
            // One in six is for the other gateway.
            bool wrong = (r >> 100) % 6 == 0;
            if (wrong) ++wrongPayee;
            uint256 units = bound(r >> 32, 1, 1_000);
            // Most receipts fit the escrow; one in eight may exceed it.
            uint256 maxPrice = (r >> 104) % 8 == 0 || available < units ? 1e18 : available / units;
            receipts[k] = UsageReceipt({
                modelId: modelId,
                currency: currency,
                payer: payer,
                payee: wrong ? other : payee,
                units: uint128(units),
                pricePerUnit: uint128(bound(r >> 64, 1, maxPrice < 1e18 ? maxPrice : 1e18)),
                nonce: nonce,
                deadline: uint64(_now() + 1 hours)
            });
            (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(actorKeys[payerIndex], settlement.hashReceipt(receipts[k]));
            signatures[k] = abi.encodePacked(rr, ss, v);
        }
        uint256[] memory escrowBefore = _escrowTotals(payee);
        uint256[] memory otherBefore = _escrowTotals(other);
        vm.recordLogs();
        vm.prank(payee);
        (uint256 settled, uint256 total) = settlement.settle(receipts, signatures, false);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256[] memory escrowAfter = _escrowTotals(payee);
        uint256[] memory otherAfter = _escrowTotals(other);
        if (_countSkips(logs, SkipReason.WrongPayee) != wrongPayee) _violation("wrong-payee receipt not skipped");
        for (uint256 c; c < currencies.length; ++c) {
            if (otherAfter[c] != otherBefore[c]) _violation("a gateway drew on another gateway's escrow");
        }
        if (wrongPayee != 0) ++successes["settleWrongPayeeSkipped"];
        if (settled == 0) return;
        uint256 drawn;
        for (uint256 c; c < currencies.length; ++c) {
            uint256 amount = escrowBefore[c] - escrowAfter[c];
            drawn += amount;
            if (amount != 0) _bookParts(currencies[c], amount, logs);
        }
        if (drawn != total) _violation("settled total != escrow drawn");
        ++successes["settleReceipts"];
    }

    /// @notice Claims everything an actor can in one currency across all shards.
    function claim(uint256 actorSeed, uint256 currencySeed) external {
        address actor = _actor(actorSeed);
        address currency = currencies[currencySeed % currencies.length];
        uint256[] memory owed = new uint256[](SHARDS);
        uint256 total;
        for (uint256 s; s < SHARDS; ++s) {
            owed[s] = token.claimable(ids[s], currency, actor);
            total += owed[s];
        }
        uint256 before = TestERC20(currency).balanceOf(actor);
        uint256[] memory claimIds = ids;
        vm.prank(actor);
        uint256 paid = token.claim(claimIds, currency);
        if (paid != total || TestERC20(currency).balanceOf(actor) - before != total) {
            _violation("claim paid other than claimable");
        }
        for (uint256 s; s < SHARDS; ++s) {
            if (token.claimable(ids[s], currency, actor) != 0) _violation("claimable left after a claim");
            ghostClaimed[ids[s]][currency] += owed[s];
        }
        ghostClaimedTotal[currency] += total;
        if (total != 0) ++successes["claim"];
    }

    /* TIME */

    function warp(uint256 secondsAhead) external {
        vm.warp(_now() + bound(secondsAhead, 1, 3 hours));
        vm.roll(_blockNumber() + 1);
    }

    /* VIEWS FOR THE INVARIANTS */

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function payeeCount() external pure returns (uint256) {
        return PAYEES;
    }

    /// @notice Whether `actor` may never sign a bad checkpoint (the handler never makes it).
    function isHonest(address actor) external view returns (bool) {
        return _indexOf(actor) < HONEST;
    }

    function finalizedCount() external view returns (uint256) {
        return finalizedIds.length;
    }

    function rejectedCount() external view returns (uint256) {
        return rejectedIds.length;
    }

    function checkpointCount() external view returns (uint256) {
        return checkpoints.length;
    }

    function recordCount() external view returns (uint256) {
        return records.length;
    }

    function disputeCount() external view returns (uint256) {
        return disputeRefs.length;
    }

    /// @notice Dispute `k` in opening order, with its challengers and voters.
    function disputeInfo(
        uint256 k
    ) external view returns (bytes32 commitId, uint8 index, address[] memory challengers, address[] memory voters) {
        DisputeRef memory ref = disputeRefs[k];
        bytes32 key = _disputeKey(ref.commitId, ref.index);
        return (ref.commitId, ref.index, disputeChallengers[key], disputeVoters[key]);
    }

    /// @notice The target functions of the invariant campaign.
    function selectors() external pure returns (bytes4[] memory s) {
        s = new bytes4[](30);
        s[0] = this.stake.selector;
        s[1] = this.requestUnstake.selector;
        s[2] = this.withdrawStake.selector;
        s[3] = this.commitPipeline.selector;
        s[4] = this.finalize.selector;
        s[5] = this.rejectOrphan.selector;
        s[6] = this.allocateGenesis.selector;
        s[7] = this.attest.selector;
        s[8] = this.challenge.selector;
        s[9] = this.vote.selector;
        s[10] = this.resolve.selector;
        s[11] = this.transferShards.selector;
        s[12] = this.batchTransferShards.selector;
        s[13] = this.burnShards.selector;
        s[14] = this.pay.selector;
        s[15] = this.depositEscrow.selector;
        s[16] = this.requestEscrowWithdrawal.selector;
        s[17] = this.withdrawEscrow.selector;
        s[18] = this.settleReceipts.selector;
        s[19] = this.claim.selector;
        s[20] = this.warp.selector;
        s[21] = this.sealPipeline.selector;
        s[22] = this.revealSeal.selector;
        s[23] = this.expireSeal.selector;
        s[24] = this.claimDeferredMint.selector;
        s[25] = this.closeGenesis.selector;
        s[26] = this.scheduleParams.selector;
        s[27] = this.lateStakeVote.selector;
        s[28] = this.releaseVote.selector;
        s[29] = this.claimDispute.selector;
    }

    /* INTERNAL: COMMITS */

    /// @dev Seals every shard of a fresh lane of a picked round (closing genesis first for round
    /// 1), each owner's node key signing; records each seal.
    function _sealLane(
        uint256 ownerSeed,
        uint256 roundSeed,
        uint256 workSeed,
        bool mismatch
    ) internal returns (Checkpoint[] memory cps, bytes32[] memory salts, uint64 commitBlock, uint64 commitTime) {
        (uint64 round, bytes32[SHARDS] memory parents) = _pickRound(roundSeed);
        if (round == 1 && !registry.modelInfo(modelId).genesisClosed) {
            // Half the time the registrant first fills shard 2 up to `CAP_ROOM` under the cap.
            uint256 room = token.MAX_SUPPLY() - token.totalSupply(ids[2]);
            if (workSeed & 2 == 0 && room > CAP_ROOM + 1) _allocateGenesis(_actor(ownerSeed >> 32), 2, room - CAP_ROOM);
            vm.prank(registrant);
            registry.closeGenesis(modelId);
        }
        uint32 lane = nextLane[round]++;
        commitBlock = uint64(_blockNumber());
        commitTime = uint64(_now());
        cps = new Checkpoint[](SHARDS);
        salts = new bytes32[](SHARDS);
        for (uint256 s; s < SHARDS; ++s) {
            uint256 ownerIndex = (ownerSeed >> (8 * s)) % ACTORS;
            bool bad = ownerIndex >= HONEST && (ownerSeed >> (128 + s)) & 1 == 1;
            cps[s] = _checkpoint(
                uint32(s),
                round,
                lane,
                actors[ownerIndex],
                parents[s],
                workSeed >> (16 * s),
                mismatch
            );
            if (bad) cps[s].transcriptDigest = keccak256(abi.encode("bad transcript", rootNonce));
            salts[s] = keccak256(abi.encode("salt", rootNonce));
            _commit(cps[s], salts[s], bad);
        }
    }

    /// @dev Seals `cp` with `salt`, signed by the owner's node key (which consents to the owner
    /// the first time); tops the owner's trainer stake up to the round's minimum plus a free
    /// `slashAmount` for the lock first.
    function _commit(Checkpoint memory cp, bytes32 salt, bool bad) internal {
        RoundParams memory params = registry.paramsAt(modelId, cp.round);
        StakeInfo memory info = staking.stakeOf(modelId, cp.owner, Role.Trainer);
        uint256 needed = params.minTrainerStake;
        if (uint256(info.locked) + params.slashAmount > needed) needed = uint256(info.locked) + params.slashAmount;
        if (info.active < needed) _stake(cp.owner, Role.Trainer, needed - info.active);
        uint256 ownerIndex = _indexOf(cp.owner);
        address nodeKey = nodeKeys[ownerIndex];
        if (!ledger.isAuthorized(cp.owner, nodeKey)) _authorize(cp.owner, ownerIndex);
        SealedCommit memory c = SealedCommit({
            modelId: modelId,
            shard: cp.shard,
            round: cp.round,
            lane: cp.lane,
            owner: cp.owner,
            parentRoot: cp.parentRoot,
            sealedHash: keccak256(abi.encode(ledger.checkpointHash(cp), salt)),
            paramsVersion: registry.paramsVersionAt(modelId, cp.round),
            deadline: uint64(_now() + 1 days)
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeyPks[ownerIndex], LedgerDigests.sealedCommit(ledger, c));
        bytes memory signature = abi.encodePacked(r, s, v);
        uint128 lockedBefore = info.locked;
        bytes32 commitId = ledger.commit(c, signature);
        if (staking.stakeOf(modelId, cp.owner, Role.Trainer).locked != lockedBefore + params.slashAmount) {
            _violation("commit did not lock slashAmount");
        }
        records.push(Record({commitId: commitId, owner: cp.owner, round: cp.round}));
        isBad[commitId] = bad;
        if (bad) signedBad[cp.owner] = true;
        PendingSeal storage ps = seals.push();
        ps.c = c;
        ps.signature = signature;
    }

    /// @dev The owner authorizes its node key with the key's EIP-712 consent.
    function _authorize(address owner, uint256 ownerIndex) internal {
        address nodeKey = nodeKeys[ownerIndex];
        uint64 deadline = uint64(_now() + 1 hours);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            nodeKeyPks[ownerIndex],
            LedgerDigests.nodeConsent(ledger, owner, nodeKey, deadline)
        );
        vm.prank(owner);
        ledger.authorizeNode(nodeKey, true, deadline, abi.encodePacked(r, s, v));
        ++successes["authorizeNode"];
    }

    function _reveal(Checkpoint memory cp, bytes32 salt, uint64 commitBlock, uint64 commitTime) internal {
        ledger.reveal(cp, salt, commitBlock, commitTime);
        bytes32 commitId = ledger.commitIdOf(modelId, cp.shard, cp.round, cp.lane);
        if (ledger.commitOwner(commitId) != cp.owner) _violation("revealed owner other than sealed");
        if (ledger.commitOfRoot(modelId, cp.root) != commitId) _violation("root not recorded for the model");
        byShardRound[cp.shard][cp.round].push(checkpoints.length);
        checkpoints.push(cp);
        commitIds.push(commitId);
    }

    function _indexOf(address actor) internal view returns (uint256) {
        for (uint256 a; a < ACTORS; ++a) if (actors[a] == actor) return a;
        revert("unknown actor");
    }

    /// @dev Burns `amount` of `id` from its largest actor holder; false if none holds enough.
    function _burnLargest(uint256 id, uint256 amount) internal returns (bool) {
        address largest;
        uint256 most;
        for (uint256 a; a < ACTORS; ++a) {
            uint256 balance = token.balanceOf(actors[a], id);
            if (balance > most) (largest, most) = (actors[a], balance);
        }
        if (most < amount) return false;
        vm.prank(largest);
        token.burn(largest, id, amount);
        ghostBurned[id] += amount;
        return true;
    }

    /* INTERNAL: DISPUTES */

    function _disputeKey(bytes32 commitId, uint8 index) internal pure returns (bytes32) {
        return keccak256(abi.encode(commitId, index));
    }

    /// @dev Not a challenger of the dispute yet and not one of its voters.
    function _canChallenge(bytes32 commitId, uint8 index, address account) internal view returns (bool) {
        return
            ledger.challengerOf(commitId, index, account).bond == 0 &&
            ledger.voteOf(commitId, index, account).weight == 0;
    }

    /// @dev Neither the owner (actors have no node keys of others), a challenger, nor a voter.
    function _canVote(DisputeRef memory ref, address voter) internal view returns (bool) {
        return voter != ledger.commitOwner(ref.commitId) && _canChallenge(ref.commitId, ref.index, voter);
    }

    function _recordVote(DisputeRef memory ref, address voter, uint256 weight) internal {
        if (ledger.voteOf(ref.commitId, ref.index, voter).weight != weight) _violation("vote weight misrecorded");
        disputeVoters[_disputeKey(ref.commitId, ref.index)].push(voter);
    }

    /// @dev The first party of a resolved dispute (from a random start) that has something to
    /// claim, and what it is owed: the owner every bond on Valid, else a challenger its bond plus
    /// (Invalid, not own) its share of the reward.
    function _nextClaim(
        DisputeRef memory ref,
        Dispute memory d,
        address owner,
        uint256 seed
    ) internal view returns (address account, uint256 amount) {
        if (d.verdict == Verdict.Valid) {
            if (ledger.challengerOf(ref.commitId, ref.index, owner).claimed) return (owner, 0);
            return (owner, d.bond);
        }
        address[] storage challengers = disputeChallengers[_disputeKey(ref.commitId, ref.index)];
        for (uint256 j; j < challengers.length; ++j) {
            account = challengers[(seed + j) % challengers.length];
            ChallengerStake memory c = ledger.challengerOf(ref.commitId, ref.index, account);
            if (c.claimed) continue;
            amount = c.bond;
            if (d.verdict == Verdict.Invalid && !c.own) amount += (uint256(d.reward) * c.bond) / d.shareBond;
            return (account, amount);
        }
        return (address(0), 0);
    }

    /// @dev A pending commit that can be challenged now: an open dispute still voting (join),
    /// or none open, inside the challenge window and below the dispute cap (open).
    function _findChallengeable(uint256 seed) internal view returns (bool, uint256) {
        uint256 n = checkpoints.length;
        bool preferBad = (seed >> 200) & 1 == 1;
        bool found;
        uint256 any;
        for (uint256 k; k < n && k < 16; ++k) {
            uint256 i = _scan(seed, k, n);
            CommitState memory st = ledger.commitState(commitIds[i]);
            if (st.status != CommitStatus.Pending) continue;
            Dispute memory d = ledger.dispute(commitIds[i]);
            if (st.disputes != 0 && d.open) {
                if (_now() >= d.endsAt) continue;
            } else {
                uint256 closesAt = uint256(st.revealedAt) + registry.paramsAt(modelId, st.round).challengeWindow;
                if (_now() >= closesAt || st.disputes >= ledger.MAX_DISPUTES()) continue;
            }
            if (!preferBad || isBad[commitIds[i]]) return (true, i);
            if (!found) (found, any) = (true, i);
        }
        return (found, any);
    }

    /// @dev A pending commit from a random start.
    function _findPending(uint256 seed) internal view returns (bool, uint256) {
        uint256 n = checkpoints.length;
        for (uint256 k; k < n && k < 16; ++k) {
            uint256 i = _scan(seed, k, n);
            if (ledger.commitState(commitIds[i]).status == CommitStatus.Pending) return (true, i);
        }
        return (false, 0);
    }

    /// @dev The `k`-th checkpoint index of a scan from `seed`: with an odd seed upwards from
    /// `seed >> 1`, else newest first (those are the ones still inside their windows).
    function _scan(uint256 seed, uint256 k, uint256 n) internal pure returns (uint256) {
        uint256 i = ((seed >> 1) + k) % n;
        return seed & 1 == 1 ? i : n - 1 - i;
    }

    /// @dev An open dispute still voting; with none, a new one is opened (on a bad commit if
    /// there is one) by a challenger that will not be the voter picked first.
    function _openDisputeToVote(uint256 indexSeed, uint256 voterSeed) internal returns (bool found, uint256 k) {
        (found, k) = _findOpenDispute(indexSeed, true);
        if (found) return (found, k);
        _challenge(indexSeed | (1 << 200), voterSeed + 3, false);
        return _findOpenDispute(indexSeed, true);
    }

    /// @dev An open dispute (index into `disputeRefs`) from a random start; `voting`: whose vote
    /// still runs.
    function _findOpenDispute(uint256 seed, bool voting) internal view returns (bool, uint256) {
        uint256 n = disputeRefs.length;
        for (uint256 k; k < n; ++k) {
            uint256 j = (seed + k) % n;
            Dispute memory d = ledger.disputeAt(disputeRefs[j].commitId, disputeRefs[j].index);
            if (d.open && (!voting || _now() < d.endsAt)) return (true, j);
        }
        return (false, 0);
    }

    /* INTERNAL: REVENUE */

    function _anySupply() internal view returns (bool) {
        for (uint256 s; s < SHARDS; ++s) if (token.totalSupply(ids[s]) != 0) return true;
        return false;
    }

    /// @dev Books each id's part of `amount` from the `RevenueDeposited` events recorded since
    /// `vm.recordLogs()`; the parts must add up to `amount`.
    function _bookRevenue(address currency, uint256 amount) internal {
        _bookParts(currency, amount, vm.getRecordedLogs());
    }

    function _bookParts(address currency, uint256 amount, Vm.Log[] memory logs) internal {
        uint256 sum;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(token) || logs[i].topics[0] != IShardToken.RevenueDeposited.selector) {
                continue;
            }
            if (address(uint160(uint256(logs[i].topics[2]))) != currency) continue;
            uint256 id = uint256(logs[i].topics[1]);
            (uint256 part, ) = abi.decode(logs[i].data, (uint256, uint256));
            ghostDeposited[id][currency] += part;
            ghostDepositCount[id][currency] += 1;
            sum += part;
        }
        if (sum != amount) _violation("shard parts do not add up to the revenue");
        ghostRevenue[currency] += amount;
    }

    function _countSkips(Vm.Log[] memory logs, SkipReason reason) internal view returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (
                logs[i].emitter != address(settlement) ||
                logs[i].topics[0] != IInferenceSettlement.ReceiptSkipped.selector
            ) continue;
            if (abi.decode(logs[i].data, (SkipReason)) == reason) ++n;
        }
    }

    /// @dev A (payer, currency) with escrow for `payee`, scanning from `r` (the first tried if none).
    function _fundedEscrow(
        address payee,
        uint256 r
    ) internal view returns (uint256 payerIndex, address currency, uint256 available) {
        uint256 combos = ACTORS * currencies.length;
        for (uint256 k; k < combos; ++k) {
            uint256 j = (r + k) % combos;
            payerIndex = j % ACTORS;
            currency = currencies[j / ACTORS];
            Escrow memory e = settlement.escrowOf(actors[payerIndex], payee, currency);
            available = uint256(e.balance) + e.withdrawing;
            if (available != 0) return (payerIndex, currency, available);
        }
        return (r % ACTORS, currencies[(r / ACTORS) % currencies.length], 0);
    }

    /// @dev Per currency, all actors' escrow (balance + withdrawing) with `payee`.
    function _escrowTotals(address payee) internal view returns (uint256[] memory totals) {
        totals = new uint256[](currencies.length);
        for (uint256 c; c < currencies.length; ++c) {
            for (uint256 a; a < ACTORS; ++a) {
                Escrow memory e = settlement.escrowOf(actors[a], payee, currencies[c]);
                totals[c] += uint256(e.balance) + e.withdrawing;
            }
        }
    }

    /* INTERNAL: MISC */

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % ACTORS];
    }

    function _stake(address actor, Role role, uint256 amount) internal {
        stakingToken.mint(actor, amount);
        vm.prank(actor);
        stakingToken.approve(address(staking), amount);
        vm.prank(actor);
        staking.stake(modelId, role, amount);
        ghostStaked += amount;
        if (role == Role.Trainer) ghostTrainerStaked[actor] += amount;
    }

    function _ensureStake(address actor, Role role, uint256 minimum) internal {
        uint256 active = staking.activeStake(modelId, actor, role);
        if (active < minimum || active == 0) _stake(actor, role, minimum - active + 1);
    }

    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    function _blockNumber() internal view returns (uint256) {
        return vm.getBlockNumber();
    }

    function _warpTo(uint256 timestamp) internal {
        if (_now() < timestamp) vm.warp(timestamp);
    }

    /// @dev A round from 1 to latest + 1 whose previous round has a live (pending or finalized)
    /// commit in every shard to build on; round 1 (parent root 0) when it has not.
    function _pickRound(uint256 seed) internal view returns (uint64 round, bytes32[SHARDS] memory parents) {
        uint64 latest = registry.modelInfo(modelId).latestRound;
        round = uint64(bound(seed, 1, uint256(latest) + 1));
        if (round == 1) return (round, parents);
        for (uint256 s; s < SHARDS; ++s) {
            uint256[] storage candidates = byShardRound[uint32(s)][round - 1];
            bool found;
            for (uint256 k; k < candidates.length; ++k) {
                uint256 i = candidates[(seed + k) % candidates.length];
                CommitStatus status = ledger.commitState(commitIds[i]).status;
                if (status == CommitStatus.Pending || status == CommitStatus.Finalized) {
                    parents[s] = checkpoints[i].root;
                    found = true;
                    break;
                }
            }
            if (!found) return (1, [bytes32(0), bytes32(0), bytes32(0)]);
        }
    }

    /// @dev Digests of the boundary between shard `b` and `b + 1` agree on both sides unless
    /// `mismatch` corrupts what shard 0 claims to have sent.
    function _checkpoint(
        uint32 shard,
        uint64 round,
        uint32 lane,
        address owner,
        bytes32 parentRoot,
        uint256 workSeed,
        bool mismatch
    ) internal returns (Checkpoint memory cp) {
        cp.modelId = modelId;
        cp.shard = shard;
        cp.round = round;
        cp.lane = lane;
        cp.owner = owner;
        cp.parentRoot = parentRoot;
        cp.root = keccak256(abi.encode("root", ++rootNonce));
        cp.transcriptDigest = keccak256(abi.encode("transcript", rootNonce));
        if (shard > 0) {
            cp.receivedActivations = keccak256(abi.encode("act", round, lane, shard - 1));
            cp.sentGradients = keccak256(abi.encode("grad", round, lane, shard - 1));
        }
        if (shard + 1 < SHARDS) {
            cp.sentActivations = keccak256(abi.encode("act", round, lane, shard));
            cp.receivedGradients = keccak256(abi.encode("grad", round, lane, shard));
            if (mismatch && shard == 0) cp.sentActivations = keccak256("corrupted");
        }
        cp.workUnits = uint128(bound(workSeed & 0xffff, 1, 1_000));
        cp.lossMicros = uint64(workSeed >> 200);
        cp.checkpointURI = "ipfs://checkpoint";
        cp.transcriptURI = "ipfs://transcript";
    }

    function _markHolder(address holder, uint256 id, uint256 amount) internal {
        if (amount == 0 || everHeld[id][holder]) return;
        everHeld[id][holder] = true;
        everHeldCount[id] += 1;
    }

    function _violation(string memory why) internal {
        ++violations;
        lastViolation = why;
    }

    function _digit(uint256 d) internal pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + d))));
    }
}
