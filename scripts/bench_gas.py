"""Gas benchmark of the job market with the verification protocol (issue 11).

Run with `make bench` (or `ape run bench_gas --network ethereum:local:foundry`). It deploys a fresh
set of contracts (`depinctl.deploy.deploy_contracts`: BlockhashRandomness, JobMarket and the
TestCourt stand-in, which passes the market's court calls through) on the selected (local)
network and walks jobs with a ~300-byte canonical spec through post -> claim -> submit, then waits
out the challenge window (and the anchor block) and settles each job the way the protocol does:

- not drawn (probability 1 - p_job): `finalize` — the unaudited optimistic path. The provider is
  credited R + kappa*f*R (the rebate, always on: it is the protocol's emission), the rest of the
  fee accrues to pendingBurn, the audit fee is credited back to the requester;
- drawn: through the court, `beginVerification` + `settle(ProviderRight)`: the market's share of the
  audited path. VerificationCourt's own audit transactions (startAudit, commit, reveal,
  revealProvider, advance) come on top; this benchmark does not measure them.

The requester pays from its wallet (`transferFrom` per post) unless its credit balance (where the
audit-fee refunds of earlier jobs accumulate) covers the whole escrow; posts of each kind are
reported separately, and the target applies to wallet-paid ones. The first job of a fresh deployment pays
one-time costs (first credit of each balance, first pendingBurn accrual); the steady-state figure is
the median over the following jobs of each kind.
"""

from __future__ import annotations

import statistics

import click
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand
from eth_utils import keccak

from depin.deployment import load_parameters, to_wei
from depin.spec import example_spec
from depinctl.deploy import deploy_contracts

OPTIMISTIC = ("postJob", "claimJob", "submitResult", "finalize")
AUDITED = ("postJob", "claimJob", "submitResult", "beginVerification", "settle")
BASELINE = 263_878  # the pre-verification optimistic path (issue 10), wallet, emissions off
TARGET = BASELINE * 110 // 100  # +10 %
PROVIDER_RIGHT = 1


def run_jobs(c: dict, requester, provider, jobs: int, window: int) -> list[dict[str, int]]:
    market, court = c["JobMarket"], c["VerificationCourt"]
    rows = []
    for n in range(jobs):
        spec = example_spec(n)
        terms = (to_wei(1), 600, 60, window, 400, 60, 0)
        gas: dict[str, int] = {"n": n}
        tx = market.postJob(keccak(spec), spec, terms, sender=requester)
        gas["postJob"] = tx.gas_used
        gas["fromCredit"] = int(tx.events.filter(market.JobPosted)[0].fromCredit)
        job_id = market.jobCount()
        gas["claimJob"] = market.claimJob(job_id, sender=provider).gas_used
        commitment = keccak(b"commitment" + spec)
        gas["submitResult"] = market.submitResult(
            job_id, commitment, f"http://provider.example:8700/results/{n:064x}", sender=provider
        ).gas_used
        chain.mine(2, deltatime=window + 1)  # past the challenge deadline and the anchor block
        if market.isDrawn(job_id):
            gas["beginVerification"] = court.begin(job_id, sender=requester).gas_used
            gas["settle"] = court.settle(job_id, PROVIDER_RIGHT, sender=requester).gas_used
        else:
            gas["finalize"] = market.finalize(job_id, sender=requester).gas_used
        rows.append(gas)
    return rows


def summarize(label: str, rows: list[dict[str, int]], ops: tuple[str, ...], wallet: bool = True) -> int | None:
    kind = [r for r in rows if ops[-1] in r and (r["fromCredit"] == 0) == wallet]
    if not kind:
        click.echo(f"\n== {label}: no job of this kind in this run ==")
        return None
    first, rest = kind[0], kind[1:] or kind
    steady = {op: int(statistics.median(r[op] for r in rest)) for op in ops}
    click.echo(f"\n== {label} ({len(kind)} of {len(rows)} jobs; first is job {first['n']}) ==")
    click.echo(f"{'operation':<20}{'first':>12}{'steady state':>15}")
    for op in ops:
        click.echo(f"{op:<20}{first[op]:>12,}{steady[op]:>15,}")
    total = sum(steady.values())
    click.echo(f"{'TOTAL':<20}{sum(first[op] for op in ops):>12,}{total:>15,}")
    return total


@click.command(cls=ConnectedProviderCommand)
@click.option("--jobs", default=40, show_default=True, help="Jobs to walk (p_job ~ 0.31 of them are drawn).")
def cli(jobs: int) -> None:
    """Print the gas of the optimistic (undrawn) and the audited (drawn) paths."""
    if chain.chain_id not in (31337, 1337):
        raise click.UsageError("the gas benchmark deploys fresh contracts: run it on a local network")
    deployer, requester, provider = accounts.test_accounts[0:3]
    params = load_parameters(chain.chain_id)
    c = deploy_contracts(deployer, params, court_contract="TestCourt")
    token, staking, market = c["RewardToken"], c["ProviderStaking"], c["JobMarket"]
    token.mint(requester, to_wei(1_000), sender=deployer)
    token.mint(provider, to_wei(10_000), sender=deployer)
    token.approve(market.address, 2**256 - 1, sender=requester)
    token.approve(staking.address, 2**256 - 1, sender=provider)
    staking.register(to_wei(5_000), "http://provider.example:8700", b"\x00" * 32, sender=provider)
    window = max(params.market.min_challenge_window, 30)
    rows = run_jobs(c, requester, provider, max(jobs, 4), window)
    p_job = market.getJob(1).auditBps / 100
    click.echo(f"court: {c['VerificationCourt'].contract_type.name}; p_job = {p_job:.2f} % at k = 4")
    optimistic = summarize("unaudited optimistic path (not drawn), escrow from the wallet", rows, OPTIMISTIC)
    summarize("unaudited optimistic path (not drawn), escrow from the credit balance", rows, OPTIMISTIC, wallet=False)
    audited = summarize("audited path (drawn), escrow from the wallet, market side through the court", rows, AUDITED)
    click.echo(f"\nTarget: unaudited optimistic path <= {TARGET:,} gas (+10 % of {BASELINE:,}), wallet, rebate on.")
    if optimistic is not None:
        verdict = "meets" if optimistic <= TARGET else "MISSES"
        click.echo(f"  optimistic path   {optimistic:>9,} gas  ({(optimistic - BASELINE) / BASELINE:+.1%}; {verdict} the target)")
    if audited is not None:
        click.echo(f"  audited path      {audited:>9,} gas per drawn job (market side; court transactions extra)")
