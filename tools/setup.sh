#!/usr/bin/env bash
# Install everything depin-compute needs on a Debian 12 machine, from a fresh clone.
# Idempotent: a step whose inputs did not change since its last success is skipped.
#   (a) Debian packages (redis, podman, chromium for the browser test)   (b) npm ci   (c) .venv from requirements.lock + the project (editable)
#   (d) .venv-slither from requirements-slither.lock   (e) solc 0.8.37 for py-solc-x
#   (f) .venv-lint from requirements-lint.lock (import-linter, for `make lint`)
#   (g) executor/depin-init, the job containers' first program, from its C source (tools/build_init.sh)
# Environment: PYTHON (default python3, must be >= 3.11); SKIP_APT=1 skips (a);
# SKIP_SLITHER=1 skips (d); DEPIN_SOLC_OFFLINE=1 makes (e) skip the download attempt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
# chromium + chromium-driver: the explorer's browser test (tests/explorer, Selenium drives Debian's Chromium)
# gcc: builds executor/depin-init (freestanding: no libc headers or static libc needed)
APT_PACKAGES=(redis-server podman runc busybox-static chromium chromium-driver gcc)
STAMP_NAME=".depin-setup-stamp"

log() { printf '==> %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# A step is current when the stamp file holds exactly the expected key.
is_current() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# --- prerequisites that the machine must already have -------------------------------------------
command -v node >/dev/null || die "node (20+) is required and not on PATH"
command -v npm >/dev/null || die "npm is required and not on PATH"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); Python >= 3.11 is required"
PY_ID_CODE='import sys, platform; print(platform.python_implementation(), *sys.version_info[:3])'
PY_ID="$("$PYTHON" -c "$PY_ID_CODE")"

# --- (a) Debian packages ------------------------------------------------------------------------
apt_step() {
  if [[ "${SKIP_APT:-0}" == 1 ]]; then log "apt: skipped (SKIP_APT=1)"; return; fi
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  # A Debian python3 without ensurepip cannot make venvs; the package is python3-venv.
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    [[ "$PYTHON" == /usr/bin/* || "$(command -v "$PYTHON")" == /usr/bin/* ]] \
      || die "$PYTHON has no ensurepip/venv module"
    missing+=(python3-venv)
  fi
  if (( ${#missing[@]} == 0 )); then log "apt: all present"; return; fi
  local cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ "$(id -u)" != 0 ]]; then
    printf 'setup: missing Debian packages: %s\nRun as root:\n  %s\n' "${missing[*]}" "$cmd" >&2
    exit 1
  fi
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- (b) node tools -----------------------------------------------------------------------------
# `npm ci` from package-lock.json, which lists every platform build of anvil, cast and forge (as npm
# writes it when it resolves them: `npm install --package-lock-only`); npm installs only this
# platform's. If `npm ci` fails for any reason (an npm that reads the lock differently, a registry
# that lacks some optional platform build), install from the same lock with `npm install --no-save`
# and fail if that would change package-lock.json. No step looks at the wording of npm's messages:
# what decides success is that the pinned anvil, cast and forge run and report the pinned version.
NODE_TOOLS=(anvil cast forge)
npm_step() {
  local stamp="node_modules/$STAMP_NAME" key lock_before
  log "npm: npm $(npm --version) on node $(node --version)"
  key="$(hash_of package.json package-lock.json) node $(node --version) npm $(npm --version)"
  if [[ -d node_modules ]] && is_current "$stamp" "$key" && node_tools_ok; then log "npm: up to date"; return; fi
  rm -f "$stamp"
  log "npm: npm ci"
  if ! npm ci --no-audit --no-fund; then
    log "npm: npm ci failed (above); installing from the same lock with npm install --no-save"
    lock_before="$(hash_of package-lock.json)"
    npm install --no-save --no-audit --no-fund || die "npm install failed (above)"
    [[ "$(hash_of package-lock.json)" == "$lock_before" ]] \
      || die "npm install changed package-lock.json: review and commit it, or restore it (git checkout package-lock.json)"
  fi
  node_tools_ok || die "npm did not provide working ${NODE_TOOLS[*]} $(pinned_foundry) in node_modules/.bin"
  printf '%s' "$key" >"$stamp"
}

# The Foundry version package.json pins for @foundry-rs/anvil.
pinned_foundry() { node -p 'require("./package.json").devDependencies["@foundry-rs/anvil"]'; }

# True when each node tool runs and reports the pinned version.
node_tools_ok() {
  local tool want
  want="$(pinned_foundry)" || return 1
  for tool in "${NODE_TOOLS[@]}"; do
    [[ -x "node_modules/.bin/$tool" ]] || return 1
    "node_modules/.bin/$tool" --version 2>/dev/null | grep -qF "Version: $want" || return 1
  done
}

# --- (c)/(d) virtualenvs ------------------------------------------------------------------------
# make_venv DIR: (re)create DIR when missing, broken, or on another Python version.
make_venv() {
  local dir="$1"
  if [[ "$("$dir/bin/python" -c "$PY_ID_CODE" 2>/dev/null)" == "$PY_ID" ]]; then return; fi
  log "venv: creating $dir ($PY_ID)"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
}

venv_step() {
  local stamp=".venv/$STAMP_NAME" key
  key="$(hash_of requirements.lock pyproject.toml) $PY_ID"
  make_venv .venv
  if is_current "$stamp" "$key"; then log "venv: up to date"; return; fi
  rm -f "$stamp"
  log "venv: installing requirements.lock"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  log "venv: installing the project (editable)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  .venv/bin/python -m pip check
  .venv/bin/python -c 'import ape, ape_solidity, ape_foundry, solcx, web3, depin, indexer, executor'
  printf '%s' "$key" >"$stamp"
}

slither_step() {
  if [[ "${SKIP_SLITHER:-0}" == 1 ]]; then log "slither: skipped (SKIP_SLITHER=1)"; return; fi
  local stamp=".venv-slither/$STAMP_NAME" key
  key="$(hash_of requirements-slither.lock) $PY_ID"
  make_venv .venv-slither
  if is_current "$stamp" "$key"; then log "slither: up to date"; return; fi
  rm -f "$stamp"
  log "slither: installing requirements-slither.lock"
  .venv-slither/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-slither.lock
  .venv-slither/bin/slither --version >/dev/null
  printf '%s' "$key" >"$stamp"
}

lint_step() {
  local stamp=".venv-lint/$STAMP_NAME" key
  key="$(hash_of requirements-lint.lock) $PY_ID"
  make_venv .venv-lint
  if is_current "$stamp" "$key"; then log "lint: up to date"; return; fi
  rm -f "$stamp"
  log "lint: installing requirements-lint.lock"
  .venv-lint/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lint.lock
  .venv-lint/bin/python -m pip check
  .venv-lint/bin/lint-imports --help >/dev/null
  printf '%s' "$key" >"$stamp"
}

# --- (e) solc for py-solc-x ---------------------------------------------------------------------
solc_step() {
  # Always run: cheap when nothing changed, and it rewrites a wrapper left by another checkout.
  .venv/bin/python tools/install_solc.py
}

# --- (g) the job init -------------------------------------------------------------------------
init_step() {
  bash tools/build_init.sh
}

start=$SECONDS
apt_step
npm_step
venv_step
slither_step
lint_step
solc_step
init_step
log "setup done in $((SECONDS - start))s"
