// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "./Vm.sol";

/// @notice Same shape as forge-std's `StdInvariant.FuzzSelector`: the runner reads it from
/// `targetSelectors()` to restrict invariant calls to the listed functions of `addr`.
struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

/// @title Test
/// @notice A minimal stand-in for forge-std's `Test`: the cheatcode handle, assertions that
/// revert with a readable message, `bound`, and the invariant target-selection hooks.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    /* INVARIANT TARGETS */

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetSelectors.push(selector);
    }

    /// @notice Contracts whose functions the invariant runner calls.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @notice Functions of the target contracts the invariant runner calls.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    /* ASSERTIONS */

    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) revert(string.concat("assertTrue failed: ", message));
    }

    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) revert(string.concat("assertFalse failed: ", message));
    }

    function assertEq(uint256 a, uint256 b, string memory message) internal pure {
        if (a != b) revert(string.concat("assertEq failed: ", message, ": ", _u(a), " != ", _u(b)));
    }

    function assertEq(address a, address b, string memory message) internal pure {
        if (a != b) revert(string.concat("assertEq failed: ", message, ": ", _a(a), " != ", _a(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory message) internal pure {
        if (a != b) revert(string.concat("assertEq failed: ", message, ": ", _b(a), " != ", _b(b)));
    }

    function assertEq(bool a, bool b, string memory message) internal pure {
        if (a != b) revert(string.concat("assertEq failed: ", message));
    }

    function assertLe(uint256 a, uint256 b, string memory message) internal pure {
        if (a > b) revert(string.concat("assertLe failed: ", message, ": ", _u(a), " > ", _u(b)));
    }

    function assertLt(uint256 a, uint256 b, string memory message) internal pure {
        if (a >= b) revert(string.concat("assertLt failed: ", message, ": ", _u(a), " >= ", _u(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory message) internal pure {
        if (a < b) revert(string.concat("assertGe failed: ", message, ": ", _u(a), " < ", _u(b)));
    }

    /* FUZZ HELPERS */

    /// @notice Maps `x` into [min, max] uniformly enough for fuzzing, keeping small inputs
    /// unchanged so the runner's edge-case values (0, 1, max) still land on the edges.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    /* FORMATTING */

    function _u(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) ++len;
        bytes memory out = new bytes(len);
        for (; v != 0; v /= 10) out[--len] = bytes1(uint8(48 + (v % 10)));
        return string(out);
    }

    function _hex(uint256 v, uint256 nBytes) private pure returns (string memory) {
        bytes memory out = new bytes(2 + 2 * nBytes);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i = 2 * nBytes; i > 0; --i) {
            out[i + 1] = bytes("0123456789abcdef")[v & 0xf];
            v >>= 4;
        }
        return string(out);
    }

    function _a(address a) private pure returns (string memory) {
        return _hex(uint160(a), 20);
    }

    function _b(bytes32 b) private pure returns (string memory) {
        return _hex(uint256(b), 32);
    }
}
