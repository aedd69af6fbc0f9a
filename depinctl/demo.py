"""The demo: a requester's job from post to paid on the local devnet, with its verification draw.

``depin demo`` (the README's first command, through ``make demo``) brings the devnet up if needed
(``depin devnet up``), then runs the scenario against it, showing each step as it happens:

**Honest job.** A requester (Anvil dev account 4) posts a checksum job over an input file,
escrowing the reward R, the fee f*R and the audit fee A. The devnet's provider executor claims it,
runs it in a hardened container, publishes the result archive under an opaque name and submits a
salted commitment to it (nothing about the digest is public before a reveal). Then the draw: block
``anchor = submitBlock + D`` did not exist when the commitment was included; once it is mined its
randomness decides whether the job is audited, with probability ``p_job`` (snapshotted at post,
``auditBps``). Not drawn: the challenge window runs out and the executor's beat finalizes the job
(the provider gets R + the kappa*f*R rebate, the requester its A back). Drawn: the court settles it
(with no staked verifier in the devnet's pool the executor's ``advance`` concludes ``Unaudited`` and
the provider is paid). The executor withdraws the pay; the demo downloads the archive, checks it
against the on-chain commitment with the salt published beside it and prints the summary: job id,
the draw, the money, gas and wall time per step.

Every wait has a deadline; the exit status is non-zero with the reason when a step fails or times
out. Progress comes from the indexer's Redis (what every dashboard sees), amounts, the draw and
receipts from the chain.
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
STEP_TIMEOUT = 120.0
OUTCOME_UNAUDITED = 4  # IMarketForCourt.Outcome.Unaudited
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
    """The scenario against one devnet; each step is printed as it completes."""

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

    def draw(self, sc: Scenario, job_id: int, status: Any) -> tuple[bool, str]:
        """Waits for the job's anchor block and reads the draw; records it as a step. Returns
        (drawn, one line explaining it)."""
        step = Step("draw", time.monotonic())
        job = self.client.job(job_id)
        p_job = job.audit_bps / 100
        status.update(f"waiting for anchor block {job.anchor_block} (its randomness decides the audit)…")
        drawn = wait_for(f"the randomness of block {job.anchor_block}",
                         lambda: (d := self.client.is_drawn(job_id)) is not None and (d,), timeout=self.timeout)[0]
        step.ended = time.monotonic()
        verdict = "drawn for audit: the court verifies it" if drawn else "not drawn: settles optimistically"
        explained = (f"p_job = {p_job:.2f} % (alpha*g/(g + lambda*k) at {job.collateral_pct} % collateral, fixed at post); "
                     f"anchor block {job.anchor_block} (submit block + D, mined after the commitment): {verdict}")
        step.detail = f"p_job {p_job:.1f} %, anchor block {job.anchor_block}: {'DRAWN' if drawn else 'not drawn'}"
        sc.steps.append(step)
        self.print_step(step)
        return drawn, explained

    def settled(self, sc: Scenario, job_id: int, status: Any, drawn: bool) -> tuple[str, int]:
        """Waits for the job to be settled: finalized (not drawn) or settled by the court (drawn);
        records it. Returns (how, block)."""
        from depin.market import JobStatus  # lazy: start-up

        step = Step("finalized" if not drawn else "settled by the court", time.monotonic())
        start_block = self.client.block_number()  # the pay is credited, then withdrawn, after this
        status.update("waiting for finalization…" if not drawn else "the court verifies the job (no verifier staked: Unaudited)…")
        stand_in = drawn and self.client.deployment.parameters.get("courtContract") == "TestCourt"
        if stand_in:
            # The devnet's court is the TestCourt stand-in while the market/court boundary is not
            # reconciled (depinctl.deploy.court_contract_name): it cannot run the audit, so the demo
            # settles the drawn job the way the real court does when no verifier is staked in the
            # pool: Unaudited (the provider is paid).
            from depinctl.devchain import DevChain  # lazy: start-up

            chain = DevChain.from_deployment_file(self.devnet.rpc_url, self.devnet.deployment_file)
            chain.transact(chain.deployer, "TestCourt", "begin", job_id)
            chain.transact(chain.deployer, "TestCourt", "settle", job_id, OUTCOME_UNAUDITED)
        job = wait_for("the job to be settled", lambda: (j := self.client.job(job_id)).status.settled and j, timeout=self.timeout)
        step.ended = time.monotonic()
        if job.status not in (JobStatus.FINALIZED, JobStatus.RESOLVED):
            raise DemoFailed(f"job {job_id} ended {job.status.label}")
        how = "finalized: R + the kappa*f*R rebate to the provider, A back to the requester" if job.status == JobStatus.FINALIZED else (
            "settled by the court: Unaudited (no verifier staked in the devnet's pool)"
            + (", through the TestCourt stand-in" if stand_in else ""))
        step.detail = how
        sc.steps.append(step)
        self.print_step(step)
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
            posted_job = requester.job(posted.job_id)
            posted_fee, posted_audit = posted_job.fee, posted_job.audit_fee
            step.detail = (f"job {posted.job_id} by {requester.address[:10]}…, reward {tokens(reward)}; "
                           f"R + fee + audit fee = {tokens(posted_job.escrow)} escrowed")
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
                                 detail=lambda job, e: f"commitment 0x{str(job.extra.get('commitment', ''))[2:14]}… (salted: says nothing of the digest)")
            drawn, draw = self.draw(sc, job_id, status)
            if not drawn:
                step = Step("challenge window", time.monotonic())
                self.countdown(job, status)
                step.ended = time.monotonic()
                step.detail = f"{self.challenge_window} s, nobody disputed"
                sc.steps.append(step)
                self.print_step(step)
            fin, settled_block = self.settled(sc, job_id, status, drawn)
            step = Step("withdrawn", time.monotonic())
            status.update("waiting for the provider to withdraw its pay…")
            found = wait_for("the provider's withdrawal", lambda: self.withdrawal_of(provider, settled_block),
                             timeout=self.timeout)
            step.ended, step.tx = time.monotonic(), found[0]
            step.gas = self.gas_of(found[0])
            step.detail = f"{tokens(found[1])} to the provider's wallet"
            sc.steps.append(step)
            self.print_step(step)
            status.update("downloading the result and checking it against the chain…")
            out = self.devnet.dir / "demo" / f"result-{job_id}"
            fetched = requester.download_result(job_id, out)  # checked against the on-chain commitment
            result_text = (out / "result.txt").read_text().strip()
            expected = f"poem.txt {hashlib.sha256(POEM.encode()).hexdigest()} {len(POEM.split())}"
            if result_text != expected:
                raise DemoFailed(f"the job's output is {result_text!r}, expected {expected!r}")
        total = sum(s.seconds for s in sc.steps)
        onchain = self.client.job(job_id)
        sc.summary = {
            "job id": str(job_id),
            "provider": provider,
            "escrowed at post": f"R {tokens(onchain.reward)} + fee {tokens(posted_fee)} + audit fee A {tokens(posted_audit)}",
            "the draw": draw,
            "result digest": "0x" + fetched.digest.hex() + " (revealed only by the archive itself)",
            "verified": f"the archive from {fetched.uri} with the salt beside it gives the on-chain commitment",
            "output": result_text,
            "paid": f"{tokens(found[1])} withdrawn by the provider ({fin})",
            "gas, all steps": f"{sum(s.gas or 0 for s in sc.steps):,}",
            "wall time": f"{total:.1f} s",
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
        scenarios: tuple[str, ...] = ("honest",), console: Console | None = None) -> int:
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
    except DepinError as exc:
        demo.print_summary()
        console.print(f"[red]✗ demo failed:[/] {exc}")
        console.print(f"  logs: {demo.devnet.logs_dir} (`depin devnet logs`), status: `depin devnet status`")
        return 1
    demo.print_summary()
    console.print(f"\n[green]✓ demo complete[/] in {time.monotonic() - started:.1f} s. The devnet keeps running: "
                  "`depin devnet status`, `depin jobs list`, `depin devnet down` to stop it.")
    return 0
