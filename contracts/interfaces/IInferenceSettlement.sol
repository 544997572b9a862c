// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice A dApp's signed promise to pay for `units` of inference of `modelId` at
/// `pricePerUnit`, drawn from its escrow with `payee` (the gateway that served it), which alone
/// settles it. Replay-proof: EIP-712 domain (chain id, this contract), a per-payer unordered
/// nonce, and a deadline. A payer cannot cancel a signed receipt (that would let it void
/// receipts for service already received); it lapses at its deadline.
struct UsageReceipt {
    uint64 modelId;
    address currency;
    address payer;
    address payee;
    uint128 units;
    uint128 pricePerUnit;
    uint256 nonce;
    uint64 deadline;
}

/// @notice A payer's escrow with one payee in one currency.
struct Escrow {
    /// @notice Available for receipts and for a withdrawal request.
    uint128 balance;
    /// @notice Requested for withdrawal; still drawn on by receipts until withdrawn.
    uint128 withdrawing;
    /// @notice When `withdrawing` can be paid out.
    uint64 unlockAt;
}

/// @notice Why a receipt in a lenient batch was skipped.
enum SkipReason {
    Expired,
    NonceUsed,
    BadSignature,
    InsufficientEscrow,
    CurrencyNotAccepted,
    ZeroAmount,
    NoHolders,
    /// @notice The caller is not the receipt's payee.
    WrongPayee,
    /// @notice The model's distribution reverted; the receipts of that (model, currency) were undone.
    DistributeFailed
}

/// @title IInferenceSettlement
/// @notice How inference revenue reaches shard holders: direct payment to a model, or prepaid
/// escrow bound to a payee (a gateway), drawn by EIP-712 usage receipts that the payee settles
/// in batches. Binding escrow to the payee is what guarantees a gateway that a receipt it accepted
/// while the escrow covered it settles, if settled within the withdrawal delay, whatever else
/// the payer signs meanwhile: nobody else can draw on that escrow. Revenue is credited
/// to the shard token's accounting (split across shards by weight, then pro rata to holders).
/// ETH is not accepted: pay in an accepted ERC-20 (WETH for ether).
interface IInferenceSettlement {
    /* EVENTS */

    event ModelPaid(uint64 indexed modelId, address indexed payer, address indexed currency, uint256 amount);
    event EscrowDeposited(address indexed payer, address indexed payee, address indexed currency, uint256 amount);
    event EscrowWithdrawalRequested(
        address indexed payer,
        address indexed payee,
        address indexed currency,
        uint256 amount,
        uint64 unlockAt
    );
    event EscrowWithdrawn(address indexed payer, address indexed payee, address indexed currency, uint256 amount);
    event ReceiptSettled(
        address indexed payer,
        uint64 indexed modelId,
        address indexed currency,
        uint256 nonce,
        uint256 units,
        uint256 amount
    );
    event ReceiptSkipped(address indexed payer, uint256 indexed nonce, SkipReason reason);

    /* ERRORS */

    error ZeroAddress();
    error ZeroAmount();
    error AmountTooLarge(uint256 amount);
    error CurrencyNotAccepted(uint64 modelId, address currency);
    error LengthMismatch(uint256 receipts, uint256 signatures);
    error ReceiptExpired(address payer, uint256 nonce, uint64 deadline);
    error NonceAlreadyUsed(address payer, uint256 nonce);
    error InvalidReceiptSignature(address payer, uint256 nonce);
    error InsufficientEscrow(address payer, address currency, uint256 needed, uint256 available);
    error WithdrawalLocked(address payer, address currency, uint64 unlockAt);
    error NothingToWithdraw(address payer, address currency);
    error EmptyBatch();
    /// @notice No shard of the model has holders yet, so its revenue has no one to go to.
    error NoHolders(uint64 modelId);
    error NotPayee(address payee, address caller);
    error NotSelf(address caller);

    /* ACTIONS */

    /// @notice Pays `amount` of `currency` (pulled from the caller) as revenue of `modelId`.
    function pay(uint64 modelId, address currency, uint256 amount) external;

    /// @notice Adds `amount` of `currency` (pulled from the caller; what arrives counts) to the
    /// caller's escrow with `payee`.
    function depositEscrow(address currency, address payee, uint256 amount) external;

    /// @notice Starts the withdrawal delay for `amount` of the caller's escrow with `payee`.
    /// Receipts can still draw on it until it is withdrawn, so the payee has time to settle.
    function requestEscrowWithdrawal(
        address currency,
        address payee,
        uint256 amount
    ) external returns (uint64 unlockAt);

    /// @notice Pays out the requested amount, less what receipts drew meanwhile, after the delay.
    function withdrawEscrow(address currency, address payee) external returns (uint256 amount);

    /// @notice Settles signed receipts whose payee is the caller. `strict`: revert on the first
    /// bad receipt with its error; otherwise skip bad receipts (each emits `ReceiptSkipped`) and
    /// settle the rest, including every receipt of a (model, currency) whose distribution
    /// reverts (undone, `DistributeFailed`). Revenue credited is what reaches the shard token.
    /// @return settled Number of receipts settled.
    /// @return total Sum of their amounts, over all currencies.
    function settle(
        UsageReceipt[] calldata receipts,
        bytes[] calldata signatures,
        bool strict
    ) external returns (uint256 settled, uint256 total);

    /* VIEWS */

    /// @notice Seconds between a withdrawal request and the withdrawal.
    function withdrawalDelay() external view returns (uint64);

    /// @notice EIP-712 digest the payer signs for `r`.
    function hashReceipt(UsageReceipt calldata r) external view returns (bytes32);

    /// @notice Whether `payer` used `nonce` in a receipt to `payee` (nonces are per payee, so only
    /// the payee can spend one that names it).
    function nonceUsed(address payer, address payee, uint256 nonce) external view returns (bool);

    /// @notice Escrow of `payer` with `payee` in `currency`.
    function escrowOf(address payer, address payee, address currency) external view returns (Escrow memory);

    /// @notice Moves `amount` of `currency` from here to the shard token and distributes what
    /// arrived as revenue of `modelId`. Only this contract (a lenient batch isolates each
    /// model's distribution in its own call frame).
    function distributeBucket(uint64 modelId, address currency, uint256 amount) external returns (uint256 received);
}
