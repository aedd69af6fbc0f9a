"""Every strategy of VERIFICATION.md §7 and of the issue's audit list, run branch by branch on chain.

Each strategy is a method of :class:`Strategies` returning one :class:`~depinctl.sim.model.Row`.
A branch starts from the same chain state (an ``evm_snapshot``), runs with real transactions,
measures every party's holdings before and after, and is rewound. Its probability comes from the
contracts' views: the job's ``auditBps`` (p), the coalition's share of the pool's snapshotted stake
(s), P_K(s) for the jury sizes, and the sim's stated assumptions (nu, phi, c) in each row's params.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from depinctl.sim.model import Branch, Row, jury_capture
from depinctl.sim.protocol import (
    INPUT_HASH_MISMATCH,
    NONZERO_EXIT,
    OUTCOME,
    Actors,
    Job,
    Protocol,
    copy_provider,
    no_show,
    report_not_delivered,
    run_honestly,
)
from depinctl.sim.world import WAD, SimError, TxFailed, World, seat_commitment

# The rows of `Strategies.all`, in its order: what `depin sim --only WORD` picks from (a word must be
# part of one of them; checked before anything starts).
STRATEGY_NAMES = (
    "lazy k=4", "lazy k=6", "lazy k=10", "draw grinding", "digest leaked", "collusion 0.1", "collusion 0.2",
    "juror + no-show", "bribe", "self-challenge", "nondeterminism", "input switch", "fake failure",
    "fake availability failure", "claim hoarding", "unstake (provider)", "unstake (verifier)", "withheld delivery",
    "wash (reexec)", "wash (none)", "stake grinding", "audit-fee drain",
)

BPS = 10_000


@dataclass(frozen=True)
class Assumptions:
    """What the contracts cannot tell: stated in every row's params."""

    no_show: float = 0.27  # chance a drawn seat stays empty (per draw); nu = no_show^(1 + maxRedraws)
    phi: float = 0.05  # the canary operator's share of jobs (C6)
    compute: float = 1.0  # c: the cost of one run of the job, in R (the reward covers it)
    reward: int = WAD  # R of every simulated job (1 token)
    bribe_epsilon: float = 0.01  # the p+eps briber's premium per juror, in R


class Strategies:
    """Builds each row on one deployment (every branch rewound afterwards)."""

    def __init__(self, world: World, actors: Actors, assumptions: Assumptions | None = None) -> None:
        self.w = world
        self.a = actors
        self.p = Protocol(world, actors)
        self.x = assumptions or Assumptions()
        self.R = self.x.reward
        mp = self.p.market_params()
        cp = self.p.court_params()
        self.f = int(mp["feeBps"]) / BPS
        self.kappa = int(mp["kappaBps"]) / BPS
        self.g = 1 + self.kappa * self.f
        # The requester escrows E = A + 3w per reexec job: the court pays the auditor A = E - 3w and
        # charges the 3w jury deposit only on a Split (a nondeterministic job); the rest comes back.
        self.audit_escrow = int(mp["auditFeeBps"]) / BPS
        self.juror_pay = int(cp["jurorPayBps"]) / BPS
        self.audit_fee = self.audit_escrow - 3 * self.juror_pay
        self.no_fault = int(mp["noFaultFeeBps"]) / BPS
        self.sigma = int(cp["canarySlashMul"])
        self.max_redraws = int(cp["maxRedraws"])
        # nu: a drawn audit never happens when the first draw and every redraw find nobody (about the
        # 2 % of VERIFICATION-ANALYSIS C2 with the default 2 redraws)
        self.nu = self.x.no_show ** (1 + self.max_redraws)
        self._overheads: dict[int, tuple[float, float]] = {}
        # k (percent) -> every transaction of the honest drawn job of _measure_overhead, with its gas
        self.audited_gas: dict[int, list[tuple[str, int]]] = {}
        self._verifier_baseline: float | None = None

    # ------------------------------------------------------------------ plumbing

    def measure(self, name: str, prob: float, parties: dict[str, list[str]], body: Callable[[], str], note: str = "") -> Branch:
        """Runs `body` from the current state, measures each role's holdings change, rewinds."""
        with self.w.branch():
            self.p.runs = {}
            self.p.posted = []
            self.p.no_shows = []
            before = self.w.holdings(parties)
            outcome = body()
            self.w.check_court_books()
            after = self.w.holdings(parties)
            for job_id in self.p.open_jobs():
                view = self.p.job_view(job_id)  # an open job's escrow is still its requester's money
                for role, accounts in parties.items():
                    if view["requester"] in accounts:
                        after[role] += int(view["reward"]) + int(view["fee"]) + int(view["auditFee"])
            runs = {role: sum(self.p.runs.get(a, 0) for a in accounts) for role, accounts in parties.items()}
            no_shows = {role for role, accounts in parties.items() if set(accounts) & set(self.p.no_shows)}
        payoff = {role: after[role] - before[role] for role in parties}
        return Branch(name, prob, payoff, {r: n for r, n in runs.items() if n}, outcome, note, excluded=no_shows)

    def audit_bps(self, k_pct: int, verify_mode: int = 0) -> int:
        """p_job as the market computes it at post (a job posted and rewound)."""
        with self.w.branch():
            job = self.p.post(self.a.requester, self.R, k_pct, verify_mode=verify_mode)
            return int(self.p.job_view(job.id)["auditBps"])

    def base_params(self, k_pct: int, p: float) -> dict[str, Any]:
        """A row's own parameters (the shared ones are in :meth:`shared_params`)."""
        return {"k": k_pct / 100, "p": round(p, 4)}

    def shared_params(self) -> dict[str, Any]:
        """The parameters every row uses: read from the contracts, and the sim's assumptions."""
        return {
            "f": self.f,
            "kappa": self.kappa,
            "A": round(self.audit_fee, 6),
            "E": self.audit_escrow,
            "noFaultFee": self.no_fault,
            "sigma": self.sigma,
            "maxRedraws": self.max_redraws,
            "nu": round(self.nu, 4),
            "phi": self.x.phi,
            "c": self.x.compute,
        }

    def honest_parties(self) -> dict[str, list[str]]:
        parties: dict[str, list[str]] = {"requester": [self.a.requester], "honest provider": [self.a.honest_provider]}
        for i, v in enumerate(self.a.honest):
            parties[f"verifier{i}"] = [v]
        return parties

    def honest_reference(self) -> dict[str, float]:
        """What each honest role accepts: the requester pays R(1 + f) + A at most; the others end >= 0."""
        return {"requester": -(1 + self.f + self.audit_fee)}

    def honest_roles(self, parties: dict[str, list[str]], attacker: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(r for r in parties if r not in attacker)

    def overhead(self, k_pct: int, p: float) -> tuple[float, float]:
        if k_pct not in self._overheads:
            self._overheads[k_pct] = self._measure_overhead(k_pct, p)
        return self._overheads[k_pct]

    def _measure_overhead(self, k_pct: int, p: float) -> tuple[float, float]:
        """The honest case: (expected verifier runs per job / job compute, expected audit fee in R),
        from an honest job drawn and audited on chain (its verifier runs and the requester's payment);
        the runs include the audits of the canary jobs that come with each real job."""
        parties = self.honest_parties()

        def body() -> str:
            self.w.gas_log = []
            try:
                job = self.p.honest_job(self.a.requester, self.a.honest_provider, self.R, k_pct)
                self.p.run_round(job, 0, [("honest", run_honestly)], label=f"overhead{k_pct}")
                return self.p.conclude(job)
            finally:
                self.audited_gas[k_pct], self.w.gas_log = self.w.gas_log, None

        b = self.measure("honest, drawn", p, parties, body)
        if b.outcome != "ProviderRight":
            raise SimError(f"an honest audited job ended {b.outcome}, not ProviderRight")
        verifier_runs = sum(n for role, n in b.runs.items() if role.startswith("verifier"))
        fee = -b.payoff["requester"] / self.R - (1 + self.f)
        # canaries: the operator adds phi/(1 - phi) jobs per real job, drawn and audited alike
        canaries = self.x.phi / (1 - self.x.phi)
        return p * verifier_runs * (1 + canaries), p * fee

    # ------------------------------------------------------------------ shared branch bodies

    def _lazy_not_drawn(self, k_pct: int, label: str) -> str:
        job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
        self.p.force_not_drawn(job, label)
        return self.p.finalize_after_window(job)

    def _lazy_caught(self, k_pct: int, label: str, *, before_audit: Callable[[Job], None] | None = None) -> str:
        job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
        if before_audit:
            before_audit(job)
        self.p.run_round(job, 0, [("honest", run_honestly)], label=label)
        self.p.escalated_to(job, 1)
        self.p.run_round(job, 1, [("honest", run_honestly)] * 3, label=label)
        return self.p.conclude(job)

    def _challenged(self, job: Job, challenger: str, seat: Any, label: str, *, drawn: bool) -> str:
        """`challenger` challenges `job` (drawn for audit or not, as forced here); a drawn job's audit
        runs first (a challenge does not displace it), then a jury of 3; every seat acts as `seat`."""
        if drawn:
            self.p.force_audit_draw(job, "honest", label)
        else:
            self.p.force_not_drawn(job, label)
        self.w.send(challenger, self.w.court, "challenge", job.id)
        if drawn:
            self.p.run_round(job, 0, [("honest", seat)], label=label, force=False)
        self.p.escalated_to(job, 1)
        self.p.run_round(job, 1, [("honest", seat)] * 3, label=label)
        return self.p.conclude(job)

    def _lazy_unaudited(self, k_pct: int, label: str) -> str:
        job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
        return self.p.unaudited(job, label)

    def _row(self, name: str, attacker: tuple[str, ...], parties: dict[str, list[str]], **kw: Any) -> Row:
        params = kw.get("params") or {}
        if "overhead" not in kw and "k" in params and kw.get("on_chain", True):
            k_pct = round(params["k"] * 100)
            kw["overhead"], kw["audit_fee"] = self.overhead(k_pct, self.audit_bps(k_pct) / BPS)
        return Row(
            strategy=name,
            attacker=attacker,
            honest=self.honest_roles(parties, attacker),
            reward=self.R,
            compute_cost=self.x.compute,
            honest_reference=self.honest_reference(),
            **kw,
        )

    # ------------------------------------------------------------------ strategies

    def lazy_provider(self, k_pct: int) -> Row:
        """A provider with no hardware commits to a made-up digest on every job it claims."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], **self.honest_parties()}
        nu = self.nu
        label = f"lazy{k_pct}"
        branches = [
            self.measure("not drawn", 1 - p, parties, lambda: self._lazy_not_drawn(k_pct, label)),
            self.measure("drawn, honest audit + jury", p * (1 - nu), parties, lambda: self._lazy_caught(k_pct, label)),
            self.measure("drawn, nobody audits", p * nu, parties, lambda: self._lazy_unaudited(k_pct, label)),
        ]
        overhead, fee = self.overhead(k_pct, p)
        with self.w.branch():  # a drawn job has no exit but the court: no settle-unresolved, no finalize
            job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
            self.p.force_audit_draw(job, "honest", f"{label}:exit")
            self.w.warp_to(int(self.p.job_view(job.id)["deadline"]) + 1)
            exit_error = self.w.fails(self.a.provider, self.w.market, "finalize", job.id) or "none (UNEXPECTED)"
        return self._row(
            f"lazy provider k={k_pct / 100:g}",
            ("provider",),
            parties,
            branches=branches,
            overhead=overhead,
            audit_fee=fee,
            params=self.base_params(k_pct, p),
            note=(
                "no hardware: commits a made-up digest; EV = (1-p+p*nu)*g - p*(1-nu)*k measured branch by branch. "
                "Appealing the jury only adds the appeal bond to the loss. A drawn job cannot be finalized past its "
                f"window (finalize reverts {exit_error.split('(')[0]}): the court is its only exit."
            ),
        )

    def draw_grinding(self, k_pct: int = 400) -> Row:
        """Conditional revert / retry: the grinder wants to submit only when the job is not drawn."""
        row = self.lazy_provider(k_pct)
        evidence = []
        with self.w.branch():
            job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
            submit_block = self.w.block_number()
            try:
                self.w.read(self.w.market, "isDrawn", job.id, block=submit_block)
                evidence.append("isDrawn answered in the submission's block (UNEXPECTED)")
            except TxFailed as exc:
                evidence.append(f"isDrawn in the submission's block reverts {exc.reason.split('(')[0]}")
            anchor = self.p.anchor(job)
            evidence.append(f"anchor = submit block + {anchor - submit_block}")
            # the same anchor randomness draws the same way whatever the provider committed to
            self.p.force_not_drawn(job, "grind")
            first = self.p.is_drawn(job)
            retry = self.w.fails(self.a.provider, self.w.market, "submitResult", job.id, keccak(b"other"), "sim://x")
            evidence.append(f"a second submission reverts {str(retry).split('(')[0]}")
        with self.w.branch():
            # the provider's choices (commitment, URI) do not enter the draw: resubmitting differently
            # from the same pre-submission state with the same anchor randomness draws the same way
            job = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.provider, job)
            snap_draws = []
            for variant in (b"a", b"b"):
                with self.w.branch():
                    self.p.submit(job, keccak(b"grind-variant:" + variant), uri=f"sim://grind/{variant.decode()}")
                    anchor = self.p.anchor(job)
                    self.w.mine_past(anchor)
                    self.w.send(self.w.deployer, self.w.randomness, "setValue", anchor, keccak(b"fixed"))
                    snap_draws.append(self.p.is_drawn(job))
            evidence.append(f"two different commitments, same anchor value: drawn {snap_draws[0]} / {snap_draws[1]}")
            if snap_draws[0] != snap_draws[1]:
                raise SimError("the draw depends on the provider's commitment")
        del first
        row.strategy = f"draw grinding (revert/retry) k={k_pct / 100:g}"
        row.note = (
            "the draw reads block submit+D's randomness, which does not exist in the submission's block: "
            "a grinder contract (or a builder bundle, which executes in that block too) cannot condition on "
            "it, and a submission cannot be retried, so its audit "
            "probability is p and its EV the lazy provider's. Evidence: " + "; ".join(evidence)
        )
        return row

    def honest_verifier_baseline(self) -> float:
        """What an honest verifier earns per audit it is drawn for (real jobs and canaries), net of c."""
        if self._verifier_baseline is None:
            self.lazy_verifier()
        assert self._verifier_baseline is not None
        return self._verifier_baseline

    def lazy_verifier(self) -> Row:
        """A drawn verifier copies the provider's digest (leaked off chain) instead of running the job;
        a share phi of jobs are canaries whose operator hands out the canary digest."""
        k_pct = 400
        phi = self.x.phi
        parties = {"lazy verifier": [self.a.lazy], "requester": [self.a.requester], "honest provider": [self.a.honest_provider]}

        def real(behaviour: Any, pool: str) -> Callable[[], str]:
            def body() -> str:
                job = self.p.honest_job(self.a.requester, self.a.honest_provider, self.R, k_pct)
                self.p.run_round(job, 0, [(pool, behaviour)], label=f"leak-real-{pool}")
                return self.p.conclude(job)

            return body

        def canary(behaviour: Any, pool: str) -> Callable[[], str]:
            def body() -> str:
                job = self.p.canary_job(self.R, k_pct)
                self.p.run_round(job, 0, [(pool, behaviour)], label=f"leak-canary-{pool}", provider_reveals=False, tally=False)
                self.p.expose_canary(job)
                return self.p.outcome(job.id)

            return body

        lazy = [
            self.measure("real job, copies the digest", 1 - phi, parties, real(copy_provider, "lazy")),
            self.measure("canary, copies the canary digest", phi, parties, canary(copy_provider, "lazy")),
        ]
        honest = [
            self.measure("real job, runs it", 1 - phi, parties, real(run_honestly, "lazy")),
            self.measure("canary, runs it", phi, parties, canary(run_honestly, "lazy")),
        ]
        baseline = sum(b.prob * (b.payoff["lazy verifier"] / self.R - self.x.compute * b.runs.get("lazy verifier", 0)) for b in honest)
        self._verifier_baseline = baseline
        for b in honest:
            b.name = f"(baseline) {b.name}"
        with self.w.branch():  # nothing public before the reveal names the digest
            job = self.p.honest_job(self.a.requester, self.a.honest_provider, self.R, k_pct)
            public = self.w.public_bytes(job.info["submitTx"])
            if job.digest in public:
                raise SimError("the submission made the result digest public")
        return self._row(
            "digest leaked: lazy verifier copies",
            ("lazy verifier",),
            parties,
            branches=lazy,
            baseline=baseline,
            params={"k": k_pct / 100},
            note=(
                f"per audit it is drawn for; EV relative to running the job honestly (baseline {baseline:+.3f} R, "
                "branches: "
                + ", ".join(f"{b.name} {b.payoff['lazy verifier'] / self.R:+.3f} R" for b in honest)
                + "). Nothing public names the digest before the reveal (checked: the submission's calldata and "
                "logs hold the salted commitment and an opaque URI), so it leaks only off chain, from the "
                "provider or the canary operator, and a 256-bit salt defeats brute force."
            ),
        )

    def collusion(self, s: float, k_pct: int = 400) -> Row:
        """The lazy provider with a coalition holding share s of the verifier stake: its own auditor
        agrees; its jurors try to win the jury; the honest auditor appeals a captured jury."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        nu = self.nu
        parties = {"provider": [self.a.provider], "coalition": list(self.a.coalition), **self.honest_parties()}
        label = f"collude{s}"
        with self.w.branch():
            s_real = self.set_coalition_share(s)
            p3, p7 = jury_capture(3, s_real), jury_capture(7, s_real)

            def own_auditor() -> str:
                job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
                self.p.run_round(job, 0, [("coalition", copy_provider)], label=label)
                return self.p.conclude(job)

            def captured_then_appeal() -> str:
                job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
                self.p.run_round(job, 0, [("honest", run_honestly)], label=label)
                self.p.escalated_to(job, 1)
                auditor = str(self.p.seat(job.id, 0, 0)["holder"])
                jury = [("coalition", copy_provider)] * 2 + [("honest", run_honestly)]
                case = self.p.run_round(job, 1, jury, label=label + "cap")
                self.p.appeal(job, auditor)
                del case
                self.p.escalated_to(job, 2)
                self.p.run_round(job, 2, [("honest", run_honestly)] * 7, label=label + "k7")
                return self.p.conclude(job)

            pd = p * (1 - nu)
            branches = [
                self.measure("not drawn", 1 - p, parties, lambda: self._lazy_not_drawn(k_pct, label)),
                self.measure("drawn, coalition auditor agrees", pd * s_real, parties, own_auditor),
                self.measure("honest auditor, honest jury", pd * (1 - s_real) * (1 - p3), parties, lambda: self._lazy_caught(k_pct, label)),
                self.measure("honest auditor, jury captured, appeal to 7", pd * (1 - s_real) * p3, parties, captured_then_appeal),
                self.measure("drawn, nobody audits", p * nu, parties, lambda: self._lazy_unaudited(k_pct, label)),
            ]
        # the mass where the 7-jury is captured too (p*(1-nu)*(1-s)*P3*P7) is put in the branch that
        # pays the attacker most (its own auditor), a conservative bound; not run on chain.
        rare = pd * (1 - s_real) * p3 * p7
        branches[3].prob -= rare
        best = max(branches, key=lambda b: b.payoff["provider"] + b.payoff["coalition"])
        best.prob += rare
        params = self.base_params(k_pct, p) | {"s": round(s_real, 4), "P3": round(p3, 4), "P7": round(p7, 4)}
        return self._row(
            f"provider-verifier collusion s={s:g}",
            ("provider", "coalition"),
            parties,
            branches=branches,
            params=params,
            note=(
                f"coalition stake share s read from the court's snapshot views; a captured 3-jury is appealed "
                f"by the honest auditor; the mass where the 7-jury is captured as well ({rare:.2e}) is counted "
                "at the attacker's best branch (not run)."
            ),
        )

    def set_coalition_share(self, s: float) -> float:
        """Adds coalition stake until it is share `s` of the class-0 pool; returns the share the
        court's views give (stake that counts for the next submissions)."""
        court = self.w.court
        block = self.w.block_number()
        total = int(self.w.read(court, "classStakeAt", 0, block - 1))
        mine = sum(int(self.w.read(court, "stakeAt", c, block - 1)) for c in self.a.coalition)
        others = total - mine
        need = int(s / (1 - s) * others) - mine
        if need > 0:
            each = need // len(self.a.coalition) + 1
            for c in self.a.coalition:
                self.w.send(c, court, "addStake", each)
        delay = int(self.p.court_params()["activationDelayBlocks"])
        self.w.anvil.mine(delay + 2)
        block = self.w.block_number()
        total = int(self.w.read(court, "classStakeAt", 0, block - 1))
        mine = sum(int(self.w.read(court, "stakeAt", c, block - 1)) for c in self.a.coalition)
        return mine / total

    def colluding_juror_no_show(self, k_pct: int = 400) -> Row:
        """A 3-jury with one colluding juror and one honest juror who takes the seat and never shows:
        the no-show's bond is forfeited, and since the round's votes are public its seat is not
        redrawn (a new holder could copy them): the undecided round escalates to a 7-jury, paid
        from the pot the forfeited bond joins. The cheat does not escape."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], "coalition": list(self.a.coalition), **self.honest_parties()}
        label = "noshow"

        def body() -> str:
            job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
            self.p.run_round(job, 0, [("honest", run_honestly)], label=label)
            self.p.escalated_to(job, 1)
            jury = [("coalition", copy_provider), ("honest", no_show), ("honest", run_honestly)]
            case = self.p.run_round(job, 1, jury, label=label)
            if int(case["round"]) != 2 or int(case["redraws"]) != 0:
                raise SimError("the no-show's undecided round did not escalate to a 7-jury")
            self.p.run_round(job, 2, [("honest", run_honestly)] * 7, label=label)
            return self.p.conclude(job)

        branches = [
            self.measure("not drawn", 1 - p, parties, lambda: self._lazy_not_drawn(k_pct, label)),
            self.measure("drawn: 1 colluding juror + 1 no-show", p, parties, body),
        ]
        return self._row(
            "1 colluding juror + 1 no-show",
            ("provider", "coalition"),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p) | {"K": 3},
            note=(
                "the branch every drawn job meets here (a worst case, probability p): the no-show's bond is forfeited to the"
                " pot; the round's votes being public, its seat is not redrawn: the undecided round escalates to a 7-jury"
            ),
        )

    def self_challenge(self, k_pct: int = 400) -> Row:
        """The lazy provider's sybil challenges the wrong result first, hoping to keep the slash in
        the family; the drawn audit is not displaced and the challenger gets at most beta*R."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], "sybil": [self.a.sybil], **self.honest_parties()}
        label = "selfchal"

        def branch(drawn: bool) -> Callable[[], str]:
            return lambda: self._challenged(
                self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct), self.a.sybil, run_honestly, label, drawn=drawn
            )

        branches = [
            self.measure("not drawn: straight to a 3-jury", 1 - p, parties, branch(False)),
            self.measure("drawn: audit runs, then the jury", p, parties, branch(True)),
        ]
        return self._row(
            "self-challenge by the provider's sybil",
            ("provider", "sybil"),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p) | {"beta": int(self.p.court_params()["betaBps"]) / BPS},
            note="group payoff = -k*R + bounty (<= beta*R): worse than not challenging; the drawn audit still runs",
        )

    def nondeterminism_griefing(self, k_pct: int = 400) -> Row:
        """The requester posts a job whose output differs on every run and declares it re-executable,
        hoping a split jury refunds it (free compute); the honest provider must still be paid."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"requester": [self.a.requester], "honest provider": [self.a.honest_provider]}
        for i, v in enumerate(self.a.honest):
            parties[f"verifier{i}"] = [v]
        label = "nondet"

        def job() -> Job:
            j = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.honest_provider, j)
            j.truth = None  # every run differs
            self.p.ran(self.a.honest_provider)
            self.p.submit(j, run_honestly(j, self.a.honest_provider, 9, 9))
            return j

        def undrawn() -> str:
            j = job()
            self.p.force_not_drawn(j, label)
            return self.p.finalize_after_window(j)

        def drawn() -> str:
            j = job()
            self.p.run_round(j, 0, [("honest", run_honestly)], label=label)
            self.p.escalated_to(j, 1)
            self.p.run_round(j, 1, [("honest", run_honestly)] * 3, label=label)
            return self.p.conclude(j)

        branches = [
            self.measure("not drawn", 1 - p, parties, undrawn),
            self.measure("drawn: every run differs, jury splits", p, parties, drawn),
        ]
        # the requester's honest alternative: the same job, deterministic: pays R(1+f) and, drawn, A
        baseline = -(1 - p) * (1 + self.f) - p * (1 + self.f + self.audit_fee)
        row = self._row(
            "requester griefing: nondeterministic job",
            ("requester",),
            parties,
            branches=branches,
            baseline=baseline,
            params=self.base_params(k_pct, p),
            note="EV relative to posting the same job deterministically (pays R(1+f) + p*A); a Split pays the provider",
        )
        row.honest_reference = {}
        return row

    def input_switch(self, k_pct: int = 400) -> Row:
        """The requester serves bytes that do not match the input hash; the provider reports
        InputHashMismatch: no fault, the job reopens, both sides pay the small fee."""
        parties = {"requester": [self.a.requester], "honest provider": [self.a.honest_provider]}

        def body() -> str:
            j = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.honest_provider, j)
            self.p.submit_failure(j, INPUT_HASH_MISMATCH)
            return self.p.status(j.id)

        b = self.measure("provider reports InputHashMismatch", 1.0, parties, body)
        b.note = "the reopened job's escrow is counted back to the requester (still its money, the job is open)"
        row = self._row(
            "input switch (availability failure)",
            ("requester",),
            parties,
            branches=[b],
            params={"k": k_pct / 100},
            note=f"no fault but not free: each side pays {self.no_fault:g} R (burned); the provider's loss is that designed fee",
            honest_allowance=self.no_fault,
        )
        row.honest_reference = {"honest provider": -self.no_fault}
        return row

    def fake_failure(self, k_pct: int = 400) -> Row:
        """A provider that will not run the job reports a (non-availability) failure: it is committed
        and drawn for audit exactly like a result."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], **self.honest_parties()}
        label = "fakefail"

        def job() -> Job:
            j = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.provider, j)
            self.p.submit_failure(j, NONZERO_EXIT)
            return j

        def undrawn() -> str:
            j = job()
            self.p.force_not_drawn(j, label)
            return self.p.finalize_after_window(j)

        def drawn() -> str:
            j = job()
            self.p.run_round(j, 0, [("honest", run_honestly)], label=label)
            self.p.escalated_to(j, 1)
            self.p.run_round(j, 1, [("honest", run_honestly)] * 3, label=label)
            return self.p.conclude(j)

        branches = [
            self.measure("not drawn: requester refunded", 1 - p, parties, undrawn),
            self.measure("drawn: verifiers run it, it succeeds", p * (1 - self.nu), parties, drawn),
            self.measure("drawn, nobody audits", p * self.nu, parties, lambda: self.p.unaudited(job(), label)),
        ]
        return self._row(
            "fake failure (audited code)",
            ("provider",),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p),
            note="a failure is committed and drawn like a result; the griefer's alternative is not to claim (0)",
        )

    def fake_availability_failure(self, k_pct: int = 400) -> Row:
        """A griefer claims in the block of the post and reports ImageUnavailable to kill the job."""
        parties = {"provider": [self.a.provider], "requester": [self.a.requester]}

        def body() -> str:
            j = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.provider, j)
            self.p.submit_failure(j, 1)
            return self.p.status(j.id)

        b = self.measure("reports ImageUnavailable", 1.0, parties, body)
        row = self._row(
            "fake availability failure (job kill)",
            ("provider",),
            parties,
            branches=[b],
            params={"k": k_pct / 100},
            note="the job reopens (not killed); the griefer pays the no-fault fee each time; the requester pays the same fee",
            honest_allowance=self.no_fault,
        )
        row.honest_reference = {"requester": -self.no_fault}
        return row

    def claim_hoarding(self, k_pct: int = 400) -> Row:
        """Claims a job and never submits: the timeout slashes the collateral and reopens the job."""
        parties = {"provider": [self.a.provider], "requester": [self.a.requester]}

        def body() -> str:
            j = self.p.post(self.a.requester, self.R, k_pct)
            self.p.claim(self.a.provider, j)
            self.w.warp_to(int(self.p.job_view(j.id)["deadline"]) + 1)
            self.w.send(self.a.deployer, self.w.market, "timeoutJob", j.id)
            return self.p.status(j.id)

        b = self.measure("claims, never submits, timed out", 1.0, parties, body)
        return self._row(
            "claim hoarding",
            ("provider",),
            parties,
            branches=[b],
            params={"k": k_pct / 100},
            note="the timeout slashes the collateral; a reopened job's escrow is counted back to the requester",
        )

    def unstake_after_draw(self, k_pct: int = 400) -> Row:
        """The lazy provider starts unbonding all it can right after submitting (before the audit):
        the job's collateral is locked and slashing reaches unbonding stake."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], **self.honest_parties()}
        label = "unstake"

        evidence: list[str] = []

        def leave(job: Job) -> None:
            info = self.w.view(self.w.staking, "getProvider", self.a.provider)
            everything = self.w.fails(self.a.provider, self.w.staking, "requestUnstake", int(info["staked"]))
            evidence.append(
                f"unbonding the whole stake reverts {everything.split('(')[0]}"
                if everything
                else "unbonding the whole stake is accepted (UNEXPECTED)"
            )
            free = int(info["staked"]) - int(info["locked"])
            if free:
                self.w.send(self.a.provider, self.w.staking, "requestUnstake", free)
                evidence.append(f"the free {free / self.R:g} R unbonds, the {int(info['locked']) / self.R:g} R collateral stays locked")

        branches = [
            self.measure("not drawn", 1 - p, parties, lambda: self._lazy_not_drawn(k_pct, label)),
            self.measure(
                "drawn, unbonds before the audit", p * (1 - self.nu), parties, lambda: self._lazy_caught(k_pct, label, before_audit=leave)
            ),
            self.measure("drawn, nobody audits", p * self.nu, parties, lambda: self._lazy_unaudited(k_pct, label)),
        ]
        return self._row(
            "unstake after draw (provider)",
            ("provider",),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p),
            note="the slash takes the collateral in full: " + "; ".join(evidence[:2]),
        )

    def verifier_leaves_after_draw(self) -> Row:
        """The lazy verifier, drawn, starts leaving the court right after taking the audit, then
        copies a canary digest: its bond is locked and the canary slash reaches unbonding stake."""
        parties = {"lazy verifier": [self.a.lazy]}
        phi = self.x.phi
        k_pct = 400

        def canary() -> str:
            job = self.p.canary_job(self.R, k_pct)
            self.p.force_audit_draw(job, "lazy", "leave")
            self.p.take(job, 0, 0)
            free = int(self.w.view(self.w.court, "getVerifier", self.a.lazy)["free"])
            if free:
                self.w.send(self.a.lazy, self.w.court, "requestLeave", free)
            salt = keccak(b"leave-salt")
            self.w.send(self.a.lazy, self.w.court, "commit", job.id, 0, seat_commitment(self.a.lazy, job.id, 0, 0, job.digest, salt))
            self.p.open_reveals(job)
            self.w.send(self.a.lazy, self.w.court, "reveal", job.id, 0, job.digest, salt)
            self.p.expose_canary(job)
            return self.p.outcome(job.id)

        def real() -> str:
            job = self.p.honest_job(self.a.requester, self.a.honest_provider, self.R, k_pct)
            self.p.run_round(job, 0, [("lazy", copy_provider)], label="leave-real")
            return self.p.conclude(job)

        branches = [
            self.measure("real job, copies", 1 - phi, parties, real),
            self.measure("canary, leaves then copies", phi, parties, canary),
        ]
        honest_ev = self.honest_verifier_baseline()
        return self._row(
            "unstake after draw (verifier)",
            ("lazy verifier",),
            parties,
            branches=branches,
            baseline=honest_ev,
            params={},
            note="bond locked at startAudit; requestLeave moves only free stake, and the canary slash reaches unbonding stake",
        )

    def withheld_delivery(self, k_pct: int = 400) -> Row:
        """The provider runs the job and commits to the right digest but never serves the archive
        (VERIFICATION.md §4). The requester, who got nothing, challenges; every seat re-runs (the
        provider's digest), finds no archive at the URI and commits NOT_DELIVERED
        (executor/verifier.py): ProviderWrong. Drawn or not, the requester challenges."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {"provider": [self.a.provider], **self.honest_parties()}
        label = "withheld"

        def branch(drawn: bool) -> Callable[[], str]:
            return lambda: self._challenged(
                self.p.honest_job(self.a.requester, self.a.provider, self.R, k_pct), self.a.requester, report_not_delivered, label,
                drawn=drawn,
            )

        branches = [
            self.measure("not drawn: the requester challenges, 3-jury", 1 - p, parties, branch(False)),
            self.measure("drawn: audit, then the jury", p, parties, branch(True)),
        ]
        return self._row(
            "withheld delivery",
            ("provider",),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p),
            note=(
                "the provider ran the job and withholds the archive; the requester challenges and the seats, "
                "finding no archive at the URI, commit NOT_DELIVERED: the provider loses k*R and its work"
            ),
        )

    def wash_trading(self, verify_mode: int) -> Row:
        """Two colluding accounts: A posts, B claims and (really) runs a trivial job: the rebate is
        kappa*f*R out of a fee f*R, so every job loses (1-kappa)*f*R."""
        k_pct = 400
        bps = self.audit_bps(k_pct, verify_mode)
        p = bps / BPS
        parties = {"poster": [self.a.requester], "claimer": [self.a.wash], **{f"verifier{i}": [v] for i, v in enumerate(self.a.honest)}}

        def undrawn() -> str:
            j = self.p.honest_job(self.a.requester, self.a.wash, self.R, k_pct, verify_mode=verify_mode)
            if verify_mode == 0:
                self.p.force_not_drawn(j, "wash")
            return self.p.finalize_after_window(j)

        def drawn() -> str:
            j = self.p.honest_job(self.a.requester, self.a.wash, self.R, k_pct, verify_mode=verify_mode)
            self.p.run_round(j, 0, [("honest", run_honestly)], label="wash")
            return self.p.conclude(j)

        branches = [self.measure("not drawn", 1 - p, parties, undrawn)]
        if p > 0:
            branches.append(self.measure("drawn, audit agrees", p, parties, drawn))
        row = self._row(
            f"emission wash trading ({'verify none' if verify_mode else 'reexec'})",
            ("poster", "claimer"),
            parties,
            branches=branches,
            params={"p": round(p, 4)},
            note="the pair's compute is priced at 0 (a trivial job): the loss is the burned (1-kappa)*f*R (+ p*A audited)",
        )
        row.compute_cost = 0.0
        return row

    def audit_fee_drain(self, s: float = 0.2) -> Row:
        """VERIFICATION-ANALYSIS F4's drain: requester, provider and a verifier coalition deal jobs to
        each other hoping their own auditor collects audit fees from a shared pool. With the fee
        escrowed per job by its requester there is no pool: their own auditor is paid their own money."""
        k_pct = 400
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        parties = {
            "poster": [self.a.requester],
            "claimer": [self.a.wash],
            "coalition": list(self.a.coalition),
            **{f"verifier{i}": [v] for i, v in enumerate(self.a.honest)},
        }
        with self.w.branch():
            s_real = self.set_coalition_share(s)

            def undrawn() -> str:
                j = self.p.honest_job(self.a.requester, self.a.wash, self.R, k_pct)
                self.p.force_not_drawn(j, "drain")
                return self.p.finalize_after_window(j)

            def drawn(pool: str) -> Callable[[], str]:
                def body() -> str:
                    j = self.p.honest_job(self.a.requester, self.a.wash, self.R, k_pct)
                    self.p.run_round(j, 0, [(pool, run_honestly)], label=f"drain-{pool}")
                    return self.p.conclude(j)

                return body

            branches = [
                self.measure("not drawn", 1 - p, parties, undrawn),
                self.measure("drawn to the coalition's auditor", p * s_real, parties, drawn("coalition")),
                self.measure("drawn to an honest auditor", p * (1 - s_real), parties, drawn("honest")),
            ]
        row = self._row(
            f"audit-fee drain (self-dealt jobs) s={s:g}",
            ("poster", "claimer", "coalition"),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p) | {"s": round(s_real, 4)},
            note="no audit pool: A is escrowed by each job's requester, so the coalition's own auditor is paid the coalition's money",
        )
        row.compute_cost = 0.0  # a trivial job: the coalition's runs cost nothing
        return row

    def stake_grinding(self, s: float = 0.1, samples: int = 12) -> Row:
        """The coalition adds stake after the submission, before the anchor block, to win the draw:
        the draw uses the stake snapshot of the submission block minus the activation delay."""
        row = self.collusion(s)
        same = 0
        with self.w.branch():
            self.set_coalition_share(s)
            job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, 400)
            anchor = self.p.anchor(job)
            self.w.mine_past(anchor)
            values = [keccak(b"stake-grind:%d" % i) for i in range(samples)]

            def picks() -> list[str]:
                out = []
                for r in values:
                    self.w.send(self.w.deployer, self.w.randomness, "setValue", anchor, r)
                    out.append(self.p.drawn_for(job.id, 0, 0))
                return out

            before = picks()
            stake_before = sum(int(self.w.view(self.w.court, "getVerifier", c)["free"]) for c in self.a.coalition)
            for c in self.a.coalition:
                self.w.send(c, self.w.court, "addStake", 50 * self.R)
            self.w.anvil.mine(int(self.p.court_params()["activationDelayBlocks"]) + 2)
            after = picks()
            same = sum(1 for x, y in zip(before, after, strict=True) if x == y)
        if same != samples:
            raise SimError(f"stake added after the submission changed {samples - same} of {samples} draws")
        row.strategy = f"stake grinding on the draw s={s:g}"
        row.note = (
            f"the coalition raised its stake from {stake_before / self.R:g} R to "
            f"{(stake_before + 50 * self.R * len(self.a.coalition)) / self.R:g} R after the submission: the auditor drawn for "
            f"{samples} anchor values is unchanged ({same}/{samples}); EV is the collusion row's at the pre-submission s"
        )
        return row

    def bribe(self, k_pct: int = 400) -> Row:
        """p+eps bribe: a briber pays every juror who votes for the provider's digest its bond plus
        eps if that vote loses, so voting for it is weakly dominant and every drawn juror takes it,
        in every round. The honest auditor appeals each captured tally up to the timelocked arbiter.
        The jurors' payoffs count as the attacker's (the briber makes them whole), plus eps a seat."""
        bps = self.audit_bps(k_pct)
        p = bps / BPS
        jurors = [*self.a.honest, *self.a.coalition]
        parties = {
            "provider": [self.a.provider],
            "bribed jurors": jurors,
            "requester": [self.a.requester],
            "auditor": [self.a.lazy],  # the "lazy" account plays an honest auditor here
        }
        label = "bribe"

        def body() -> str:
            job = self.p.lazy_job(self.a.requester, self.a.provider, self.R, k_pct)
            self.p.run_round(job, 0, [("lazy", run_honestly)], label=label)
            for rnd, size in ((1, 3), (2, 7), (3, 15)):
                self.p.escalated_to(job, rnd)
                self.p.run_round(job, rnd, [("verifiers", copy_provider)] * size, label=f"{label}{rnd}")
                self.p.appeal(job, self.a.lazy)
            self.w.send(self.a.deployer, self.w.court, "arbiterRule", job.id, OUTCOME.index("ProviderWrong"))
            return self.p.conclude(job)

        branches = [
            self.measure("not drawn", 1 - p, parties, lambda: self._lazy_not_drawn(k_pct, label)),
            self.measure("drawn: every jury bribed, arbiter rules", p, parties, body),
        ]
        row = self._row(
            "p+eps bribe against appeals",
            ("provider", "bribed jurors"),
            parties,
            branches=branches,
            params=self.base_params(k_pct, p) | {"eps": self.x.bribe_epsilon, "seats": 25},
            note=(
                "worst case: all 3+7+15 jury seats take the bribe; the honest auditor appeals each tally "
                "(bonds 7w, 15w, 15w) and the arbiter rules after its timelock; the briber repays the jurors' "
                "burned bonds and eps a seat"
            ),
        )
        row.baseline = p * 25 * self.x.bribe_epsilon
        row.honest = ("requester", "auditor")
        return row

    # ------------------------------------------------------------------ the table

    def all(self, progress: Callable[[str], None] | None = None, only: list[str] | None = None) -> list[Row]:
        """Every row (`only`: those whose plan name contains one of the given words)."""
        say = progress or (lambda _m: None)
        plan: list[tuple[str, Callable[[], Row]]] = [
            ("lazy k=4", lambda: self.lazy_provider(400)),
            ("lazy k=6", lambda: self.lazy_provider(600)),
            ("lazy k=10", lambda: self.lazy_provider(1000)),
            ("draw grinding", self.draw_grinding),
            ("digest leaked", self.lazy_verifier),
            ("collusion 0.1", lambda: self.collusion(0.1)),
            ("collusion 0.2", lambda: self.collusion(0.2)),
            ("juror + no-show", self.colluding_juror_no_show),
            ("bribe", self.bribe),
            ("self-challenge", self.self_challenge),
            ("nondeterminism", self.nondeterminism_griefing),
            ("input switch", self.input_switch),
            ("fake failure", self.fake_failure),
            ("fake availability failure", self.fake_availability_failure),
            ("claim hoarding", self.claim_hoarding),
            ("unstake (provider)", self.unstake_after_draw),
            ("unstake (verifier)", self.verifier_leaves_after_draw),
            ("withheld delivery", self.withheld_delivery),
            ("wash (reexec)", lambda: self.wash_trading(0)),
            ("wash (none)", lambda: self.wash_trading(1)),
            ("stake grinding", self.stake_grinding),
            ("audit-fee drain", self.audit_fee_drain),
        ]
        assert tuple(name for name, _ in plan) == STRATEGY_NAMES, "STRATEGY_NAMES lists the plan"
        rows = []
        for name, build in plan:
            if only and not any(word in name for word in only):
                continue
            say(f"running: {name}")
            try:
                rows.append(build())
            except (SimError, TxFailed) as exc:
                rows.append(Row(strategy=name, attacker=(), honest=(), reward=self.R, on_chain=False, note=f"FAILED on chain: {exc}"))
        return rows
