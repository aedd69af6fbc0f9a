"""The market's on-chain enums, as Python enums (values equal the Solidity ones in IJobMarket)."""

from __future__ import annotations

from enum import IntEnum


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
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def settled(self) -> bool:
        return self >= JobStatus.FINALIZED


class Ruling(IntEnum):
    NONE = 0
    PROVIDER_WINS = 1
    CHALLENGER_WINS = 2


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
