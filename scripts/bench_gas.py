"""Gas benchmark: each job-market operation and the optimistic path, emissions off and on.

Run with `make bench-gas` (or `ape run bench_gas --network ethereum:local:foundry`). It deploys a
fresh set of contracts on the selected (local) network, walks jobs with a ~300-byte canonical spec
through post -> claim -> submit -> finalize, and prints the gas of every transaction. The first job
of a fresh deployment pays one-time costs (first credit of a provider's balance, first emission
epoch); the steady-state figure is the median over the following jobs.
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

OPS = ("postJob", "claimJob", "submitResult", "finalize")


def run_jobs(market, token, requester, provider, jobs: int, window: int) -> list[dict[str, int]]:
    rows = []
    for n in range(jobs):
        spec = example_spec(n)
        terms = (to_wei(1), 600, 60, window, 100, 60)
        gas = {}
        tx = market.postJob(keccak(spec), spec, terms, sender=requester)
        gas["postJob"] = tx.gas_used
        job_id = market.jobCount()
        gas["claimJob"] = market.claimJob(job_id, sender=provider).gas_used
        gas["submitResult"] = market.submitResult(
            job_id, keccak(b"result" + spec), f"http://provider.example:8700/results/{n:064x}", sender=provider
        ).gas_used
        chain.pending_timestamp += window + 1
        gas["finalize"] = market.finalize(job_id, sender=requester).gas_used
        gas["spec_bytes"] = len(spec)
        rows.append(gas)
    return rows


def summarize(label: str, rows: list[dict[str, int]]) -> int:
    first, rest = rows[0], rows[1:]
    steady = {op: int(statistics.median(r[op] for r in rest)) for op in OPS}
    total_first = sum(first[op] for op in OPS)
    total_steady = sum(steady.values())
    click.echo(f"\n== {label} (spec {rows[0]['spec_bytes']} bytes; {len(rows)} jobs) ==")
    click.echo(f"{'operation':<14}{'first job':>12}{'steady state':>15}")
    for op in OPS:
        click.echo(f"{op:<14}{first[op]:>12,}{steady[op]:>15,}")
    click.echo(f"{'TOTAL':<14}{total_first:>12,}{total_steady:>15,}")
    return total_steady


SCENARIOS = (
    # label, emissions on, requester pays from a prepaid deposit (else transferFrom per post)
    ("emissions off, reward from wallet", False, False),
    ("emissions off, reward from deposit", False, True),
    ("emissions on, reward from wallet", True, False),
)
TARGET = 250_000


@click.command(cls=ConnectedProviderCommand)
@click.option("--jobs", default=5, show_default=True, help="Jobs per scenario (>= 2).")
def cli(jobs: int) -> None:
    """Print the gas of post, claim, submit and finalize, emissions off and on."""
    if chain.chain_id not in (31337, 1337):
        raise click.UsageError("the gas benchmark deploys fresh contracts: run it on a local network")
    deployer, requester, provider = accounts.test_accounts[0:3]
    params = load_parameters(chain.chain_id)
    results = {}
    for label, emissions, from_deposit in SCENARIOS:
        c = deploy_contracts(deployer, params)
        token, staking, market = c["RewardToken"], c["ProviderStaking"], c["JobMarket"]
        if not emissions:
            market.setEmissionParams((0, 0, params.emission.epoch_length, 0), sender=deployer)
        token.mint(requester, to_wei(1_000), sender=deployer)
        token.mint(provider, to_wei(10_000), sender=deployer)
        token.approve(market.address, 2**256 - 1, sender=requester)
        token.approve(staking.address, 2**256 - 1, sender=provider)
        staking.register(to_wei(5_000), "http://provider.example:8700", b"\x00" * 32, sender=provider)
        if from_deposit:
            market.deposit(to_wei(500), sender=requester)
        results[label] = summarize(label, run_jobs(market, token, requester, provider, max(jobs, 2), 30))
    click.echo(f"\nTarget: optimistic path (post + claim + submit + finalize) <= {TARGET:,} gas, emissions off.")
    for label, total in results.items():
        verdict = "meets" if total <= TARGET else "misses"
        click.echo(f"  {label:<38} {total:>9,} gas  ({verdict} the target)")
