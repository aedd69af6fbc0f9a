"""``python -m executor COMPONENT --config depin.toml [--role ROLE]``: one executor component.

Components: ``start`` (all of the role's, supervised), ``worker --queue compute|chain [--beat]``,
``beat``, ``dispatcher``, ``results``, ``canary``, ``flower`` (the Celery monitor, port
``DEPIN_FLOWER_PORT``), ``reap``. The user-facing entry point is ``depin executor …`` (same
functions); this one starts faster, which the supervisor and the tests use.
"""

from __future__ import annotations

import argparse
import os
import sys

from depin.errors import DepinError


def main(argv: list[str] | None = None) -> int:
    try:  # the modules read their DEPIN_* timing knobs as they load: a bad one is a ConfigError line
        from executor import worker  # lazy: start-up
        from executor.runtime import ROLES  # lazy: start-up
    except DepinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    parser = argparse.ArgumentParser(prog="python -m executor", description=__doc__.splitlines()[0])
    parser.add_argument(
        "component", choices=("start", "worker", "beat", "dispatcher", "results", "canary", "flower", "reap")
    )
    parser.add_argument("--config", default=os.environ.get("DEPIN_CONFIG") or None, help="depin.toml (default: $DEPIN_CONFIG)")
    parser.add_argument("--role", default=None, help=f"one or more of {', '.join(ROLES)}, joined by commas (provider,verifier)")
    parser.add_argument("--beat", action="store_true", help="worker --queue chain: run the beat embedded in it")
    parser.add_argument("--queue", choices=("compute", "chain"), default="compute")
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        if args.component == "start":
            if args.config is None:
                parser.error("start needs --config")
            return worker.run_all(args.config, args.role)
        if args.component == "worker":
            worker.run_worker(args.config, args.role, args.queue, concurrency=args.concurrency, beat=args.beat)
        elif args.component == "beat":
            worker.run_beat(args.config, args.role)
        elif args.component == "dispatcher":
            worker.run_dispatcher(args.config, args.role)
        elif args.component == "results":
            worker.run_results(args.config, args.role)
        elif args.component == "flower":
            worker.run_flower(args.config, args.role)
        elif args.component == "canary":
            worker.run_canary(args.config, args.role)
        else:
            for name in worker.reap(args.config, args.role):
                print(name)
    except DepinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
