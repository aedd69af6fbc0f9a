#!/usr/bin/env bash
# The newcomer check: what a new user gets from `git clone` + the README's first command.
# Clones this checkout's HEAD (committed work only) into a temporary folder, runs setup there from
# nothing (no stamps, no venvs, no node_modules: the clone has none), then the demo with a short
# challenge window, then `depin devnet down`. Prints each step's wall time; exits non-zero naming
# the step that failed, and keeps the folder for inspection. On success the folder is removed
# (KEEP=1 keeps it).
#   bash tools/fresh_clone_check.sh            # or: make fresh-check
# Environment: DEMO_ARGS (default "--challenge-window 8"), KEEP=1, and setup's own (SKIP_APT=1 ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO_ARGS="${DEMO_ARGS:---challenge-window 8}"
work="$(mktemp -d "${TMPDIR:-/tmp}/depin-fresh.XXXXXX")"
clone="$work/depin-compute"
failed=""

log() { printf '==> fresh-check: %s\n' "$*"; }

finish() {
  local rc=$?
  if [[ -x "$clone/.venv/bin/depin" && -d "$clone/.devnet" ]]; then
    (cd "$clone" && .venv/bin/depin devnet down >/dev/null 2>&1) || true
  fi
  if [[ $rc -eq 0 && "${KEEP:-0}" != 1 ]]; then
    rm -rf "$work"
  else
    log "kept $clone"
  fi
  [[ -n "$failed" ]] && log "FAILED at: $failed"
  exit $rc
}
trap finish EXIT

step() {
  local name="$1" start=$SECONDS
  shift
  log "$name: $*"
  if ! "$@"; then failed="$name"; return 1; fi
  log "$name: ok in $((SECONDS - start)) s"
}

if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
  log "note: the working tree has uncommitted changes; the check uses HEAD ($(git -C "$ROOT" rev-parse --short HEAD)) only"
fi
# py-solc-x's compilers (and setup's offline solc wrapper with its bundle) live in the temporary
# folder too: the check proves a setup from nothing and leaves the user's ~/.solcx as it was.
export SOLCX_BINARY_PATH="$work/solcx"
step clone git clone -q "$ROOT" "$clone"
cd "$clone"
for leftover in .venv .venv-slither node_modules .devnet; do
  [[ ! -e "$leftover" ]] || { failed="clone"; log "the clone unexpectedly has $leftover"; exit 1; }
done
step setup bash tools/setup.sh
# shellcheck disable=SC2086  # DEMO_ARGS is a list of options
step demo .venv/bin/depin demo $DEMO_ARGS
step down .venv/bin/depin devnet down
log "passed: setup, demo and devnet down from a fresh clone of $(git rev-parse --short HEAD)"
