/**
 * One sentence per custom error of the protocol contracts (and the OpenZeppelin errors they can
 * raise), for people: what went wrong in the protocol's terms, with the figures from the error.
 * Keyed by error name; `a` holds the error's named arguments. `satisfies` makes a contract error
 * without a message (or a message for an error no contract has) a compile error.
 */
import type { ProtocolErrorName } from "../abis/index.js";

type Args = Record<string, unknown>;

const ROLES = ["trainer", "verifier"];
const STATUSES = ["none", "sealed", "pending", "finalized", "rejected"];
const at = (seconds: unknown) => new Date(Number(seconds) * 1000).toISOString();
const ZERO = "0x0000000000000000000000000000000000000000";
const role = (r: unknown) => ROLES[Number(r)] ?? `role ${String(r)}`;

const messages = {
  // ModelRegistry
  CurrencyAlreadyAccepted: (a) => `Model ${a.modelId} already accepts currency ${a.currency}.`,
  GenesisAlreadyClosed: (a) => `The registrant of model ${a.modelId} already closed its genesis allocation.`,
  GenesisNotClosed: (a) =>
    `Round 1 of model ${a.modelId} cannot open before its registrant closes the genesis allocation (closeGenesis).`,
  InvalidParams: (a) => `The round parameters are invalid: ${a.reason}.`,
  InvalidShardCount: (a) => `A model needs between 1 and the registry's maximum shards; got ${a.count}.`,
  ModelNotFound: (a) => `Model ${a.modelId} is not registered.`,
  NotLedger: (a) => `Only the contribution ledger may do this; ${a.caller} is not it.`,
  NotRegistrant: (a) => `Only the registrant of model ${a.modelId} may do this; ${a.caller} is not.`,
  ParamsChanged: (a) =>
    `The parameters of round ${a.round} of model ${a.modelId} changed (version ${a.actual}, the commit was signed for ${a.expected}): sign it again.`,
  RoundSkipped: (a) => `Round ${a.round} of model ${a.modelId} cannot open: the latest round is ${a.latestRound}.`,
  ShardOutOfRange: (a) => `Model ${a.modelId} has no shard ${a.shard}.`,
  TooManyCurrencies: (a) => `Too many revenue currencies (${a.count}); a model accepts at most 8.`,
  UnbondingTooShort: (a) =>
    `The unbonding delay (${a.unbondingDelay} s) must be at least reveal + challenge + dispute windows (${a.required} s).`,
  ZeroAddress: () => "An address argument is the zero address.",
  ZeroShardWeight: (a) => `Shard ${a.shard} has a revenue weight of zero.`,
  // ShardToken
  AmountTooLarge: (a) => `The amount ${a.amount} is too large.`,
  CurrencyNotAccepted: (a) => `Model ${a.modelId} does not accept currency ${a.currency}.`,
  NoHolders: (a) => `No shard of model ${a.modelId} has holders yet, so revenue has no one to go to.`,
  NotSettlement: (a) => `Only the settlement contract may distribute revenue; ${a.caller} is not it.`,
  ShardNotFound: (a) => `Model ${a.modelId} has no shard ${a.shard}.`,
  SupplyCapExceeded: (a) => `Minting ${a.amount} would take token ${a.id} past its supply cap (supply ${a.supply}).`,
  ZeroAmount: () => "The amount is zero.",
  ERC1155InsufficientBalance: (a) => `${a.sender} holds ${a.balance} of token ${a.tokenId} but ${a.needed} are needed.`,
  ERC1155InvalidApprover: (a) => `${a.approver} cannot approve operators.`,
  ERC1155InvalidArrayLength: (a) => `${a.idsLength} ids but ${a.valuesLength} amounts.`,
  ERC1155InvalidOperator: (a) => `${a.operator} cannot be an operator.`,
  ERC1155InvalidReceiver: (a) => `${a.receiver} cannot receive shard tokens.`,
  ERC1155InvalidSender: (a) => `${a.sender} cannot send shard tokens.`,
  ERC1155MissingApprovalForAll: (a) => `${a.operator} is not approved to move the tokens of ${a.owner}.`,
  ReentrancyGuardReentrantCall: () => "Reentrant call rejected.",
  SafeCastOverflowedIntToUint: (a) => `Value ${a.value} does not fit the expected type.`,
  SafeCastOverflowedUintToInt: (a) => `Value ${a.value} does not fit the expected type.`,
  SafeERC20FailedOperation: (a) => `The ERC-20 token ${a.token} refused the transfer.`,
  StringsInsufficientHexLength: () => "Internal formatting error in the token metadata.",
  // Staking
  CheckpointUnorderedInsertion: () => "Internal error: a stake checkpoint was recorded out of order.",
  FutureLookup: (a) => `Block ${a.blockNumber} is not in the past (the current block is ${a.current}).`,
  InsufficientFreeStake: (a) =>
    `${a.account} has ${a.free} ${role(a.role)} stake in model ${a.modelId} that is active and not locked by pending commits or votes; ${a.amount} is needed.`,
  InsufficientStake: (a) =>
    `${a.account} has ${a.available} ${role(a.role)} stake in model ${a.modelId}; ${a.requested} was requested.`,
  NothingUnbonding: (a) => `${a.account} has no ${role(a.role)} stake unbonding in model ${a.modelId}.`,
  StillUnbonding: (a) =>
    `The ${role(a.role)} stake of ${a.account} in model ${a.modelId} unbonds until ${at(a.readyAt)}.`,
  // ContributionLedger
  AlreadyAttested: (a) => `${a.verifier} already attested commit ${a.commitId}.`,
  AlreadyChallenged: (a) => `${a.challenger} already challenged the open dispute of commit ${a.commitId}.`,
  AlreadyVoted: (a) => `${a.verifier} already voted on the dispute of commit ${a.commitId}.`,
  BondNotReceived: (a) => `No challenge bond for commit ${a.commitId} reached the ledger.`,
  ChallengeWindowClosed: (a) => `The challenge window of commit ${a.commitId} closed at ${at(a.closedAt)}.`,
  ChallengeWindowOpen: (a) => `Commit ${a.commitId} can be challenged until ${at(a.closesAt)}; finalize after that.`,
  ChallengerCannotVote: (a) => `The challenger of commit ${a.commitId} cannot vote on its own dispute.`,
  CheckpointAlreadyCommitted: (a) => `Commit ${a.commitId} (model, shard, round, lane) is already taken.`,
  CheckpointMismatch: (a) => `The checkpoint given does not match what commit ${a.commitId} revealed.`,
  CheckpointRootTaken: (a) => `Checkpoint root ${a.root} was already revealed by commit ${a.ownerCommitId}.`,
  CommitNotFound: (a) => `No commit ${a.commitId}.`,
  DisputeNotFound: (a) => `Commit ${a.commitId} has no dispute ${a.index}.`,
  DisputeNotResolved: (a) => `Dispute ${a.index} of commit ${a.commitId} is not resolved yet; resolve it first.`,
  DisputeOpen: (a) => `Commit ${a.commitId} has an open dispute; resolve it first.`,
  DisputeWindowClosed: (a) => `The dispute of commit ${a.commitId} closed for votes at ${at(a.endsAt)}.`,
  DisputeWindowOpen: (a) => `The dispute of commit ${a.commitId} is open for votes until ${at(a.endsAt)}.`,
  GenesisClosed: (a) => `The genesis allocation of model ${a.modelId} is closed.`,
  InsufficientTrainerStake: (a) =>
    `${a.owner} has ${a.active} active trainer stake in model ${a.modelId}; ${a.required} is required.`,
  InsufficientVerifierStake: (a) =>
    `${a.verifier} has ${a.active} active verifier stake in model ${a.modelId}; ${a.required} is required.`,
  InvalidParent: (a) => `Commit ${a.commitId} does not build on a valid previous checkpoint (${a.parentRoot}).`,
  InvalidShortString: () => "Invalid EIP-712 domain string.",
  InvalidSignature: () => "The signature is malformed.",
  LengthMismatch: (a) =>
    a.receipts === undefined
      ? "The arrays given have different lengths."
      : `${a.receipts} receipts but ${a.signatures} signatures.`,
  NoDeferredMint: (a) => `Commit ${a.commitId} has no deferred mint to claim.`,
  NoOpenDispute: (a) => `Commit ${a.commitId} has no open dispute.`,
  NoVote: (a) => `${a.voter} did not vote in dispute ${a.index} of commit ${a.commitId}.`,
  NodeConsentMismatch: (a) =>
    `The consent to authorize node key ${a.nodeKey} was signed by ${a.signer}, not by the key (or for another owner or deadline).`,
  NodeNotAuthorized: (a) => `Node key ${a.nodeKey} is not authorized to commit for ${a.owner}.`,
  NotOwner: (a) => `Only the owner of commit ${a.commitId} may do this; ${a.caller} is not.`,
  NothingToClaim: (a) => `${a.account} has nothing (more) to claim from dispute ${a.index} of commit ${a.commitId}.`,
  NotEnoughAttestations: (a) =>
    `Commit ${a.commitId} has ${a.attestations} attestations; ${a.required} are needed to finalize.`,
  OwnCommit: (a) =>
    `${a.account} is the owner of commit ${a.commitId}, or one of its node keys: it cannot attest or vote on it.`,
  ParentNotFinalized: (a) => `The parent ${a.parentRoot} of commit ${a.commitId} is not finalized yet.`,
  ParentNotRejected: (a) => `The parent ${a.parentRoot} of commit ${a.commitId} is not rejected.`,
  InvalidMergeLanes: (a) =>
    `Merge commit ${a.commitId} must name one non-zero bitmap of merged lanes in both activation digests.`,
  MergedLaneNotFinalized: (a) =>
    `Merge commit ${a.commitId} merged lane ${a.lane}, whose commit on shard ${a.shard} is not finalized yet.`,
  MergedLaneNotRejected: (a) =>
    `Merge commit ${a.commitId} did not merge lane ${a.lane}, or its commit on shard ${a.shard} is not rejected.`,
  PipelineUnverified: (a) =>
    `The pipeline digests at the boundary after shard ${a.boundary} of commit ${a.commitId} are missing or disagree.`,
  RevealTooEarly: (a) => `Commit ${a.commitId} can be revealed from the block after its seal.`,
  RevealWindowClosed: (a) => `The reveal window of commit ${a.commitId} closed at ${at(a.deadline)}.`,
  RevealWindowOpen: (a) => `The seal of commit ${a.commitId} can still be revealed until ${at(a.deadline)}.`,
  SealMismatch: (a) =>
    `The checkpoint and salt (or owner, parent, commit block and time) do not match the seal of commit ${a.commitId}.`,
  SealSpent: (a) => `This seal of commit ${a.commitId} expired once and cannot seal the commit again: sign a new one.`,
  SignatureExpired: (a) => `The signature expired at ${at(a.deadline)}.`,
  StringTooLong: () => "A string is too long.",
  TooManyDisputes: (a) => `Commit ${a.commitId} has had the maximum number of disputes.`,
  VoteAlreadyReleased: (a) =>
    `The vote of ${a.voter} in dispute ${a.index} of commit ${a.commitId} was already released.`,
  VoterCannotChallenge: (a) => `A voter in the open dispute of commit ${a.commitId} cannot join it as a challenger.`,
  WorkOutOfRange: (a) => `Declared work ${a.workUnits} is zero or above the maximum ${a.maxWork}.`,
  WrongStatus: (a) =>
    `Commit ${a.commitId} is ${STATUSES[Number(a.status)] ?? `in status ${String(a.status)}`}, which does not allow this.`,
  // InferenceSettlement
  EmptyBatch: () => "The batch has no receipts.",
  InsufficientEscrow: (a) => `${a.payer} has ${a.available} of ${a.currency} in escrow; ${a.needed} is needed.`,
  InvalidReceiptSignature: (a) => `The signature of receipt ${a.nonce} is not the payer's (${a.payer}).`,
  NonceAlreadyUsed: (a) => `Receipt nonce ${a.nonce} of ${a.payer} was already settled.`,
  NothingToWithdraw: (a) => `${a.payer} has no escrow withdrawal of ${a.currency} pending.`,
  NotPayee: (a) => `Only the payee ${a.payee} of the receipt may settle it; ${a.caller} is not.`,
  NotSelf: (a) => `Only the settlement contract itself may call this; ${a.caller} is not it.`,
  ReceiptExpired: (a) => `Receipt ${a.nonce} of ${a.payer} expired at ${at(a.deadline)}.`,
  WithdrawalLocked: (a) => `The escrow withdrawal of ${a.payer} in ${a.currency} unlocks at ${at(a.unlockAt)}.`,
  // LaneDirectory
  InsufficientSeatStake: (a) =>
    `${a.account} has ${a.active} active trainer stake in model ${a.modelId}; its seats need ${a.required} (the minimum trainer stake per seat).`,
  InvalidLease: (a) => `A seat lease must be between 1 second and one day; got ${a.leaseSeconds} s.`,
  InvalidPeerRecord: (a) => `A seat's peer record must be 1 to 512 bytes; got ${a.length}.`,
  LaneOutOfRange: (a) => `Lane ${a.lane} is out of range: seats exist for lanes 0 to 1023.`,
  NotSeatHolder: (a) =>
    `Only the holder of the seat may leave it; ${a.caller} is not (${a.holder === ZERO ? "the seat is free" : `held by ${a.holder}`}).`,
  SeatTaken: (a) => `The seat is held by ${a.holder} until ${at(a.expiresAt)}; pick another lane.`,
  // ERC-20 (OpenZeppelin IERC20Errors), raised by staking tokens and currencies
  ERC20InsufficientBalance: (a) => `${a.sender} holds ${a.balance} of the token but ${a.needed} are needed.`,
  ERC20InsufficientAllowance: (a) =>
    `${a.spender} may spend ${a.allowance} of the token but ${a.needed} are needed: approve first.`,
  ERC20InvalidSender: (a) => `${a.sender} cannot send the token.`,
  ERC20InvalidReceiver: (a) => `${a.receiver} cannot receive the token.`,
  ERC20InvalidApprover: (a) => `${a.approver} cannot approve.`,
  ERC20InvalidSpender: (a) => `${a.spender} cannot be approved.`,
} satisfies Record<ProtocolErrorName, (a: Args) => string>;

export const contractErrorMessages: Readonly<Record<string, (a: Args) => string>> = messages;
