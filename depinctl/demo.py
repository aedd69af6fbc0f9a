"""The demo: four scenarios of an honest marketplace on the local devnet, each with its token flows.

``depin demo`` (the README's first command, through ``make demo``) brings the devnet up if needed
(``depin devnet up``: a provider executor, a verifier pool of three staked verifiers, a canary), then
runs the scenarios chosen with ``--scenario`` (default ``all``), showing each step as it happens:

1. **honest**: a requester's checksum job from post to paid. The devnet's provider executor claims
   it, runs it in a hardened container, publishes the archive under an opaque name and submits a
   salted commitment. Then the draw: block ``anchor = submitBlock + D`` did not exist when the
   commitment was included; its randomness decides whether the job is audited (probability
   ``p_job``, fixed at post). Not drawn: the challenge window runs out and the job is finalized.
   Drawn: a verifier of the pool re-runs it, its sealed digest agrees and the court pays everyone.
   The job is posted with the SDK's defaults, so its result is sealed to the requester's key: the
   demo downloads the sealed archive, opens it with that key and checks it against the on-chain
   commitment.
2. **cheater**: the demo is a provider with no hardware (its own staked account). It claims jobs
   and commits to a made-up digest. Undrawn jobs pay it (it got away with those: printed); the
   first drawn one is audited by the pool, the audit disagrees, a jury of 3 confirms, the court
   rules ProviderWrong and the collateral is slashed. The expected value per job is printed.
3. **canary**: the demo is a lazy verifier staked in the court. When drawn for a job it asks the
   canary's off-chain endpoint for the digest instead of running the job, commits and reveals it;
   the canary reveals its garbage commitment, exposes the copy, and the lazy verifier loses σR of
   its stake. It then leaves the pool.
4. **wash**: two colluding accounts post, claim, submit and finalize jobs against each other (and
   cycle one through a no-fault failure) to farm emissions. The kappa*f*R rebate is a share of the
   fee f*R it came out of: the pair loses (1-kappa)*f*R per job plus both no-fault fees, every time.

Each scenario ends with its token flows: every party's wealth (wallet + market credit + provider
stake + court stake) before and after, and what left the parties (burned). Every wait has a
deadline; the exit status is non-zero with the reason when a step fails or times out. Escrow
amounts are read from the SDK (``client.params()``, ``client.job()``), never hard-coded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from depin.errors import DepinError

REQUESTER_ACCOUNT = 4
STEP_TIMEOUT = 120.0
OUTCOME_NAMES = {0: "None", 1: "ProviderRight", 2: "ProviderWrong", 3: "Split", 4: "Unaudited", 5: "Canary"}
OUTCOME_PROVIDER_WRONG = 2
OUTCOME_UNAUDITED = 4  # IMarketForCourt.Outcome.Unaudited
OUTCOME_CANARY = 5
PHASE_CONCLUDED = 4
POLL = 0.1
BPS = 10_000
SCENARIOS = ("honest", "cheater", "canary", "wash")  # the order `all` runs them in
SCENARIO_TITLES = {
    "honest": "Scenario 1: a job from post to paid",
    "cheater": "Scenario 2: a cheater caught by a drawn audit, a jury and a slash",
    "canary": "Scenario 3: a lazy verifier caught by a canary",
    "wash": "Scenario 4: an emission wash trade loses money",
}
RUN_ORDER = ("honest", "wash", "cheater", "canary")  # the lazy verifier last: it leaves the pool after
# The cheater posts until a job is drawn (3.2 jobs on average at p_job 0.31). The cap only bounds a
# broken draw: P(none of 64 drawn) = 0.69^64 ~ 5e-11. At 16 it was 0.27 %, and CI met it once.
CHEATER_MAX_JOBS = 64
# The lazy verifier copies only on a canary job that the canary claimed itself and whose audit seat
# it was drawn for: about p_job 0.3 x its stake share 0.99 x the canary's claims 0.84 = 0.25 per
# canary job (measured: 8 in 23 at this stake; 10 in 67 at the earlier 50,000, a share of 0.89,
# where the waits, 125 s on average, put the old 480 s bound's failures near 2 %). It looks at up to 64 canary jobs:
# P(none of them) = 0.75^64 ~ 1e-8.
CANARY_MAX_JOBS = 64
LAZY_STAKE = 500_000  # tokens: the pool's three verifiers stake 2,000 each
WASH_JOBS = 3
DEMO_ETHER = 100


class DemoFailed(DepinError):
    """A demo step failed or did not happen in time."""


def paid_for_other_jobs(finalized: list[dict[str, Any]], job_id: int) -> dict[str, dict[int, int]]:
    """What each provider (lower-case address) was credited per job by the ``JobFinalized`` events
    `finalized`, leaving out job `job_id`. The event's `payout` is everything credited (R plus the
    rebate); its `emission` is the rebate's part of it, not more on top."""
    paid: dict[str, dict[int, int]] = {}
    for e in finalized:
        if int(e["jobId"]) != job_id:
            paid.setdefault(str(e["provider"]).lower(), {})[int(e["jobId"])] = int(e["payout"])
    return paid


@dataclass
class Step:
    name: str
    started: float
    ended: float | None = None
    detail: str = ""
    tx: str | None = None
    gas: int | None = None

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started


@dataclass
class Flow:
    """One party's wealth before and after a scenario (base units)."""

    party: str
    address: str
    before: dict[str, int]
    after: dict[str, int] = field(default_factory=dict)

    @property
    def delta(self) -> int:
        return sum(self.after.values()) - sum(self.before.values())

    def part(self, name: str) -> int:
        return self.after.get(name, 0) - self.before.get(name, 0)


@dataclass
class Scenario:
    key: str
    title: str
    steps: list[Step] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    flows: list[Flow] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # machine-readable results (--json)
    opened_block: int = 0  # the chain's head when the flows were opened

    @property
    def left_parties(self) -> int:
        """What left the scenario's parties (burned, or paid to nobody listed): minus the deltas' sum."""
        return -sum(f.delta for f in self.flows)

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left", box=None, pad_edge=False)
        for column, justify in (("step", "left"), ("wall time", "right"), ("gas", "right"), ("", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for step in self.steps:
            gas = f"{step.gas:,}" if step.gas is not None else ""
            table.add_row(step.name, f"{step.seconds:.2f} s", gas, step.detail)
        return table

    def flow_table(self) -> Table:
        table = Table(title=f"token flows: {self.title}", title_justify="left", box=None, pad_edge=False)
        for column, justify in (("party", "left"), ("wallet + credit", "right"), ("provider stake", "right"),
                                ("court stake", "right"), ("net", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for f in self.flows:
            table.add_row(f"{f.party} {f.address[:10]}…", signed(f.part("wallet") + f.part("credit")),
                          signed(f.part("provider_stake")), signed(f.part("court_stake")), signed(f.delta))
        table.add_row("left the parties (burned)", "", "", "", signed(-self.left_parties))
        return table


def tokens(value: int) -> str:
    text = format(Decimal(value).scaleb(-18), "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " DPC"


def signed(value: int) -> str:
    return ("+" if value > 0 else "") + tokens(value) if value else "0"


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float = STEP_TIMEOUT, status: Any = None,
             label: Callable[[float], str] | None = None, poll: float = POLL) -> Any:
    """Polls `probe` until it returns something truthy; raises :class:`DemoFailed` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        if status is not None and label is not None:
            status.update(label(left))
        time.sleep(poll)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_console() -> Console:
    return Console(highlight=False)


def bps(amount: int, rate: int) -> int:
    """amount * rate / 10000, rounded down like the contracts."""
    return amount * rate // BPS


# ---------------------------------------------------------------------------------------- the run


class Demo:
    """The scenarios against one devnet; each step is printed as it completes."""

    def __init__(self, state_dir: Path | None, *, challenge_window: int, console: Console, timeout: float) -> None:
        from depinctl.devnet import Devnet  # lazy: start-up

        self.devnet = Devnet(state_dir)
        self.challenge_window = challenge_window
        self.console = console
        self.timeout = timeout
        self.scenarios: list[Scenario] = []

    # ------------------------------------------------------------------ plumbing

    def bring_up(self) -> None:
        started = time.monotonic()
        with self.console.status("bringing the devnet up (chain, Redis, container engine, contracts, indexer, executors)…"):
            report = self.devnet.up(say=lambda line: self.console.print(f"  [dim]{line}[/]"))
        missing = getattr(report, "not_wired", {}) or {}
        if missing:
            raise DemoFailed("the devnet is incomplete: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
        self.console.print(f"[green]✓[/] devnet up in {time.monotonic() - started:.1f} s  "
                           f"(RPC {self.devnet.rpc_url}, state in {self.devnet.dir})")
        from depin.accounts import dev_account  # lazy: start-up
        from depin.client import Client  # lazy: start-up
        from indexer.query import IndexerReader  # lazy: start-up

        self.client = Client.connect(self.devnet.rpc_url, self.devnet.deployment_file)
        self.dev = lambda n: self.client.with_account(dev_account(n, self.client.chain_id))
        self.reader = IndexerReader.for_deployment(self.devnet.redis_url, self.devnet.deployment_file)

    def actor(self, name: str, tokens_: int) -> Any:
        """A fresh account of the demo's own (a random key, kept in memory only), given ether for gas
        and `tokens_` base units by the devnet's faucet; its client."""
        from eth_account import Account  # lazy: start-up

        from depinctl.anvil import Anvil  # lazy: start-up
        from depinctl.devchain import DevChain  # lazy: start-up

        account = Account.create()
        Anvil(self.client.rpc).impersonate([account.address], ether=DEMO_ETHER)
        chain = DevChain.from_deployment_file(self.devnet.rpc_url, self.devnet.deployment_file)
        chain.fund([account.address], tokens_, approve=False)
        client = self.client.with_account(account)
        wait_for(f"{name}'s tokens", lambda: client.token_balance() >= tokens_, timeout=self.timeout)
        return client

    def wealth(self, address: str) -> dict[str, int]:
        """Everything `address` owns in the system: wallet, market credit, provider stake (free,
        locked as collateral and unbonding) and court stake (free, locked in bonds, unbonding)."""
        info = self.client.provider_info(address)
        verifier = self.client.read(self.client.contracts.verification_court.get_verifier(address))
        return {
            "wallet": self.client.token_balance(address),
            "credit": self.client.withdrawable(address),
            "provider_stake": info.staked + info.unbonding,
            "court_stake": int(verifier[2]) + int(verifier[3]) + int(verifier[4]),
        }

    def open_flows(self, sc: Scenario, parties: dict[str, str]) -> None:
        sc.opened_block = self.client.block_number()
        sc.flows = [Flow(name, address, self.wealth(address)) for name, address in parties.items()]

    def close_flows(self, sc: Scenario, *, seats: list[int] | None = None, job: int | None = None) -> None:
        """The parties' wealth after the scenario. With `job`, what a listed party was paid for
        other jobs finalized meanwhile gets a row of its own that takes it back out (the devnet's
        provider also wins the race to claim a canary job now and then: its pay is not this job's)."""
        for f in sc.flows:
            f.after = self.wealth(f.address)
        if job is not None:
            self.other_jobs_flows(sc, job)
        if seats:
            self.seat_flows(sc, seats)
        sc.facts["flows"] = {f.party: {"address": f.address, "delta": str(f.delta),
                                       **{k: str(f.part(k)) for k in f.before}} for f in sc.flows}
        sc.facts["left_parties"] = str(sc.left_parties)

    def other_jobs_flows(self, sc: Scenario, job_id: int) -> None:
        """Rows taking out what the scenario's parties were paid (``JobFinalized``'s payout) for jobs
        other than `job_id` since the flows were opened."""
        paid = paid_for_other_jobs(self.events("JobMarket", "JobFinalized", from_block=sc.opened_block), job_id)
        for f in list(sc.flows):
            others = paid.get(f.address.lower())
            if others:
                jobs = ", ".join(map(str, sorted(others)))
                sc.flows.append(Flow(f"{f.party} (other jobs)", f.address, {"wallet": 0}, {"wallet": -sum(others.values())}))
                sc.facts.setdefault("other_jobs", {})[f.party] = {"jobs": jobs, "paid": str(sum(others.values()))}

    def seat_flows(self, sc: Scenario, job_ids: list[int]) -> None:
        """Adds the court's payments to the verifiers who sat on `job_ids` (``SeatSettled``: paid to
        the wallet, a forfeited bond out of the court stake). From the events, not from balances: the
        pool audits the canary's jobs at the same time, so its balances move for other reasons too."""
        names = {a.lower(): n for n, a in self.pool().items()}
        seats: dict[str, Flow] = {}
        for job_id in job_ids:
            for e in self.events("VerificationCourt", "SeatSettled", job_id):
                who = str(e["verifier"])
                name = names.get(who.lower(), "verifier")
                f = seats.setdefault(who, Flow(f"{name} (seats)", who, {"wallet": 0, "court_stake": 0}, {"wallet": 0, "court_stake": 0}))
                f.after["wallet"] += int(e["paid"])
                f.after["court_stake"] -= int(e["bondForfeited"])
        sc.flows.extend(seats.values())

    def gas_of(self, tx: str | None) -> int | None:
        if not tx:
            return None
        receipt = self.client.rpc.call("eth_getTransactionReceipt", [tx])
        return int(receipt["gasUsed"], 16) if receipt else None

    def events(self, contract: str, event: str, job_id: int | None = None, from_block: int = 0) -> list[dict[str, Any]]:
        """The decoded `event`s of `contract` (for job `job_id`: the first indexed argument)."""
        from eth_abi import decode as abi_decode  # lazy: start-up
        from eth_utils import to_checksum_address  # lazy: start-up
        from eth_utils.abi import collapse_if_tuple  # lazy: start-up

        from depin.artifacts import load_abi  # lazy: start-up

        topics: list[Any] = ["0x" + self.client.codec.topics[(contract, event)].hex()]
        if job_id is not None:
            topics.append("0x" + int(job_id).to_bytes(32, "big").hex())
        first = max(from_block, self.client.deployment.deploy_block)
        logs = self.client.rpc.get_logs(first, self.client.block_number(), [self.client.addresses[contract]], topics)
        item = next(i for i in load_abi(contract) if i.get("type") == "event" and i["name"] == event)
        plain = [i for i in item["inputs"] if not i["indexed"]]
        indexed = [i for i in item["inputs"] if i["indexed"]]
        out = []
        for log in logs:
            data, log_topics = (log["data"], log["topics"]) if isinstance(log, dict) else (log.data, log.topics)
            values = abi_decode([collapse_if_tuple(i) for i in plain], bytes.fromhex(str(data).removeprefix("0x")))
            decoded = dict(zip((i["name"] for i in plain), values, strict=True))
            for i, topic in zip(indexed, log_topics[1:], strict=False):
                raw = bytes.fromhex(str(topic).removeprefix("0x"))
                decoded[i["name"]] = to_checksum_address(raw[-20:]) if i["type"] == "address" else (
                    int.from_bytes(raw, "big") if i["type"].startswith("uint") else raw)
            out.append(decoded)
        return out

    def indexed(self, job_id: int) -> Any:
        return self.reader.get_job(job_id)

    def record(self, sc: Scenario, step: Step) -> None:
        step.ended = step.ended or time.monotonic()
        sc.steps.append(step)
        self.print_step(step)

    def follow(self, scenario: Scenario, job_id: int, event: str, name: str, status: Any, *,
               detail: Callable[[Any, dict[str, Any]], str] = lambda job, entry: "",
               label: str | None = None, timeout: float | None = None, gas: bool = True) -> tuple[Any, dict[str, Any]]:
        """Waits until the indexed job's history has `event`; records it as step `name`."""
        step = Step(name, time.monotonic())
        status.update(label or f"waiting: {name}…")

        def probe() -> tuple[Any, dict[str, Any]] | None:
            job = self.indexed(job_id)
            if job is None:
                return None
            for entry in job.history:
                if entry.get("event") == event:
                    return job, entry
            if event == "ResultSubmitted" and job.extra.get("failure") == "1":
                raise DemoFailed(
                    f"the provider reported a failure for job {job_id} instead of a result: "
                    f"{job.extra.get('failureReason') or job.extra.get('failureCode')} (see the worker-compute log)"
                )
            if job.status in ("Cancelled", "Expired", "TimedOut") and event not in ("JobCancelled", "JobExpired"):
                raise DemoFailed(f"job {job_id} ended {job.status} while waiting for {event}")
            return None

        job, entry = wait_for(f"{event} of job {job_id}", probe, timeout=timeout or self.timeout)
        step.ended = time.monotonic()
        if gas:  # the step's own transaction (not for "indexed", which only observes one)
            step.tx = entry.get("tx")
            step.gas = self.gas_of(step.tx)
        step.detail = detail(job, entry)
        scenario.steps.append(step)
        self.print_step(step)
        return job, entry

    def print_step(self, step: Step) -> None:
        gas = f", gas {step.gas:,}" if step.gas is not None else ""
        self.console.print(f"[green]✓[/] {step.name:<22} {step.seconds:6.2f} s{gas}  {step.detail}")

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def countdown(self, deadline: int, status: Any) -> None:
        """Shows the challenge window running out (chain time: anvil stamps new blocks with the clock)."""
        wait_for("the challenge window to run out", lambda: self.client.block_timestamp() > deadline,
                 timeout=self.timeout, status=status,
                 label=lambda left: f"challenge window open: {max(0.0, deadline - time.time()):4.1f} s left (anyone may dispute the result)",
                 poll=0.2)

    def withdrawal_of(self, account: str, from_block: int) -> tuple[str, int] | None:
        """(tx, amount) of `account`'s first ``Withdrawn`` from the market at or after `from_block`."""
        topic = "0x" + self.client.codec.topics[("JobMarket", "Withdrawn")].hex()
        logs = self.client.rpc.call("eth_getLogs", [{
            "address": self.client.market, "fromBlock": hex(from_block), "toBlock": "latest",
            "topics": [topic, "0x" + "00" * 12 + account[2:].lower()],
        }])
        if not logs:
            return None
        return logs[0]["transactionHash"], int(logs[0]["data"], 16)

    def drawn(self, job_id: int) -> bool:
        """Waits for the job's anchor block and returns whether it was drawn for audit."""
        job = self.client.job(job_id)
        return bool(wait_for(f"the randomness of block {job.anchor_block}",
                             lambda: (d := self.client.is_drawn(job_id)) is not None and (d,), timeout=self.timeout)[0])

    def draw(self, sc: Scenario, job_id: int, status: Any) -> tuple[bool, str]:
        """Waits for the job's anchor block and reads the draw; records it as a step. Returns
        (drawn, one line explaining it)."""
        step = Step("draw", time.monotonic())
        job = self.client.job(job_id)
        p_job = job.audit_bps / 100
        status.update(f"waiting for anchor block {job.anchor_block} (its randomness decides the audit)…")
        drawn = self.drawn(job_id)
        step.ended = time.monotonic()
        verdict = "drawn for audit: a verifier of the pool re-runs it" if drawn else "not drawn: settles optimistically"
        explained = (f"p_job = {p_job:.2f} % (alpha*g/(g + lambda*k) at {job.collateral_pct} % collateral, fixed at post); "
                     f"anchor block {job.anchor_block} (submit block + D, mined after the commitment): {verdict}")
        step.detail = f"p_job {p_job:.1f} %, anchor block {job.anchor_block}: {'DRAWN' if drawn else 'not drawn'}"
        self.record(sc, step)
        return drawn, explained

    def nudge(self, job_id: int) -> None:
        """Moves the job's court case on when a deadline passed (``advance`` is anyone's to call;
        the pool's executors call it too): nothing when nothing is due."""
        from depin.transactions import TxReverted  # lazy: start-up

        try:
            self.dev(REQUESTER_ACCOUNT).send(self.client.contracts.verification_court.advance(job_id))
        except TxReverted:
            pass

    def court_story(self, job_id: int) -> list[str]:
        """One line per tallied round of the job's case."""
        lines = []
        for t in self.events("VerificationCourt", "RoundTallied", job_id):
            what = "audit" if t["round"] == 0 else f"jury round {t['round']} ({ {1: 3, 2: 7, 3: 15}.get(t['round'], '?') } seats)"
            lines.append(f"{what}: {t['revealed']} revealed, {t['forProvider']} reproduced the provider's digest, "
                         f"{t['forTop']} revealed 0x{bytes(t['topDigest']).hex()[:12]}… -> {OUTCOME_NAMES.get(t['tally'], t['tally'])}")
        return lines

    def settled(self, sc: Scenario, job_id: int, status: Any, drawn: bool) -> tuple[str, int]:
        """Waits for the job to be settled: finalized (not drawn) or settled by the court (drawn);
        records it. Returns (how, block)."""
        from depin.market import JobStatus  # lazy: start-up

        step = Step("finalized" if not drawn else "settled by the court", time.monotonic())
        start_block = self.client.block_number()  # the pay is credited, then withdrawn, after this
        status.update("waiting for finalization…" if not drawn else "a verifier of the pool re-runs the job; the court settles it…")
        stand_in = drawn and self.client.deployment.parameters.get("courtContract") == "TestCourt"
        if stand_in:
            # A deployment with the TestCourt stand-in cannot run the audit: the demo settles the
            # drawn job the way the real court does when no verifier takes it: Unaudited.
            from depinctl.devchain import DevChain  # lazy: start-up

            chain = DevChain.from_deployment_file(self.devnet.rpc_url, self.devnet.deployment_file)
            chain.transact(chain.deployer, "TestCourt", "begin", job_id)
            chain.transact(chain.deployer, "TestCourt", "settle", job_id, OUTCOME_UNAUDITED)

        def done() -> Any:
            job = self.client.job(job_id)
            if job.status.settled:
                return job
            if drawn and not stand_in:
                self.nudge(job_id)
            return None

        job = wait_for("the job to be settled", done, timeout=self.timeout * 2, poll=0.5)
        step.ended = time.monotonic()
        if job.status not in (JobStatus.FINALIZED, JobStatus.RESOLVED):
            raise DemoFailed(f"job {job_id} ended {job.status.label}")
        if job.status == JobStatus.FINALIZED:
            how = "finalized: R + the kappa*f*R rebate to the provider, A back to the requester"
        else:
            outcome = OUTCOME_NAMES.get(int(self.client.court_case(job_id).get("outcome", 0)), "?")
            how = (f"settled by the court: {outcome}" + (" (the TestCourt stand-in)" if stand_in else
                   ": the auditor's digest agreed, the provider is paid R + rebate, the auditor A"))
            if not stand_in and outcome != "ProviderRight":
                raise DemoFailed(f"the honest job {job_id} was settled {outcome}, not ProviderRight: "
                                 + "; ".join(self.court_story(job_id)))
        step.detail = how
        self.record(sc, step)
        return how, start_block

    def job_spec(self, text: str, name: str) -> Any:
        from depin.spec import InputSpec, JobSpec, Resources  # lazy: start-up

        folder = self.devnet.dir / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text)
        image = (self.devnet.state.get("images") or {}).get("checksum")
        if not image:
            raise DemoFailed("the devnet has no depin/checksum image recorded (devnet up did not build the sample images)")
        return JobSpec(
            image=image,
            command=["depin-checksum"],
            inputs=[InputSpec(path=name, uri=path.resolve().as_uri(), sha256=sha256_file(path))],
            resources=Resources(cpus=1, memory_mb=64, max_runtime=30, output_mb=1),
        )

    # ------------------------------------------------------------------ scenario 1: honest

    def honest(self) -> Scenario:
        from depin.deployment import to_wei  # lazy: start-up

        sc = Scenario("honest", SCENARIO_TITLES["honest"])
        self.scenarios.append(sc)
        requester = self.dev(REQUESTER_ACCOUNT)
        spec = self.job_spec(POEM, "poem.txt")
        reward = to_wei(1)
        provider_address = self.devnet.state.get("accounts", {}).get("provider_executor", {}).get("address")
        parties = {"requester": requester.address, **({"provider": provider_address} if provider_address else {})}
        self.open_flows(sc, parties)
        with self.console.status("posting the job…") as status:
            step = Step("posted", time.monotonic())
            posted = requester.post_job(spec, reward=reward, challenge_window=self.challenge_window)
            step.ended, step.tx, step.gas = time.monotonic(), posted.tx_hash, posted.gas_used
            posted_job = requester.job(posted.job_id)
            posted_fee, posted_audit = posted_job.fee, posted_job.audit_fee
            step.detail = (f"job {posted.job_id} by {requester.address[:10]}…, reward {tokens(reward)}; "
                           f"R + fee + audit fee = {tokens(posted_job.escrow)} escrowed")
            self.record(sc, step)
            job_id = posted.job_id
            self.follow(sc, job_id, "JobPosted", "indexed", status, label="waiting for the indexer…", gas=False,
                        detail=lambda job, e: f"block {e.get('block')}, spec valid: {job.spec_valid}")
            job, _ = self.follow(sc, job_id, "JobClaimed", "claimed", status, label="waiting for a provider to claim…",
                                 detail=lambda job, e: f"by provider {job.provider}, collateral {tokens(job.collateral or 0)} locked")
            provider = job.provider
            job, _ = self.follow(sc, job_id, "ResultSubmitted", "ran + submitted", status,
                                 label="running in a hardened container (no network, read-only root, capped)…",
                                 detail=lambda job, e: f"commitment 0x{str(job.extra.get('commitment', ''))[2:14]}… (salted: says nothing of the digest)")
            drawn, draw = self.draw(sc, job_id, status)
            if not drawn:
                step = Step("challenge window", time.monotonic())
                self.countdown(self.client.job(job_id).deadline, status)
                step.detail = f"{self.challenge_window} s, nobody disputed"
                self.record(sc, step)
            fin, settled_block = self.settled(sc, job_id, status, drawn)
            step = Step("withdrawn", time.monotonic())
            status.update("waiting for the provider to withdraw its pay…")
            found = wait_for("the provider's withdrawal", lambda: self.withdrawal_of(provider, settled_block),
                             timeout=self.timeout)
            step.ended, step.tx = time.monotonic(), found[0]
            step.gas = self.gas_of(found[0])
            step.detail = f"{tokens(found[1])} to the provider's wallet"
            self.record(sc, step)
            status.update("downloading the result and checking it against the chain…")
            out = self.devnet.dir / "demo" / f"result-{job_id}"
            shutil.rmtree(out, ignore_errors=True)  # the demo's own folder (a chain started afresh reuses ids)
            fetched = requester.download_result(job_id, out)  # sealed to the requester: opened, checked against the commitment
            result_text = (out / "result.txt").read_text().strip()
            expected = f"poem.txt {hashlib.sha256(POEM.encode()).hexdigest()} {len(POEM.split())}"
            if result_text != expected:
                raise DemoFailed(f"the job's output is {result_text!r}, expected {expected!r}")
        self.close_flows(sc, seats=[job_id] if drawn else None, job=job_id)
        total = sum(s.seconds for s in sc.steps)
        onchain = self.client.job(job_id)
        sc.facts.update(job=job_id, drawn=drawn, sealed=fetched.sealed, status=onchain.status.label, reward=str(onchain.reward), fee=str(posted_fee),
                        audit_fee=str(posted_audit), kappa_bps=self.client.params().kappa_bps, provider=provider)
        sc.summary = {
            "job id": str(job_id),
            "provider": provider,
            "escrowed at post": f"R {tokens(onchain.reward)} + fee {tokens(posted_fee)} + audit fee A {tokens(posted_audit)}",
            "the draw": draw,
            **({"the audit": "; ".join(self.court_story(job_id))} if drawn else {}),
            "result digest": "0x" + fetched.digest.hex() + " (revealed only by the archive itself)",
            "delivery": ("sealed to the requester's key (the SDK's default): only it opens the archive and its salt"
                         if fetched.sealed else "in the clear: anyone can read the archive"),
            "verified": f"the archive from {fetched.uri} with the salt beside it gives the on-chain commitment",
            "output": result_text,
            "paid": f"{tokens(found[1])} withdrawn by the provider ({fin})",
            "gas, all steps": f"{sum(s.gas or 0 for s in sc.steps):,}",
            "wall time": f"{total:.1f} s",
        }
        return sc

    def pool(self) -> dict[str, str]:
        """The devnet's verifier pool, name -> address (from devnet.json)."""
        accounts = self.devnet.state.get("accounts") or {}
        return {str(e.get("name") or f"verifier {e.get('index')}"): str(e["address"])
                for e in accounts.get("verifier_pool") or [] if isinstance(e, dict) and e.get("address")}

    # ------------------------------------------------------------------ scenario 4: wash trading

    def wash_spec(self, n: int) -> Any:
        """A verify-none job on an image nobody else holds (the devnet's executor never claims it):
        the pair's compute is a trivial job, priced at 0."""
        from depin.spec import JobSpec, Resources  # lazy: start-up

        fake = hashlib.sha256(b"depin-demo-wash").hexdigest()
        return JobSpec(image=f"depin/wash@sha256:{fake}", command=["true", str(n), secrets.token_hex(4)],
                       resources=Resources(cpus=1, memory_mb=16, max_runtime=5, output_mb=1), verify="none")

    def wash(self) -> Scenario:
        from depin.commitment import commitment, failure_digest, new_salt  # lazy: start-up
        from depin.deployment import to_wei  # lazy: start-up
        from depin.market import FailureCode, JobStatus  # lazy: start-up
        from depin.transactions import TxReverted  # lazy: start-up

        sc = Scenario("wash", SCENARIO_TITLES["wash"])
        self.scenarios.append(sc)
        reward = to_wei(1)
        with self.console.status("funding two colluding accounts…") as status:
            alice = self.actor("the wash requester", to_wei(100))
            bob = self.actor("the wash provider", to_wei(1_000))
            step = Step("pair set up", time.monotonic())
            receipt = bob.register(to_wei(500), "http://127.0.0.1:1/wash")
            step.tx, step.gas = receipt.tx_hash, receipt.gas_used
            step.detail = f"requester {alice.address[:10]}… and provider {bob.address[:10]}… (500 DPC staked): one owner"
            self.record(sc, step)
            self.open_flows(sc, {"wash requester": alice.address, "wash provider": bob.address})
            p = self.client.params()
            jobs: list[int] = []

            def submit(job_id: int) -> None:
                salt = new_salt()
                bob.submit_result(job_id, commitment(bob.address, job_id, hashlib.sha256(b"trivial %d" % job_id).digest(), salt),
                                  f"http://127.0.0.1:1/results/{secrets.token_hex(32)}")

            expected_loss = 0
            for n in range(WASH_JOBS):
                step = Step(f"wash job {n + 1}", time.monotonic())
                posted = alice.post_job(self.wash_spec(n), reward=reward, challenge_window=self.challenge_window)
                bob.claim(posted.job_id)
                submit(posted.job_id)
                job = self.client.job(posted.job_id)
                fee = bps(reward, p.fee_bps)
                rebate = bps(fee, p.kappa_bps)
                expected_loss += fee - rebate
                step.detail = (f"job {posted.job_id}: posted, claimed, submitted by the pair (verify none, p_job {job.audit_bps / 100:g} %); "
                               f"fee f*R {tokens(fee)} in, rebate kappa*f*R {tokens(rebate)} back: {tokens(fee - rebate)} burned")
                self.record(sc, step)
                jobs.append(posted.job_id)
            # one job through a no-fault failure first: both sides pay the no-fault fee, nothing is emitted
            step = Step("no-fault cycle", time.monotonic())
            posted = alice.post_job(self.wash_spec(WASH_JOBS), reward=reward, challenge_window=self.challenge_window)
            bob.claim(posted.job_id)
            code = FailureCode.IMAGE_UNAVAILABLE
            bob.submit_failure(posted.job_id, code, commitment(bob.address, posted.job_id, failure_digest(int(code)), new_salt()))
            reopened = self.client.job(posted.job_id)
            if reopened.status != JobStatus.OPEN:
                raise DemoFailed(f"the no-fault failure left job {posted.job_id} {reopened.status.label}, not reopened")
            nf = bps(reward, p.no_fault_fee_bps)
            requester_nf = bps(reward, p.fee_bps) - bps(reward, p.fee_bps - p.no_fault_fee_bps)
            reduced_fee = bps(reward, p.fee_bps - p.no_fault_fee_bps)
            expected_loss += nf + requester_nf + reduced_fee - bps(reduced_fee, p.kappa_bps)
            bob.claim(posted.job_id)
            submit(posted.job_id)
            step.detail = (f"job {posted.job_id}: an availability failure (ImageUnavailable) reopened it; provider fee {tokens(nf)} "
                           f"+ requester fee {tokens(requester_nf)} burned; re-claimed and submitted")
            self.record(sc, step)
            jobs.append(posted.job_id)
            step = Step("finalized", time.monotonic())
            last = max(self.client.job(j).deadline for j in jobs)
            self.countdown(last, status)
            for j in jobs:
                if not self.client.job(j).status.settled:
                    try:
                        bob.finalize(j)
                    except TxReverted as exc:
                        if exc.error_name != "WrongStatus":
                            raise
            finals = [self.client.job(j) for j in jobs]
            if any(f.status != JobStatus.FINALIZED for f in finals):
                raise DemoFailed("wash jobs did not finalize: " + ", ".join(f"{f.job_id} {f.status.label}" for f in finals))
            emitted = sum(e["emission"] for j in jobs for e in self.events("JobMarket", "JobFinalized", j))
            step.detail = f"{len(jobs)} jobs finalized; emission (the rebates) {tokens(emitted)} in total"
            self.record(sc, step)
        self.close_flows(sc)
        net = sum(f.delta for f in sc.flows)
        sc.facts.update(jobs=jobs, expected_loss=str(expected_loss), pair_net=str(net), emitted=str(emitted),
                        fee_bps=p.fee_bps, kappa_bps=p.kappa_bps, no_fault_fee_bps=p.no_fault_fee_bps)
        if net != -expected_loss:
            raise DemoFailed(f"the pair's wealth moved by {tokens(net)}, expected -{tokens(expected_loss)} (conservation broken)")
        per_job = bps(reward, p.fee_bps) - bps(bps(reward, p.fee_bps), p.kappa_bps)
        sc.summary = {
            "the pair": f"{alice.address} posts, {bob.address} claims: the same owner",
            "per job": (f"fee f*R = {tokens(bps(reward, p.fee_bps))} paid, rebate kappa*f*R = {tokens(bps(bps(reward, p.fee_bps), p.kappa_bps))} "
                        f"earned (kappa = {p.kappa_bps / BPS:g} < 1, a hard bound in the contract): the pair loses (1-kappa)*f*R = {tokens(per_job)}"),
            "no-fault cycle": f"both sides pay {p.no_fault_fee_bps / 100:g} % of R, burned; no emission",
            "the pair's net": f"{signed(net)} over {len(jobs)} jobs (expected -{tokens(expected_loss)}: every token that left the pair was burned)",
            "why": "emissions are a share of the fee burned by the same job, so wash volume only burns money, at any volume",
        }
        return sc

    # ------------------------------------------------------------------ scenario 2: the cheater

    def cheater(self) -> Scenario:
        from depin.commitment import commitment, new_salt  # lazy: start-up
        from depin.deployment import to_wei  # lazy: start-up
        from depin.market import JobStatus  # lazy: start-up
        from depin.transactions import TxReverted  # lazy: start-up

        sc = Scenario("cheater", SCENARIO_TITLES["cheater"])
        self.scenarios.append(sc)
        reward = to_wei(1)
        with self.console.status("setting up the cheater…") as status:
            cheat = self.actor("the cheater", to_wei(2_000))
            requester = self.actor("the cheater's requester", to_wei(200))
            step = Step("cheater registered", time.monotonic())
            receipt = cheat.register(to_wei(1_000), "http://127.0.0.1:1/cheater")
            step.tx, step.gas = receipt.tx_hash, receipt.gas_used
            step.detail = f"provider {cheat.address[:10]}… with 1000 DPC staked and no hardware: it never runs a job"
            self.record(sc, step)
            self.open_flows(sc, {"cheater": cheat.address, "requester": requester.address})
            undrawn: list[int] = []
            caught: int | None = None
            secrets_: dict[int, tuple[bytes, bytes]] = {}
            for n in range(CHEATER_MAX_JOBS):
                spec = self.job_spec(f"cheater job {n} {secrets.token_hex(8)}\n", f"cheat-{n}.txt")
                step = Step(f"cheat job {n + 1}", time.monotonic())
                # the submit window is the bare runtime: the devnet's provider wants 5 s more and leaves it to the cheater
                posted = requester.post_job(spec, reward=reward, challenge_window=self.challenge_window,
                                            max_runtime=spec.resources.max_runtime)
                job_id = posted.job_id
                try:
                    cheat.claim(job_id)
                except TxReverted as exc:
                    step.detail = f"job {job_id}: someone else claimed it first ({exc.error_name}); next"
                    self.record(sc, step)
                    continue
                made_up, salt = hashlib.sha256(b"made up %d" % job_id).digest(), new_salt()
                secrets_[job_id] = (made_up, salt)
                cheat.submit_result(job_id, commitment(cheat.address, job_id, made_up, salt),
                                    f"http://127.0.0.1:1/results/{secrets.token_hex(32)}")
                status.update(f"job {job_id}: waiting for its draw…")
                job = self.client.job(job_id)
                if self.drawn(job_id):
                    caught = job_id
                    step.detail = (f"job {job_id}: committed to a made-up digest 0x{made_up.hex()[:12]}…; p_job {job.audit_bps / 100:.1f} %: "
                                   "DRAWN for audit")
                    self.record(sc, step)
                    break
                undrawn.append(job_id)
                step.detail = (f"job {job_id}: committed to a made-up digest; p_job {job.audit_bps / 100:.1f} %: not drawn: "
                               "the cheater gets away with this one")
                self.record(sc, step)
            if caught is None:
                raise DemoFailed(f"none of {CHEATER_MAX_JOBS} cheater jobs was drawn for audit (p_job ~ 0.3: about 5e-11 by chance; is the randomness source broken?)")
            job = self.client.job(caught)
            step = Step("caught", time.monotonic())
            made_up, salt = secrets_[caught]
            revealed = False

            def progress() -> Any:
                nonlocal revealed
                case = self.client.court_case(caught)
                if not revealed and int(case.get("phase", 0)) == 1 and int(case.get("committed", 0)) > 0 and not case.get("providerRevealed"):
                    try:
                        cheat.send(self.client.contracts.verification_court.reveal_provider(caught, made_up, salt))
                        revealed = True
                    except TxReverted as exc:
                        if exc.error_name == "AlreadyRevealed":
                            revealed = True
                j = self.client.job(caught)
                if j.status.settled:
                    return j
                self.nudge(caught)
                rounds = self.court_story(caught)
                status.update("the court: " + (rounds[-1] if rounds else f"a pool verifier audits job {caught}…"))
                return None

            final = wait_for(f"the court to settle job {caught}", progress, timeout=self.timeout * 3, poll=0.5)
            case = self.client.court_case(caught)
            outcome = int(case.get("outcome", 0))
            story = self.court_story(caught)
            if outcome != OUTCOME_PROVIDER_WRONG or final.status != JobStatus.RESOLVED:
                raise DemoFailed(f"job {caught} ended {final.status.label} / {OUTCOME_NAMES.get(outcome, outcome)}, not ProviderWrong: "
                                 + "; ".join(story))
            settled = self.events("JobMarket", "JobSettled", caught)
            concluded = self.events("VerificationCourt", "CaseConcluded", caught)
            step.detail = (f"job {caught}: " + " -> ".join(story) + f"; collateral {tokens(job.collateral)} slashed")
            self.record(sc, step)
            # the undrawn jobs pay the cheater once their challenge windows are over
            step = Step("undrawn jobs paid", time.monotonic())
            if undrawn:
                self.countdown(max(self.client.job(j).deadline for j in undrawn), status)
                for j in undrawn:
                    if not self.client.job(j).status.settled:
                        try:
                            cheat.finalize(j)
                        except TxReverted as exc:
                            if exc.error_name != "WrongStatus":
                                raise
            paid = sum(e["payout"] for j in undrawn for e in self.events("JobMarket", "JobFinalized", j))
            step.detail = f"{len(undrawn)} undrawn job(s) paid the cheater {tokens(paid)} for no work"
            self.record(sc, step)
        self.close_flows(sc, seats=[caught])
        p_job = job.audit_bps / BPS
        params = self.client.params()
        g = 1 + params.kappa_bps / BPS * params.fee_bps / BPS
        k = job.collateral_pct / 100
        ev = (1 - p_job) * g - p_job * k
        cheater_flow = next(f for f in sc.flows if f.party == "cheater")
        sc.facts.update(caught=caught, undrawn=undrawn, collateral=str(job.collateral), paid_undrawn=str(paid),
                        outcome=OUTCOME_NAMES[outcome], p_job=p_job, ev_per_job_R=ev, fee_bps=params.fee_bps,
                        kappa_bps=params.kappa_bps, reward=str(reward),
                        settled=[{k2: str(v) for k2, v in e.items()} for e in settled],
                        concluded=[{k2: str(v) for k2, v in e.items()} for e in concluded])
        sc.summary = {
            "jobs": f"{len(undrawn) + 1} claimed by the cheater, {len(undrawn)} undrawn (paid {tokens(paid)}), job {caught} drawn",
            "the court": "; ".join(story),
            "slashed": f"{tokens(job.collateral)} of collateral (k = {k:g} R): to the auditor, the jury and the burn",
            "the cheater's net": (f"{signed(cheater_flow.delta)} this run ({len(undrawn)} undrawn job(s) before the drawn one: "
                                  f"{'lucky' if cheater_flow.delta > 0 else 'the usual'}; each job is drawn independently)"),
            "EV per job": (f"(1-p)*g*R - p*k*R = (1-{p_job:.3f})*{g:g} - {p_job:.3f}*{k:g} = {ev:+.3f} R < 0: "
                           "the undrawn jobs it got away with do not pay for the drawn one, in expectation"),
        }
        return sc

    # ------------------------------------------------------------------ scenario 3: the lazy verifier

    def canary(self) -> Scenario:
        from depin.commitment import new_salt, seat_commitment  # lazy: start-up
        from depin.deployment import to_wei  # lazy: start-up
        from depin.market import JobStatus  # lazy: start-up
        from depin.transactions import TxReverted  # lazy: start-up

        sc = Scenario("canary", SCENARIO_TITLES["canary"])
        self.scenarios.append(sc)
        port = int(self.devnet.ports.get("canary", 0))
        canary_address = (self.devnet.state.get("accounts") or {}).get("canary", {}).get("address")
        if not port or not canary_address:
            raise DemoFailed("the devnet runs no canary (no 'canary' port or account in devnet.json); `depin devnet up` again")
        court = self.client.contracts.verification_court
        stake = to_wei(LAZY_STAKE)
        with self.console.status("the lazy verifier joins the court…") as status:
            lazy = self.actor("the lazy verifier", stake + to_wei(100))
            self.open_flows(sc, {"lazy verifier": lazy.address})  # the canary operator posts other jobs meanwhile
            step = Step("lazy verifier staked", time.monotonic())
            lazy.approve("VerificationCourt", stake)
            receipt = lazy.send(court.join(stake, 0))
            step.tx, step.gas = receipt.tx_hash, receipt.gas_used
            joined_block = receipt.block_number
            delay = int(self.client.court_params().get("activationDelayBlocks", 1))
            wait_for("the stake to become active", lambda: self.client.block_number() > joined_block + delay + 1, timeout=self.timeout)
            class_total = int(self.client.read(court.class_stake_at(0, self.client.block_number())))
            share = stake / class_total if class_total else 0.0
            step.detail = (f"{lazy.address[:10]}… staked {tokens(stake)} in platform class 0 ({share:.1%} of its stake: "
                           "it is drawn for most audits); it will never run a job")
            self.record(sc, step)
            try:
                seen: set[int] = set()
                looked: set[int] = set()  # canary jobs whose draw and seat were read
                target: tuple[int, bytes] | None = None
                declined = 0
                canary_lower = str(canary_address).lower()
                progress = [0, time.monotonic()]  # the job count, when it last grew
                stall = self.timeout * 4
                from depinctl.devnet import CANARY_INTERVAL  # lazy: start-up

                def bait(job_id: int) -> bytes | None:
                    from depin.fetch import FetchError, download_and_hash  # lazy: start-up

                    buffer = io.BytesIO()
                    try:
                        download_and_hash(f"http://127.0.0.1:{port}/canary/{job_id}", buffer, max_bytes=1024, timeout=5)
                        return bytes.fromhex(buffer.getvalue().decode().strip().removeprefix("0x"))
                    except (FetchError, ValueError):
                        return None

                def drawn_job() -> tuple[int, bytes] | None:
                    nonlocal declined
                    count = int(self.client.read(self.client.contracts.job_market.job_count()))
                    if count > progress[0]:
                        progress[:] = [count, time.monotonic()]
                    elif time.monotonic() - progress[1] > stall:
                        raise DemoFailed(f"no job was posted for {stall:.0f} s (the canary posts one every {CANARY_INTERVAL} s): "
                                         "is the devnet's canary running? (`depin devnet status`)")
                    if len(looked) >= CANARY_MAX_JOBS:
                        raise DemoFailed(f"the lazy verifier was not drawn for any of {len(looked)} canary jobs (about 1e-8 by "
                                         "chance): is the randomness source broken?")
                    status.update(f"the lazy verifier waits to be drawn for a canary job ({len(looked)} looked at; "
                                  f"the canary posts one every {CANARY_INTERVAL} s)…")
                    for job_id in range(max(1, count - 12), count + 1):
                        if job_id in seen:
                            continue
                        job = self.client.job(job_id)
                        if job.status != JobStatus.SUBMITTED:
                            continue
                        drawn = self.client.is_drawn(job_id)
                        if drawn is None:
                            continue
                        if job.requester.lower() == canary_lower:
                            looked.add(job_id)
                        if not drawn:
                            seen.add(job_id)
                            continue
                        try:
                            who = self.client.read(court.drawn_for(job_id, 0, 0))
                        except TxReverted:
                            continue  # not readable yet: asked again at the next poll
                        seen.add(job_id)  # only once the seat's verifier was read: a job is never skipped unread
                        if str(who).lower() != lazy.address.lower():
                            continue
                        if job.requester.lower() != canary_lower or (job.provider or "").lower() != canary_lower:
                            # The bait answers every job id; on a real job the copy would disagree with the
                            # provider's digest and lose the seat's bond to a jury instead. The demo shows
                            # the canary's catch, so its lazy verifier copies only on jobs the canary both
                            # posted and claimed (the devnet's provider sometimes claims a canary job first:
                            # then it is a real job, run honestly).
                            declined += 1
                            self.say(f"drawn for job {job_id}, not a canary job: copying the bait there would disagree with "
                                     "the provider and lose the bond to a jury; the demo's lazy verifier lets the seat go")
                            continue
                        digest = bait(job_id)
                        if digest is None:
                            seen.discard(job_id)  # the bait server did not answer: asked again at the next poll
                            continue
                        return job_id, digest
                    return None

                step = Step("drawn, copied", time.monotonic())
                # bounded by the canary jobs looked at and by the job count's progress (drawn_job),
                # not by a time: one draw in four is the lazy verifier's, minutes apart at worst
                target = wait_for("the lazy verifier to be drawn for a job the bait answers", drawn_job, timeout=math.inf, poll=0.3)
                job_id, digest = target
                lazy.send(court.start_audit(job_id))
                salt = new_salt()
                lazy.send(court.commit(job_id, 0, seat_commitment(lazy.address, job_id, 0, 0, digest, salt)))
                step.detail = (f"drawn for job {job_id}: asked http://127.0.0.1:{port}/canary/{job_id} for the digest "
                               f"(0x{digest.hex()[:12]}…) instead of running the job; took the seat and committed it")
                self.record(sc, step)
                step = Step("revealed", time.monotonic())

                def reveal() -> bool:
                    try:
                        lazy.send(court.reveal(job_id, 0, digest, salt))
                        return True
                    except TxReverted as exc:
                        if exc.error_name == "AlreadyRevealed":
                            return True
                        if exc.error_name != "RevealNotOpen":
                            raise DemoFailed(f"the lazy verifier's reveal failed: {exc.error_name}") from None
                        self.nudge(job_id)
                        return False

                wait_for("the reveal phase", reveal, timeout=self.timeout, poll=0.5)
                step.detail = "the copied digest is revealed: it 'agrees' with the provider's"
                self.record(sc, step)
                step = Step("exposed, slashed", time.monotonic())

                def exposed() -> Any:
                    case = self.client.court_case(job_id)
                    if int(case.get("phase", 0)) == PHASE_CONCLUDED:
                        return case
                    status.update("the canary reveals its commitment and exposes the copy within the canary window…")
                    self.nudge(job_id)
                    return None

                case = wait_for(f"the canary to expose job {job_id}", exposed, timeout=self.timeout * 2, poll=0.5)
                outcome = int(case.get("outcome", 0))
                slashes = [e for e in self.events("VerificationCourt", "VerifierSlashed", from_block=joined_block)  # indexed: verifier, jobId
                           if e["verifier"].lower() == lazy.address.lower() and int(e["jobId"]) == job_id]
                if outcome != OUTCOME_CANARY or not slashes:
                    raise DemoFailed(f"job {job_id} concluded {OUTCOME_NAMES.get(outcome, outcome)} and the lazy verifier was "
                                     f"{'slashed' if slashes else 'not slashed'}; expected Canary and a slash")
                slashed = sum(int(e["amount"]) for e in slashes)
                sigma = int(self.client.court_params().get("canarySlashMul", 0))
                step.detail = f"outcome Canary: {tokens(slashed)} of the lazy verifier's stake burned (sigma = {sigma} x R)"
                self.record(sc, step)
            except BaseException:
                self.leave(lazy)  # never leave a verifier that does not run jobs in the pool
                raise
            step = Step("lazy verifier leaves", time.monotonic())
            free, step.tx = self.leave(lazy)
            step.gas = self.gas_of(step.tx)
            step.detail = f"its remaining {tokens(free)} unbonds: the pool is the honest verifiers again"
            self.record(sc, step)
        self.close_flows(sc)
        reward = self.client.job(job_id).reward
        sc.facts.update(job=job_id, outcome=OUTCOME_NAMES[outcome], slashed=str(slashed), sigma=sigma, reward=str(reward),
                        declined=declined, lazy=lazy.address, looked=len(looked), share=share)
        sc.summary = {
            "the bait": f"the canary operator answered job {job_id} with a garbage commitment and hands its digest to anyone who asks",
            "the lazy verifier": f"copied it instead of running the job (it let {declined} drawn real job(s) go: copying there loses the bond to a jury)",
            "slashed": f"{tokens(slashed)} = sigma*R with sigma = {sigma}, R = {tokens(reward)} (an honest run never matches: 2^-256)",
            "why": "copying is caught with the canary rate phi per job at sigma*R each: running the job is the verifier's best strategy",
        }
        return sc

    def leave(self, verifier: Any) -> tuple[int, str | None]:
        """Unbonds all of `verifier`'s free court stake (it leaves the pool); (amount, tx)."""
        from depin.transactions import TxReverted  # lazy: start-up

        court = self.client.contracts.verification_court
        free = int(self.client.read(court.get_verifier(verifier.address))[2])
        if not free:
            return 0, None
        try:
            return free, verifier.send(court.request_leave(free)).tx_hash
        except TxReverted as exc:
            self.say(f"(request_leave refused: {exc.error_name})")
            return 0, None

    # ------------------------------------------------------------------ summary

    def print_summary(self) -> None:
        for sc in self.scenarios:
            self.console.print()
            self.console.print(sc.table())
            for key, value in sc.summary.items():
                self.console.print(f"  [bold]{key}:[/] {value}")
            if sc.flows and all(f.after for f in sc.flows):
                self.console.print(sc.flow_table())
        if any(sc.flows and all(f.after for f in sc.flows) for sc in self.scenarios):
            table = Table(title="token flows per scenario", title_justify="left", box=None, pad_edge=False)
            for column, justify in (("scenario", "left"), ("party", "left"), ("net", "right")):
                table.add_column(column, justify=justify)  # type: ignore[arg-type]
            for sc in self.scenarios:
                if not (sc.flows and all(f.after for f in sc.flows)):
                    continue
                for f in sc.flows:
                    table.add_row(sc.key, f.party, signed(f.delta))
                table.add_row(sc.key, "burned (left the parties)", signed(-sc.left_parties))
            self.console.print()
            self.console.print(table)


POEM = "so much depends\nupon\na red wheel\nbarrow\nglazed with rain\nwater\nbeside the white\nchickens\n"


def choose(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The scenarios to run, in run order, from ``--scenario`` values (``all`` or names); ValueError
    for an unknown name."""
    wanted: set[str] = set()
    for name in names or ("all",):
        if name == "all":
            wanted.update(SCENARIOS)
        elif name in SCENARIOS:
            wanted.add(name)
        else:
            raise ValueError(f"unknown scenario {name!r}: choose all, {', '.join(SCENARIOS)}")
    return tuple(s for s in RUN_ORDER if s in wanted)


def run(state_dir: Path | None = None, *, challenge_window: int = 10, timeout: float = STEP_TIMEOUT,
        scenarios: tuple[str, ...] = SCENARIOS, console: Console | None = None, json_path: Path | None = None) -> int:
    """Runs the demo; returns the exit status (0: every step happened and checked out)."""
    from depinctl.devnet import Devnet  # lazy: start-up

    console = console or make_console()
    started = time.monotonic()
    try:
        devnet = Devnet(state_dir)
    except DepinError as exc:  # its state file unreadable, say: as any step's failure
        console.print(f"[red]✗ demo failed:[/] {exc}")
        return 1
    with contextlib.ExitStack() as hold:
        try:
            # the devnet's folder is the demo's for its whole run: a second demo (same dev accounts,
            # same chain) or a `devnet up`/`down` meanwhile would step on it, and is refused at once
            hold.enter_context(devnet.locked("depin demo"))
        except DepinError as exc:  # the folder in use: one line, as every command's error
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return _run(state_dir, challenge_window=challenge_window, timeout=timeout, scenarios=scenarios,
                    console=console, json_path=json_path, started=started)


def _run(state_dir: Path | None, *, challenge_window: int, timeout: float, scenarios: tuple[str, ...], console: Console,
         json_path: Path | None, started: float) -> int:
    try:
        demo = Demo(state_dir, challenge_window=challenge_window, console=console, timeout=timeout)
    except DepinError as exc:
        console.print(f"[red]✗ demo failed:[/] {exc}")
        return 1
    code = 0
    try:
        demo.bring_up()
        for key in choose(scenarios):
            console.rule(SCENARIO_TITLES[key])
            getattr(demo, key)()
    except (DepinError, ValueError) as exc:
        demo.print_summary()
        console.print(f"[red]✗ demo failed:[/] {exc}")
        console.print(f"  logs: {demo.devnet.logs_dir} (`depin devnet logs`), status: `depin devnet status`")
        code = 1
    if json_path is not None:
        write_json(json_path, {sc.key: {"title": sc.title, **sc.facts} for sc in demo.scenarios} | {"ok": code == 0})
    if code:
        return code
    demo.print_summary()
    console.print(f"\n[green]✓ demo complete[/] in {time.monotonic() - started:.1f} s. The devnet keeps running: "
                  "`depin devnet status`, `depin jobs list`, `depin devnet down` to stop it.")
    return 0
