"""The market's on-chain enums, as Python enums (values equal the Solidity ones in IJobMarket).

The one source of the enums' names: the indexer stores statuses, rulings and failure codes by
their Solidity names (``TimedOut``, ``ProviderWins``, ``OutputInvalid``), which are the members'
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

    @property
    def label(self) -> str:
        """The Solidity name (``TimedOut``), as the indexer stores it."""
        return solidity_name(self.name)

    @property
    def settled(self) -> bool:
        return self >= JobStatus.FINALIZED


class Ruling(IntEnum):
    NONE = 0
    PROVIDER_WINS = 1
    CHALLENGER_WINS = 2

    @property
    def label(self) -> str:
        """The Solidity name (``ProviderWins``), as the indexer stores it."""
        return solidity_name(self.name)


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
RULING_NAMES: tuple[str, ...] = tuple(r.label for r in Ruling)
FAILURE_NAMES: tuple[str, ...] = tuple(f.label for f in FailureCode)
# Escrowed jobs (the market still holds the reward) and jobs that reached a final status, by name.
LIVE_STATUSES: frozenset[str] = frozenset(s.label for s in JobStatus if JobStatus.NONE < s < JobStatus.FINALIZED)
SETTLED_STATUSES: frozenset[str] = frozenset(s.label for s in JobStatus if s.settled)
