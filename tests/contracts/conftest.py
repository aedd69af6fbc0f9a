"""Shared fixtures for the contract tests (ape's pytest plugin, on anvil via ape-foundry).

Session-scoped: one deployment per test session, with ape's automatic per-test snapshot/revert
isolating tests from each other. Accounts: `owner` (admin, governor, guardian), `requester`,
`provider`, `provider2`, `challenger`, `stranger`.

The contract tests deploy with MockRandomness (draws forced with `setValue`) and the TestCourt
stand-in (`court.begin` / `court.settle` drive every Outcome), whatever deploy_contracts would
pick: `deploy_test_set`. tests/contracts/test_deploy.py covers the deploy script itself.
"""

from __future__ import annotations

from collections import namedtuple
from decimal import Decimal
from typing import Any

import pytest
from eth_utils import keccak

from depin.deployment import load_parameters, to_wei
from depin.spec import example_spec
from depinctl.deploy import ensure_current_build

TOKEN = 10**18
MIN_STAKE = to_wei(100)  # devnet parameters (deployments/parameters.toml)


@pytest.fixture(scope="session", autouse=True)
def block_clock(chain):
    """Chain time stands still unless a test moves it (`mine(timestamp=...)`, `pending_timestamp`):
    every block gets its parent's timestamp. anvil otherwise stamps a block with the wall-clock time
    it is mined at, so on a busy machine a test's transactions ran out windows the contracts enforce
    (a court case's 16 s to take the jury seats, in a loaded round), and how many seconds a block
    adds is not for a test to guess (one per block would run out the same window in a 15-seat
    round). ape's snapshots and reverts keep the setting."""
    chain.provider.make_request("anvil_setBlockTimestampInterval", [0])
    yield
    chain.provider.make_request("anvil_removeBlockTimestampInterval", [])


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


# The contract tests' job ring: three entries (the devnet has 4,096), so that every test posting
# more than three jobs reuses settled jobs' storage or spills past unsettled ones.
TEST_JOB_SLOTS = 3
TEST_MAX_REWARD = Decimal(1_000_000)  # whole tokens


def deploy_test_set(owner, params, *, mock: bool = True, header: bool = False, job_slots: int = TEST_JOB_SLOTS) -> dict:
    """RewardToken, MockRandomness (or BlockhashRandomness with `mock=False`, HeaderRandomness with
    `header=True`), JobMarket with a
    `job_slots`-entry job ring and a TestCourt whose views follow the devnet court parameters;
    `setParams` with that court."""
    from ape import project

    t, s, m, c = params.token, params.staking, params.market, params.court
    token = project.RewardToken.deploy(t.name, t.symbol, to_wei(t.cap), owner.address, to_wei(t.initial_supply), sender=owner)
    if header:
        randomness = project.HeaderRandomness.deploy(sender=owner)
    elif mock:
        randomness = project.MockRandomness.deploy(owner.address, b"\x00" * 31 + b"\x07", sender=owner)
    else:
        randomness = project.BlockhashRandomness.deploy(sender=owner)
    native = not mock and not header  # the market reads blockhash(anchor) in place
    market = project.JobMarket.deploy(
        token.address, randomness.address, native, m.draw_delay, job_slots, owner.address, to_wei(s.min_stake), s.unbonding_delay, sender=owner
    )
    court = project.TestCourt.deploy(
        market.address, c.required_challenge_window(m.draw_delay), c.max_horizon(m.max_runtime), sender=owner
    )
    # TestCourt seats nobody, so no verifier stake bounds R here (its maxVerifiableReward is the
    # field's limit): the tests post up to 115 tokens, above the devnet's 5 (test_reward_cap.py).
    market.setParams(m.model_copy(update={"max_reward": TEST_MAX_REWARD}).as_tuple(court.address), sender=owner)
    token.grantRole(token.MINTER_ROLE(), owner.address, sender=owner)
    return {
        "RewardToken": token,
        "ProviderStaking": project.ProviderStaking.at(market.staking()),
        "JobMarket": market,
        "VerificationCourt": court,
        "Randomness": randomness,
    }


@pytest.fixture(scope="session")
def deployed(owner, params):
    ensure_current_build()
    return deploy_test_set(owner, params)


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
def court(deployed):
    return deployed["VerificationCourt"]


@pytest.fixture(scope="session")
def randomness(deployed):
    return deployed["Randomness"]


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


@pytest.fixture(scope="session", autouse=True)
def session_state(registered, token, staking, market, court, randomness):
    """Every session-wide fixture set up before the first test: a session fixture first requested
    after ape has snapshotted a module makes ape revert to the session level and set the module
    up again (its InvalidIsolationWarning). Tests that need unregistered providers use `stranger`
    or a deployment of their own (`deploy_test_set`)."""


class Reads:
    """View calls, many in one JSON-RPC batch, for checks that read many accounts after every step.
    ape spends about three requests on each call (a code check among them): through ape, the
    invariant machine's checks were nine tenths of its time (a cProfile of one run). A struct comes
    back as a named tuple with the ABI's field names, as ape returns it."""

    def __init__(self, chain, **contracts):
        from web3 import Web3  # here, not at collection: importing web3 first warns (websockets.legacy)

        self.w3 = Web3(Web3.HTTPProvider(chain.provider.uri))
        self.contracts = {}
        self.structs: dict[tuple[str, str], Any] = {}
        for name, contract in contracts.items():
            abi = contract.contract_type.model_dump(mode="json", by_alias=True)["abi"]
            self.contracts[name] = self.w3.eth.contract(contract.address, abi=abi)
            for item in abi:
                outputs = item.get("outputs") or []
                if item.get("type") == "function" and len(outputs) == 1 and outputs[0]["type"] == "tuple":
                    fields = [c["name"] for c in outputs[0]["components"]]
                    self.structs[(name, item["name"])] = namedtuple(item["name"], fields)

    def many(self, calls: list[tuple]) -> list:
        """[(contract, function, *args), ...] -> their results, in order, in one request."""
        if not calls:
            return []
        with self.w3.batch_requests() as batch:
            for contract, function, *args in calls:
                batch.add(self.contracts[contract].functions[function](*args))
            results = batch.execute()
        out = []
        for (contract, function, *_), value in zip(calls, results, strict=True):
            struct = self.structs.get((contract, function))
            out.append(struct(*value) if struct else value)
        return out

    def one(self, contract: str, function: str, *args) -> Any:
        return self.many([(contract, function, *args)])[0]


def make_spec(n: int = 0, **extra) -> bytes:
    """A canonical JSON spec (sorted keys, compact separators), distinct for each `n`."""
    return example_spec(n, **extra)


def make_terms(
    reward: int = 10 * TOKEN,
    claim_window: int = 600,
    max_runtime: int = 60,
    challenge_window: int = 30,
    collateral_pct: int = 400,
    cpu_seconds: int = 60,
    verify_mode: int = 0,
) -> tuple[int, int, int, int, int, int, int]:
    """An `IJobMarket.JobTerms` tuple within the devnet bounds."""
    return (reward, claim_window, max_runtime, challenge_window, collateral_pct, cpu_seconds, verify_mode)


@pytest.fixture
def post_job(market, requester, funded):
    """Posts a job and returns its id: post_job(sender=..., spec=..., terms=...)."""

    def _post(sender=None, spec: bytes | None = None, terms=None, n: int = 0) -> int:
        spec = spec if spec is not None else make_spec(n)
        market.postJob(keccak(spec), spec, terms or make_terms(), sender=sender or requester)
        return market.jobCount()

    return _post
