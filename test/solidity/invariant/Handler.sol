// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ContributionLedger} from "../../../contracts/ContributionLedger.sol";
import {InferenceSettlement} from "../../../contracts/InferenceSettlement.sol";
import {ModelRegistry} from "../../../contracts/ModelRegistry.sol";
import {ShardToken} from "../../../contracts/ShardToken.sol";
import {Staking} from "../../../contracts/Staking.sol";
import {
    Checkpoint,
    CommitState,
    CommitStatus,
    Dispute,
    SealedCommit
} from "../../../contracts/interfaces/IContributionLedger.sol";
import {Escrow, UsageReceipt} from "../../../contracts/interfaces/IInferenceSettlement.sol";
import {RoundParams} from "../../../contracts/interfaces/IModelRegistry.sol";
import {Role, StakeInfo} from "../../../contracts/interfaces/IStaking.sol";
import {IShardToken} from "../../../contracts/interfaces/IShardToken.sol";
import {TestERC20} from "../../../contracts/test/TestERC20.sol";

import {Protocol} from "../utils/Deploy.sol";
import {Test} from "../utils/Test.sol";
import {Vm} from "../utils/Vm.sol";

/// @title Handler
/// @notice Drives the whole protocol for the invariant runner through its real paths: staking,
/// signed sealed commits and reveals of full pipelines, disputes with slashing, finalization
/// (the only minting), shard transfers and burns, direct payments, escrowed receipts and claims.
/// Every action picks its actors and targets from seeds and bounds its amounts, so most calls do
/// something. Ghost variables record what the invariants compare the contracts against.
/// @dev Assertions inside a handler would be lost (reverted calls are discarded), so a handler
/// that sees something wrong increments `violations` and records why; an invariant checks it.
contract Handler is Test {
    uint256 internal constant SHARDS = 3;
    uint256 internal constant ACTORS = 4;
    uint256 internal constant BPS = 10_000;

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
    uint256 public ghostSlashPaidOut;
    uint256 public ghostOpenBonds;

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
        }
    }

    /* STAKING */

    function stake(uint256 actorSeed, bool verifier, uint256 amount) external {
        address actor = _actor(actorSeed);
        _stake(actor, verifier ? Role.Verifier : Role.Trainer, bound(amount, 1, 300e18));
        ++successes["stake"];
    }

    function requestUnstake(uint256 actorSeed, bool verifier, uint256 amount) external {
        address actor = _actor(actorSeed);
        Role role = verifier ? Role.Verifier : Role.Trainer;
        uint256 active = staking.activeStake(modelId, actor, role);
        if (active == 0) return;
        vm.prank(actor);
        staking.requestUnstake(modelId, role, bound(amount, 1, active));
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
        ++successes["withdrawStake"];
    }

    /* TRAINING: COMMIT, REVEAL, FINALIZE */

    /// @notice Commits and reveals all shards of one lane of a round, signed by each owner's
    /// key (authorized as its own node key). With `mismatch` (and an odd `workSeed`: a quarter
    /// of the calls), shard 0 reports activations that shard 1 never received, so the boundary
    /// between them is unverified and only an upheld dispute lets those two finalize.
    function commitPipeline(uint256 ownerSeed, uint256 roundSeed, uint256 workSeed, bool mismatch) external {
        mismatch = mismatch && workSeed % 2 == 1;
        (uint64 round, bytes32[SHARDS] memory parents) = _pickRound(roundSeed);
        uint32 lane = nextLane[round]++;
        uint64 commitBlock = uint64(_blockNumber());
        uint64 commitTime = uint64(_now());
        Checkpoint[] memory cps = new Checkpoint[](SHARDS);
        bytes32[] memory salts = new bytes32[](SHARDS);
        for (uint256 s; s < SHARDS; ++s) {
            address owner = actors[(ownerSeed >> (8 * s)) % ACTORS];
            cps[s] = _checkpoint(uint32(s), round, lane, owner, parents[s], workSeed >> (16 * s), mismatch);
            salts[s] = keccak256(abi.encode("salt", rootNonce));
            _commit(cps[s], salts[s]);
        }

        vm.roll(_blockNumber() + 1);
        for (uint256 s; s < SHARDS; ++s) {
            ledger.reveal(cps[s], salts[s], commitBlock, commitTime);
            byShardRound[uint32(s)][round].push(checkpoints.length);
            checkpoints.push(cps[s]);
            commitIds.push(ledger.commitIdOf(modelId, uint32(s), round, lane));
        }
        ++successes[mismatch ? "commitPipelineMismatched" : "commitPipeline"];
    }

    /// @dev Seals `cp` with `salt`, signed by the owner's key, which the owner authorizes as
    /// its own node key; tops the owner's trainer stake up to the round's minimum first.
    function _commit(Checkpoint memory cp, bytes32 salt) internal {
        _ensureStake(cp.owner, Role.Trainer, registry.paramsAt(modelId, cp.round).minTrainerStake);
        if (!ledger.isAuthorized(cp.owner, cp.owner)) {
            vm.prank(cp.owner);
            ledger.authorizeNode(cp.owner, true);
        }
        SealedCommit memory c = SealedCommit({
            modelId: modelId,
            shard: cp.shard,
            round: cp.round,
            lane: cp.lane,
            owner: cp.owner,
            sealedHash: keccak256(abi.encode(ledger.checkpointHash(cp), salt)),
            deadline: uint64(_now() + 1 hours)
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keyOf(cp.owner), ledger.hashSealedCommit(c));
        ledger.commit(c, abi.encodePacked(r, s, v));
    }

    function _keyOf(address actor) internal view returns (uint256) {
        for (uint256 a; a < ACTORS; ++a) if (actors[a] == actor) return actorKeys[a];
        revert("unknown actor");
    }

    /// @notice Finalizes the first finalizable commit at or after a random index (waiting out
    /// its challenge window), and checks the mint.
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
                CommitStatus parent = ledger.commitState(ledger.commitOfRoot(cp.parentRoot)).status;
                if (parent != CommitStatus.Finalized) continue;
            }
            RoundParams memory params = registry.paramsAt(modelId, cp.round);
            _warpTo(uint256(st.revealedAt) + params.challengeWindow);
            uint256 id = ids[cp.shard];
            uint256 balanceBefore = token.balanceOf(cp.owner, id);
            try ledger.finalize(cp) returns (uint256 minted) {
                if (minted != (uint256(cp.workUnits) * params.workToTokenRate) / 1e18)
                    _violation("minted != work * rate");
                if (token.balanceOf(cp.owner, id) - balanceBefore != minted) _violation("owner got other than minted");
                ghostMinted[id] += minted;
                _markHolder(cp.owner, id, minted);
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

    /// @notice Rejects a pending commit whose parent was rejected.
    function rejectOrphan(uint256 indexSeed) external {
        uint256 n = checkpoints.length;
        if (n == 0) return;
        uint256 start = indexSeed % n;
        for (uint256 k; k < n; ++k) {
            uint256 i = (start + k) % n;
            Checkpoint memory cp = checkpoints[i];
            if (cp.parentRoot == 0 || ledger.commitState(commitIds[i]).status != CommitStatus.Pending) continue;
            if (ledger.commitState(ledger.commitOfRoot(cp.parentRoot)).status != CommitStatus.Rejected) continue;
            ledger.rejectOrphan(cp);
            rejectedIds.push(commitIds[i]);
            ++successes["rejectOrphan"];
            return;
        }
    }

    /// @notice The registrant tries a genesis allocation: allowed only before the first commit.
    function allocateGenesis(uint256 actorSeed, uint256 shardSeed, uint256 amount) external {
        address to = _actor(actorSeed);
        uint256 shard = shardSeed % SHARDS;
        amount = bound(amount, 1, 1_000);
        address[] memory recipients = new address[](1);
        recipients[0] = to;
        uint256[] memory amounts = new uint256[](1);
        amounts[0] = amount;
        bool open = registry.modelInfo(modelId).latestRound == 0;
        vm.prank(registrant);
        try ledger.allocateGenesis(modelId, uint32(shard), recipients, amounts) {
            if (!open) _violation("genesis allocated after the first commit");
            ghostMinted[ids[shard]] += amount;
            _markHolder(to, ids[shard], amount);
            ++successes["allocateGenesis"];
        } catch {
            if (open) _violation("genesis refused before the first commit");
        }
    }

    /* VERIFICATION AND DISPUTES */

    function attest(uint256 indexSeed, uint256 verifierSeed) external {
        (bool found, uint256 i) = _findPending(indexSeed, false);
        if (!found) return;
        address verifier = _actor(verifierSeed);
        if (ledger.hasAttested(commitIds[i], verifier)) return;
        _ensureStake(verifier, Role.Verifier, registry.paramsAt(modelId, checkpoints[i].round).minVerifierStake);
        vm.prank(verifier);
        ledger.attest(commitIds[i]);
        ++successes["attest"];
    }

    /// @notice Challenges a pending commit still inside its challenge window, posting the bond.
    function challenge(uint256 indexSeed, uint256 challengerSeed) external {
        (bool found, uint256 i) = _findPending(indexSeed, true);
        if (!found) return;
        address challenger = _actor(challengerSeed);
        uint256 bond = registry.paramsAt(modelId, checkpoints[i].round).challengeBond;
        stakingToken.mint(challenger, bond);
        vm.prank(challenger);
        stakingToken.approve(address(ledger), bond);
        vm.prank(challenger);
        ledger.challenge(commitIds[i], keccak256("evidence"));
        ghostOpenBonds += bond;
        ++successes["challenge"];
    }

    function vote(uint256 indexSeed, uint256 voterSeed, bool invalid) external {
        (bool found, uint256 i) = _findDisputed(indexSeed);
        if (!found) return;
        Dispute memory d = ledger.dispute(commitIds[i]);
        if (_now() >= d.endsAt) return;
        address voter = _actor(voterSeed);
        if (voter == d.challenger) voter = _actor(voterSeed + 1);
        _ensureStake(voter, Role.Verifier, registry.paramsAt(modelId, checkpoints[i].round).minVerifierStake);
        vm.prank(voter);
        ledger.vote(commitIds[i], invalid);
        ++successes[invalid ? "voteInvalid" : "voteValid"];
    }

    /// @notice Resolves an open dispute after its window; books the challenger's slash share.
    function resolve(uint256 indexSeed) external {
        (bool found, uint256 i) = _findDisputed(indexSeed);
        if (!found) return;
        bytes32 commitId = commitIds[i];
        Dispute memory d = ledger.dispute(commitId);
        _warpTo(d.endsAt);
        uint256 slashedBefore = staking.totals(modelId).slashed;
        ledger.resolve(checkpoints[i]);
        uint256 slashed = staking.totals(modelId).slashed - slashedBefore;
        RoundParams memory params = registry.paramsAt(modelId, checkpoints[i].round);
        // No share when the trainer challenged its own commit (itself or through a node key).
        bool own = d.challenger == checkpoints[i].owner || ledger.isAuthorized(checkpoints[i].owner, d.challenger);
        if (!own) ghostSlashPaidOut += (slashed * params.challengerShareBps) / BPS;
        ghostOpenBonds -= d.bond;
        if (ledger.commitState(commitId).status == CommitStatus.Rejected) {
            rejectedIds.push(commitId);
            ++successes["resolveInvalid"];
        } else {
            if (slashed != 0) _violation("slashed on an upheld commit");
            ++successes["resolveValid"];
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

    function depositEscrow(uint256 payerSeed, uint256 currencySeed, uint256 amount) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        amount = bound(amount, 1, 1e22);
        TestERC20(currency).mint(payer, amount);
        vm.prank(payer);
        TestERC20(currency).approve(address(settlement), amount);
        vm.prank(payer);
        settlement.depositEscrow(currency, amount);
        ++successes["depositEscrow"];
    }

    function requestEscrowWithdrawal(uint256 payerSeed, uint256 currencySeed, uint256 amount) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        uint256 balance = settlement.escrowOf(payer, currency).balance;
        if (balance == 0) return;
        vm.prank(payer);
        settlement.requestEscrowWithdrawal(currency, bound(amount, 1, balance));
        ++successes["requestEscrowWithdrawal"];
    }

    function withdrawEscrow(uint256 payerSeed, uint256 currencySeed) external {
        address payer = _actor(payerSeed);
        address currency = currencies[currencySeed % currencies.length];
        Escrow memory e = settlement.escrowOf(payer, currency);
        if (e.withdrawing == 0) return;
        _warpTo(e.unlockAt);
        uint256 before = TestERC20(currency).balanceOf(payer);
        vm.prank(payer);
        uint256 amount = settlement.withdrawEscrow(currency);
        if (amount != e.withdrawing || TestERC20(currency).balanceOf(payer) - before != amount) {
            _violation("escrow withdrawal paid other than the requested amount");
        }
        ++successes["withdrawEscrow"];
    }

    /// @notice Settles a lenient batch of one to three receipts signed by random payers: some
    /// exceed the escrow or replay a used nonce and are skipped. Revenue per currency is what
    /// left the payers' escrows.
    function settleReceipts(uint256 seed, uint256 count) external {
        if (!_anySupply()) return;
        count = bound(count, 1, 3);
        UsageReceipt[] memory receipts = new UsageReceipt[](count);
        bytes[] memory signatures = new bytes[](count);
        for (uint256 k; k < count; ++k) {
            uint256 r = uint256(keccak256(abi.encode(seed, k)));
            uint256 payerIndex = r % ACTORS;
            address payer = actors[payerIndex];
            // One receipt in eight replays the payer's previous nonce.
            uint256 nonce = nextReceiptNonce[payer];
            if ((r >> 8) % 8 == 0 && nonce != 0) nonce -= 1;
            else nextReceiptNonce[payer] = nonce + 1;
            receipts[k] = UsageReceipt({
                modelId: modelId,
                currency: currencies[(r >> 16) % currencies.length],
                payer: payer,
                units: uint128(bound(r >> 32, 1, 1_000)),
                pricePerUnit: uint128(bound(r >> 64, 1, 1e18)),
                nonce: nonce,
                deadline: uint64(_now() + 1 hours)
            });
            (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(actorKeys[payerIndex], settlement.hashReceipt(receipts[k]));
            signatures[k] = abi.encodePacked(rr, ss, v);
        }
        uint256[] memory escrowBefore = _escrowTotals();
        vm.recordLogs();
        (uint256 settled, uint256 total) = settlement.settle(receipts, signatures, false);
        if (settled == 0) return;
        uint256[] memory escrowAfter = _escrowTotals();
        Vm.Log[] memory logs = vm.getRecordedLogs();
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

    function finalizedCount() external view returns (uint256) {
        return finalizedIds.length;
    }

    function rejectedCount() external view returns (uint256) {
        return rejectedIds.length;
    }

    function checkpointCount() external view returns (uint256) {
        return checkpoints.length;
    }

    /// @notice The target functions of the invariant campaign.
    function selectors() external pure returns (bytes4[] memory s) {
        s = new bytes4[](21);
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
    }

    /* INTERNAL */

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

    /// @dev A pending commit from a random start; `challengeable`: inside its challenge
    /// window, without an open dispute and below the dispute cap.
    function _findPending(uint256 seed, bool challengeable) internal view returns (bool, uint256) {
        uint256 n = checkpoints.length;
        if (n == 0) return (false, 0);
        // Newest first half the time: those are the ones still inside their windows.
        uint256 start = seed % n;
        for (uint256 k; k < n && k < 16; ++k) {
            uint256 i = (seed >> 128) % 2 == 0 ? n - 1 - ((start + k) % n) : (start + k) % n;
            CommitState memory st = ledger.commitState(commitIds[i]);
            if (st.status != CommitStatus.Pending) continue;
            if (!challengeable) return (true, i);
            uint256 closesAt = uint256(st.revealedAt) + registry.paramsAt(modelId, st.round).challengeWindow;
            if (_now() >= closesAt || st.disputes >= ledger.MAX_DISPUTES()) continue;
            if (ledger.dispute(commitIds[i]).open) continue;
            return (true, i);
        }
        return (false, 0);
    }

    function _findDisputed(uint256 seed) internal view returns (bool, uint256) {
        uint256 n = checkpoints.length;
        if (n == 0) return (false, 0);
        for (uint256 k; k < n; ++k) {
            uint256 i = (seed + k) % n;
            if (ledger.dispute(commitIds[i]).open) return (true, i);
        }
        return (false, 0);
    }

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

    function _escrowTotals() internal view returns (uint256[] memory totals) {
        totals = new uint256[](currencies.length);
        for (uint256 c; c < currencies.length; ++c) {
            for (uint256 a; a < ACTORS; ++a) {
                Escrow memory e = settlement.escrowOf(actors[a], currencies[c]);
                totals[c] += uint256(e.balance) + e.withdrawing;
            }
        }
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
