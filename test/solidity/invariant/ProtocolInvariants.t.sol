// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {
    ChallengerStake,
    CommitStatus,
    Dispute,
    IContributionLedger,
    Verdict,
    VoteRecord
} from "../../../contracts/interfaces/IContributionLedger.sol";
import {Escrow} from "../../../contracts/interfaces/IInferenceSettlement.sol";
import {Role, StakeInfo, StakeTotals} from "../../../contracts/interfaces/IStaking.sol";
import {TestERC20} from "../../../contracts/test/TestERC20.sol";

import {Deploy, Protocol} from "../utils/Deploy.sol";
import {LedgerDigests} from "../utils/LedgerDigests.sol";
import {FuzzSelector} from "../utils/Test.sol";
import {Handler} from "./Handler.sol";

/// @title ProtocolInvariants
/// @notice Invariants of the whole protocol (one model, three shards weighted 2:1:1, two
/// currencies) under random sequences of the `Handler`'s actions.
contract ProtocolInvariants is Deploy {
    Protocol internal p;
    Handler internal handler;

    function setUp() public {
        p = deployProtocol(weights211());
        handler = new Handler(p);
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: handler.selectors()}));
    }

    /* HANDLER */

    /// @notice One scripted pass through the handler reaches every path the campaign relies
    /// on, so a handler that silently stopped doing anything would fail here.
    function test_handlerReachesEveryPath() public {
        handler.allocateGenesis(0, 2, 4); // shard 2 filled up to 500 tokens under the cap
        handler.allocateGenesis(1, 0, 5);
        handler.closeGenesis();
        handler.allocateGenesis(1, 0, 5); // refused: genesis closed
        handler.stake(0, false, 1e20);
        handler.stake(3, true, 2e20);
        // Commits 0-2 owned by actors 3, 2, 1; bits 128 and 129: commits 0 and 1 are bad; shard
        // 2 does 900 work units (bits 32-47), more than the room left under the cap.
        handler.commitPipeline((3 << 128) | 0x010203, 1, 77 | (900 << 32), false);
        handler.commitPipeline(0x010203, 1, 77, true); // commits 3-5, odd work seed: mismatched
        handler.sealPipeline(0x000102, 1, 78); // seals 0-2 (owners actors 2, 1, 0)
        handler.revealSeal(0); // seal 0: commit 6
        handler.commitPipeline(0x010203, 2, 2, false); // round 2: commits 7-9 on commits 6, 1, 2

        // Dispute A on commit 0 (bad): actor 1 opens it (actors 2 and 3 staked as verifiers
        // first), actor 2 and actor 3's own node key join; actor 0 stakes only now and cannot
        // vote; nobody else votes: inconclusive.
        handler.challenge(1, 1, false);
        handler.challenge(1, 2, false);
        handler.challenge(1, 0, true);
        handler.lateStakeVote(0, 0, 1e20, true);
        // Dispute B on commit 1 (bad): actor 0 opens it, actor 2's node key joins; actor 3 votes
        // invalid (200), actor 1 valid (50): invalid, actor 1 loses.
        handler.challenge(3, 0, false);
        handler.challenge(3, 0, true);
        handler.vote(1, 3, true);
        handler.vote(1, 1, false);
        // Dispute C on commit 4 (good, mismatched): actor 1 opens it, actor 3 votes valid: upheld.
        handler.challenge(9, 1, false);
        handler.lateStakeVote(2, 0, 1e20, false); // actor 0's stake from before counts
        handler.vote(2, 3, false);
        for (uint256 k; k < 3; ++k) handler.resolve(0);
        assertEq(uint256(_verdict(0)), uint256(Verdict.Inconclusive), "dispute A inconclusive");
        assertEq(uint256(_verdict(1)), uint256(Verdict.Invalid), "dispute B invalid");
        assertEq(uint256(_verdict(2)), uint256(Verdict.Valid), "dispute C valid");
        for (uint256 k; k < 4; ++k) handler.releaseVote(k);
        for (uint256 k; k < 8; ++k) handler.claimDispute(k);
        handler.rejectOrphan(0); // commit 8, child of the rejected commit 1
        for (uint256 k; k < 10; ++k) handler.finalize(k);
        handler.claimDeferredMint(0, 2);
        handler.expireSeal(0); // seal 1

        handler.pay(1, 0, 1e20);
        for (uint256 a; a < 4; ++a) {
            handler.depositEscrow(a, 0, a, 1e22);
            handler.depositEscrow(a, 1, a + 1, 1e22);
        }
        for (uint256 seed; seed < 8; ++seed) handler.settleReceipts(seed, 3);
        handler.claim(3, 0);
        handler.transferShards(3, 0, 0, 5);
        handler.batchTransferShards(3, 1, 555);
        handler.burnShards(3, 0, 1);
        handler.requestUnstake(3, false, 1e18);
        handler.withdrawStake(3, false);
        handler.requestEscrowWithdrawal(2, 1, 1, 1e18);
        handler.withdrawEscrow(2, 1, 1);
        handler.scheduleParams(123);

        string[] memory paths = new string[](42);
        paths[0] = "stake";
        paths[1] = "commitPipeline";
        paths[2] = "commitPipelineMismatched";
        paths[3] = "challenge";
        paths[4] = "voteInvalid";
        paths[5] = "resolveInvalid";
        paths[6] = "finalize";
        paths[7] = "pay";
        paths[8] = "depositEscrow";
        paths[9] = "settleReceipts";
        paths[10] = "claim";
        paths[11] = "transferShards";
        paths[12] = "batchTransferShards";
        paths[13] = "burnShards";
        paths[14] = "requestUnstake";
        paths[15] = "withdrawStake";
        paths[16] = "requestEscrowWithdrawal";
        paths[17] = "withdrawEscrow";
        paths[18] = "allocateGenesis";
        paths[19] = "closeGenesis";
        paths[20] = "authorizeNode";
        paths[21] = "sealPipeline";
        paths[22] = "revealSeal";
        paths[23] = "expireSeal";
        paths[24] = "challengeJoin";
        paths[25] = "challengeOwn";
        paths[26] = "voteValid";
        paths[27] = "lateStakeVoteRefused";
        paths[28] = "resolveValid";
        paths[29] = "releaseVoteSlashed";
        paths[30] = "claimDisputeReward";
        paths[31] = "claimDisputeBond";
        paths[32] = "claimDisputeOwner";
        paths[33] = "finalizeDeferred";
        paths[34] = "claimDeferredMint";
        paths[35] = "settleWrongPayeeSkipped";
        paths[36] = "resolveInconclusive";
        paths[37] = "lateStakeVoteCounted";
        paths[38] = "releaseVote";
        paths[39] = "rejectOrphan";
        paths[40] = "unstakeLockedRefused";
        paths[41] = "scheduleParams";
        for (uint256 i; i < paths.length; ++i) assertGe(handler.successes(paths[i]), 1, paths[i]);
        assertEq(handler.successes("allocateGenesis"), 2, "genesis refused after it closed");
        assertEq(p.registry.modelInfo(p.modelId).latestRound, 2, "second round opened");
        _checkAll();
    }

    function _verdict(uint256 k) internal view returns (Verdict) {
        (bytes32 commitId, uint8 index, , ) = handler.disputeInfo(k);
        return p.ledger.disputeAt(commitId, index).verdict;
    }

    /// @notice A node key is authorized only with its own consent (one signed by another key is
    /// refused); revoking needs none.
    function test_authorizeNodeNeedsTheKeysConsent() public {
        address owner = vm.addr(0xA);
        address nodeKey = vm.addr(0xB);
        uint64 deadline = uint64(vm.getBlockTimestamp() + 1 hours);
        bytes32 digest = LedgerDigests.nodeConsent(p.ledger, owner, nodeKey, deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(0xC, digest);
        vm.expectRevert(
            abi.encodeWithSelector(IContributionLedger.NodeConsentMismatch.selector, nodeKey, vm.addr(0xC))
        );
        vm.prank(owner);
        p.ledger.authorizeNode(nodeKey, true, deadline, abi.encodePacked(r, s, v));
        (v, r, s) = vm.sign(0xB, digest);
        vm.prank(owner);
        p.ledger.authorizeNode(nodeKey, true, deadline, abi.encodePacked(r, s, v));
        assertTrue(p.ledger.isAuthorized(owner, nodeKey), "authorized with the key's consent");
        vm.prank(owner);
        p.ledger.authorizeNode(nodeKey, false, 0, "");
        assertFalse(p.ledger.isAuthorized(owner, nodeKey), "revoked without consent");
    }

    /* INVARIANTS */

    /// @notice Every property below, checked after each handler call of one campaign (one
    /// campaign per `invariant_` function: a single entry point keeps the deep profile short).
    function invariant_protocol() public view {
        _checkAll();
    }

    function _checkAll() internal view {
        _checkBalancesSumToSupply();
        _checkSupplyOnlyFromFinalizationOrGenesis();
        _checkRevenueNeverOverpaid();
        _checkTokenBacksClaims();
        _checkEscrowBacked();
        _checkFinalizedCommitsNeverChange();
        _checkHonestOwnersNeverSlashed();
        _checkVoteWeightWithinStakeAtOpening();
        _checkLockedStakeBacksPendingWork();
        _checkLedgerHoldsUnclaimedDisputeFunds();
        _checkStakeConserved();
        _checkHandlerSawNoViolation();
    }

    /* SHARD TOKENS */

    /// @notice Per id, the actors' balances add up to the total supply (tokens never leave the
    /// actors, so nothing is held elsewhere).
    function _checkBalancesSumToSupply() internal view {
        for (uint256 s; s < 3; ++s) {
            uint256 id = handler.ids(s);
            uint256 sum;
            for (uint256 a; a < handler.actorCount(); ++a) sum += p.token.balanceOf(handler.actors(a), id);
            assertEq(sum, p.token.totalSupply(id), "sum of balances == totalSupply");
        }
    }

    /// @notice Tokens come only from finalization or a genesis allocation before the first
    /// commit: per id, supply == minted by those paths − burned.
    function _checkSupplyOnlyFromFinalizationOrGenesis() internal view {
        for (uint256 s; s < 3; ++s) {
            uint256 id = handler.ids(s);
            assertEq(
                p.token.totalSupply(id),
                handler.ghostMinted(id) - handler.ghostBurned(id),
                "totalSupply == finalized + genesis mints - burns"
            );
        }
    }

    /* REVENUE */

    /// @notice Per (id, currency): Σ claimed + Σ claimable ≤ Σ deposited, and the shortfall
    /// (rounding dust) is below #deposits + #accounts that ever held the id.
    function _checkRevenueNeverOverpaid() internal view {
        for (uint256 s; s < 3; ++s) {
            uint256 id = handler.ids(s);
            for (uint256 c; c < 2; ++c) {
                address currency = handler.currencies(c);
                uint256 owed = handler.ghostClaimed(id, currency);
                for (uint256 a; a < handler.actorCount(); ++a) {
                    owed += p.token.claimable(id, currency, handler.actors(a));
                }
                uint256 deposited = handler.ghostDeposited(id, currency);
                assertLe(owed, deposited, "claimed + claimable <= deposited");
                uint256 dust = deposited - owed;
                uint256 deposits = handler.ghostDepositCount(id, currency);
                if (deposits == 0) assertEq(dust, 0, "no deposit, nothing owed");
                else assertLt(dust, deposits + handler.everHeldCount(id), "dust < deposits + holders");
            }
        }
    }

    /// @notice The shard token holds exactly the revenue not yet claimed, which covers every
    /// claimable amount; the per-id deposits add up to the model's revenue.
    function _checkTokenBacksClaims() internal view {
        for (uint256 c; c < 2; ++c) {
            address currency = handler.currencies(c);
            uint256 balance = TestERC20(currency).balanceOf(address(p.token));
            assertEq(
                balance,
                handler.ghostRevenue(currency) - handler.ghostClaimedTotal(currency),
                "token balance == revenue - claimed"
            );
            uint256 claimable;
            uint256 deposited;
            for (uint256 s; s < 3; ++s) {
                uint256 id = handler.ids(s);
                deposited += handler.ghostDeposited(id, currency);
                for (uint256 a; a < handler.actorCount(); ++a) {
                    claimable += p.token.claimable(id, currency, handler.actors(a));
                }
            }
            assertGe(balance, claimable, "token balance >= sum of claimable");
            assertEq(deposited, handler.ghostRevenue(currency), "shard parts add up to the revenue");
        }
    }

    /// @notice The settlement contract holds exactly the payers' escrows (with every payee).
    function _checkEscrowBacked() internal view {
        for (uint256 c; c < 2; ++c) {
            address currency = handler.currencies(c);
            uint256 escrowed;
            for (uint256 a; a < handler.actorCount(); ++a) {
                for (uint256 g; g < handler.payeeCount(); ++g) {
                    Escrow memory e = p.settlement.escrowOf(handler.actors(a), handler.payees(g), currency);
                    escrowed += uint256(e.balance) + e.withdrawing;
                }
            }
            assertEq(TestERC20(currency).balanceOf(address(p.settlement)), escrowed, "settlement holds the escrows");
        }
    }

    /* CONTRIBUTIONS */

    /// @notice A finalized commit keeps its hash and status forever; a rejected one stays
    /// rejected.
    function _checkFinalizedCommitsNeverChange() internal view {
        for (uint256 i; i < handler.finalizedCount(); ++i) {
            bytes32 commitId = handler.finalizedIds(i);
            assertEq(p.ledger.commitHash(commitId), handler.finalizedHash(commitId), "finalized hash unchanged");
            assertTrue(p.ledger.commitState(commitId).status == CommitStatus.Finalized, "finalized stays finalized");
        }
        for (uint256 i; i < handler.rejectedCount(); ++i) {
            assertTrue(
                p.ledger.commitState(handler.rejectedIds(i)).status == CommitStatus.Rejected,
                "rejected stays rejected"
            );
        }
    }

    /// @notice INV (a): an owner whose node keys never sealed a bad checkpoint never loses
    /// trainer stake: its active + unbonding stake is what it staked, less what it withdrew and
    /// the seal deposits burned when its seals expired unrevealed. Nobody ends up with more.
    function _checkHonestOwnersNeverSlashed() internal view {
        for (uint256 a; a < handler.actorCount(); ++a) {
            address actor = handler.actors(a);
            StakeInfo memory info = p.staking.stakeOf(p.modelId, actor, Role.Trainer);
            uint256 held = uint256(info.active) + info.unbonding;
            uint256 expected =
                handler.ghostTrainerStaked(actor) -
                    handler.ghostTrainerWithdrawn(actor) -
                    handler.ghostSealBurned(actor);
            if (handler.isHonest(actor)) assertFalse(handler.signedBad(actor), "honest actor signed a bad checkpoint");
            if (handler.signedBad(actor)) assertLe(held, expected, "trainer stake <= staked - withdrawn - burned");
            else assertEq(held, expected, "honest owner's stake == staked - withdrawn - seal deposits burned");
        }
    }

    /// @notice INV (b): in every dispute the weight that voted is at most the model's verifier
    /// stake at the end of the block before it opened, each vote at most its voter's stake then;
    /// the weights, bonds and quorum add up.
    function _checkVoteWeightWithinStakeAtOpening() internal view {
        for (uint256 k; k < handler.disputeCount(); ++k) {
            (bytes32 commitId, uint8 index, address[] memory challengers, address[] memory voters) = handler
                .disputeInfo(k);
            Dispute memory d = p.ledger.disputeAt(commitId, index);
            uint256 before = uint256(d.openedBlock) - 1;
            uint256 total = p.staking.totalVerifierStakeAt(p.modelId, before);
            uint256 votes = uint256(d.validWeight) + d.invalidWeight;
            assertLe(votes, total, "vote weight <= verifier stake at opening");
            uint256 quorumBps = p.registry.paramsAt(p.modelId, p.ledger.commitState(commitId).round).quorumBps;
            assertEq(d.quorum, (total * quorumBps + 9_999) / 10_000, "quorum == quorumBps of stake at opening");
            uint256 sum;
            for (uint256 v; v < voters.length; ++v) {
                VoteRecord memory r = p.ledger.voteOf(commitId, index, voters[v]);
                assertLe(r.weight, p.staking.verifierStakeAt(p.modelId, voters[v], before), "vote <= stake at opening");
                sum += r.weight;
            }
            assertEq(sum, votes, "votes add up to the dispute's weight");
            uint256 bonds;
            uint256 shareBonds;
            for (uint256 c; c < challengers.length; ++c) {
                ChallengerStake memory cs = p.ledger.challengerOf(commitId, index, challengers[c]);
                bonds += cs.bond;
                if (!cs.own) shareBonds += cs.bond;
            }
            assertEq(bonds, d.bond, "challengers' bonds add up");
            assertEq(shareBonds, d.shareBond, "non-own challengers' bonds add up");
        }
    }

    /// @notice INV (c): a trainer's locked stake is `slashAmount` (of the commit's round) per
    /// pending commit (sealed, or revealed and neither finalized nor rejected), and at most its
    /// active stake; a verifier's locked stake is the weight of its votes not yet released.
    function _checkLockedStakeBacksPendingWork() internal view {
        uint256 n = handler.actorCount();
        uint256[] memory trainerLocks = new uint256[](n);
        uint256[] memory verifierLocks = new uint256[](n);
        for (uint256 k; k < handler.recordCount(); ++k) {
            (bytes32 commitId, address owner, uint64 round) = handler.records(k);
            CommitStatus status = p.ledger.commitState(commitId).status;
            if (status != CommitStatus.Sealed && status != CommitStatus.Pending) continue;
            trainerLocks[_indexOf(owner)] += p.registry.paramsAt(p.modelId, round).slashAmount;
        }
        for (uint256 k; k < handler.disputeCount(); ++k) {
            (bytes32 commitId, uint8 index, , address[] memory voters) = handler.disputeInfo(k);
            for (uint256 v; v < voters.length; ++v) {
                VoteRecord memory r = p.ledger.voteOf(commitId, index, voters[v]);
                if (!r.released) verifierLocks[_indexOf(voters[v])] += r.weight;
            }
        }
        for (uint256 a; a < n; ++a) {
            address actor = handler.actors(a);
            StakeInfo memory t = p.staking.stakeOf(p.modelId, actor, Role.Trainer);
            assertEq(t.locked, trainerLocks[a], "trainer lock == slashAmount x pending commits");
            assertLe(t.locked, t.active, "trainer lock <= active stake");
            assertEq(p.staking.stakeOf(p.modelId, actor, Role.Verifier).locked, verifierLocks[a], "verifier lock");
        }
    }

    /// @notice The ledger holds exactly the bonds and rewards it received less what it paid, and
    /// that covers what every dispute party can still claim: open disputes' bonds, the owner's
    /// bonds on Valid, the challengers' bonds (and rewards) otherwise. What stays beyond it is
    /// rounding dust of reward shares: less than one wei per rewarded challenger.
    function _checkLedgerHoldsUnclaimedDisputeFunds() internal view {
        uint256 balance = p.stakingToken.balanceOf(address(p.ledger));
        assertEq(balance, handler.ghostLedgerIn() - handler.ghostLedgerOut(), "ledger holds received - paid");
        uint256 owed;
        uint256 dustBound;
        for (uint256 k; k < handler.disputeCount(); ++k) {
            (bytes32 commitId, uint8 index, address[] memory challengers, ) = handler.disputeInfo(k);
            Dispute memory d = p.ledger.disputeAt(commitId, index);
            if (d.verdict == Verdict.None) {
                owed += d.bond;
                continue;
            }
            if (d.verdict == Verdict.Valid) {
                if (!p.ledger.challengerOf(commitId, index, p.ledger.commitOwner(commitId)).claimed) owed += d.bond;
                continue;
            }
            for (uint256 c; c < challengers.length; ++c) {
                ChallengerStake memory cs = p.ledger.challengerOf(commitId, index, challengers[c]);
                bool rewarded = d.verdict == Verdict.Invalid && !cs.own && d.reward != 0;
                if (rewarded) ++dustBound;
                if (cs.claimed) continue;
                owed += cs.bond;
                if (rewarded) owed += (uint256(d.reward) * cs.bond) / d.shareBond;
            }
        }
        assertLe(owed, balance, "ledger covers what dispute parties can claim");
        assertLe(balance - owed, dustBound, "ledger keeps only reward rounding dust");
    }

    /* STAKING */

    /// @notice deposited == active + unbonding + slashed + withdrawn; the totals match the
    /// accounts and the ghosts; the Staking contract holds deposited − withdrawn − the slash
    /// shares paid out (to the ledger, for challengers to claim).
    function _checkStakeConserved() internal view {
        StakeTotals memory t = p.staking.totals(p.modelId);
        assertEq(
            t.deposited,
            uint256(t.active) + t.unbonding + t.slashed + t.withdrawn,
            "deposited == active + unbonding + slashed + withdrawn"
        );
        assertEq(t.deposited, handler.ghostStaked(), "deposited == ghost staked");
        assertEq(t.withdrawn, handler.ghostStakeWithdrawn(), "withdrawn == ghost withdrawn");
        assertEq(
            p.stakingToken.balanceOf(address(p.staking)),
            uint256(t.deposited) - t.withdrawn - handler.ghostSlashPaidOut(),
            "staking balance == deposited - withdrawn - slash paid out"
        );
        uint256 active;
        uint256 unbonding;
        for (uint256 a; a < handler.actorCount(); ++a) {
            for (uint256 r; r < 2; ++r) {
                StakeInfo memory info = p.staking.stakeOf(p.modelId, handler.actors(a), Role(r));
                active += info.active;
                unbonding += info.unbonding;
            }
        }
        assertEq(active, t.active, "sum of active stakes == total active");
        assertEq(unbonding, t.unbonding, "sum of unbonding stakes == total unbonding");
    }

    function _indexOf(address actor) internal view returns (uint256) {
        for (uint256 a; a < handler.actorCount(); ++a) if (handler.actors(a) == actor) return a;
        revert("not an actor");
    }

    /* HANDLER CHECKS */

    /// @notice Checks the handler made along the way (exact mint and claim amounts, genesis
    /// only before the first commit, withdrawals, settlement totals).
    function _checkHandlerSawNoViolation() internal view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }
}
