"""depin.market is the one source of the market's enum names: they are the Solidity ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depin.market import (
    FAILURE_NAMES,
    JOB_STATUS_NAMES,
    LIVE_STATUSES,
    OUTCOME_NAMES,
    PHASE_NAMES,
    SETTLED_STATUSES,
    FailureCode,
    JobStatus,
    Outcome,
    Phase,
    VerifyMode,
)

INTERFACES = Path(__file__).resolve().parents[2] / "contracts"
INTERFACE = INTERFACES / "IJobMarket.sol"


def solidity_enum(name: str, interface: Path = INTERFACE) -> tuple[str, ...]:
    """The member names of `enum name { ... }` in an interface (IJobMarket.sol), comments dropped."""
    source = interface.read_text()
    body = re.search(rf"enum {name} \{{(.*?)\}}", source, re.DOTALL)
    assert body is not None, name
    text = re.sub(r"//[^\n]*", "", body.group(1))
    return tuple(part.strip() for part in text.split(",") if part.strip())


@pytest.mark.parametrize(
    ("enum", "names", "solidity"),
    [(JobStatus, JOB_STATUS_NAMES, "JobStatus"), (Outcome, OUTCOME_NAMES, "Outcome"), (FailureCode, FAILURE_NAMES, "FailureCode")],
)
def test_names_are_the_solidity_enum_in_order(enum: type, names: tuple[str, ...], solidity: str) -> None:
    assert names == solidity_enum(solidity)
    assert [m.label for m in enum] == list(names)
    assert [m.value for m in enum] == list(range(len(names)))


def test_live_and_settled_partition_the_statuses_after_none() -> None:
    assert LIVE_STATUSES == {"Open", "Claimed", "Submitted", "Disputed"}
    assert SETTLED_STATUSES == {s.label for s in JobStatus if s.settled}
    assert LIVE_STATUSES | SETTLED_STATUSES == set(JOB_STATUS_NAMES[1:])
    assert not LIVE_STATUSES & SETTLED_STATUSES


def test_the_court_shares_the_outcome_enum_and_its_phases_match() -> None:
    court = INTERFACES / "IMarketForCourt.sol"
    assert solidity_enum("Outcome", court) == OUTCOME_NAMES
    assert solidity_enum("Phase", INTERFACES / "IVerificationCourt.sol") == PHASE_NAMES
    assert [m.label for m in Phase] == list(PHASE_NAMES)


def test_verify_modes_are_the_spec_names() -> None:
    assert [(m.label, m.value) for m in VerifyMode] == [("reexec", 0), ("none", 1)]
    assert VerifyMode.from_spec(None) is VerifyMode.REEXEC and VerifyMode.from_spec("none") is VerifyMode.NONE
    with pytest.raises(ValueError, match="reexec"):
        VerifyMode.from_spec("maybe")


def test_every_outcome_says_what_it_means() -> None:
    """`depin job status` shows a settled job's outcome with its meaning: one for every member."""
    from depin.market import Outcome

    meanings = {o: o.meaning for o in Outcome}
    assert len(set(meanings.values())) == len(Outcome)
    assert "wrong" in meanings[Outcome.PROVIDER_WRONG] and "not reproducible" in meanings[Outcome.SPLIT]
