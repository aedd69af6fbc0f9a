#!/usr/bin/env bash
# Install everything depin-compute needs on a Debian 12 machine, from a fresh clone.
# Idempotent: a step whose inputs did not change since its last success is skipped.
#   (a) Debian packages   (b) npm ci   (c) .venv from requirements.lock + the project (editable)
#   (d) .venv-slither from requirements-slither.lock   (e) solc 0.8.37 for py-solc-x
# Environment: PYTHON (default python3, must be >= 3.11); SKIP_APT=1 skips (a);
# SKIP_SLITHER=1 skips (d); DEPIN_SOLC_OFFLINE=1 makes (e) skip the download attempt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(redis-server podman runc busybox-static)
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
# `npm ci` first. npm >= 11.16 rejects its own lock when a package names an optional dependency
# that the registry does not have (npm/cli#9846: "Missing: <name>@ from lock file", empty
# version); @foundry-rs/anvil and cast 1.7.1 list darwin/win32/linux-arm64 builds that are not
# published. Only in that case install from the same lock with `npm install --no-save`, and fail
# if that would change package-lock.json.
npm_step() {
  local stamp="node_modules/$STAMP_NAME" key out lock_before
  key="$(hash_of package.json package-lock.json) node $(node --version)"
  if [[ -d node_modules ]] && is_current "$stamp" "$key"; then log "npm: up to date"; return; fi
  log "npm: npm ci"
  out="$(mktemp)"
  if ! npm ci --no-audit --no-fund >"$out" 2>&1; then
    if grep -q 'Missing: .*@ from lock file' "$out" && ! grep -q 'Missing: .*@[0-9].* from lock file\|Invalid: ' "$out"; then
      log "npm: npm ci refused the lock over unpublished optional packages (npm/cli#9846); npm install --no-save"
      lock_before="$(hash_of package-lock.json)"
      npm install --no-save --no-audit --no-fund
      [[ "$(hash_of package-lock.json)" == "$lock_before" ]] \
        || die "npm install changed package-lock.json: review and commit it, or restore it"
    else
      cat "$out" >&2; rm -f "$out"; die "npm ci failed"
    fi
  fi
  rm -f "$out"
  npm ls --all >/dev/null || die "node_modules does not match package.json/package-lock.json"
  [[ -x node_modules/.bin/anvil ]] || die "npm did not provide node_modules/.bin/anvil"
  printf '%s' "$key" >"$stamp"
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

# --- (e) solc for py-solc-x ---------------------------------------------------------------------
solc_step() {
  # Always run: cheap when nothing changed, and it rewrites a wrapper left by another checkout.
  .venv/bin/python tools/install_solc.py
}

start=$SECONDS
apt_step
npm_step
venv_step
slither_step
solc_step
log "setup done in $((SECONDS - start))s"
