import { requestInference } from "../actions/inference/requestInference.js";
import { claim } from "../actions/revenue/claim.js";
import { depositEscrow } from "../actions/revenue/depositEscrow.js";
import { getClaimable } from "../actions/revenue/getClaimable.js";
import { getEscrow } from "../actions/revenue/getEscrow.js";
import { isReceiptNonceUsed } from "../actions/revenue/isReceiptNonceUsed.js";
import { pay } from "../actions/revenue/pay.js";
import { requestEscrowWithdrawal } from "../actions/revenue/requestEscrowWithdrawal.js";
import { settleReceipts } from "../actions/revenue/settleReceipts.js";
import { signUsageReceipt } from "../actions/revenue/signUsageReceipt.js";
import { withdrawEscrow } from "../actions/revenue/withdrawEscrow.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Revenue: payments, escrow, usage receipts, paid inference, claims: `client.extend(revenueActions(deployment))`. */
export const revenueActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, {
    pay,
    depositEscrow,
    requestEscrowWithdrawal,
    withdrawEscrow,
    getEscrow,
    isReceiptNonceUsed,
    signUsageReceipt,
    settleReceipts,
    requestInference,
    getClaimable,
    claim,
  });
