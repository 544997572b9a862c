// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title HostileERC20
/// @notice An ERC-20 that behaves as some real tokens do, for attack tests: it keeps a fee of
/// `feeBps` of every transfer (fee-on-transfer, the fee is burned) and refuses transfers to
/// blocked addresses (as USDC's blocklist does). Never deploy to a network with real value.
contract HostileERC20 is ERC20 {
    error Blocked(address account);

    uint256 public immutable feeBps;
    mapping(address account => bool) public blocked;

    constructor(string memory name_, string memory symbol_, uint256 feeBps_) ERC20(name_, symbol_) {
        feeBps = feeBps_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlocked(address account, bool value) external {
        blocked[account] = value;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (to != address(0) && blocked[to]) revert Blocked(to);
        if (from == address(0) || to == address(0) || feeBps == 0) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * feeBps) / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
