"""ProviderStaking: registration, stake, unbonding, collateral locks taken by the market, governance.

Each test states its rule in its docstring. Helpers and the job fixtures come from test_market.py.
"""

# Job fixtures are imported from test_market.py and then requested by name, which ruff reads as
# redefinitions.

from __future__ import annotations

import pytest
from eth_utils import keccak

from .conftest import MIN_STAKE, TOKEN
from .test_market import (  # noqa: F401  (job and claimed are fixtures used by name)
    COLLATERAL,
    RESULT_HASH,
    RESULT_URI,
    TERMS,
    ZERO_ADDRESS,
    b32,
    claimed,
    expect_event,
    force_draw,
    job,
    past_window,
    post,
    reverts,
)

UNBONDING_DELAY = 2_592_000  # devnet: 30 days, above the market's verification horizon (C9)
STAKE = 1_000 * TOKEN  # what the `registered` fixture stakes for each provider
ENDPOINT = "http://stranger.local:8700"
CAPABILITY = keccak(b"cpu:4,mem:8g")


# ------------------------------------------------------------------------------------- register


def test_parameters_and_wiring(staking, token, market):
    """Staking holds the reward token, answers to the market that deployed it, and runs with the
    devnet minimum stake (100 tokens) and unbonding delay (30 days)."""
    assert staking.token() == token.address
    assert staking.market() == market.address
    assert staking.minStake() == MIN_STAKE == 100 * TOKEN
    assert staking.unbondingDelay() == UNBONDING_DELAY


def test_unregistered_provider_reads_as_zero(staking, stranger, registered):
    """getProvider of an unregistered address is all zero; it has no available stake, and ids
    beyond providerCount map to no one."""
    assert staking.getProvider(stranger) == (0, 0, 0, 0, 0, 0, 0, "", b"\0" * 32)
    assert staking.availableStake(stranger) == 0
    assert staking.providerCount() == 2
    assert staking.providerOf(3) == ZERO_ADDRESS


def test_register_pulls_the_stake_and_records_the_provider(staking, token, stranger, registered):
    """register pulls the stake, assigns the next id, records endpoint and capability hash, and
    emits ProviderRegistered with all of them."""
    before = token.balanceOf(stranger)
    tx = staking.register(MIN_STAKE, ENDPOINT, CAPABILITY, sender=stranger)
    expect_event(
        tx,
        staking.ProviderRegistered,
        provider=stranger.address,
        id=3,
        amount=MIN_STAKE,
        endpoint=ENDPOINT,
        capabilityHash=CAPABILITY,
    )
    assert tx.return_value == 3
    assert staking.getProvider(stranger) == (3, MIN_STAKE, 0, 0, 0, 0, 0, ENDPOINT, CAPABILITY)
    assert staking.providerOf(3) == stranger.address
    assert staking.providerCount() == 3
    assert staking.availableStake(stranger) == MIN_STAKE
    assert token.balanceOf(stranger) == before - MIN_STAKE
    assert token.balanceOf(staking.address) == 2 * STAKE + MIN_STAKE


def test_ids_are_sequential(staking, provider, provider2, stranger, registered):
    """Each registration takes the next id, from 1."""
    staking.register(MIN_STAKE, ENDPOINT, CAPABILITY, sender=stranger)
    assert [staking.getProvider(a).id for a in (provider, provider2, stranger)] == [1, 2, 3]
    assert staking.providerCount() == 3


def test_register_below_the_minimum_reverts(staking, stranger, funded):
    """A registration stake below minStake reverts with StakeBelowMinimum(amount, minimum)."""
    with reverts(staking.StakeBelowMinimum, amount=MIN_STAKE - 1, minimum=MIN_STAKE):
        staking.register(MIN_STAKE - 1, ENDPOINT, CAPABILITY, sender=stranger)


def test_register_twice_reverts(staking, provider, registered):
    """A registered provider cannot register again: AlreadyRegistered(provider)."""
    with reverts(staking.AlreadyRegistered, provider=provider.address):
        staking.register(MIN_STAKE, ENDPOINT, CAPABILITY, sender=provider)


# ------------------------------------------------------------------------------------- stake


def test_stake_adds_to_the_stake(staking, token, provider, registered):
    """stake pulls more tokens in; Staked carries the amount and the new total."""
    tx = staking.stake(5 * TOKEN, sender=provider)
    expect_event(tx, staking.Staked, provider=provider.address, amount=5 * TOKEN, staked=STAKE + 5 * TOKEN)
    assert staking.getProvider(provider).staked == STAKE + 5 * TOKEN
    assert token.balanceOf(staking.address) == 2 * STAKE + 5 * TOKEN


def test_stake_zero_reverts(staking, provider, registered):
    """Staking zero reverts with ZeroAmount."""
    with reverts(staking.ZeroAmount):
        staking.stake(0, sender=provider)


def test_stake_unregistered_reverts(staking, stranger, funded):
    """Only registered providers stake: NotRegistered(provider)."""
    with reverts(staking.NotRegistered, provider=stranger.address):
        staking.stake(TOKEN, sender=stranger)


# ------------------------------------------------------------------------------------- unbonding


def test_request_unstake_moves_stake_to_unbonding(staking, token, provider, registered):
    """requestUnstake moves available stake to unbonding, released after the unbonding delay;
    no tokens leave yet."""
    tx = staking.requestUnstake(300 * TOKEN, sender=provider)
    release = tx.timestamp + UNBONDING_DELAY
    expect_event(
        tx,
        staking.UnstakeRequested,
        provider=provider.address,
        amount=300 * TOKEN,
        staked=STAKE - 300 * TOKEN,
        unbonding=300 * TOKEN,
        releaseAt=release,
    )
    info = staking.getProvider(provider)
    assert (info.staked, info.locked, info.unbonding, info.releaseAt) == (STAKE - 300 * TOKEN, 0, 300 * TOKEN, release)
    assert staking.availableStake(provider) == STAKE - 300 * TOKEN
    assert token.balanceOf(staking.address) == 2 * STAKE


def test_a_second_request_accumulates_and_restarts_the_delay(chain, staking, provider, registered):
    """A new requestUnstake adds to what is unbonding and restarts the delay for all of it."""
    first = staking.requestUnstake(100 * TOKEN, sender=provider)
    chain.pending_timestamp = first.timestamp + 50
    second = staking.requestUnstake(200 * TOKEN, sender=provider)
    release = second.timestamp + UNBONDING_DELAY
    expect_event(
        second,
        staking.UnstakeRequested,
        provider=provider.address,
        amount=200 * TOKEN,
        staked=STAKE - 300 * TOKEN,
        unbonding=300 * TOKEN,
        releaseAt=release,
    )
    chain.pending_timestamp = first.timestamp + UNBONDING_DELAY
    with reverts(
        staking.UnbondingNotReady,
        provider=provider.address,
        releaseAt=release,
        nowTime=first.timestamp + UNBONDING_DELAY,
    ):
        staking.withdrawUnstaked(sender=provider)


def test_request_unstake_beyond_available_reverts(staking, provider, registered):
    """requestUnstake cannot exceed staked - locked: InsufficientStake(provider, available, needed)."""
    with reverts(staking.InsufficientStake, provider=provider.address, available=STAKE, needed=STAKE + 1):
        staking.requestUnstake(STAKE + 1, sender=provider)


def test_request_unstake_zero_or_unregistered_reverts(staking, provider, stranger, registered):
    """requestUnstake of zero reverts with ZeroAmount, and from an unregistered address with NotRegistered."""
    with reverts(staking.ZeroAmount):
        staking.requestUnstake(0, sender=provider)
    with reverts(staking.NotRegistered, provider=stranger.address):
        staking.requestUnstake(TOKEN, sender=stranger)


def test_withdraw_unstaked_after_the_delay(chain, staking, token, provider, registered):
    """Unbonded tokens are withdrawable at releaseAt (not a second earlier: UnbondingNotReady with
    fields); withdrawUnstaked sends them all and clears the unbonding record."""
    tx = staking.requestUnstake(300 * TOKEN, sender=provider)
    release = tx.timestamp + UNBONDING_DELAY
    chain.pending_timestamp = release - 1
    with reverts(staking.UnbondingNotReady, provider=provider.address, releaseAt=release, nowTime=release - 1):
        staking.withdrawUnstaked(sender=provider)
    wallet = token.balanceOf(provider)
    chain.pending_timestamp = release
    tx = staking.withdrawUnstaked(sender=provider)
    expect_event(tx, staking.UnstakeWithdrawn, provider=provider.address, amount=300 * TOKEN)
    assert token.balanceOf(provider) == wallet + 300 * TOKEN
    assert token.balanceOf(staking.address) == 2 * STAKE - 300 * TOKEN
    info = staking.getProvider(provider)
    assert (info.staked, info.unbonding, info.releaseAt) == (STAKE - 300 * TOKEN, 0, 0)


def test_withdraw_unstaked_with_nothing_unbonding_reverts(staking, provider, stranger, registered):
    """withdrawUnstaked with nothing unbonding reverts with NothingUnbonding(provider), registered or not."""
    with reverts(staking.NothingUnbonding, provider=provider.address):
        staking.withdrawUnstaked(sender=provider)
    with reverts(staking.NothingUnbonding, provider=stranger.address):
        staking.withdrawUnstaked(sender=stranger)


# ------------------------------------------------------------------------------------- collateral


def test_locked_collateral_cannot_be_unbonded(chain, market, staking, randomness, owner, provider, stranger, claimed):
    """While a job is claimed its collateral is locked: requestUnstake can take staked - locked
    and no more (InsufficientStake); once the job settles the collateral is free again."""
    available = STAKE - COLLATERAL
    assert staking.availableStake(provider) == available
    with reverts(staking.InsufficientStake, provider=provider.address, available=available, needed=available + 1):
        staking.requestUnstake(available + 1, sender=provider)
    staking.requestUnstake(available, sender=provider)
    info = staking.getProvider(provider)
    assert (info.staked, info.locked) == (COLLATERAL, COLLATERAL)
    with reverts(staking.InsufficientStake, provider=provider.address, available=0, needed=1):
        staking.requestUnstake(1, sender=provider)

    market.submitResult(claimed, RESULT_HASH, RESULT_URI, sender=provider)
    force_draw(randomness, market, owner, claimed, drawn=False)
    past_window(chain, market, claimed)
    market.finalize(claimed, sender=stranger)
    assert staking.getProvider(provider).locked == 0
    staking.requestUnstake(COLLATERAL, sender=provider)
    assert staking.getProvider(provider).staked == 0


@pytest.mark.parametrize(("collateral", "ok"), [(STAKE - MIN_STAKE, True), (STAKE - MIN_STAKE + 4, False)])
def test_claim_needs_collateral_plus_minimum_stake_available(
    market, staking, requester, provider, registered, collateral, ok
):
    """A provider claims only if its available stake covers the collateral plus minStake; otherwise
    claimJob reverts with InsufficientStake(provider, available, collateral + minStake)."""
    # collateralPct 400, so the collateral is four times the reward.
    post(market, requester, TERMS._replace(reward=collateral // 4, collateral_pct=400))
    if ok:
        market.claimJob(1, sender=provider)
        assert staking.getProvider(provider).locked == collateral
    else:
        with reverts(
            staking.InsufficientStake, provider=provider.address, available=STAKE, needed=collateral + MIN_STAKE
        ):
            market.claimJob(1, sender=provider)


def test_claims_count_stake_already_locked(market, staking, requester, provider, registered):
    """Collateral already locked by a claimed job does not back another claim."""
    post(market, requester, TERMS._replace(reward=450 * TOKEN // 4, collateral_pct=400), n=1)
    post(market, requester, TERMS._replace(reward=460 * TOKEN // 4, collateral_pct=400), n=2)
    market.claimJob(1, sender=provider)
    with reverts(staking.InsufficientStake, provider=provider.address, available=550 * TOKEN, needed=560 * TOKEN):
        market.claimJob(2, sender=provider)


def test_a_provider_below_the_minimum_cannot_claim(market, staking, provider, job, registered):
    """A provider that unbonded below minStake stays registered but cannot claim even a small job."""
    staking.requestUnstake(STAKE - 50 * TOKEN, sender=provider)
    with reverts(
        staking.InsufficientStake, provider=provider.address, available=50 * TOKEN, needed=COLLATERAL + MIN_STAKE
    ):
        market.claimJob(job, sender=provider)


def test_an_unregistered_account_cannot_claim(market, staking, stranger, job):
    """claimJob by an address that never registered reverts with NotRegistered(provider)."""
    with reverts(staking.NotRegistered, provider=stranger.address):
        market.claimJob(job, sender=stranger)


MARKET_HOOKS = {
    "lock": lambda s, who: s.lock(who.address, TOKEN, sender=who),
    "unlock": lambda s, who: s.unlock(1, TOKEN, True, sender=who),
    "slash": lambda s, who: s.slash(1, TOKEN, 1, who.address, sender=who),
}


@pytest.mark.parametrize("hook", MARKET_HOOKS.values(), ids=MARKET_HOOKS.keys())
@pytest.mark.parametrize("who", ["stranger", "owner", "provider"])
def test_market_hooks_are_market_only(request, staking, claimed, hook, who):
    """lock, unlock and slash revert with NotMarket(caller) for anyone but the market, the admin
    and the provider itself included."""
    caller = request.getfixturevalue(who)
    with reverts(staking.NotMarket, caller=caller.address):
        hook(staking, caller)


# ------------------------------------------------------------------------------------- metadata


def test_set_metadata_updates_endpoint_and_capability(staking, provider, registered):
    """setMetadata replaces the endpoint and capability hash and emits MetadataUpdated."""
    tx = staking.setMetadata(ENDPOINT, CAPABILITY, sender=provider)
    expect_event(tx, staking.MetadataUpdated, provider=provider.address, endpoint=ENDPOINT, capabilityHash=CAPABILITY)
    info = staking.getProvider(provider)
    assert (info.endpoint, info.capabilityHash) == (ENDPOINT, CAPABILITY)


def test_set_metadata_unregistered_reverts(staking, stranger):
    """Only registered providers set metadata: NotRegistered(provider)."""
    with reverts(staking.NotRegistered, provider=stranger.address):
        staking.setMetadata(ENDPOINT, CAPABILITY, sender=stranger)


# ------------------------------------------------------------------------------------- governance


@pytest.mark.parametrize(("min_stake", "delay"), [(1, UNBONDING_DELAY), (10**27, 60 * 86_400)])
def test_set_params_within_bounds(staking, owner, min_stake, delay):
    """Governance sets minStake in [1, 1e27] and the unbonding delay in [market.minUnbondingDelay(),
    60 days]; StakingParametersUpdated carries both."""
    tx = staking.setParams(min_stake, delay, sender=owner)
    expect_event(tx, staking.StakingParametersUpdated, minStake=min_stake, unbondingDelay=delay)
    assert (staking.minStake(), staking.unbondingDelay()) == (min_stake, delay)


@pytest.mark.parametrize(
    ("min_stake", "delay", "name", "value", "lo", "hi"),
    [
        (0, UNBONDING_DELAY, "minStake", 0, 1, 10**27),
        (10**27 + 1, UNBONDING_DELAY, "minStake", 10**27 + 1, 1, 10**27),
        (MIN_STAKE, 60 * 86_400 + 1, "unbondingDelay", 60 * 86_400 + 1, 0, 60 * 86_400),
    ],
)
def test_set_params_out_of_bounds_reverts(staking, owner, min_stake, delay, name, value, lo, hi):
    """Staking parameters outside their hard bounds revert with ParameterOutOfBounds(name, value, min, max)."""
    with reverts(staking.ParameterOutOfBounds, name=b32(name), value=value, min=lo, max=hi):
        staking.setParams(min_stake, delay, sender=owner)


def test_set_params_needs_the_governor_role(staking, stranger):
    """setParams from a non-governor reverts with AccessControlUnauthorizedAccount(account, GOVERNOR_ROLE)."""
    with reverts(
        staking.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=keccak(text="GOVERNOR_ROLE")
    ):
        staking.setParams(MIN_STAKE, 60, sender=stranger)


# ------------------------------------------------------------------------------------- invariant


def test_staking_balance_equals_staked_plus_unbonding(
    chain, market, staking, token, requester, provider, provider2, stranger, registered
):
    """ProviderStaking's header invariant holds through stakes, unbonding, withdrawals and a slash:
    its token balance is the sum of staked + unbonding, and locked <= staked for everyone."""
    everyone = (provider, provider2, stranger)

    def check():
        infos = [staking.getProvider(a) for a in everyone]
        assert token.balanceOf(staking.address) == sum(i.staked + i.unbonding for i in infos)
        assert all(i.locked <= i.staked for i in infos)

    staking.register(MIN_STAKE, ENDPOINT, CAPABILITY, sender=stranger)
    staking.stake(7 * TOKEN, sender=provider2)
    check()
    tx = staking.requestUnstake(40 * TOKEN, sender=provider2)
    post(market, requester)
    market.claimJob(1, sender=provider)
    check()
    chain.pending_timestamp = max(tx.timestamp + UNBONDING_DELAY, market.getJob(1).deadline + 1)
    staking.withdrawUnstaked(sender=provider2)
    market.timeoutJob(1, sender=stranger)  # slashes and burns provider's collateral
    check()
    assert staking.getProvider(provider).staked == STAKE - COLLATERAL
