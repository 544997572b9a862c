// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommitStatus} from "../../../contracts/interfaces/IContributionLedger.sol";
import {Escrow} from "../../../contracts/interfaces/IInferenceSettlement.sol";
import {Role, StakeInfo, StakeTotals} from "../../../contracts/interfaces/IStaking.sol";
import {TestERC20} from "../../../contracts/test/TestERC20.sol";

import {Deploy, Protocol} from "../utils/Deploy.sol";
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
        handler.stake(0, false, 1e20);
        handler.commitPipeline(0x010203, 1, 77, false); // shards owned by actors 3, 2, 1
        handler.commitPipeline(0x010203, 1, 77, true); // odd work seed: mismatched
        handler.challenge(1, 0);
        handler.vote(0, 3, true);
        handler.resolve(0);
        handler.finalize(0);
        handler.pay(1, 0, 1e20);
        for (uint256 a; a < 4; ++a) {
            handler.depositEscrow(a, 0, 1e22);
            handler.depositEscrow(a, 1, 1e22);
        }
        handler.settleReceipts(1, 3);
        handler.claim(3, 0);
        handler.transferShards(3, 0, 0, 5);
        handler.batchTransferShards(3, 1, 555);
        handler.burnShards(3, 0, 1);
        handler.requestUnstake(0, false, 1e18);
        handler.withdrawStake(0, false);
        handler.requestEscrowWithdrawal(2, 1, 1e18);
        handler.withdrawEscrow(2, 1);
        handler.commitPipeline(0x010203, 2, 77, false);
        handler.allocateGenesis(0, 0, 5); // refused: commits exist

        string[18] memory paths = [
            "stake",
            "commitPipeline",
            "commitPipelineMismatched",
            "challenge",
            "voteInvalid",
            "resolveInvalid",
            "finalize",
            "pay",
            "depositEscrow",
            "settleReceipts",
            "claim",
            "transferShards",
            "batchTransferShards",
            "burnShards",
            "requestUnstake",
            "withdrawStake",
            "requestEscrowWithdrawal",
            "withdrawEscrow"
        ];
        for (uint256 i; i < paths.length; ++i) assertGe(handler.successes(paths[i]), 1, paths[i]);
        assertEq(handler.successes("allocateGenesis"), 0, "genesis refused after the first commit");
        assertEq(p.registry.modelInfo(p.modelId).latestRound, 2, "second round opened");
        invariant_balancesSumToSupply();
        invariant_supplyOnlyFromFinalizationOrGenesis();
        invariant_revenueNeverOverpaid();
        invariant_tokenBacksClaims();
        invariant_escrowBacked();
        invariant_finalizedCommitsNeverChange();
        invariant_ledgerHoldsOpenBonds();
        invariant_stakeConserved();
        invariant_handlerSawNoViolation();
    }

    /* SHARD TOKENS */

    /// @notice Per id, the actors' balances add up to the total supply (tokens never leave the
    /// actors, so nothing is held elsewhere).
    function invariant_balancesSumToSupply() public view {
        for (uint256 s; s < 3; ++s) {
            uint256 id = handler.ids(s);
            uint256 sum;
            for (uint256 a; a < handler.actorCount(); ++a) sum += p.token.balanceOf(handler.actors(a), id);
            assertEq(sum, p.token.totalSupply(id), "sum of balances == totalSupply");
        }
    }

    /// @notice Tokens come only from finalization or a genesis allocation before the first
    /// commit: per id, supply == minted by those paths − burned.
    function invariant_supplyOnlyFromFinalizationOrGenesis() public view {
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
    function invariant_revenueNeverOverpaid() public view {
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
    function invariant_tokenBacksClaims() public view {
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

    /// @notice The settlement contract holds exactly the payers' escrows.
    function invariant_escrowBacked() public view {
        for (uint256 c; c < 2; ++c) {
            address currency = handler.currencies(c);
            uint256 escrowed;
            for (uint256 a; a < handler.actorCount(); ++a) {
                Escrow memory e = p.settlement.escrowOf(handler.actors(a), currency);
                escrowed += uint256(e.balance) + e.withdrawing;
            }
            assertEq(TestERC20(currency).balanceOf(address(p.settlement)), escrowed, "settlement holds the escrows");
        }
    }

    /* CONTRIBUTIONS */

    /// @notice A finalized commit keeps its hash and status forever; a rejected one stays
    /// rejected.
    function invariant_finalizedCommitsNeverChange() public view {
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

    /// @notice The ledger holds exactly the bonds of open disputes.
    function invariant_ledgerHoldsOpenBonds() public view {
        assertEq(p.stakingToken.balanceOf(address(p.ledger)), handler.ghostOpenBonds(), "ledger holds open bonds");
    }

    /* STAKING */

    /// @notice deposited == active + unbonding + slashed + withdrawn; the totals match the
    /// accounts and the ghosts; the Staking contract holds deposited − withdrawn − the slash
    /// shares paid to challengers.
    function invariant_stakeConserved() public view {
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

    /* HANDLER CHECKS */

    /// @notice Checks the handler made along the way (exact mint and claim amounts, genesis
    /// only before the first commit, withdrawals, settlement totals).
    function invariant_handlerSawNoViolation() public view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }
}
