"""The analytic layer of the simulation: branch probabilities and the expected value of a strategy.

Nothing here touches a chain. The on-chain layer (:mod:`depinctl.sim.world`) measures what each
party holds before and after every branch of a strategy; this module combines those measured
payoffs with the branch probabilities (read from contract views: the job's ``auditBps``, the
coalition's share of the verifier pool's stake, the jury size) into the attacker's expected profit
per job, in units of the job's reward R (VERIFICATION-ANALYSIS.md §4: "compute expected value
analytically from contract views and the measured branch payoffs").

Notation (VERIFICATION.md): R reward; k = collateralPct/100; f fee; kappa emission fraction;
g = 1 + kappa*f; s coalition share of verifier stake; K jury size; P_K(s) the chance the coalition
wins a jury majority; nu the chance a drawn audit never happens after every redraw; c the compute
cost of one run of the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from typing import Any

WAD = 10**18
BPS = 10_000


def jury_capture(size: int, s: float) -> float:
    """P_K(s): the chance that a coalition holding share `s` of the stake wins a strict majority of
    `size` seats drawn stake-weighted with replacement (Bin(K, s) >= ceil((K+1)/2))."""
    need = size // 2 + 1
    return sum(comb(size, i) * s**i * (1 - s) ** (size - i) for i in range(need, size + 1))


def jury_slash_block(size: int, s: float) -> float:
    """The chance that a coalition of share `s` blocks a slash in a jury of `size` (VERIFICATION.md
    §1.4: a slash needs >= ceil(2K/3) equal digests other than the provider's and fewer than 2
    reproductions of the provider's): it needs > K - ceil(2K/3) seats, or 2 seats."""
    need_agree = -(-2 * size // 3)
    block_at = min(size - need_agree + 1, 2)
    return sum(comb(size, i) * s**i * (1 - s) ** (size - i) for i in range(block_at, size + 1))


def audit_probability(alpha_bps: int, k: float, fee_bps: int, kappa_bps: int, beta_bps: int) -> float:
    """p_job = min(1, alpha*g/(g + lambda*k)) with g = 1 + kappa*f and lambda = 1 - beta/k
    (VERIFICATION.md §2): the contract's formula, recomputed to check its ``auditBps``."""
    alpha, f, kappa, beta = alpha_bps / BPS, fee_bps / BPS, kappa_bps / BPS, beta_bps / BPS
    g = 1 + kappa * f
    lam = 1 - beta / k if k else 0.0
    return min(1.0, alpha * g / (g + lam * k))


@dataclass
class Branch:
    """One branch of a strategy, run on chain: its probability and what each role gained.

    `payoff` maps a role ("provider", "requester", "auditor", ...) to its token change in wei;
    `runs` maps a role to how many times it ran the job (priced at c per run); `attacker` names the
    roles whose sum is the attacker's profit (the coalition); the others are honest.
    """

    name: str
    prob: float
    payoff: dict[str, int]
    runs: dict[str, int] = field(default_factory=dict)
    outcome: str = ""
    note: str = ""
    excluded: set[str] = field(default_factory=set)  # roles not honest in this branch (a no-show)

    def as_dict(self, reward: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "prob": round(self.prob, 6),
            "outcome": self.outcome,
            "payoff_R": {role: round(v / reward, 6) for role, v in sorted(self.payoff.items())},
            "runs": dict(sorted(self.runs.items())),
            "not_honest": sorted(self.excluded),
            "note": self.note,
        }


@dataclass
class Row:
    """One row of the table: a strategy, its attacker EV per job and the honest parties' loss."""

    strategy: str
    attacker: tuple[str, ...]  # the roles whose payoffs are the attacker's (a coalition: several)
    honest: tuple[str, ...]  # the honest roles whose losses are counted
    reward: int  # R in wei (payoffs are reported in units of R)
    branches: list[Branch] = field(default_factory=list)
    baseline: float = 0.0  # the attacker's honest alternative, in R (subtracted from the EV)
    compute_cost: float = 1.0  # c per run of the job, in R
    overhead: float | None = None  # honest case: expected verifier runs per job / job compute
    audit_fee: float | None = None  # honest case: the requester's expected audit fee per job, in R
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    on_chain: bool = True  # False: the contracts offer no way to run it (the note says why)
    honest_allowance: float = 0.0  # a designed, symmetric fee an honest party pays (e.g. no-fault)
    honest_reference: dict[str, float] = field(default_factory=dict)  # a role's budgeted payoff, in R

    def _net(self, branch: Branch, role: str) -> float:
        return branch.payoff.get(role, 0) / self.reward - self.compute_cost * branch.runs.get(role, 0)

    @property
    def total_prob(self) -> float:
        return sum(b.prob for b in self.branches)

    @property
    def attacker_ev(self) -> float | None:
        """E[sum over the attacker's roles of (tokens gained - c * runs)] - baseline, in R."""
        if not self.branches:
            return None
        return sum(b.prob * sum(self._net(b, r) for r in self.attacker) for b in self.branches) - self.baseline

    @property
    def honest_loss(self) -> float | None:
        """E[sum over honest roles of the tokens each lost against its budget], in R.

        A role's budget (`honest_reference`, default 0) is what it accepts in the honest world: the
        requester pays R(1 + f) + A at most; an honest provider, verifier or juror must not end with
        fewer tokens than it started with. Losses only: a role above its budget counts 0.
        """
        if not self.branches:
            return None
        total = 0.0
        for b in self.branches:
            for role in self.honest:
                if role in b.excluded:
                    continue
                total += b.prob * max(0.0, self.honest_reference.get(role, 0.0) - b.payoff.get(role, 0) / self.reward)
        return total

    @property
    def unpaid_work(self) -> float | None:
        """E[sum over honest roles of the compute (c per run) their pay did not cover], in R: an
        honest verifier or juror whose token gain is below the cost of the runs it did."""
        if not self.branches:
            return None
        total = 0.0
        for b in self.branches:
            for role in self.honest:
                if role in b.excluded:
                    continue
                gain = max(0.0, b.payoff.get(role, 0) / self.reward - self.honest_reference.get(role, 0.0))
                total += b.prob * max(0.0, self.compute_cost * b.runs.get(role, 0) - gain)
        return total

    def as_dict(self) -> dict[str, Any]:
        ev, loss, unpaid = self.attacker_ev, self.honest_loss, self.unpaid_work
        return {
            "strategy": self.strategy,
            "attacker_ev_R": None if ev is None else round(ev, 6),
            "honest_loss_R": None if loss is None else round(loss, 6),
            "honest_allowance_R": self.honest_allowance,
            "unpaid_work_R": None if unpaid is None else round(unpaid, 6),
            "overhead": None if self.overhead is None else round(self.overhead, 6),
            "audit_fee_R": None if self.audit_fee is None else round(self.audit_fee, 6),
            "on_chain": self.on_chain,
            "attacker": list(self.attacker),
            "baseline_R": self.baseline,
            "compute_cost_R": self.compute_cost,
            "params": self.params,
            "note": self.note,
            "branches": [b.as_dict(self.reward) for b in self.branches],
        }


def format_table(rows: list[Row], shared: dict[str, Any] | None = None) -> str:
    """The table `make sim` prints: the shared parameters, one line per strategy, each row's note."""
    head = f"{'strategy':<41} {'attacker EV/job':>15} {'honest loss':>11} {'unpaid work':>11} {'overhead':>8} {'audit fee':>9}  params"
    lines = [head, "-" * len(head)]
    if shared:
        lines.insert(0, "every row: " + " ".join(f"{k}={_short(v)}" for k, v in shared.items()))

    def num(v: float | None, width: int, sign: str = "+") -> str:
        return f"{'n/a':>{width}}" if v is None else f"{v:{sign}{width}.3f}"

    for row in rows:
        params = " ".join(f"{k}={_short(v)}" for k, v in row.params.items())
        lines.append(
            f"{row.strategy:<41} {num(row.attacker_ev, 13)} R {num(row.honest_loss, 9, '')} R"
            f" {num(row.unpaid_work, 9, '')} R {num(row.overhead, 8, '')} {num(row.audit_fee, 7, '')} R  {params}".rstrip()
        )
    lines.append("")
    for row in rows:
        if row.note:
            lines.append(f"- {row.strategy}: {row.note}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
