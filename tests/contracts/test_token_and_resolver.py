"""RewardToken (capped, mintable by MINTER_ROLE, EIP-2612 permit, burnable) and ArbiterResolver.

Each test states its rule in its docstring. Helpers and the job fixtures come from test_market.py.
"""

# Job fixtures are imported from test_market.py and then requested by name, which ruff reads as
# redefinitions.

from __future__ import annotations

import ape
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from depin.market import JobStatus as Status
from depin.market import Ruling

from .conftest import TOKEN
from .test_market import (  # noqa: F401  (job, claimed, submitted, disputed are fixtures used by name)
    EVIDENCE,
    ZERO_ADDRESS,
    claimed,
    disputed,
    expect_event,
    job,
    newcomer,
    reverts,
    sign_permit,
    submitted,
)

CAP = 1_000_000_000 * TOKEN
INITIAL_SUPPLY = 100_000_000 * TOKEN
MINTER_ROLE = keccak(text="MINTER_ROLE")
ARBITER_ROLE = keccak(text="ARBITER_ROLE")


# ------------------------------------------------------------------------------------- token


def test_token_metadata_and_roles(token, market, owner):
    """The devnet token: name, symbol, 18 decimals, a 1e9-token cap, 1e8 tokens minted to the
    deployer at deployment, and MINTER_ROLE held by the market (emissions) and the deployer
    (devnet faucet)."""
    assert (token.name(), token.symbol(), token.decimals()) == ("depin Compute Token", "DPC", 18)
    assert token.cap() == CAP
    # Read from the deployment itself: later tests and session fixtures mint and burn.
    deployment = token.creation_metadata.receipt
    expect_event(deployment, token.Transfer, **{"from": ZERO_ADDRESS, "to": owner.address, "value": INITIAL_SUPPLY})
    assert token.hasRole(MINTER_ROLE, market.address)
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


def test_resolver_is_wired_to_the_market(resolver, market, owner):
    """The resolver answers to the market, and the deployer holds ARBITER_ROLE."""
    assert resolver.market() == market.address
    assert resolver.hasRole(ARBITER_ROLE, owner.address)


def test_only_the_market_opens_disputes(resolver, stranger, owner):
    """disputeOpened from anyone but the market reverts with NotMarket(caller)."""
    for caller in (stranger, owner):
        with reverts(resolver.NotMarket, caller=caller.address):
            resolver.disputeOpened(1, caller, caller, 0, sender=caller)


def test_only_arbiters_rule(resolver, stranger, disputed):
    """rule without ARBITER_ROLE reverts with AccessControlUnauthorizedAccount(account, ARBITER_ROLE)."""
    with reverts(resolver.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=ARBITER_ROLE):
        resolver.rule(disputed, Ruling.PROVIDER_WINS, EVIDENCE, sender=stranger)


def test_ruling_on_a_job_without_an_open_dispute_reverts(resolver, owner, submitted):
    """rule on a job that is not disputed here, or on an unknown job, reverts with NoOpenDispute(jobId)."""
    with reverts(resolver.NoOpenDispute, jobId=submitted):
        resolver.rule(submitted, Ruling.PROVIDER_WINS, EVIDENCE, sender=owner)
    with reverts(resolver.NoOpenDispute, jobId=999):
        resolver.rule(999, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)


def test_rule_emits_ruled_and_settles_the_market_in_the_same_tx(market, resolver, owner, stranger, provider, disputed):
    """An arbiter's rule emits Ruled(jobId, arbiter, ruling, evidenceHash) and, in the same
    transaction, the market's DisputeResolved; the dispute is closed and cannot be ruled twice."""
    resolver.grantRole(ARBITER_ROLE, stranger, sender=owner)
    assert resolver.isOpen(disputed)
    tx = resolver.rule(disputed, Ruling.PROVIDER_WINS, EVIDENCE, sender=stranger)
    expect_event(
        tx, resolver.Ruled, jobId=disputed, arbiter=stranger.address, ruling=Ruling.PROVIDER_WINS, evidenceHash=EVIDENCE
    )
    resolved = tx.decode_logs(market.DisputeResolved)
    assert [(log.jobId, log.ruling, log.winner) for log in resolved] == [
        (disputed, Ruling.PROVIDER_WINS, provider.address)
    ]
    assert market.getJob(disputed).status == Status.RESOLVED
    assert not resolver.isOpen(disputed)
    with reverts(resolver.NoOpenDispute, jobId=disputed):
        resolver.rule(disputed, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)


def test_a_ruling_after_settlement_without_ruling_reverts(chain, market, resolver, owner, stranger, disputed):
    """Once anyone settled the dispute after the resolve deadline, a late ruling reverts in the
    market with WrongStatus(jobId, Resolved, Disputed): the settlement stands."""
    chain.pending_timestamp = market.getJob(disputed).deadline + 1
    market.settleUnresolved(disputed, sender=stranger)
    with reverts(market.WrongStatus, jobId=disputed, actual=Status.RESOLVED, expected=Status.DISPUTED):
        resolver.rule(disputed, Ruling.CHALLENGER_WINS, EVIDENCE, sender=owner)
    assert market.getJob(disputed).status == Status.RESOLVED
