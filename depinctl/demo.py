"""The demo: a requester's job from post to paid on the local devnet, then a cheater caught.

``depin demo`` (the README's first command, through ``make demo``) brings the devnet up if needed
(``depin devnet up``), then runs two scenarios against it, showing each step as it happens:

1. **Honest job.** A requester (Anvil dev account 4) posts a checksum job over an input file. The
   devnet's provider executor claims it, runs it in a hardened container, publishes the result
   archive and submits its digest; the challenge window counts down; the executor's beat finalizes
   the job and withdraws the pay. The demo then downloads the result archive from the result URI,
   checks its sha256 against the on-chain result hash and prints the summary: job id, digest,
   reward paid, gas and wall time per step.
2. **Cheater.** A dishonest provider (dev account 5, which runs no executor) takes a job in the same
   block it is posted and submits a made-up result hash. The devnet's verifier re-executes the job,
   finds a different digest and challenges within the window; the arbiter re-executes and rules
   for the challenger; the summary shows the cheater's slashed collateral, the challenger's reward
   and the burn.

Every wait has a deadline; the exit status is non-zero with the reason when a step fails or times
out. Progress comes from the indexer's Redis (what every dashboard sees), amounts and receipts from
the chain.
"""

from __future__ import annotations

import hashlib
import json
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
CHEATER_ACCOUNT = 5
STEP_TIMEOUT = 120.0
POLL = 0.1


class DemoFailed(DepinError):
    """A demo step failed or did not happen in time."""


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
class Scenario:
    title: str
    steps: list[Step] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left", box=None, pad_edge=False)
        for column, justify in (("step", "left"), ("wall time", "right"), ("gas", "right"), ("", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for step in self.steps:
            gas = f"{step.gas:,}" if step.gas is not None else ""
            table.add_row(step.name, f"{step.seconds:.2f} s", gas, step.detail)
        return table


def tokens(value: int) -> str:
    text = format(Decimal(value).scaleb(-18), "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " DPC"


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float = STEP_TIMEOUT, status: Any = None,
             label: Callable[[float], str] | None = None) -> Any:
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
        time.sleep(POLL)


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


# ---------------------------------------------------------------------------------------- the run


class Demo:
    """Both scenarios against one devnet; each step is printed as it completes."""

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

    def gas_of(self, tx: str | None) -> int | None:
        if not tx:
            return None
        receipt = self.client.rpc.call("eth_getTransactionReceipt", [tx])
        return int(receipt["gasUsed"], 16) if receipt else None

    def indexed(self, job_id: int) -> Any:
        return self.reader.get_job(job_id)

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

    def countdown(self, job: Any, status: Any) -> None:
        """Shows the challenge window running out (chain time: anvil stamps new blocks with the clock)."""
        deadline = int(job.extra.get("challengeDeadline") or 0)
        while True:
            left = deadline - time.time()
            if left < 0:
                return
            status.update(f"challenge window open: {left:4.1f} s left (anyone may dispute the result)")
            time.sleep(min(0.2, left + 0.01))

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

    # ------------------------------------------------------------------ scenario 1

    def honest(self) -> Scenario:
        from depin.deployment import to_wei  # lazy: start-up

        sc = Scenario("Scenario 1: a job from post to paid")
        self.scenarios.append(sc)
        requester = self.dev(REQUESTER_ACCOUNT)
        spec = self.job_spec(POEM, "poem.txt")
        reward = to_wei(1)
        with self.console.status("posting the job…") as status:
            step = Step("posted", time.monotonic())
            posted = requester.post_job(spec, reward=reward, challenge_window=self.challenge_window)
            step.ended, step.tx, step.gas = time.monotonic(), posted.tx_hash, posted.gas_used
            step.detail = f"job {posted.job_id} by {requester.address[:10]}…, reward {tokens(reward)}, escrowed"
            sc.steps.append(step)
            self.print_step(step)
            job_id = posted.job_id
            self.follow(sc, job_id, "JobPosted", "indexed", status, label="waiting for the indexer…", gas=False,
                        detail=lambda job, e: f"block {e.get('block')}, spec valid: {job.spec_valid}")
            job, _ = self.follow(sc, job_id, "JobClaimed", "claimed", status, label="waiting for a provider to claim…",
                                 detail=lambda job, e: f"by provider {job.provider}, collateral {tokens(job.collateral or 0)} locked")
            provider = job.provider
            job, _ = self.follow(sc, job_id, "ResultSubmitted", "ran + submitted", status,
                                 label="running in a hardened container (no network, read-only root, capped)…",
                                 detail=lambda job, e: f"result 0x{job.extra.get('resultHash', '')[2:14]}…")
            step = Step("challenge window", time.monotonic())
            self.countdown(job, status)
            step.ended = time.monotonic()
            step.detail = f"{self.challenge_window} s, nobody disputed"
            sc.steps.append(step)
            self.print_step(step)
            job, fin = self.follow(sc, job_id, "JobFinalized", "finalized", status, label="waiting for finalization…",
                                   detail=lambda job, e: f"provider credited {tokens(int(job.extra.get('payout', 0)))}")
            step = Step("withdrawn", time.monotonic())
            status.update("waiting for the provider to withdraw its pay…")
            found = wait_for("the provider's withdrawal", lambda: self.withdrawal_of(provider, int(fin["block"])),
                             timeout=self.timeout)
            step.ended, step.tx = time.monotonic(), found[0]
            step.gas = self.gas_of(found[0])
            step.detail = f"{tokens(found[1])} to the provider's wallet"
            sc.steps.append(step)
            self.print_step(step)
            status.update("downloading the result and checking it against the chain…")
            out = self.devnet.dir / "demo" / f"result-{job_id}"
            fetched = requester.download_result(job_id, out)
            submission = requester.submission(job_id)
            onchain = submission.result_hash if submission is not None else None
            if fetched.digest != onchain:
                raise DemoFailed(f"the downloaded result hashes to 0x{fetched.digest.hex()}, the chain says {onchain!r}")
            result_text = (out / "result.txt").read_text().strip()
            expected = f"poem.txt {hashlib.sha256(POEM.encode()).hexdigest()} {len(POEM.split())}"
            if result_text != expected:
                raise DemoFailed(f"the job's output is {result_text!r}, expected {expected!r}")
        total = sum(s.seconds for s in sc.steps)
        sc.summary = {
            "job id": str(job_id),
            "provider": provider,
            "result digest": "0x" + fetched.digest.hex(),
            "verified": f"sha256 of the archive from {fetched.uri} equals the on-chain resultHash",
            "output": result_text,
            "reward paid": tokens(int(job.extra.get("payout", 0))) + (
                f" + {tokens(int(job.extra['emission']))} emission" if int(job.extra.get("emission", 0) or 0) else ""),
            "gas, all steps": f"{sum(s.gas or 0 for s in sc.steps):,}",
            "wall time": f"{total:.1f} s",
        }
        return sc

    # ------------------------------------------------------------------ scenario 2

    def cheater(self) -> Scenario:
        from eth_utils import keccak  # lazy: start-up

        from depin.client import SUBMIT_MARGIN  # lazy: start-up
        from depin.deployment import to_wei  # lazy: start-up
        from depin.spec import cpu_seconds  # lazy: start-up
        from depinctl.devchain import DevChain, JobTerms  # lazy: start-up
        from depinctl.devnet import PROVIDER_ACCOUNTS  # lazy: start-up

        sc = Scenario("Scenario 2: a cheating provider is caught")
        self.scenarios.append(sc)
        chain = DevChain.from_deployment_file(self.devnet.rpc_url, self.devnet.deployment_file)
        requester = chain.accounts[REQUESTER_ACCOUNT + 1]
        cheater = chain.accounts[PROVIDER_ACCOUNTS[-1]]  # registered, runs no executor
        spec = self.job_spec("the quick brown fox jumps over the lazy dog\n", "fox.txt")
        spec_bytes = spec.to_bytes()
        window = max(self.challenge_window, 15)  # the verifier re-runs the job before it closes
        terms = JobTerms(reward=to_wei(1), claim_window=3600, max_runtime=spec.resources.max_runtime + SUBMIT_MARGIN,
                         challenge_window=window, collateral_pct=100, cpu_seconds=cpu_seconds(spec))
        before = chain.get_provider(cheater)
        with self.console.status("a dishonest provider takes a job…") as status:
            step = Step("posted + grabbed", time.monotonic())
            chain.approve(requester, chain.market)
            job_id = chain.job_count() + 1
            chain.send_bulk([  # one block: no honest provider can claim it first
                chain.tx(requester, "JobMarket", "postJob", keccak(spec_bytes), spec_bytes, terms.as_tuple(), gas=400_000),
                chain.tx(cheater, "JobMarket", "claimJob", job_id, gas=200_000),
            ])
            step.ended = time.monotonic()
            step.detail = f"job {job_id} claimed in its own block by {cheater[:10]}… (collateral {tokens(terms.collateral)})"
            sc.steps.append(step)
            self.print_step(step)
            step = Step("wrong hash submitted", time.monotonic())
            receipt = chain.submit_result(cheater, job_id, keccak(b"not the real output"), "http://127.0.0.1:9/results/0xbad")
            step.ended, step.tx, step.gas = time.monotonic(), receipt["transactionHash"], int(receipt["gasUsed"], 16)
            step.detail = "a made-up result hash"
            sc.steps.append(step)
            self.print_step(step)
            job, _ = self.follow(sc, job_id, "JobChallenged", "challenged", status,
                                 label="the verifier re-executes the job and compares digests…",
                                 detail=lambda job, e: f"by verifier {job.extra.get('challenger')}, bond {tokens(int(job.extra.get('bond', 0)))}")
            job, _ = self.follow(sc, job_id, "DisputeResolved", "resolved", status,
                                 label="the arbiter re-executes the job and rules…",
                                 detail=lambda job, e: f"ruling {job.extra.get('ruling')}")
        if job.extra.get("ruling") != "ChallengerWins":
            raise DemoFailed(f"the arbiter ruled {job.extra.get('ruling')!r} for job {job_id}; expected ChallengerWins")
        after = chain.get_provider(cheater)
        sc.summary = {
            "job id": str(job_id),
            "cheater": cheater,
            "slashed": tokens(int(job.extra.get("forfeited", 0))) + f" of the cheater's collateral (stake {tokens(before['staked'])} → {tokens(after['staked'])})",
            "challenger": str(job.extra.get("winner")),
            "challenger's reward": tokens(int(job.extra.get("winnerPayout", 0)))
            + f" from the slash (its {tokens(int(job.extra.get('bond', 0)))} bond returned too)",
            "burned": tokens(int(job.extra.get("burned", 0))),
            "requester refunded": tokens(int(job.extra.get("requesterRefund", 0))),
            "wall time": f"{sum(s.seconds for s in sc.steps):.1f} s",
        }
        return sc

    # ------------------------------------------------------------------ summary

    def print_summary(self) -> None:
        for sc in self.scenarios:
            self.console.print()
            self.console.print(sc.table())
            for key, value in sc.summary.items():
                self.console.print(f"  [bold]{key}:[/] {value}")


POEM = "so much depends\nupon\na red wheel\nbarrow\nglazed with rain\nwater\nbeside the white\nchickens\n"


def run(state_dir: Path | None = None, *, challenge_window: int = 10, timeout: float = STEP_TIMEOUT,
        scenarios: tuple[str, ...] = ("honest", "cheater"), console: Console | None = None) -> int:
    """Runs the demo; returns the exit status (0: every step happened and checked out)."""
    console = console or make_console()
    started = time.monotonic()
    try:
        demo = Demo(state_dir, challenge_window=challenge_window, console=console, timeout=timeout)
    except DepinError as exc:
        console.print(f"[red]✗ demo failed:[/] {exc}")
        return 1
    try:
        demo.bring_up()
        if "honest" in scenarios:
            console.rule("Scenario 1: a job from post to paid")
            demo.honest()
        if "cheater" in scenarios:
            console.rule("Scenario 2: a cheating provider")
            demo.cheater()
    except DepinError as exc:
        demo.print_summary()
        console.print(f"[red]✗ demo failed:[/] {exc}")
        console.print(f"  logs: {demo.devnet.logs_dir} (`depin devnet logs`), status: `depin devnet status`")
        return 1
    demo.print_summary()
    console.print(f"\n[green]✓ demo complete[/] in {time.monotonic() - started:.1f} s. The devnet keeps running: "
                  "`depin devnet status`, `depin jobs list`, `depin devnet down` to stop it.")
    return 0
