// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ContributionLedger} from "../../../contracts/ContributionLedger.sol";
import {SealedCommit} from "../../../contracts/interfaces/IContributionLedger.sol";

/// @notice The EIP-712 digests a node key signs for the ledger, computed from its ERC-5267
/// domain (`eip712Domain()`) and its type hashes, as a wallet would: the ledger keeps no hashing
/// views of its own (code size).
library LedgerDigests {
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );

    function sealedCommit(ContributionLedger ledger, SealedCommit memory c) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                ledger.SEALED_COMMIT_TYPEHASH(),
                c.modelId,
                c.shard,
                c.round,
                c.lane,
                c.owner,
                c.parentRoot,
                c.sealedHash,
                c.paramsVersion,
                c.deadline
            )
        );
        return _typed(ledger, structHash);
    }

    function nodeConsent(
        ContributionLedger ledger,
        address owner,
        address nodeKey,
        uint64 deadline
    ) internal view returns (bytes32) {
        return _typed(ledger, keccak256(abi.encode(ledger.NODE_CONSENT_TYPEHASH(), owner, nodeKey, deadline)));
    }

    function _typed(ContributionLedger ledger, bytes32 structHash) private view returns (bytes32) {
        (, string memory name, string memory version, uint256 chainId, address verifying, , ) = ledger.eip712Domain();
        bytes32 separator = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256(bytes(version)), chainId, verifying)
        );
        return keccak256(abi.encodePacked("\x19\x01", separator, structHash));
    }
}
