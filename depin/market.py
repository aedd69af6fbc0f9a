"""The market's on-chain enums, as Python enums (values equal the Solidity ones in IJobMarket and IVerificationCourt).

The one source of the enums' names: the indexer stores statuses, outcomes, court phases and failure codes
by their Solidity names (``TimedOut``, ``ProviderRight``, ``OutputInvalid``) and verify modes by the spec's
names (``reexec``, ``none``), which are the members'
:attr:`label`; the ``*_NAMES`` tuples list them in enum order (index = on-chain value).
"""

from __future__ import annotations

from enum import IntEnum


def solidity_name(member_name: str) -> str:
    """A Python enum member name as the Solidity one: ``TIMED_OUT`` -> ``TimedOut``."""
    return "".join(part.capitalize() for part in member_name.split("_"))


class JobStatus(IntEnum):
    NONE = 0
    OPEN = 1
    CLAIMED = 2
    SUBMITTED = 3
    DISPUTED = 4
    FINALIZED = 5
    CANCELLED = 6
    EXPIRED = 7
    TIMED_OUT = 8
    RESOLVED = 9
    # Settled at least the market's jobSlots posts ago: its ring entry holds a later job, so
    # getJob says only this (the job's events keep its history; see JobMarket's gas layout note).
    PRUNED = 10

    @property
    def label(self) -> str:
        """The Solidity name (``TimedOut``), as the indexer stores it."""
        return solidity_name(self.name)

    @property
    def settled(self) -> bool:
        return self >= JobStatus.FINALIZED


class Outcome(IntEnum):
    """How a verification ended (``IJobMarket.Outcome``; the court's ``IMarketForCourt.Outcome``)."""

    NONE = 0
    PROVIDER_RIGHT = 1  # the submission stands (audit agreed, or the jury/arbiter confirmed it)
    PROVIDER_WRONG = 2  # the provider's collateral was slashed to the court
    SPLIT = 3  # the jury disagreed among itself: nondeterministic job, the provider is paid
    UNAUDITED = 4  # drawn, but nobody took the audit: settled like an unchallenged finalize
    CANARY = 5  # a canary job of the canary operator

    @property
    def label(self) -> str:
        """The Solidity name (``ProviderRight``), as the indexer stores it."""
        return solidity_name(self.name)

    @property
    def meaning(self) -> str:
        """What the ruling says of the submission, for people (who was paid is in ``JobSettled``)."""
        return _OUTCOME_MEANINGS[self]


_OUTCOME_MEANINGS = {
    Outcome.NONE: "no ruling",
    Outcome.PROVIDER_RIGHT: "the court upheld the submission (the audit or the jury agreed with it)",
    Outcome.PROVIDER_WRONG: "the court ruled the submission wrong and slashed the provider's collateral: do not trust its result",
    Outcome.SPLIT: "the jurors disagreed among themselves: the job is not reproducible (nondeterministic), its result is "
    "not confirmed",
    Outcome.UNAUDITED: "drawn for audit, but no verifier took it: settled as if unchallenged, never re-executed",
    Outcome.CANARY: "a canary job (the canary operator's test of the verifiers): its provider is not paid",
}


class VerifyMode(IntEnum):
    """``JobTerms.verifyMode``: how a job is verified; the spec's ``verify`` field names it."""

    REEXEC = 0  # drawn audits by re-execution (the default)
    NONE = 1  # never audited: settled optimistically, no audit fee

    @property
    def label(self) -> str:
        """The spec's name (``reexec``, ``none``), as the indexer stores it."""
        return self.name.lower()

    @classmethod
    def from_spec(cls, value: str | None) -> VerifyMode:
        """The mode a spec's ``verify`` field names (absent: reexec)."""
        if value is None:
            return cls.REEXEC
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"verify must be 'reexec' or 'none', not {value!r}") from None


class Phase(IntEnum):
    """``IVerificationCourt.Phase``: where a court case stands."""

    NONE = 0
    ACTIVE = 1
    TALLIED = 2
    ARBITER = 3
    CONCLUDED = 4

    @property
    def label(self) -> str:
        return solidity_name(self.name)


# Seats per court round (``CourtBase._k``): round 0 is the audit, rounds 1..LAST_JURY_ROUND juries;
# an appeal of the last jury goes to the arbiter, with a bond of the last jury's size.
JURY_SIZES = (1, 3, 7, 15)
LAST_JURY_ROUND = len(JURY_SIZES) - 1


class FailureCode(IntEnum):
    """What a provider may submit instead of a result (``submitFailure``)."""

    NONE = 0
    IMAGE_UNAVAILABLE = 1
    INPUT_HASH_MISMATCH = 2
    OUT_OF_MEMORY = 3
    TIME_LIMIT = 4
    OUTPUT_TOO_LARGE = 5
    BAD_SPEC = 6
    OUTPUT_INVALID = 7  # the output cannot be a result archive (depth, path length, entries, special files)

    @property
    def label(self) -> str:
        """The Solidity name (``OutputInvalid``), as the indexer stores it."""
        return solidity_name(self.name)


JOB_STATUS_NAMES: tuple[str, ...] = tuple(s.label for s in JobStatus)
OUTCOME_NAMES: tuple[str, ...] = tuple(o.label for o in Outcome)
VERIFY_MODE_NAMES: tuple[str, ...] = tuple(m.label for m in VerifyMode)
PHASE_NAMES: tuple[str, ...] = tuple(p.label for p in Phase)
FAILURE_NAMES: tuple[str, ...] = tuple(f.label for f in FailureCode)
# Escrowed jobs (the market still holds the reward) and jobs that reached a final status, by name.
LIVE_STATUSES: frozenset[str] = frozenset(s.label for s in JobStatus if JobStatus.NONE < s < JobStatus.FINALIZED)
SETTLED_STATUSES: frozenset[str] = frozenset(s.label for s in JobStatus if s.settled)
