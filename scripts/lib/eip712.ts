/** The EIP-712 domains and types live in the SDK (one definition); scripts and tests use them from here. */
export {
  ledgerDomain,
  nodeConsentTypes,
  sealedCommitTypes,
  settlementDomain,
  usageReceiptTypes,
} from "../../sdk/constants.js";
