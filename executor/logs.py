"""Structured logs for executor processes: one JSON object per line on stderr.

Every record carries ``ts``, ``level``, ``logger``, ``msg``, the process role (``component``) and the
fields passed as ``extra={...}`` (job ids, states, reasons, transaction hashes). Keys, passwords and
keystore contents are never passed to a logger anywhere in the executor.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted, not the
    stream it was created with: a handler installed while stderr was redirected (a CLI run under a
    test runner's capture) must not keep writing to that closed stream afterwards."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "component": self.component,
            "pid": os.getpid(),
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(component: str, level: str | int | None = None) -> None:
    """JSON lines on stderr for this process (level from ``DEPIN_LOG_LEVEL``, default INFO)."""
    level = level or os.environ.get("DEPIN_LOG_LEVEL", "INFO")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "docker", "web3", "asyncio", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
