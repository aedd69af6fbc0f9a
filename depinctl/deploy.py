"""Deploying the contracts: the ape routine the deploy script runs, and the script run as a subprocess.

:func:`deploy_contracts` is what ``scripts/deploy.py`` (``ape run deploy``) and the contract tests
call inside ape; :func:`deploy_with_ape` runs that script against a node (tests, benchmarks, the
devnet) and returns the :class:`~depin.deployment.Deployment` it recorded. :class:`DeployJournal`
records a deploy's progress so that one that stopped halfway is resumed, and :data:`STEP_GAS`
bounds what each of its transactions costs (the script's check of the deployer's ether).
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

from eth_utils import to_checksum_address, to_hex

from depin.atomicfile import write_atomically
from depin.chain import RpcClient, hex_int
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
        from ape import project as local_project  # lazy: optional (ape is heavy and only deploys need it)

        project = local_project
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


# Gas each transaction of a deploy (:func:`deploy_steps`, by what it sends) uses at most: measured
# on anvil (stop 40: RewardToken 1.16 M; BlockhashRandomness 0.18 M, HeaderRandomness 0.42 M,
# MockRandomness 0.44 M; JobMarket with the ProviderStaking its constructor deploys 8.19 M;
# CourtEngine with its CourtDesk 9.05 M; VerificationCourt 4.14 M; TestCourt 0.39 M; setParams
# 0.14 M; a grantRole 0.05 M), plus about 20%. What the cost check before a deploy multiplies by the
# fee (:func:`deploy_cost`); tests/contracts/test_deploy.py checks a deploy's receipts against it,
# so a contract that grows past its bound fails there first.
STEP_GAS = {
    "RewardToken": 1_400_000,
    "BlockhashRandomness": 250_000,
    "HeaderRandomness": 520_000,
    "MockRandomness": 530_000,
    "JobMarket": 9_900_000,
    "CourtEngine": 10_900_000,
    "VerificationCourt": 5_000_000,
    "TestCourt": 480_000,
    "setParams": 200_000,
    "arbiterRole": 80_000,
    "minterRole": 80_000,
}
RANDOMNESS_CONTRACTS = {"mock": "MockRandomness", "header": "HeaderRandomness", "blockhash": "BlockhashRandomness"}
PARTIAL_SUFFIX = ".partial"


def deploy_steps(params: NetworkParameters, court_name: str) -> list[tuple[str, str]]:
    """(step, what it sends) for each transaction of a deploy, in order: a step that deploys names the
    contract (the court's step is "VerificationCourt" whichever contract stands there), a call its
    function."""
    steps = [
        ("RewardToken", "RewardToken"),
        ("Randomness", RANDOMNESS_CONTRACTS[params.randomness]),
        ("JobMarket", "JobMarket"),
    ]
    if court_name == COURT_CONTRACT:
        steps.append(("CourtEngine", "CourtEngine"))
    steps += [("VerificationCourt", court_name), ("setParams", "setParams")]
    if court_name == COURT_CONTRACT:  # only VerificationCourt has an ARBITER_ROLE
        steps.append(("arbiterRole", "arbiterRole"))
    if params.devnet_faucet:
        steps.append(("minterRole", "minterRole"))
    return steps


# What each step sends of the parameters (keys of the deployment file's "parameters"; "market" is
# every market key, "market.drawDelay" that one): a deploy that stopped halfway (setParams refused a
# value out of the contract's range, say) is resumed with the value fixed when no step it had sent used it.
STEP_PARAMETERS = {
    "RewardToken": ("token",),
    "Randomness": ("randomness",),
    "JobMarket": ("randomness", "market.drawDelay", "jobSlots", "staking"),
    "CourtEngine": (),
    "VerificationCourt": ("court", "courtContract", "market.drawDelay", "market.maxRuntime"),
    "setParams": ("market",),
    "arbiterRole": ("arbiter",),
    "minterRole": ("devnetFaucet",),
}


def _flat(parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{key}.{sub}" if isinstance(value, dict) else key: item
        for key, value in parameters.items()
        for sub, item in (value.items() if isinstance(value, dict) else [(None, value)])
    }


def parameters_used_and_changed(recorded: dict[str, Any], parameters: dict[str, Any], sent: Sequence[str]) -> list[str]:
    """The parameters (``step: key``) that differ between `recorded` and `parameters` and that a step
    in `sent` (those a stopped deploy sent, settled or not) used (:data:`STEP_PARAMETERS`; a step not
    listed there used all of them)."""
    old, new = _flat(recorded), _flat(parameters)
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key, None) != new.get(key, None))
    used = []
    for step in sent:
        uses = STEP_PARAMETERS.get(step)
        for key in changed:
            if uses is None or any(key == u or key.startswith(u + ".") for u in uses):
                used.append(f"{step}: {key}")
    return used


def deploy_cost(gas: int, max_fee: int, reserved_gas: int = 0) -> int:
    """The most wei the transactions of `gas` (the sum of their :data:`STEP_GAS`) cost at `max_fee`
    wei per gas, plus `reserved_gas` at that fee: what the node wants held for the last one beyond its
    use (a fixed gas limit, ape's "max" on local networks, is asked up front in whole)."""
    return (gas + reserved_gas) * max_fee


def partial_path(deployment_file: Path) -> Path:
    """Where a deploy records its progress until the deployment file is written."""
    return deployment_file.with_name(deployment_file.name + PARTIAL_SUFFIX)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """`data` to `path` atomically: a crash leaves the old or the new."""
    write_atomically(path, json.dumps(data, indent=2) + "\n", mode=0o644)


class DeployJournal:
    """What a deploy has sent, kept in ``<chainId>.json.partial`` (:func:`partial_path`) next to the
    deployment file until that is written, so that a deploy that stops halfway (the deployer's
    ether ran out, the node went away, Ctrl-C) is resumed by running it again, not repeated.

    The file holds the chain id, the deployer, the parameters as sent, and per step (:func:`deploy_steps`)
    the transaction's nonce and hash, recorded before it is broadcast, then the contract's address
    and the block once it is mined. Every change is written atomically. :meth:`reconcile` settles,
    against the chain, what a stopped deploy left unsettled. `path` None: kept in memory only."""

    def __init__(self, path: Path | None, chain_id: int, deployer: str, parameters: dict[str, Any], steps: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = path
        self.chain_id = chain_id
        self.deployer = deployer
        self.parameters = parameters
        self.steps: dict[str, dict[str, Any]] = steps if steps is not None else {}

    @classmethod
    def load(cls, path: Path) -> DeployJournal | None:
        """The journal at `path`, None when there is none; raises DeployError when it is unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, int(data["chainId"]), str(data["deployer"]), dict(data["parameters"]), {str(k): dict(v) for k, v in data["steps"].items()})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeployError(f"{path} is not a partial deployment record ({type(exc).__name__}: {exc}); move it away") from None

    def save(self) -> None:
        if self.path is not None:
            _write_json(self.path, {"chainId": self.chain_id, "deployer": self.deployer, "parameters": self.parameters, "steps": self.steps})

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def done(self, step: str) -> bool:
        return "block" in self.steps.get(step, {})

    def sent(self, step: str, what: str, nonce: int, tx_hash: str) -> None:
        self.steps[step] = {"sends": what, "nonce": nonce, "tx": tx_hash}
        self.save()

    def mined(self, step: str, block: int, address: str | None) -> None:
        entry = self.steps[step]
        entry["block"] = block
        if address is not None:
            entry["address"] = to_checksum_address(address)
        self.save()

    def forget(self, step: str) -> None:
        del self.steps[step]
        self.save()

    def reconcile(self, rpc: RpcClient, steps: Sequence[tuple[str, str]]) -> None:
        """Settles each recorded step against the chain: a mined transaction is done (its contract's
        address from the receipt), one the node does not know was never sent (sent again by the
        deploy), one still pending, or a recorded contract without code, raises DeployError."""
        for step, what in steps:
            entry = self.steps.get(step)
            if entry is None:
                continue
            if entry.get("sends") != what:
                raise DeployError(f"{shown_path(self.path)} records {entry.get('sends')} for step {step}, this deploy sends {what}; move it away to deploy a new set")
            if "block" not in entry:
                receipt = rpc.get_receipt(entry["tx"])
                if receipt is None:
                    if rpc.get_transaction(entry["tx"]) is not None:
                        raise DeployError(f"the {step} transaction {entry['tx']} is not mined yet: wait for it, then run the deploy again")
                    self.forget(step)  # the node never took it (or dropped it): sent again
                    continue
                if hex_int(receipt.get("status")) != 1:
                    self.forget(step)  # mined but failed: sent again
                    continue
                self.mined(step, hex_int(receipt["blockNumber"]), receipt.get("contractAddress"))
            address = self.steps[step].get("address")
            if address is not None and rpc.get_code(address) in ("0x", "0x0"):
                raise DeployError(f"{shown_path(self.path)} records {what} at {address}, which has no code on chain {self.chain_id}; move the file away to deploy a new set")


def shown_path(path: Path | None) -> str:
    return str(path) if path is not None else "the deploy record"


def deploy_contracts(
    deployer: Any,
    params: NetworkParameters,
    arbiter: str | None = None,
    court_contract: str | None = None,
    journal: DeployJournal | None = None,
) -> dict[str, Any]:
    """Deploys and wires the contracts with ape, in the order the verification protocol needs
    (:func:`deploy_steps`): RewardToken; the randomness source (`params.randomness`:
    BlockhashRandomness, HeaderRandomness or MockRandomness); JobMarket (which deploys
    ProviderStaking); the court (`CourtEngine`, then `VerificationCourt(market, token, admin,
    CourtParams, engine)`, or the TestCourt stand-in while the build has no VerificationCourt); then
    `market.setParams` with the court (the first parameter version) and the roles.

    `deployer` is an ape account; it becomes admin, governor and guardian everywhere. `arbiter`
    (default: the deployer) receives the court's ARBITER_ROLE when the court has one. Returns the ape contract instances by name ("Randomness" and
    "VerificationCourt" whatever the contract behind them). The bytecode is that of the current
    sources (:func:`ensure_current_build`).

    `journal`: each transaction is recorded there before it is broadcast and once it is mined, and a
    step the journal records as done (after :meth:`DeployJournal.reconcile`) is not sent again: its
    contract is taken at the recorded address (None: a journal in memory, nothing resumed).
    """
    from ape import project  # lazy: optional (ape is heavy and only deploys need it)

    ensure_current_build(project)
    wait_for_receipts_on_interval_mining(deployer.provider)
    if journal is None:
        journal = DeployJournal(None, deployer.provider.chain_id, deployer.address, {})
    t, s, m, c = params.token, params.staking, params.market, params.court
    court_name = court_contract_name(project, court_contract)
    sends = dict(deploy_steps(params, court_name))

    def send(step: str, txn: Any) -> Any:
        """Prepares (ape: nonce, fees, gas; AccountsError when the balance does not cover it), signs,
        records, then broadcasts `txn` and waits for its receipt."""
        txn = deployer.prepare_transaction(txn)
        signed = deployer.sign_transaction(txn)
        if signed is None:
            raise DeployError(f"the {step} transaction was not signed")
        journal.sent(step, sends[step], int(signed.nonce), to_hex(signed.txn_hash))
        receipt = deployer.provider.send_transaction(signed)
        journal.mined(step, int(receipt.block_number), receipt.contract_address or None)
        return receipt

    def contract(step: str, *args: Any) -> Any:
        container = getattr(project, sends[step])
        if not journal.done(step):
            receipt = send(step, container.constructor.serialize_transaction(*args, sender=deployer))
            if not receipt.contract_address:
                raise DeployError(f"the {step} transaction {receipt.txn_hash} created no contract")
        return container.at(journal.steps[step]["address"], fetch_from_explorer=False, detect_proxy=False)

    def call(step: str, method: Any, *args: Any) -> None:
        if not journal.done(step):
            send(step, method.as_transaction(*args, sender=deployer))

    token = contract("RewardToken", t.name, t.symbol, to_wei(t.cap), deployer.address, to_wei(t.initial_supply))
    if params.randomness == "mock":
        randomness = contract("Randomness", deployer.address, b"\x00" * 31 + b"\x01")
    else:
        randomness = contract("Randomness")
    market = contract(
        "JobMarket",
        token.address,
        randomness.address,
        params.randomness == "blockhash",  # nativeBlockhash: the market reads blockhash(anchor) in place
        m.draw_delay,
        m.job_slots,
        deployer.address,
        to_wei(s.min_stake),
        s.unbonding_delay,
    )
    staking = project.ProviderStaking.at(market.staking(), fetch_from_explorer=False, detect_proxy=False)
    if court_name == COURT_CONTRACT:
        engine = contract("CourtEngine")  # deploys the CourtDesk module too
        court = contract("VerificationCourt", market.address, token.address, deployer.address, c.as_tuple(), engine.address)
    else:
        court = contract("VerificationCourt", market.address, c.required_challenge_window(m.draw_delay), c.max_horizon(m.max_runtime))
    call("setParams", market.setParams, m.as_tuple(court.address))
    if "arbiterRole" in sends:
        call("arbiterRole", court.grantRole, court.ARBITER_ROLE(), arbiter or deployer.address)
    if "minterRole" in sends:
        call("minterRole", token.grantRole, token.MINTER_ROLE(), deployer.address)
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
