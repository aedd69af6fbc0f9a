"""The exception hierarchy of depin-compute: one root, a few families.

Every error the project raises on purpose derives from :class:`DepinError`, so a caller can catch
the project's failures without catching programming errors. Families mix in the builtin a caller
would expect (``SpecError`` is a ``ValueError``). Messages say what happened *and what to do next*.
"""

from __future__ import annotations


class DepinError(Exception):
    """Root of every depin-compute error."""


class ArgumentError(DepinError, ValueError):
    """An argument of an SDK call has the wrong type or an impossible value (a float or a negative
    number where base units or seconds go, ``None`` where bytes go, an unknown contract name); the
    message names the argument. Raised before anything is signed or sent."""


class ChainError(DepinError):
    """Talking to the chain failed: the JSON-RPC node is unreachable, timed out or answered an error."""


class IndexerError(DepinError):
    """The indexer cannot continue (bad configuration, a Redis that holds another chain's state, ...)."""


class ReorgTooDeep(IndexerError):
    """The chain reorganised below the finality depth: the indexer has no undo log that deep.

    The indexer stops, loudly, instead of serving state that may include orphaned blocks. The
    message names the fork point and what to do (re-index from scratch, or raise the finality depth).
    """


class SpecError(DepinError, ValueError):
    """A job spec is malformed or does not match its on-chain hash."""


class ExecutionError(DepinError):
    """Running a job failed on the executor side."""
