"""``python -m indexer``: run the indexer with its configuration from ``DEPIN_*`` variables.

    python -m indexer            # backfill, then follow the head until SIGTERM / Ctrl-C
    python -m indexer --once     # one sync (backfill to the head) and exit
    python -m indexer --reset    # delete this deployment's keys first (re-index from scratch),
                                 # once the node and the deployment file passed the start-up check
    python -m indexer --metrics-port 9101   # also serve Prometheus metrics (or DEPIN_METRICS_PORT)

The user-facing entry point is ``depin indexer run`` (same engine, more options); this one is
small and fast to start, which the crash tests use.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from depin.errors import DepinError
from indexer.config import IndexerConfig
from indexer.follower import Indexer
from indexer.metrics import serve_metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m indexer", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="sync to the head once and exit")
    parser.add_argument("--reset", action="store_true", help="delete the deployment's keys before starting")
    parser.add_argument("--max-range", type=int, default=None, help="largest eth_getLogs range (blocks)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("DEPIN_METRICS_PORT") or 0),
                        help="serve /metrics on 127.0.0.1:PORT (default: $DEPIN_METRICS_PORT; 0: no metrics)")
    parser.add_argument("--log-level", default=os.environ.get("DEPIN_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
    )
    try:
        config = IndexerConfig.from_env(max_range=args.max_range)
        indexer = Indexer(config)
        if args.metrics_port:
            serve_metrics(args.metrics_port)
        if args.reset:  # after the start-up check: a file naming other contracts deletes nothing
            indexer.request_reset()
        if args.once:
            applied = indexer.sync_once()
            logging.getLogger("indexer").info("synced once: %d events applied", applied)
        else:
            indexer.run()
    except DepinError as exc:
        logging.getLogger("indexer").critical("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
