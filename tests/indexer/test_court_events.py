"""The reducer on the court's events (VerificationCourt): a job's case (phase, round, seats with
commitments and reveals, tallies, challenge, appeal, conclusion) and the verifiers' records (free
and locked stake, bonds, payments, no-shows, canary slashes), from events alone. Pure: the Reducer
with an in-memory store of hashes."""

from __future__ import annotations

import json
from typing import Any

from depin.keys import Keys
from depin.spec import canonical_json, spec_hash
from indexer.decode import Event
from indexer.reducer import COURT_EVENTS, HANDLED_EVENTS, Reducer

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
COURT = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be"
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
AUDITOR = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
JUROR = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
CHALLENGER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
R = 10**18
PARAMS_V1 = {"feeBps": 200, "auditFeeBps": 11_000, "kappaBps": 5_000, "paused": False}
SPEC = canonical_json({"v": 1, "image": "depin/busybox@sha256:" + "ab" * 32, "command": ["true"],
                       "resources": {"cpus": 1, "memory_mb": 64, "max_runtime": 10}})


class Index:
    """The hashes the reducer writes, kept in a dict (what the store would hold)."""

    def __init__(self) -> None:
        self.keys = Keys(31337, MARKET)
        self.reducer = Reducer(self.keys)
        self.hashes: dict[str, dict[str, str]] = {}
        self.block = 0

    def load(self, keys: Any) -> dict[str, dict[str, str]]:
        return {k: dict(self.hashes.get(k, {})) for k in keys}

    def apply(self, *events: tuple[str, dict[str, Any]]) -> None:
        self.block += 1
        evs = [
            Event(name, "VerificationCourt" if name in COURT_EVENTS else "JobMarket", COURT if name in COURT_EVENTS else MARKET,
                  self.block, "0x" + f"{self.block:064x}", "0x" + f"{i:064x}", i, args)
            for i, (name, args) in enumerate(events)
        ]
        for ev in evs:
            ev.timestamp = 1_900_000_000
        read, _absent = self.reducer.prefetch(evs)
        result = self.reducer.apply(evs, self.load(read), self.load)
        for key, value in result.values.items():
            self.hashes[key] = dict(value)

    def job(self, job_id: int) -> dict[str, str]:
        return self.hashes[self.keys.job(job_id)]

    def verifier(self, address: str) -> dict[str, str]:
        return self.hashes[self.keys.verifier(address)]

    def totals(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.hashes[self.keys.totals].items()}


def _submitted(index: Index, job_id: int) -> None:
    index.apply(("MarketParamsUpdated", {"version": 1, "params": PARAMS_V1}), ("JobPosted", {
        "jobId": job_id, "requester": REQUESTER, "specHash": "0x" + spec_hash(SPEC).hex(),
        "terms": {"reward": R, "claimWindow": 600, "maxRuntime": 60, "challengeWindow": 30, "collateralPct": 400,
                  "cpuSeconds": 10, "verifyMode": 0},
        "fromCredit": 0, "auditBps": 3085, "paramsVersion": 1, "spec": SPEC,
    }))
    index.apply(("JobClaimed", {"jobId": job_id, "provider": PROVIDER, "collateral": 4 * R, "submitDeadline": 1_900_000_100}))
    index.apply(("ResultSubmitted", {"jobId": job_id, "provider": PROVIDER, "commitment": "0x" + "c0" * 32,
                                     "resultURI": "http://r/opaque", "challengeDeadline": 1_900_000_200, "anchorBlock": 4}))


def test_every_court_event_has_a_handler() -> None:
    assert set(COURT_EVENTS) <= set(HANDLED_EVENTS)
    reducer = Reducer(Keys(31337, MARKET))
    assert all(callable(getattr(reducer, "_on_" + name)) for name in COURT_EVENTS)


def test_an_audit_escalated_to_a_jury_and_concluded() -> None:
    index = Index()
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 0, "amount": 100 * R}),
                ("VerifierJoined", {"verifier": JUROR, "platformClass": 0, "amount": 50 * R}),
                ("StakeAdded", {"verifier": JUROR, "amount": 10 * R, "stake": 60 * R}))
    _submitted(index, 1)
    index.apply(
        ("CaseOpened", {"jobId": 1, "platformClass": 0, "snapshotBlock": 3, "round": 0, "paramsVersion": 1}),
        ("SeatsDrawn", {"jobId": 1, "round": 0, "k": 1, "redraws": 0, "anchor": 4, "seatDeadline": 1_900_000_150,
                        "commitDeadline": 1_900_000_300, "revealDeadline": 1_900_000_400}),
        ("SeatTaken", {"jobId": 1, "round": 0, "seat": 0, "verifier": AUDITOR, "bond": 35 * R // 10}),
        ("VerificationStarted", {"jobId": 1, "court": COURT}),
    )
    job = index.job(1)
    assert (job["status"], job["casePhase"], job["caseRound"], job["courtDeadline"]) == ("Disputed", "Active", "0", "1900000150")
    assert index.verifier(AUDITOR)["free"] == str(100 * R - 35 * R // 10) and index.verifier(AUDITOR)["locked"] == str(35 * R // 10)
    index.apply(("SeatCommitted", {"jobId": 1, "round": 0, "seat": 0, "commitment": "0x" + "aa" * 32}),
                ("Challenged", {"jobId": 1, "challenger": CHALLENGER, "bond": 35 * R // 10}))
    index.apply(("SeatRevealed", {"jobId": 1, "round": 0, "seat": 0, "digest": "0x" + "dd" * 32}),
                ("ProviderRevealed", {"jobId": 1, "digest": "0x" + "ee" * 32}),
                ("SeatsDrawn", {"jobId": 1, "round": 1, "k": 3, "redraws": 0, "anchor": 9, "seatDeadline": 1_900_000_500,
                                "commitDeadline": 1_900_000_600, "revealDeadline": 1_900_000_700}),
                ("SeatTaken", {"jobId": 1, "round": 1, "seat": 0, "verifier": JUROR, "bond": 11 * R // 10}),
                ("SeatTaken", {"jobId": 1, "round": 1, "seat": 1, "verifier": JUROR, "bond": 11 * R // 10}))
    index.apply(("SeatNoShow", {"jobId": 1, "round": 1, "seat": 1, "verifier": JUROR, "bondBurned": 11 * R // 10}),
                ("RoundTallied", {"jobId": 1, "round": 1, "tally": 2, "revealed": 3, "forProvider": 0, "forTop": 3,
                                  "topDigest": "0x" + "dd" * 32, "windowEnd": 1_900_000_800}))
    job = index.job(1)
    seats = json.loads(job["seats"])
    assert seats["0.0"] == {"verifier": AUDITOR, "bond": str(35 * R // 10), "state": "Revealed", "commitment": "0x" + "aa" * 32,
                            "digest": "0x" + "dd" * 32}
    assert seats["1.1"]["state"] == "NoShow" and job["providerDigest"] == "0x" + "ee" * 32
    assert json.loads(job["tallies"])[0]["tally"] == "ProviderWrong" and job["courtDeadline"] == "1900000800"
    assert (job["challenger"], job["challengeBond"]) == (CHALLENGER, str(35 * R // 10))
    # The no-show's bond is held for the case's pot (with the challenge bond) until the conclusion.
    assert index.totals()["courtHeldBonds"] == 35 * R // 10 + 11 * R // 10 and not index.totals().get("courtBurned")
    index.apply(
        ("SeatSettled", {"jobId": 1, "round": 1, "seat": 0, "verifier": JUROR, "paid": 11 * R // 10, "bondReturned": 11 * R // 10,
                         "bondForfeited": 0}),
        ("SeatSettled", {"jobId": 1, "round": 0, "seat": 0, "verifier": AUDITOR, "paid": 11 * R // 10,
                         "bondReturned": 35 * R // 10, "bondForfeited": 0}),
        ("JobSettled", {"jobId": 1, "outcome": 2, "providerPayout": 0, "requesterRefund": R + R // 50,
                        "toCourt": 4 * R + R * 11 // 10, "burned": 0}),
        ("CaseConcluded", {"jobId": 1, "outcome": 2, "toCourt": 4 * R + R * 11 // 10, "paidSeats": 22 * R // 10,
                           "bounty": R // 10, "refunded": 35 * R // 10, "burned": 28 * R // 10}),
    )
    job = index.job(1)
    assert (job["status"], job["outcome"], job["casePhase"], job["caseOutcome"]) == ("Resolved", "ProviderWrong", "Concluded", "ProviderWrong")
    auditor, juror = index.verifier(AUDITOR), index.verifier(JUROR)
    assert (auditor["free"], auditor["locked"], auditor["paid"], auditor["seats"]) == (str(100 * R), "0", str(11 * R // 10), "1")
    assert (juror["free"], juror["locked"], juror["noShows"], juror["bondsForfeited"]) == (str(60 * R - 11 * R // 10), "0", "1", str(11 * R // 10))
    t = index.totals()
    assert t["verifiers"] == 2 and t["courtLocked"] == 0 and t["courtHeldBonds"] == 0
    assert t["courtStaked"] == 160 * R - 11 * R // 10  # the no-show's bond burned
    assert t["escrowed"] == 0 and t["slashedToCourt"] == 4 * R and t["toCourt"] == R * 11 // 10 and t["Resolved"] == 1


def test_a_canary_catch_slashes_the_bond_and_stake_beyond_it() -> None:
    index = Index()
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 0, "amount": 30 * R}))
    _submitted(index, 2)
    index.apply(("SeatTaken", {"jobId": 2, "round": 0, "seat": 0, "verifier": AUDITOR, "bond": 35 * R // 10}),
                ("SeatRevealed", {"jobId": 2, "round": 0, "seat": 0, "digest": "0x" + "ca" * 32}))
    index.apply(("LeaveRequested", {"verifier": AUDITOR, "amount": 20 * R, "stake": 10 * R, "unbonding": 20 * R, "releaseAt": 99}))
    index.apply(("SeatSettled", {"jobId": 2, "round": 0, "seat": 0, "verifier": AUDITOR, "paid": 0, "bondReturned": 0,
                                 "bondForfeited": 35 * R // 10}),
                ("VerifierSlashed", {"verifier": AUDITOR, "jobId": 2, "amount": 35 * R // 10 + 20 * R}),
                ("CanaryExposed", {"jobId": 2, "canaryDigest": "0x" + "ca" * 32, "seatsCaught": 1, "slashed": 35 * R // 10 + 20 * R}))
    v = index.verifier(AUDITOR)
    # 20 R beyond the bond: the free stake left (6.5 R) first, then 13.5 R of the unbonding stake
    assert (v["free"], v["unbonding"], v["locked"]) == ("0", str(20 * R - (20 * R - (10 * R - 35 * R // 10))), "0")
    assert v["slashed"] == str(35 * R // 10 + 20 * R)
    assert json.loads(index.job(2)["seats"])["0.0"]["slashed"] == "1"
    assert index.job(2)["canarySeatsCaught"] == "1"


def test_a_seats_canary_reserve_is_locked_until_it_settles() -> None:
    """Each seat locks max(bond, sigma R): SeatTaken's `bond` and `reserve` leave free stake; a
    no-show's reserve comes back (`reserveReturned`) while its bond is forfeited; a settled seat's
    `bondReturned` carries its reserve; a canary catch forfeits bond + reserve and takes the rest of
    bond + sigma R from free stake."""
    index = Index()
    index.apply(("VerifierJoined", {"verifier": JUROR, "platformClass": 0, "amount": 100 * R}))
    _submitted(index, 3)
    bond, reserve = 11 * R // 10, 20 * R - 11 * R // 10
    index.apply(*[("SeatTaken", {"jobId": 3, "round": 1, "seat": i, "verifier": JUROR, "bond": bond, "reserve": reserve})
                  for i in range(3)])
    v = index.verifier(JUROR)
    assert (v["free"], v["locked"]) == (str(40 * R), str(60 * R))
    index.apply(("SeatNoShow", {"jobId": 3, "round": 1, "seat": 2, "verifier": JUROR, "bondBurned": bond,
                                "reserveReturned": reserve}))
    v = index.verifier(JUROR)
    assert (v["free"], v["locked"]) == (str(40 * R + reserve), str(40 * R))
    index.apply(("SeatSettled", {"jobId": 3, "round": 1, "seat": 0, "verifier": JUROR, "paid": bond,
                                 "bondReturned": bond + reserve, "bondForfeited": 0}),
                ("SeatSettled", {"jobId": 3, "round": 1, "seat": 1, "verifier": JUROR, "paid": 0,
                                 "bondReturned": 0, "bondForfeited": bond + reserve}),
                ("VerifierSlashed", {"verifier": JUROR, "jobId": 3, "amount": bond + 20 * R}))
    v = index.verifier(JUROR)
    assert (v["free"], v["locked"]) == (str(100 * R - 2 * bond - 20 * R), "0")
    t = index.totals()
    assert t["courtLocked"] == 0 and t["courtStaked"] == 100 * R - 2 * bond - 20 * R


def test_a_verifier_that_withdrew_everything_leaves_the_count_and_may_rejoin() -> None:
    index = Index()
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 3, "amount": 10 * R}),
                ("VerifierJoined", {"verifier": JUROR, "platformClass": 3, "amount": 10 * R}))
    index.apply(("LeaveRequested", {"verifier": AUDITOR, "amount": 10 * R, "stake": 0, "unbonding": 10 * R, "releaseAt": 99}))
    index.apply(("LeftWithdrawn", {"verifier": AUDITOR, "amount": 10 * R}),
                ("ClassLeft", {"verifier": AUDITOR, "platformClass": 3}))
    v = index.verifier(AUDITOR)
    assert (v["free"], v["unbonding"], v["leftBlock"]) == ("0", "0", str(index.block))
    assert index.totals()["verifiers"] == 1 and index.totals()["courtStaked"] == 10 * R
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 3, "amount": 5 * R}))
    assert index.totals()["verifiers"] == 2 and index.verifier(AUDITOR)["free"] == str(5 * R)


def test_a_displaced_verifier_moves_to_unbonding_and_leaves_the_count() -> None:
    index = Index()
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 3, "amount": 10 * R}))
    index.apply(("LeaveRequested", {"verifier": AUDITOR, "amount": 10 * R, "stake": 0, "unbonding": 10 * R, "releaseAt": 99}),
                ("VerifierDisplaced", {"verifier": AUDITOR, "by": JUROR, "platformClass": 3, "stake": 10 * R}),
                ("ClassLeft", {"verifier": AUDITOR, "platformClass": 3}),
                ("VerifierJoined", {"verifier": JUROR, "platformClass": 3, "amount": 11 * R}))
    v = index.verifier(AUDITOR)
    assert (v["free"], v["unbonding"], v["displacedBy"], v["displacedBlock"]) == ("0", str(10 * R), JUROR, str(index.block))
    t = index.totals()
    assert t["verifiers"] == 1 and t["courtStaked"] == 11 * R and t["courtUnbonding"] == 10 * R


def test_an_agreeing_audits_reserve_released_early_then_its_bond_at_the_conclusion() -> None:
    """ReserveReleased (releaseReserve, after the canary window): the reserve goes from locked back
    to free at once; SeatSettled then returns the bond alone, and nothing stays locked."""
    index = Index()
    index.apply(("VerifierJoined", {"verifier": AUDITOR, "platformClass": 0, "amount": 100 * R}))
    _submitted(index, 1)
    bond, reserve = 35 * R // 10, 20 * R - 35 * R // 10
    index.apply(
        ("CaseOpened", {"jobId": 1, "platformClass": 0, "snapshotBlock": 3, "round": 0, "paramsVersion": 1}),
        ("SeatTaken", {"jobId": 1, "round": 0, "seat": 0, "verifier": AUDITOR, "bond": bond, "reserve": reserve}),
    )
    assert (index.verifier(AUDITOR)["free"], index.verifier(AUDITOR)["locked"]) == (str(80 * R), str(20 * R))
    index.apply(("ReserveReleased", {"jobId": 1, "verifier": AUDITOR, "reserve": reserve}))
    assert (index.verifier(AUDITOR)["free"], index.verifier(AUDITOR)["locked"]) == (str(100 * R - bond), str(bond))
    index.apply(("SeatSettled", {"jobId": 1, "round": 0, "seat": 0, "verifier": AUDITOR, "paid": 11 * R // 10,
                                 "bondReturned": bond, "bondForfeited": 0}))
    assert (index.verifier(AUDITOR)["free"], index.verifier(AUDITOR)["locked"]) == (str(100 * R), "0")
    assert index.totals()["courtLocked"] == 0 and index.totals()["courtStaked"] == 100 * R
