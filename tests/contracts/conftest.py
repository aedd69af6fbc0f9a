"""Shared fixtures for the contract tests (ape's pytest plugin, on anvil via ape-foundry).

Session-scoped: one deployment per test session, with ape's automatic per-test snapshot/revert
isolating tests from each other. Accounts: `owner` (admin, governor, guardian, arbiter),
`requester`, `provider`, `provider2`, `challenger`, `stranger`.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from depin.deployment import load_parameters, to_wei
from depin.spec import example_spec
from depinctl.deploy import deploy_contracts

TOKEN = 10**18
MIN_STAKE = to_wei(100)  # devnet parameters (deployments/parameters.toml)


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def requester(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def provider(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def provider2(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def challenger(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def params(chain):
    return load_parameters(chain.chain_id)


@pytest.fixture(scope="session")
def deployed(owner, params):
    return deploy_contracts(owner, params)


@pytest.fixture(scope="session")
def token(deployed):
    return deployed["RewardToken"]


@pytest.fixture(scope="session")
def staking(deployed):
    return deployed["ProviderStaking"]


@pytest.fixture(scope="session")
def market(deployed):
    return deployed["JobMarket"]


@pytest.fixture(scope="session")
def resolver(deployed):
    return deployed["ArbiterResolver"]


@pytest.fixture(scope="session")
def funded(owner, token, staking, market, requester, provider, provider2, challenger, stranger):
    """Mints 10,000 tokens to every actor and approves the market and staking for all of it."""
    for acct in (requester, provider, provider2, challenger, stranger):
        token.mint(acct, 10_000 * TOKEN, sender=owner)
        token.approve(market.address, 2**256 - 1, sender=acct)
        token.approve(staking.address, 2**256 - 1, sender=acct)
    return True


@pytest.fixture(scope="session")
def registered(funded, staking, provider, provider2):
    """`provider` and `provider2` registered with 1,000 tokens of stake each."""
    staking.register(1_000 * TOKEN, "http://provider-1.local:8700", b"\x11" * 32, sender=provider)
    staking.register(1_000 * TOKEN, "http://provider-2.local:8700", b"\x22" * 32, sender=provider2)
    return True


def make_spec(n: int = 0, **extra) -> bytes:
    """A canonical JSON spec (sorted keys, compact separators), distinct for each `n`."""
    return example_spec(n, **extra)


def make_terms(
    reward: int = 10 * TOKEN,
    claim_window: int = 600,
    max_runtime: int = 60,
    challenge_window: int = 30,
    collateral_pct: int = 100,
    cpu_seconds: int = 60,
) -> tuple[int, int, int, int, int, int]:
    """An `IJobMarket.JobTerms` tuple within the devnet bounds."""
    return (reward, claim_window, max_runtime, challenge_window, collateral_pct, cpu_seconds)


@pytest.fixture
def post_job(market, requester, funded):
    """Posts a job and returns its id: post_job(sender=..., spec=..., terms=...)."""

    def _post(sender=None, spec: bytes | None = None, terms=None, n: int = 0) -> int:
        spec = spec if spec is not None else make_spec(n)
        market.postJob(keccak(spec), spec, terms or make_terms(), sender=sender or requester)
        return market.jobCount()

    return _post
