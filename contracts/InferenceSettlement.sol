// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Escrow, IInferenceSettlement, SkipReason, UsageReceipt} from "./interfaces/IInferenceSettlement.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IShardToken} from "./interfaces/IShardToken.sol";

/// @title InferenceSettlement
/// @notice Direct payments and receipt settlement. See `IInferenceSettlement`.
/// @dev Warning: fee-on-transfer currencies are credited what arrives (balance difference) on
/// deposit and payment; rebasing currencies are not supported.
contract InferenceSettlement is IInferenceSettlement, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        // solhint-disable-next-line max-line-length
        "UsageReceipt(uint64 modelId,address currency,address payer,address payee,uint128 units,uint128 pricePerUnit,uint256 nonce,uint64 deadline)"
    );

    IModelRegistry public immutable registry;
    IShardToken public immutable token;
    /// @inheritdoc IInferenceSettlement
    uint64 public immutable withdrawalDelay;

    mapping(address payer => mapping(address payee => mapping(address currency => Escrow))) private _escrows;
    /// @dev Per payee: only the payee can spend a nonce that names it, so a payer cannot void a
    /// gateway's receipt by spending its nonce through another payee.
    mapping(address payer => mapping(address payee => mapping(uint256 word => uint256 bits))) private _nonces;

    /// @dev Revenue of one (model, currency) gathered over a batch, paid out once at its end.
    struct Bucket {
        uint64 modelId;
        address currency;
        uint256 amount;
        bool accepted;
        bool hasHolders;
        bool failed;
    }

    /// @dev How one receipt of a batch was booked, so a failed distribution can undo it.
    struct Booking {
        uint256 bucket;
        uint256 amount;
        uint256 fromWithdrawing;
    }

    constructor(
        IModelRegistry registry_,
        IShardToken token_,
        uint64 withdrawalDelay_
    ) EIP712("ShardProtocol InferenceSettlement", "1") {
        if (address(registry_) == address(0) || address(token_) == address(0)) revert ZeroAddress();
        registry = registry_;
        token = token_;
        withdrawalDelay = withdrawalDelay_;
    }

    /* DIRECT PAYMENT */

    /// @inheritdoc IInferenceSettlement
    function pay(uint64 modelId, address currency, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (!registry.isCurrency(modelId, currency)) revert CurrencyNotAccepted(modelId, currency);
        IERC20 erc20 = IERC20(currency);
        uint256 before = erc20.balanceOf(address(token));
        erc20.safeTransferFrom(msg.sender, address(token), amount);
        uint256 received = erc20.balanceOf(address(token)) - before;
        token.distribute(modelId, currency, received);
        emit ModelPaid(modelId, msg.sender, currency, received);
    }

    /* ESCROW */

    /// @inheritdoc IInferenceSettlement
    function depositEscrow(address currency, address payee, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (currency == address(0) || payee == address(0)) revert ZeroAddress();
        IERC20 erc20 = IERC20(currency);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = erc20.balanceOf(address(this)) - before;
        Escrow storage e = _escrows[msg.sender][payee][currency];
        if (received > type(uint128).max - e.balance - e.withdrawing) revert AmountTooLarge(received);
        e.balance += uint128(received);
        emit EscrowDeposited(msg.sender, payee, currency, received);
    }

    /// @inheritdoc IInferenceSettlement
    function requestEscrowWithdrawal(
        address currency,
        address payee,
        uint256 amount
    ) external returns (uint64 unlockAt) {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = _escrows[msg.sender][payee][currency];
        if (amount > e.balance) revert InsufficientEscrow(msg.sender, currency, amount, e.balance);
        // Cannot underflow: checked above. Cannot overflow: the sum is the deposit total < 2**128.
        unchecked {
            e.balance -= uint128(amount);
            e.withdrawing += uint128(amount);
        }
        unlockAt = uint64(block.timestamp) + withdrawalDelay;
        e.unlockAt = unlockAt;
        emit EscrowWithdrawalRequested(msg.sender, payee, currency, amount, unlockAt);
    }

    /// @inheritdoc IInferenceSettlement
    function withdrawEscrow(address currency, address payee) external nonReentrant returns (uint256 amount) {
        Escrow storage e = _escrows[msg.sender][payee][currency];
        amount = e.withdrawing;
        if (amount == 0) revert NothingToWithdraw(msg.sender, currency);
        if (block.timestamp < e.unlockAt) revert WithdrawalLocked(msg.sender, currency, e.unlockAt);
        e.withdrawing = 0;
        IERC20(currency).safeTransfer(msg.sender, amount);
        emit EscrowWithdrawn(msg.sender, payee, currency, amount);
    }

    /* RECEIPTS */

    /// @inheritdoc IInferenceSettlement
    function settle(
        UsageReceipt[] calldata receipts,
        bytes[] calldata signatures,
        bool strict
    ) external nonReentrant returns (uint256 settled, uint256 total) {
        if (receipts.length != signatures.length) revert LengthMismatch(receipts.length, signatures.length);
        if (receipts.length == 0) revert EmptyBatch();
        Bucket[] memory buckets = new Bucket[](receipts.length);
        Booking[] memory bookings = new Booking[](receipts.length);
        uint256 bucketCount;
        for (uint256 i; i < receipts.length; ++i) {
            (bookings[i].bucket, bucketCount) = _bucketOf(
                buckets,
                bucketCount,
                receipts[i].modelId,
                receipts[i].currency
            );
        }
        // One (model, currency) at a time: book its receipts, move the money (one transfer, one
        // distribution), and in a lenient batch undo them, newest first, if the distribution
        // reverts, so the escrows are exactly as if they had never been booked.
        for (uint256 b; b < bucketCount; ++b) {
            for (uint256 i; i < receipts.length; ++i) {
                if (bookings[i].bucket != b) continue;
                (bookings[i].amount, bookings[i].fromWithdrawing) = _redeem(
                    receipts[i],
                    signatures[i],
                    strict,
                    buckets[b]
                );
                buckets[b].amount += bookings[i].amount;
            }
            if (buckets[b].amount == 0) continue;
            if (strict) {
                _distribute(buckets[b].modelId, buckets[b].currency, buckets[b].amount);
                continue;
            }
            // solhint-disable-next-line no-empty-blocks
            try this.distributeBucket(buckets[b].modelId, buckets[b].currency, buckets[b].amount) {} catch {
                buckets[b].failed = true;
                for (uint256 i = receipts.length; i > 0; --i) {
                    if (bookings[i - 1].bucket == b && bookings[i - 1].amount != 0)
                        _undo(receipts[i - 1], bookings[i - 1]);
                }
            }
        }
        for (uint256 i; i < receipts.length; ++i) {
            Booking memory k = bookings[i];
            if (k.amount == 0) continue;
            UsageReceipt calldata r = receipts[i];
            if (buckets[k.bucket].failed) {
                emit ReceiptSkipped(r.payer, r.nonce, SkipReason.DistributeFailed);
                continue;
            }
            ++settled;
            total += k.amount;
            emit ReceiptSettled(r.payer, r.modelId, r.currency, r.nonce, r.units, k.amount);
        }
    }

    /// @inheritdoc IInferenceSettlement
    function distributeBucket(uint64 modelId, address currency, uint256 amount) external returns (uint256 received) {
        if (msg.sender != address(this)) revert NotSelf(msg.sender);
        return _distribute(modelId, currency, amount);
    }

    /* VIEWS */

    /// @inheritdoc IInferenceSettlement
    function hashReceipt(UsageReceipt calldata r) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(r));
    }

    /// @inheritdoc IInferenceSettlement
    function nonceUsed(address payer, address payee, uint256 nonce) external view returns (bool) {
        return _nonces[payer][payee][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IInferenceSettlement
    function escrowOf(address payer, address payee, address currency) external view returns (Escrow memory) {
        return _escrows[payer][payee][currency];
    }

    /* INTERNAL */

    /// @dev Checks and books one receipt: its amount (0 for a bad receipt in a lenient batch) and
    /// the part of it drawn from an amount awaiting withdrawal.
    function _redeem(
        UsageReceipt calldata r,
        bytes calldata signature,
        bool strict,
        Bucket memory bucket
    ) private returns (uint256 booked, uint256 fromWithdrawing) {
        if (r.payee != msg.sender) {
            return
                _skip(r, SkipReason.WrongPayee, strict, abi.encodeWithSelector(NotPayee.selector, r.payee, msg.sender));
        }
        uint256 amount = uint256(r.units) * r.pricePerUnit;
        if (amount == 0) return _skip(r, SkipReason.ZeroAmount, strict, abi.encodeWithSelector(ZeroAmount.selector));
        if (block.timestamp > r.deadline) {
            return
                _skip(
                    r,
                    SkipReason.Expired,
                    strict,
                    abi.encodeWithSelector(ReceiptExpired.selector, r.payer, r.nonce, r.deadline)
                );
        }
        if (!bucket.accepted) {
            return
                _skip(
                    r,
                    SkipReason.CurrencyNotAccepted,
                    strict,
                    abi.encodeWithSelector(CurrencyNotAccepted.selector, r.modelId, r.currency)
                );
        }
        if (!bucket.hasHolders) {
            return _skip(r, SkipReason.NoHolders, strict, abi.encodeWithSelector(NoHolders.selector, r.modelId));
        }
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(_hashTypedDataV4(_structHash(r)), signature);
        if (err != ECDSA.RecoverError.NoError || signer != r.payer || signer == address(0)) {
            return
                _skip(
                    r,
                    SkipReason.BadSignature,
                    strict,
                    abi.encodeWithSelector(InvalidReceiptSignature.selector, r.payer, r.nonce)
                );
        }
        Escrow storage e = _escrows[r.payer][r.payee][r.currency];
        uint256 available = uint256(e.balance) + e.withdrawing;
        if (amount > available) {
            return
                _skip(
                    r,
                    SkipReason.InsufficientEscrow,
                    strict,
                    abi.encodeWithSelector(InsufficientEscrow.selector, r.payer, r.currency, amount, available)
                );
        }
        if (!_useNonce(r.payer, r.payee, r.nonce)) {
            return
                _skip(
                    r,
                    SkipReason.NonceUsed,
                    strict,
                    abi.encodeWithSelector(NonceAlreadyUsed.selector, r.payer, r.nonce)
                );
        }
        // Draw on the free balance first, then on an amount awaiting withdrawal.
        // Cannot underflow: amount ≤ balance + withdrawing, checked above.
        booked = amount;
        unchecked {
            if (amount <= e.balance) {
                e.balance -= uint128(amount);
            } else {
                fromWithdrawing = amount - e.balance;
                e.withdrawing -= uint128(fromWithdrawing);
                e.balance = 0;
            }
        }
    }

    /// @dev Reverses a booking whose distribution failed: the nonce is free and the escrow whole again.
    function _undo(UsageReceipt calldata r, Booking memory k) private {
        _nonces[r.payer][r.payee][r.nonce >> 8] &= ~(uint256(1) << (r.nonce & 0xff));
        Escrow storage e = _escrows[r.payer][r.payee][r.currency];
        // Cannot overflow: these amounts were just drawn from the same escrow.
        unchecked {
            e.balance += uint128(k.amount - k.fromWithdrawing);
            e.withdrawing += uint128(k.fromWithdrawing);
        }
    }

    /// @dev Sends `amount` to the shard token and distributes what arrived (fee tokens deliver less).
    function _distribute(uint64 modelId, address currency, uint256 amount) private returns (uint256 received) {
        IERC20 erc20 = IERC20(currency);
        uint256 before = erc20.balanceOf(address(token));
        erc20.safeTransfer(address(token), amount);
        received = erc20.balanceOf(address(token)) - before;
        token.distribute(modelId, currency, received);
    }

    function _skip(
        UsageReceipt calldata r,
        SkipReason reason,
        bool strict,
        bytes memory error_
    ) private returns (uint256, uint256) {
        if (strict) {
            assembly ("memory-safe") {
                revert(add(error_, 0x20), mload(error_))
            }
        }
        emit ReceiptSkipped(r.payer, r.nonce, reason);
        return (0, 0);
    }

    function _useNonce(address payer, address payee, uint256 nonce) private returns (bool fresh) {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 word = _nonces[payer][payee][nonce >> 8];
        if (word & bit != 0) return false;
        _nonces[payer][payee][nonce >> 8] = word | bit;
        return true;
    }

    /// @dev Index of the bucket of (model, currency), opening it if new: the currency and
    /// holder checks run once per bucket rather than once per receipt.
    function _bucketOf(
        Bucket[] memory buckets,
        uint256 count,
        uint64 modelId,
        address currency
    ) private view returns (uint256 index, uint256 newCount) {
        for (uint256 b; b < count; ++b) {
            if (buckets[b].modelId == modelId && buckets[b].currency == currency) return (b, count);
        }
        bool accepted = registry.isCurrency(modelId, currency);
        buckets[count] = Bucket({
            modelId: modelId,
            currency: currency,
            amount: 0,
            accepted: accepted,
            hasHolders: accepted && token.hasHolders(modelId),
            failed: false
        });
        return (count, count + 1);
    }

    function _structHash(UsageReceipt calldata r) private pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    RECEIPT_TYPEHASH,
                    r.modelId,
                    r.currency,
                    r.payer,
                    r.payee,
                    r.units,
                    r.pricePerUnit,
                    r.nonce,
                    r.deadline
                )
            );
    }
}
