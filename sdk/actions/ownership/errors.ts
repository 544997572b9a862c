import type { Address } from "viem";

import { ShardBaseError } from "../../errors/base.js";

/**
 * A cap-table cursor was made for another chain or another shard token than the deployment it is
 * used with; nothing was read. Start from scratch (no cursor) or pass the cursor of this deployment.
 */
export class CursorMismatchError extends ShardBaseError {
  override name = "CursorMismatchError";
  readonly expected: { chainId: number; token: Address };
  readonly actual: { chainId: number; token: Address };

  constructor(
    action: string,
    expected: { chainId: number; token: Address },
    actual: { chainId: number; token: Address },
  ) {
    super(
      `${action}: the cursor is for token ${actual.token} on chain ${actual.chainId}, ` +
        `but the deployment's shard token is ${expected.token} on chain ${expected.chainId}.`,
      { details: "a cursor can only be resumed against the deployment it was built from; sync without a cursor" },
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * The transfer events do not add up: a holder would end with a negative balance. The logs the
 * RPC returned are incomplete (a node that prunes logs, or a scan that did not start at the
 * token's deployment block).
 */
export class CapTableInconsistentError extends ShardBaseError {
  override name = "CapTableInconsistentError";
  readonly tokenId: bigint;
  readonly holder: Address;
  readonly blockNumber: bigint;

  constructor(parameters: { tokenId: bigint; holder: Address; balance: bigint; value: bigint; blockNumber: bigint }) {
    super(
      `Transfer events do not add up: ${parameters.holder} sends ${parameters.value} of token ${parameters.tokenId} ` +
        `in block ${parameters.blockNumber} but holds only ${parameters.balance} by the events seen.`,
      {
        details:
          "the RPC returned incomplete logs, or the scan did not start at the deployment block (check deployment.blockNumber)",
      },
    );
    this.tokenId = parameters.tokenId;
    this.holder = parameters.holder;
    this.blockNumber = parameters.blockNumber;
  }
}
