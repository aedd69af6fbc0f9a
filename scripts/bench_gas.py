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

A second series (`--withdraw-jobs`) walks the same path with the provider withdrawing its credit after
every finalize, as the executor does (`withdraw_threshold = 0`): the next finalize then writes the
provider's credit slot from zero (issue 15's target applies to this path). `--breakdown` traces one
steady-state job of that series (`debug_traceTransaction`) and splits each step's gas into the
intrinsic cost (21,000 + calldata), storage writes and reads (cold/warm, new slot or update), events,
external calls (inclusive, per callee), keccak and the rest; `--json F` writes every figure to F.

The market keeps jobs in a ring of `jobSlots` storage entries: a job reuses the three words of the
job `jobSlots` ids before it once that one has settled (`job_slots` in deployments/parameters.toml:
4,096 on the devnet). A deployment's first lap of the ring writes new storage; every later job
rewrites settled words, which is the steady state of a running market. The benchmark deploys with
`--job-slots` (default 20, the batch size, so that its ~150 jobs go round the ring several times)
and reports the first lap and the steady state (jobs after it) apart.

A third series (`--batches`, `--batch-size`, default 4 x 20) walks jobs through the batch calls:
postJobs, claimJobs, submitResults and, for the jobs the draw left alone, finalizeMany, with a
withdrawal after each batch; it prints each call's gas and the amortized gas per job (issue 15's
target: <= 130,000 in batches of 20), and with `--breakdown` splits one batch's calls by kind.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand
from ape.logging import logger
from eth_utils import keccak

from depin.deployment import load_parameters, to_wei
from depin.spec import example_spec
from depinctl.deploy import deploy_contracts

OPTIMISTIC = ("postJob", "claimJob", "submitResult", "finalize")
AUDITED = ("postJob", "claimJob", "submitResult", "beginVerification", "settle")
BASELINE = 263_878  # the pre-verification optimistic path (issue 10), wallet, emissions off
TARGET = BASELINE * 110 // 100  # +10 %
SINGLE_TARGET = 230_000  # issue 15: wallet, a withdrawal between jobs, emissions off
BATCH_TARGET = 130_000  # issue 15: amortized per job, batches of 20
BATCH_OPS = ("postJobs", "claimJobs", "submitResults", "finalizeMany")
PROVIDER_RIGHT = 1


def run_jobs(c: dict, requester, provider, jobs: int, window: int, withdraw: bool = False, first_n: int = 0) -> list[dict[str, Any]]:
    """Walks `jobs` jobs; with `withdraw` the provider withdraws its credit after each settlement.
    Each row holds the gas of every step and, under "tx", the transaction hashes (for traces)."""
    market, court = c["JobMarket"], c["VerificationCourt"]
    rows = []
    for n in range(first_n, first_n + jobs):
        spec = example_spec(n)
        terms = (to_wei(1), 600, 60, window, 400, 60, 0)
        gas: dict[str, Any] = {"n": n}
        txs: dict[str, str] = {}

        def record(op: str, receipt, gas: dict[str, Any] = gas, txs: dict[str, str] = txs) -> None:
            gas[op] = receipt.gas_used
            txs[op] = receipt.txn_hash

        tx = market.postJob(keccak(spec), spec, terms, sender=requester)
        record("postJob", tx)
        posted = tx.events.filter(market.JobPosted)[0]
        gas["fromCredit"], gas["auditBps"] = int(posted.fromCredit), int(posted.auditBps)
        job_id = market.jobCount()
        gas["job"] = job_id
        record("claimJob", market.claimJob(job_id, sender=provider))
        commitment = keccak(b"commitment" + spec)
        record(
            "submitResult",
            market.submitResult(job_id, commitment, f"http://provider.example:8700/results/{n:064x}", sender=provider),
        )
        chain.mine(2, deltatime=window + 1)  # past the challenge deadline and the anchor block
        if market.isDrawn(job_id):
            record("beginVerification", court.begin(job_id, sender=requester))
            record("settle", court.settle(job_id, PROVIDER_RIGHT, sender=requester))
        else:
            record("finalize", market.finalize(job_id, sender=requester))
        if withdraw and market.withdrawableOf(provider) > 0:
            gas["withdraw"] = market.withdraw(sender=provider).gas_used
        gas["tx"] = txs
        rows.append(gas)
    return rows


def run_batches(c: dict, requester, provider, batches: int, size: int, window: int, first_n: int) -> list[dict[str, Any]]:
    """Walks `batches` batches of `size` jobs through the batch calls: postJobs (escrow from the
    wallet in one transferFrom), claimJobs (one collateral lock), submitResults, then finalizeMany
    for the jobs the draw left alone once the window has closed (the executor reads `isDrawn` first
    too); the drawn jobs are settled through the court and not counted. The provider withdraws after each batch, as the executor does. Per batch:
    each call's gas, the jobs finalized, and the amortized gas per optimistic job (the three batch
    calls over all jobs plus finalizeMany over the jobs it finalized)."""
    market, court = c["JobMarket"], c["VerificationCourt"]
    rows = []
    for b in range(batches):
        first = first_n + b * size
        specs = [example_spec(n) for n in range(first, first + size)]
        terms = (to_wei(1), 600, 60, window, 400, 60, 0)
        row: dict[str, Any] = {"batch": b, "size": size}
        txs: dict[str, str] = {}
        tx = market.postJobs([(keccak(s), s, terms) for s in specs], sender=requester)
        row["postJobs"], txs["postJobs"] = tx.gas_used, tx.txn_hash
        row["fromCredit"] = int(sum(e.fromCredit for e in tx.events.filter(market.JobPosted)))
        last = market.jobCount()
        ids = list(range(last - size + 1, last + 1))
        row["first_job"] = ids[0]
        tx = market.claimJobs(ids, sender=provider)
        row["claimJobs"], txs["claimJobs"] = tx.gas_used, tx.txn_hash
        results = [
            (i, keccak(b"commitment" + s), f"http://provider.example:8700/results/{i:064x}") for i, s in zip(ids, specs, strict=True)
        ]
        tx = market.submitResults(results, sender=provider)
        row["submitResults"], txs["submitResults"] = tx.gas_used, tx.txn_hash
        chain.mine(2, deltatime=window + 1)
        # Like the executor (executor/beat.py): only the jobs the draw left alone go to finalizeMany.
        drawn = [i for i in ids if market.isDrawn(i)]
        tx = market.finalizeMany([i for i in ids if i not in drawn], sender=requester)
        row["finalizeMany"], txs["finalizeMany"] = tx.gas_used, tx.txn_hash
        row["tx"] = txs
        row["finalized"] = len(tx.events.filter(market.JobFinalized))
        for i in drawn:
            court.begin(i, sender=requester)
            court.settle(i, PROVIDER_RIGHT, sender=requester)
        if market.withdrawableOf(provider) > 0:
            row["withdraw"] = market.withdraw(sender=provider).gas_used
        row["per_job"] = (row["postJobs"] + row["claimJobs"] + row["submitResults"]) // size + row["finalizeMany"] // max(
            row["finalized"], 1
        )
        rows.append(row)
    return rows


def summarize_batches(rows: list[dict[str, Any]], slots: int) -> int | None:
    """Prints the batch series; returns the median amortized gas per optimistic job (batches after
    the first, of those past the ring's first lap)."""
    if not rows:
        return None
    rest = [r for r in rows[1:] if r["first_job"] > slots] or rows[1:] or rows
    size = rows[0]["size"]
    click.echo(f"\n== batch calls, {len(rows)} batches of {size} jobs (escrow from the wallet, provider withdraws after each batch) ==")
    click.echo(f"{'operation':<16}{'first batch':>14}{'steady (median)':>17}{'per job':>10}")
    for op in BATCH_OPS:
        steady = int(statistics.median(r[op] for r in rest))
        per = steady // (int(statistics.median(r["finalized"] for r in rest)) or 1) if op == "finalizeMany" else steady // size
        click.echo(f"{op:<16}{rows[0][op]:>14,}{steady:>17,}{per:>10,}")
    per_job = int(statistics.median(r["per_job"] for r in rest))
    click.echo(f"{'PER JOB':<16}{rows[0]['per_job']:>14,}{per_job:>17,}   (finalizeMany over the jobs it finalized)")
    return per_job


# What each opcode's gas goes to, at the top call frame (calls are counted inclusively, per callee).
_SSTORE_KIND = {
    22_100: "sstore new slot (cold)",
    20_000: "sstore new slot (warm)",
    5_000: "sstore update (cold)",
    2_900: "sstore update (warm)",
}


def breakdown(txn_hash: str, names: dict[str, str]) -> dict[str, int]:
    """Splits one transaction's gas by what it pays for (see the module doc); `names` maps lower-case
    addresses to contract names for the external calls. The parts add up to the gas used."""
    provider = chain.provider
    tx = provider.web3.eth.get_transaction(txn_hash)
    receipt = provider.web3.eth.get_transaction_receipt(txn_hash)
    data = bytes(tx["input"])
    calldata = sum(4 if b == 0 else 16 for b in data)
    trace = provider.make_request(
        "debug_traceTransaction",
        [txn_hash if isinstance(txn_hash, str) else txn_hash.hex(), {"disableMemory": True, "disableStorage": True}],
    )
    logs = trace["structLogs"]
    parts: Counter[str] = Counter({"intrinsic: 21,000 base": 21_000, "intrinsic: calldata": calldata})
    for i, step in enumerate(logs):
        if step["depth"] != 1:
            continue
        op = step["op"]
        if i + 1 < len(logs) and logs[i + 1]["depth"] > 1:
            # A call: its cost is the gas the frame had before it minus after it returns.
            after = next((s["gas"] for s in logs[i + 1 :] if s["depth"] == 1), step["gas"] - step["gasCost"])
            cost = step["gas"] - after
            target = "0x" + step["stack"][-2][2:].rjust(40, "0")[-40:]
            parts[f"call {names.get(target.lower(), target)}"] += cost
            continue
        cost = step["gasCost"]
        if op == "SSTORE":
            parts[_SSTORE_KIND.get(cost, "sstore other")] += cost
        elif op == "SLOAD":
            parts["sload cold" if cost >= 2_100 else "sload warm"] += cost
        elif op.startswith("LOG"):
            parts["events"] += cost
        elif op in ("KECCAK256", "SHA3"):
            parts["keccak"] += cost
        elif op in ("TLOAD", "TSTORE"):
            parts["reentrancy guard (transient)"] += cost
        else:
            parts["compute, memory, other"] += cost
    # The rest is the refund (negative) and anything the trace does not show.
    parts["refund"] = receipt["gasUsed"] - sum(parts.values())
    return {k: v for k, v in parts.items() if v}


def print_parts(title: str, parts: dict[str, dict[str, int]], ops: tuple[str, ...]) -> None:
    """One column per operation, one row per kind of cost (largest first), and the sum of each row."""
    click.echo(f"\n== {title} ==")
    keys = sorted({k for p in parts.values() for k in p}, key=lambda k: -sum(p.get(k, 0) for p in parts.values()))
    click.echo(f"{'':<34}" + "".join(f"{op:>14}" for op in ops) + f"{'sum':>10}")
    for k in keys:
        vals = [parts[op].get(k, 0) for op in ops]
        click.echo(f"{k:<34}" + "".join(f"{v:>14,}" for v in vals) + f"{sum(vals):>10,}")
    totals = [sum(parts[op].values()) for op in ops]
    click.echo(f"{'TOTAL':<34}" + "".join(f"{v:>14,}" for v in totals) + f"{sum(totals):>10,}")


def steady_rows(rows: list[dict[str, Any]], ops: tuple[str, ...], slots: int, wallet: bool = True) -> list[dict[str, Any]]:
    """The rows of one kind past the ring's first lap (their post rewrote a settled job's words)."""
    kind = [r for r in rows if ops[-1] in r and (r["fromCredit"] == 0) == wallet]
    return [r for r in kind[1:] if r["job"] > slots] or kind[1:] or kind


def summarize(
    label: str, rows: list[dict[str, Any]], ops: tuple[str, ...], slots: int, wallet: bool = True
) -> tuple[int | None, int | None]:
    """Prints one kind's first job, the median over the rest of the ring's first lap (new storage)
    and the steady state (median over the jobs after the first lap); returns (steady, first lap)."""
    kind = [r for r in rows if ops[-1] in r and (r["fromCredit"] == 0) == wallet]
    if not kind:
        click.echo(f"\n== {label}: no job of this kind in this run ==")
        return None, None
    first = kind[0]
    lap = [r for r in kind[1:] if r["job"] <= slots]
    rest = steady_rows(rows, ops, slots, wallet)
    steady = {op: int(statistics.median(r[op] for r in rest)) for op in ops}
    lap_gas = {op: int(statistics.median(r[op] for r in lap)) for op in ops} if lap else None
    click.echo(f"\n== {label} ({len(kind)} of {len(rows)} jobs; first is job {first['job']}) ==")
    click.echo(f"{'operation':<20}{'first':>12}{'first lap':>12}{'steady state':>15}")
    for op in ops:
        lap_text = f"{lap_gas[op]:>12,}" if lap_gas else f"{'-':>12}"
        click.echo(f"{op:<20}{first[op]:>12,}{lap_text}{steady[op]:>15,}")
    total = sum(steady.values())
    lap_total = sum(lap_gas.values()) if lap_gas else None
    lap_text = f"{lap_total:>12,}" if lap_total is not None else f"{'-':>12}"
    click.echo(f"{'TOTAL':<20}{sum(first[op] for op in ops):>12,}{lap_text}{total:>15,}")
    click.echo(f"(first lap: jobs 2-{slots} of the ring, new storage; steady state: {len(rest)} of the jobs after it)")
    return total, lap_total


@click.command(cls=ConnectedProviderCommand)
@click.option("--jobs", default=40, show_default=True, help="Jobs to walk (p_job ~ 0.31 of them are drawn).")
@click.option("--withdraw-jobs", default=24, show_default=True, help="Jobs of the second series (provider withdraws between jobs).")
@click.option("--batches", default=4, show_default=True, help="Batches of the batch-call series (0: none).")
@click.option("--batch-size", default=20, show_default=True, help="Jobs per batch.")
@click.option(
    "--job-slots",
    default=20,
    show_default=True,
    type=click.IntRange(1, 2**32 - 1),
    help="Entries of the market's job ring in this deployment (at least the batch size, so that a batch reuses the last one's).",
)
@click.option(
    "--breakdown/--no-breakdown",
    "with_breakdown",
    default=True,
    show_default=True,
    help="Trace one steady-state job of the withdrawal series and split each step's gas.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write every figure to this JSON file."
)
def cli(
    jobs: int, withdraw_jobs: int, batches: int, batch_size: int, job_slots: int, with_breakdown: bool, json_path: Path | None
) -> None:
    """Print the gas of the optimistic (undrawn) and the audited (drawn) paths."""
    if chain.chain_id not in (31337, 1337):
        raise click.UsageError("the gas benchmark deploys fresh contracts: run it on a local network")
    if batches > 0 and job_slots < batch_size:
        raise click.UsageError(f"--job-slots {job_slots} is below --batch-size {batch_size}: a batch would not fit in the ring")
    # ape logs a line per confirmed transaction (hundreds here) between the tables: warnings and
    # errors only, so that the printed figures are the output.
    logger.set_level("WARNING")
    deployer, requester, provider = accounts.test_accounts[0:3]
    params = load_parameters(chain.chain_id)
    params = params.model_copy(update={"market": params.market.model_copy(update={"job_slots": job_slots})})
    c = deploy_contracts(deployer, params, court_contract="TestCourt")
    token, staking, market = c["RewardToken"], c["ProviderStaking"], c["JobMarket"]
    token.mint(requester, to_wei(1_000), sender=deployer)
    token.mint(provider, to_wei(10_000), sender=deployer)
    token.approve(market.address, 2**256 - 1, sender=requester)
    token.approve(staking.address, 2**256 - 1, sender=provider)
    staking.register(to_wei(5_000), "http://provider.example:8700", b"\x00" * 32, sender=provider)
    window = max(params.market.min_challenge_window, 30)
    rows = run_jobs(c, requester, provider, max(jobs, 4), window)
    p_job = rows[0]["auditBps"] / 100  # from JobPosted: job 1's words are reused by now
    click.echo(f"court: {c['VerificationCourt'].contract_type.name}; p_job = {p_job:.2f} % at k = 4")
    click.echo(f"job ring: {int(market.jobSlots())} entries")
    optimistic, optimistic_lap = summarize("unaudited optimistic path (not drawn), escrow from the wallet", rows, OPTIMISTIC, job_slots)
    credit, _ = summarize("unaudited optimistic path (not drawn), escrow from the credit balance", rows, OPTIMISTIC, job_slots, wallet=False)
    audited, _ = summarize("audited path (drawn), escrow from the wallet, market side through the court", rows, AUDITED, job_slots)
    with_withdraw = None
    wrows: list[dict[str, Any]] = []
    if withdraw_jobs > 0:
        wrows = run_jobs(c, requester, provider, max(withdraw_jobs, 4), window, withdraw=True, first_n=len(rows))
        with_withdraw, _ = summarize(
            "unaudited optimistic path, escrow from the wallet, provider withdraws between jobs", wrows, OPTIMISTIC, job_slots
        )
        summarize(
            "unaudited optimistic path, escrow from the credit balance, provider withdraws between jobs",
            wrows,
            OPTIMISTIC,
            job_slots,
            wallet=False,
        )
    brows = run_batches(c, requester, provider, batches, batch_size, window, len(rows) + len(wrows)) if batches > 0 else []
    per_job = summarize_batches(brows, job_slots)
    parts: dict[str, dict[str, int]] = {}
    if with_breakdown and len(brows) > 1:
        names = {a.address.lower(): n for n, a in c.items() if hasattr(a, "address")}
        bparts = {op: breakdown(brows[1]["tx"][op], names) for op in BATCH_OPS}
        print_parts(f"where the gas goes: batch 1 ({batch_size} jobs), whole transactions", bparts, BATCH_OPS)
    if with_breakdown and wrows:
        steady = steady_rows(wrows, OPTIMISTIC, job_slots)
        if steady:
            names = {a.address.lower(): n for n, a in c.items() if hasattr(a, "address")}
            row = steady[len(steady) // 2]
            parts = {op: breakdown(row["tx"][op], names) for op in OPTIMISTIC}
            print_parts(f"where the gas goes: job {row['n']}, escrow from the wallet, provider withdraws between jobs", parts, OPTIMISTIC)
    click.echo(f"\nTarget: unaudited optimistic path <= {TARGET:,} gas (+10 % of {BASELINE:,}), wallet, rebate on.")
    if optimistic is not None:
        verdict = "meets" if optimistic <= TARGET else "MISSES"
        click.echo(f"  optimistic path   {optimistic:>9,} gas  ({(optimistic - BASELINE) / BASELINE:+.1%}; {verdict} the target)")
    if optimistic_lap is not None:
        verdict = "meets" if optimistic_lap <= TARGET else "MISSES"
        click.echo(f"  the ring's first lap (new storage) {optimistic_lap:>9,} gas  ({verdict} the target)")
    if audited is not None:
        click.echo(f"  audited path      {audited:>9,} gas per drawn job (market side; court transactions extra)")
    click.echo(f"Target (issue 15): optimistic path from the wallet with a withdrawal between jobs <= {SINGLE_TARGET:,} gas.")
    if with_withdraw is not None:
        verdict = "meets" if with_withdraw <= SINGLE_TARGET else "MISSES"
        click.echo(f"  with withdrawals  {with_withdraw:>9,} gas  ({verdict} the target by {abs(SINGLE_TARGET - with_withdraw):,})")
    click.echo(f"Target (issue 15): batch calls in batches of {batch_size}, amortized per job <= {BATCH_TARGET:,} gas.")
    if per_job is not None:
        verdict = "meets" if per_job <= BATCH_TARGET else "MISSES"
        click.echo(f"  batched           {per_job:>9,} gas per job  ({verdict} the target by {abs(BATCH_TARGET - per_job):,})")
    if json_path is not None:

        def strip(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in r.items() if k != "tx"} for r in rs]

        json_path.write_text(
            json.dumps(
                {
                    "job_slots": job_slots,
                    "optimistic_wallet": optimistic,
                    "optimistic_wallet_first_lap": optimistic_lap,
                    "optimistic_credit": credit,
                    "audited_wallet": audited,
                    "optimistic_wallet_withdraw": with_withdraw,
                    "single_target": SINGLE_TARGET,
                    "batch_per_job": per_job,
                    "batch_target": BATCH_TARGET,
                    "batch_size": batch_size,
                    "batches": [{k: v for k, v in r.items() if k != "tx"} for r in brows],
                    "breakdown": parts,
                    "jobs": strip(rows),
                    "withdraw_jobs": strip(wrows),
                },
                indent=2,
            )
            + "\n"
        )
