// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ContractOwner
/// @notice A trainer that is a contract without ERC-1155 receiver hooks (so safe mints to it
/// revert), driven by its deployer through `exec`. For tests of mints that cannot happen.
contract ContractOwner {
    error NotDeployer(address caller);
    error CallFailed(bytes data);

    address private immutable _deployer = msg.sender;

    function exec(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        bool ok;
        // solhint-disable-next-line avoid-low-level-calls
        (ok, result) = target.call(data);
        if (!ok) revert CallFailed(result);
    }
}
