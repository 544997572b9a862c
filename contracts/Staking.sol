// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

import {IModelRegistry, ModelInfo} from "./interfaces/IModelRegistry.sol";
import {IStaking, Role, StakeInfo, StakeTotals} from "./interfaces/IStaking.sol";

/// @title Staking
/// @notice Per-model stakes of trainers and verifiers. See `IStaking`.
/// @dev Warning: fee-on-transfer and rebasing staking tokens are not supported; the amount
/// credited is the amount received, measured by balance difference, so a fee token is safe but
/// the staker is credited less.
contract Staking is IStaking, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    uint256 private constant BPS = 10_000;

    IModelRegistry public immutable registry;
    /// @inheritdoc IStaking
    address public immutable ledger;

    mapping(uint64 modelId => mapping(address account => mapping(Role role => StakeInfo))) private _stakes;
    mapping(uint64 modelId => StakeTotals) private _totals;
    /// @dev Verifier stake by block: what a dispute counts is what its voters had before it opened.
    mapping(uint64 modelId => mapping(address account => Checkpoints.Trace208)) private _verifierHistory;
    mapping(uint64 modelId => Checkpoints.Trace208) private _verifierTotalHistory;

    constructor(IModelRegistry registry_, address ledger_) {
        if (address(registry_) == address(0) || ledger_ == address(0)) revert ZeroAddress();
        registry = registry_;
        ledger = ledger_;
    }

    /* ACTIONS */

    /// @inheritdoc IStaking
    function stake(uint64 modelId, Role role, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        IERC20 token = _token(modelId);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received > type(uint128).max - _totals[modelId].deposited) revert AmountTooLarge(received);
        // Cannot overflow: every per-account and per-model figure is bounded by `deposited`,
        // which was just checked to stay below 2**128.
        unchecked {
            _stakes[modelId][msg.sender][role].active += uint128(received);
            _totals[modelId].active += uint128(received);
            _totals[modelId].deposited += uint128(received);
        }
        if (role == Role.Verifier) _recordVerifier(modelId, msg.sender, int256(received));
        emit Staked(modelId, msg.sender, role, received);
    }

    /// @inheritdoc IStaking
    function requestUnstake(uint64 modelId, Role role, uint256 amount) external returns (uint64 readyAt) {
        if (amount == 0) revert ZeroAmount();
        StakeInfo storage info = _stakes[modelId][msg.sender][role];
        if (amount > info.active) revert InsufficientStake(modelId, msg.sender, role, amount, info.active);
        uint256 free = _free(info);
        if (amount > free) revert InsufficientFreeStake(modelId, msg.sender, role, amount, free);
        ModelInfo memory model = registry.modelInfo(modelId);
        readyAt = uint64(block.timestamp) + model.unbondingDelay;
        // Cannot underflow: checked above. Cannot overflow: bounded by `deposited` < 2**128.
        unchecked {
            info.active -= uint128(amount);
            info.unbonding += uint128(amount);
            _totals[modelId].active -= uint128(amount);
            _totals[modelId].unbonding += uint128(amount);
        }
        info.unbondingReadyAt = readyAt;
        if (role == Role.Verifier) _recordVerifier(modelId, msg.sender, -int256(amount));
        emit UnstakeRequested(modelId, msg.sender, role, amount, readyAt);
    }

    /// @inheritdoc IStaking
    function withdraw(uint64 modelId, Role role) external nonReentrant returns (uint256 amount) {
        StakeInfo storage info = _stakes[modelId][msg.sender][role];
        amount = info.unbonding;
        if (amount == 0) revert NothingUnbonding(modelId, msg.sender, role);
        if (block.timestamp < info.unbondingReadyAt) {
            revert StillUnbonding(modelId, msg.sender, role, info.unbondingReadyAt);
        }
        info.unbonding = 0;
        // Cannot underflow: the account's unbonding amount is part of the model's.
        unchecked {
            _totals[modelId].unbonding -= uint128(amount);
            _totals[modelId].withdrawn += uint128(amount);
        }
        _token(modelId).safeTransfer(msg.sender, amount);
        emit Withdrawn(modelId, msg.sender, role, amount);
    }

    /// @inheritdoc IStaking
    function lock(uint64 modelId, address account, Role role, uint256 amount) external {
        if (msg.sender != ledger) revert NotLedger(msg.sender);
        StakeInfo storage info = _stakes[modelId][account][role];
        if (role == Role.Trainer) {
            uint256 free = _free(info);
            if (amount > free) revert InsufficientFreeStake(modelId, account, role, amount, free);
        }
        // A verifier's locks add up over the disputes it votes in (checked arithmetic: each is
        // at most its active stake < 2**128, so a sum past 2**128 would take 2**128 votes).
        info.locked += uint128(amount);
    }

    /// @inheritdoc IStaking
    function unlock(uint64 modelId, address account, Role role, uint256 amount) external {
        if (msg.sender != ledger) revert NotLedger(msg.sender);
        _unlock(_stakes[modelId][account][role], amount);
    }

    /// @inheritdoc IStaking
    function slash(
        uint64 modelId,
        address account,
        Role role,
        uint256 unlockAmount,
        uint256 amount,
        address beneficiary,
        uint256 beneficiaryBps
    ) external nonReentrant returns (uint256 slashed) {
        if (msg.sender != ledger) revert NotLedger(msg.sender);
        StakeInfo storage info = _stakes[modelId][account][role];
        if (unlockAmount != 0) _unlock(info, unlockAmount);
        uint256 fromActive;
        (slashed, fromActive) = _debit(modelId, info, amount);
        if (slashed == 0) return 0;
        if (role == Role.Verifier && fromActive != 0) _recordVerifier(modelId, account, -int256(fromActive));
        // The ledger passes a registry-validated share; the clamp keeps a payout ≤ the slash anyway.
        uint256 bps = beneficiaryBps < BPS ? beneficiaryBps : BPS;
        uint256 paid = beneficiary == address(0) ? 0 : (slashed * bps) / BPS;
        if (paid != 0) {
            _token(modelId).safeTransfer(beneficiary, paid);
        }
        emit Slashed(modelId, account, role, slashed, beneficiary, paid);
    }

    function _token(uint64 modelId) private view returns (IERC20) {
        return IERC20(registry.modelInfo(modelId).stakingToken);
    }

    /// @dev Takes up to `amount` from the stake, active first, then unbonding.
    function _debit(
        uint64 modelId,
        StakeInfo storage info,
        uint256 amount
    ) private returns (uint256 slashed, uint256 fromActive) {
        fromActive = amount < info.active ? amount : info.active;
        uint256 rest = amount - fromActive;
        uint256 fromUnbonding = rest < info.unbonding ? rest : info.unbonding;
        slashed = fromActive + fromUnbonding;
        StakeTotals storage t = _totals[modelId];
        // Cannot underflow: each part is at most the account's balance, which is part of the
        // model's total. Cannot overflow: `slashed` ≤ `deposited` < 2**128.
        unchecked {
            info.active -= uint128(fromActive);
            info.unbonding -= uint128(fromUnbonding);
            t.active -= uint128(fromActive);
            t.unbonding -= uint128(fromUnbonding);
            t.slashed += uint128(slashed);
        }
    }

    function _unlock(StakeInfo storage info, uint256 amount) private {
        uint128 lockedNow = info.locked;
        info.locked = amount < lockedNow ? lockedNow - uint128(amount) : 0;
    }

    /// @dev Active stake that no pending commit or unreleased vote holds.
    function _free(StakeInfo storage info) private view returns (uint256) {
        uint256 active = info.active;
        uint256 locked = info.locked;
        return locked < active ? active - locked : 0;
    }

    /// @dev Records a verifier's new active stake (and the model's) for this block.
    function _recordVerifier(uint64 modelId, address account, int256 delta) private {
        uint48 blockNumber = uint48(block.number);
        Checkpoints.Trace208 storage mine = _verifierHistory[modelId][account];
        Checkpoints.Trace208 storage all = _verifierTotalHistory[modelId];
        // Both traces equal the active figures they follow, which are < 2**128.
        mine.push(blockNumber, uint208(uint256(int256(uint256(mine.latest())) + delta)));
        all.push(blockNumber, uint208(uint256(int256(uint256(all.latest())) + delta)));
    }

    /* VIEWS */

    /// @inheritdoc IStaking
    function stakeOf(uint64 modelId, address account, Role role) external view returns (StakeInfo memory) {
        return _stakes[modelId][account][role];
    }

    /// @inheritdoc IStaking
    function activeStake(uint64 modelId, address account, Role role) external view returns (uint256) {
        return _stakes[modelId][account][role].active;
    }

    /// @inheritdoc IStaking
    function totals(uint64 modelId) external view returns (StakeTotals memory) {
        return _totals[modelId];
    }

    /// @inheritdoc IStaking
    function verifierStakeAt(uint64 modelId, address account, uint256 blockNumber) external view returns (uint256) {
        if (blockNumber >= block.number) revert FutureLookup(blockNumber, block.number);
        return _verifierHistory[modelId][account].upperLookupRecent(uint48(blockNumber));
    }

    /// @inheritdoc IStaking
    function totalVerifierStakeAt(uint64 modelId, uint256 blockNumber) external view returns (uint256) {
        if (blockNumber >= block.number) revert FutureLookup(blockNumber, block.number);
        return _verifierTotalHistory[modelId].upperLookupRecent(uint48(blockNumber));
    }
}
