"""Deploying the contracts: the ape routine the deploy script runs, and the script run as a subprocess.

:func:`deploy_contracts` is what ``scripts/deploy.py`` (``ape run deploy``) and the contract tests
call inside ape; :func:`deploy_with_ape` runs that script against a node (tests, benchmarks, the
devnet) and returns the :class:`~depin.deployment.Deployment` it recorded.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from depin.chain import RpcClient
from depin.deployment import (
    REPO_ROOT,
    Deployment,
    NetworkParameters,
    read_deployment,
    to_wei,
)
from depin.errors import ChainError

log = logging.getLogger("depinctl.deploy")


class DeployError(ChainError):
    """The deploy script failed, or recorded no deployment."""


BUILD_STAMP = "depin-build-stamp.json"  # in the project's .build/, next to ape's manifest
BUILD_LOCK = ".depin-build.lock"


def build_fingerprint(project: Any) -> str:
    """sha256 over what a full compile of `project` (an ape LocalProject) depends on: every source
    file (path relative to the project, content), ape-config.yaml, and the ape and ape-solidity versions."""
    root = Path(project.path)
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in project.sources.paths):
        rel = path.relative_to(root).as_posix() if path.is_absolute() else path.as_posix()
        h.update(f"source {rel} {hashlib.sha256((root / rel).read_bytes()).hexdigest()}\n".encode())
    config = root / "ape-config.yaml"
    if config.is_file():
        h.update(f"config {hashlib.sha256(config.read_bytes()).hexdigest()}\n".encode())
    for dist in ("eth-ape", "ape-solidity"):
        try:
            h.update(f"{dist} {metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            pass
    return h.hexdigest()


def ensure_current_build(project: Any = None) -> str | None:
    """Makes `project`'s build (default: ape's local project) the output of a full compile of the
    current sources; returns why it recompiled, or None when the build was current.

    ape's incremental compile recompiles a contract only when its own file changed: after an edit
    to an imported file (IJobMarket.sol's FailureCode enum, say) ``project.JobMarket`` is still the
    old bytecode. So the fingerprint of the sources (:func:`build_fingerprint`) and the sha256 of the
    manifest are recorded in ``.build/depin-build-stamp.json`` after every full compile, and every
    contract is compiled again (``load_contracts(use_cache=False)``) when either differs: a source
    changed, or something else (``ape compile``, an ape session) rewrote the manifest since. Under an
    exclusive lock, so concurrent deploys compile once; a current build is (re)read from disk."""
    if project is None:
        from ape import project  # lazy: optional (ape is heavy and only deploys need it)
    manifest = Path(project.manifest_path)
    build_dir = manifest.parent
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fingerprint = build_fingerprint(project)
        stamp_file = build_dir / BUILD_STAMP
        try:
            stamp = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            stamp = {}
        if not isinstance(stamp, dict):
            stamp = {}
        if not manifest.is_file():
            reason = "no build yet"
        elif stamp.get("sources") != fingerprint:
            reason = "no full build of the current sources" if stamp else "no record of a full build"
        elif stamp.get("manifest") != hashlib.sha256(manifest.read_bytes()).hexdigest():
            reason = "the build was changed by an incremental compile since the last full one"
        else:
            project.load_manifest()  # another process may have compiled since this one read it
            return None
        log.warning("compiling every contract: %s", reason)
        project.load_contracts(use_cache=False)
        stamp = {"sources": fingerprint, "manifest": hashlib.sha256(manifest.read_bytes()).hexdigest()}
        fd, tmp = tempfile.mkstemp(dir=build_dir, prefix=".stamp-")
        with os.fdopen(fd, "w") as f:
            json.dump(stamp, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, stamp_file)
        return reason


COURT_CONTRACT = "VerificationCourt"
COURT_FALLBACK = "TestCourt"  # the stand-in tests drive by hand (`court.begin` / `court.settle` any Outcome)


def court_contract_name(project: Any, requested: str | None = None) -> str:
    """The contract deployed as the court: `requested` if given (``VerificationCourt``, or the
    ``TestCourt`` stand-in that tests of the market's outcomes drive by hand, on local chains only),
    else VerificationCourt; TestCourt only for a build without the court."""
    if requested is not None:
        if requested not in (COURT_CONTRACT, COURT_FALLBACK):
            raise DeployError(f"unknown court contract {requested!r}: {COURT_CONTRACT} or {COURT_FALLBACK}")
        return requested
    return COURT_CONTRACT if hasattr(project, COURT_CONTRACT) else COURT_FALLBACK


def wait_for_receipts_on_interval_mining(provider: Any, probe: float = 1.5) -> bool:
    """Makes ape wait for receipts on a node that mines on its own although its automine flag is
    off: ``anvil --block-time N --mixed-mining`` (the devnet's, so that anchor blocks arrive on an
    idle chain) answers ``anvil_getAutomine`` false, and ape then returns an unmined receipt for
    every deployment ("did not create a contract"). When the block number moves by itself within
    `probe` seconds, ape's provider class is told the node automines (ape's only use of the flag:
    whether to wait for the receipt). True when it did so; a node mined by hand is left alone."""
    try:
        if provider.auto_mine:
            return False
        first = provider.get_block("latest").number
        time.sleep(probe)
        if provider.get_block("latest").number == first:
            return False
    except Exception:  # noqa: BLE001 - not anvil (no anvil_getAutomine): ape's default applies
        return False
    cls = type(provider)
    cls.auto_mine = property(lambda self: True, cls.auto_mine.fset)
    return True


def deploy_contracts(
    deployer: Any, params: NetworkParameters, arbiter: str | None = None, court_contract: str | None = None
) -> dict[str, Any]:
    """Deploys and wires the contracts with ape, in the order the verification protocol needs:
    RewardToken; the randomness source (`params.randomness`: BlockhashRandomness, HeaderRandomness
    or MockRandomness);
    JobMarket (which deploys ProviderStaking); the court (`CourtEngine`, then
    `VerificationCourt(market, token, admin, CourtParams, engine)`, or the TestCourt stand-in while the build has no VerificationCourt); then
    `market.setParams` with the court (the first parameter version).

    `deployer` is an ape account; it becomes admin, governor and guardian everywhere. `arbiter`
    (default: the deployer) receives the court's ARBITER_ROLE when the court has one. Returns the ape contract instances by name ("Randomness" and
    "VerificationCourt" whatever the contract behind them). The bytecode is that of the current
    sources (:func:`ensure_current_build`).
    """
    from ape import project  # lazy: optional (ape is heavy and only deploys need it)

    ensure_current_build(project)
    wait_for_receipts_on_interval_mining(deployer.provider)
    t, s, m, c = params.token, params.staking, params.market, params.court
    token = project.RewardToken.deploy(
        t.name, t.symbol, to_wei(t.cap), deployer.address, to_wei(t.initial_supply), sender=deployer
    )
    if params.randomness == "mock":
        randomness = project.MockRandomness.deploy(deployer.address, b"\x00" * 31 + b"\x01", sender=deployer)
    elif params.randomness == "header":
        randomness = project.HeaderRandomness.deploy(sender=deployer)
    else:
        randomness = project.BlockhashRandomness.deploy(sender=deployer)
    market = project.JobMarket.deploy(
        token.address,
        randomness.address,
        params.randomness == "blockhash",  # nativeBlockhash: the market reads blockhash(anchor) in place
        m.draw_delay,
        m.job_slots,
        deployer.address,
        to_wei(s.min_stake),
        s.unbonding_delay,
        sender=deployer,
    )
    staking = project.ProviderStaking.at(market.staking())
    court_name = court_contract_name(project, court_contract)
    if court_name == COURT_CONTRACT:
        engine = project.CourtEngine.deploy(sender=deployer)  # deploys the CourtDesk module too
        court = project.VerificationCourt.deploy(
            market.address, token.address, deployer.address, c.as_tuple(), engine.address, sender=deployer
        )
    else:
        court = project.TestCourt.deploy(
            market.address,
            c.required_challenge_window(m.draw_delay),
            c.max_horizon(m.max_runtime),
            sender=deployer,
        )
    market.setParams(m.as_tuple(court.address), sender=deployer)
    if hasattr(court, "ARBITER_ROLE"):
        court.grantRole(court.ARBITER_ROLE(), arbiter or deployer.address, sender=deployer)
    if params.devnet_faucet:
        token.grantRole(token.MINTER_ROLE(), deployer.address, sender=deployer)
    return {
        "RewardToken": token,
        "ProviderStaking": staking,
        "JobMarket": market,
        "VerificationCourt": court,
        "Randomness": randomness,
    }


def deploy_with_ape(
    rpc_url: str, deployments_dir: Path, *, extra_args: Sequence[str] = (), timeout: float = 300.0
) -> Deployment:
    """Runs the project's deploy script (``ape run deploy``) against the node at `rpc_url` and
    returns the deployment it recorded in `deployments_dir`."""
    ape = Path(sys.executable).with_name("ape")
    command = [
        str(ape) if ape.exists() else (shutil.which("ape") or "ape"),
        *("run", "deploy", "--network", "ethereum:local:foundry", "--deployments-dir", str(deployments_dir)),
        *extra_args,
    ]
    env = dict(os.environ, APE_FOUNDRY_HOST=rpc_url)
    tool_dirs = [str(REPO_ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*tool_dirs, env.get("PATH", "")])
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except BaseException:  # timeout or Ctrl-C: do not leave ape behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group started for it (start_new_session)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if proc.returncode != 0:
        raise DeployError(f"`{' '.join(command)}` failed (exit {proc.returncode}):\n{output[-3000:]}")
    chain_id = RpcClient.from_url(rpc_url).chain_id()
    deployment = read_deployment(chain_id, deployments_dir)
    if deployment is None:
        raise DeployError(f"the deploy script wrote no {chain_id}.json in {deployments_dir}:\n{output[-3000:]}")
    return deployment
