// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice The `aggregate3` entry point of the Multicall3 contract that most EVM chains host at
/// 0xcA11bde05977b3631167028862bE2a173976CA11, written here for local chains that lack it. Tests
/// place its runtime code at that address (`hardhat_setCode`) to exercise the SDK's batched reads.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    error CallFailed(uint256 index);

    /// @notice Calls each target in order; reverts if a call that does not allow failure fails.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i; i < calls.length; ++i) {
            // A multicall forwards arbitrary calldata: a low-level call is the whole point.
            // solhint-disable-next-line avoid-low-level-calls
            (bool success, bytes memory data) = calls[i].target.call(calls[i].callData);
            if (!success && !calls[i].allowFailure) revert CallFailed(i);
            results[i] = Result(success, data);
        }
    }
}
