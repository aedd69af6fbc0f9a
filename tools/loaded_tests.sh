#!/usr/bin/env bash
# Runs pytest ROUNDS times in a row with the machine loaded: two busy loops per core in the
# background for the whole run (the load a busy CI machine puts on the tests). Stops at the first
# failing round. Prints each round's summary line and the load average.
#   bash tools/loaded_tests.sh [ROUNDS] [pytest args...]     # or: make test-loaded
# Default: 3 rounds of the executor and devnet tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$ROOT/.venv/bin:$PATH"
ROUNDS="${1:-3}"
shift || true
(( $# )) || set -- tests/executor tests/depinctl

pids=()
stop_load() { (( ${#pids[@]} )) && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap stop_load EXIT
for _ in $(seq $(( 2 * $(nproc) ))); do
  ( while :; do :; done ) &
  pids+=($!)
done
echo "==> loaded-tests: ${#pids[@]} busy loops on $(nproc) cores; $ROUNDS round(s) of: pytest $*"
for round in $(seq "$ROUNDS"); do
  start=$SECONDS
  log="$(mktemp "${TMPDIR:-/tmp}/depin-loaded-$round.XXXXXX.log")"
  if .venv/bin/pytest -q -p no:cacheprovider "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
  summary="$(grep -E '(passed|failed|error)' "$log" | tail -n 1)"
  echo "==> round $round: ${summary:-no summary} (exit $rc, $((SECONDS - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg)); log $log"
  (( rc == 0 )) || exit "$rc"
done
