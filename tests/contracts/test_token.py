"""RewardToken (capped, mintable by MINTER_ROLE, EIP-2612 permit, burnable).

Each test states its rule in its docstring. Helpers and the job fixtures come from test_market.py.
"""

# Job fixtures are imported from test_market.py and then requested by name, which ruff reads as
# redefinitions.

from __future__ import annotations

import ape
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from .conftest import TOKEN
from .test_market import (  # noqa: F401  (newcomer is a fixture used by name)
    ZERO_ADDRESS,
    expect_event,
    newcomer,
    reverts,
    sign_permit,
)

CAP = 1_000_000_000 * TOKEN
INITIAL_SUPPLY = 100_000_000 * TOKEN
MINTER_ROLE = keccak(text="MINTER_ROLE")


# ------------------------------------------------------------------------------------- token


def test_token_metadata_and_roles(token, market, owner):
    """The devnet token: name, symbol, 18 decimals, a 1e9-token cap, 1e8 tokens minted to the
    deployer at deployment, and MINTER_ROLE held by the deployer (devnet faucet) but not the
    market (emissions are the fee rebate; the market never mints)."""
    assert (token.name(), token.symbol(), token.decimals()) == ("depin Compute Token", "DPC", 18)
    assert token.cap() == CAP
    # Read from the deployment itself: later tests and session fixtures mint and burn.
    deployment = token.creation_metadata.receipt
    expect_event(deployment, token.Transfer, **{"from": ZERO_ADDRESS, "to": owner.address, "value": INITIAL_SUPPLY})
    assert not token.hasRole(MINTER_ROLE, market.address)
    assert token.hasRole(MINTER_ROLE, owner.address)


def test_minter_mints(token, owner, stranger):
    """A MINTER_ROLE holder mints to any address: a Transfer from zero, supply and balance grow."""
    supply, balance = token.totalSupply(), token.balanceOf(stranger)
    tx = token.mint(stranger, 5 * TOKEN, sender=owner)
    expect_event(tx, token.Transfer, **{"from": ZERO_ADDRESS, "to": stranger.address, "value": 5 * TOKEN})
    assert token.balanceOf(stranger) == balance + 5 * TOKEN
    assert token.totalSupply() == supply + 5 * TOKEN


def test_only_minters_mint(token, stranger):
    """mint without MINTER_ROLE reverts with AccessControlUnauthorizedAccount(account, MINTER_ROLE)."""
    with reverts(token.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=MINTER_ROLE):
        token.mint(stranger, 1, sender=stranger)


def test_mint_up_to_the_cap_and_not_past_it(token, owner, stranger):
    """Supply may reach the cap exactly; one unit more reverts with ERC20ExceededCap(increasedSupply, cap)."""
    token.mint(stranger, CAP - token.totalSupply(), sender=owner)
    assert token.totalSupply() == CAP
    with reverts(token.ERC20ExceededCap, increasedSupply=CAP + 1, cap=CAP):
        token.mint(stranger, 1, sender=owner)


def test_permit_sets_the_allowance_from_a_signature(token, newcomer, stranger):
    """permit, submitted by anyone, sets the allowance the holder signed for, spends the nonce and
    emits Approval; the same signature cannot be replayed (ERC2612InvalidSigner)."""
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, newcomer, stranger.address, 7 * TOKEN, deadline)
    tx = token.permit(newcomer, stranger, 7 * TOKEN, deadline, v, r, s, sender=stranger)
    expect_event(tx, token.Approval, owner=newcomer.address, spender=stranger.address, value=7 * TOKEN)
    assert token.allowance(newcomer, stranger) == 7 * TOKEN
    assert token.nonces(newcomer) == 1
    token.transferFrom(newcomer, stranger, 7 * TOKEN, sender=stranger)

    # Replayed, the signature is checked against nonce 1 and recovers some other address.
    domain = token.eip712Domain()
    replayed = encode_typed_data(
        domain_data={
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chainId,
            "verifyingContract": domain.verifyingContract,
        },
        message_types={
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        },
        message_data={
            "owner": newcomer.address,
            "spender": stranger.address,
            "value": 7 * TOKEN,
            "nonce": 1,
            "deadline": deadline,
        },
    )
    signer = Account.recover_message(replayed, vrs=(v, r, s))
    with reverts(token.ERC2612InvalidSigner, signer=signer, owner=newcomer.address):
        token.permit(newcomer, stranger, 7 * TOKEN, deadline, v, r, s, sender=stranger)


def test_permit_signed_by_someone_else_reverts(token, newcomer, stranger):
    """A permit for the holder signed with another key reverts with ERC2612InvalidSigner(signer, owner)."""
    deadline = ape.chain.pending_timestamp + 3_600
    v, r, s = sign_permit(token, stranger, stranger.address, TOKEN, deadline, owner=newcomer.address)
    with reverts(token.ERC2612InvalidSigner, signer=stranger.address, owner=newcomer.address):
        token.permit(newcomer, stranger, TOKEN, deadline, v, r, s, sender=stranger)


def test_expired_permit_reverts(chain, token, newcomer, stranger):
    """A permit past its deadline reverts with ERC2612ExpiredSignature(deadline)."""
    deadline = chain.pending_timestamp + 10
    v, r, s = sign_permit(token, newcomer, stranger.address, TOKEN, deadline)
    chain.pending_timestamp = deadline + 1
    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(newcomer, stranger, TOKEN, deadline, v, r, s, sender=stranger)


def test_burn_destroys_the_callers_tokens(token, newcomer):
    """burn lowers the caller's balance and the total supply (a Transfer to zero); burning more
    than the balance reverts with ERC20InsufficientBalance(sender, balance, needed)."""
    supply = token.totalSupply()
    tx = token.burn(400 * TOKEN, sender=newcomer)
    expect_event(tx, token.Transfer, **{"from": newcomer.address, "to": ZERO_ADDRESS, "value": 400 * TOKEN})
    assert token.balanceOf(newcomer) == 600 * TOKEN
    assert token.totalSupply() == supply - 400 * TOKEN
    with reverts(token.ERC20InsufficientBalance, sender=newcomer.address, balance=600 * TOKEN, needed=600 * TOKEN + 1):
        token.burn(600 * TOKEN + 1, sender=newcomer)


def test_burn_from_needs_allowance(token, newcomer, stranger):
    """burnFrom burns another holder's tokens only within its allowance (ERC20InsufficientAllowance)."""
    with reverts(token.ERC20InsufficientAllowance, spender=stranger.address, allowance=0, needed=TOKEN):
        token.burnFrom(newcomer, TOKEN, sender=stranger)
    token.approve(stranger, TOKEN, sender=newcomer)
    token.burnFrom(newcomer, TOKEN, sender=stranger)
    assert token.balanceOf(newcomer) == 999 * TOKEN


# ------------------------------------------------------------------------------------- resolver
