"""Deploying the contracts: the ape routine the deploy script runs, and the script run as a subprocess.

:func:`deploy_contracts` is what ``scripts/deploy.py`` (``ape run deploy``) and the contract tests
call inside ape; :func:`deploy_with_ape` runs that script against a node (tests, benchmarks, the
devnet) and returns the :class:`~depin.deployment.Deployment` it recorded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
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


class DeployError(ChainError):
    """The deploy script failed, or recorded no deployment."""


def deploy_contracts(deployer: Any, params: NetworkParameters, arbiter: str | None = None) -> dict[str, Any]:
    """Deploys and wires RewardToken, JobMarket (which deploys ProviderStaking) and ArbiterResolver with ape.

    `deployer` is an ape account; it becomes admin, governor and guardian. `arbiter` (default: the
    deployer) receives ARBITER_ROLE. Returns the ape contract instances by name.
    """
    from ape import project  # lazy: optional (ape is heavy and only deploys need it)

    t, s = params.token, params.staking
    token = project.RewardToken.deploy(
        t.name, t.symbol, to_wei(t.cap), deployer.address, to_wei(t.initial_supply), sender=deployer
    )
    market = project.JobMarket.deploy(
        token.address,
        deployer.address,
        to_wei(s.min_stake),
        s.unbonding_delay,
        params.market.as_tuple(),
        params.emission.as_tuple(),
        sender=deployer,
    )
    staking = project.ProviderStaking.at(market.staking())
    resolver = project.ArbiterResolver.deploy(market.address, deployer.address, sender=deployer)
    market.setResolver(resolver.address, sender=deployer)
    token.grantRole(token.MINTER_ROLE(), market.address, sender=deployer)
    resolver.grantRole(resolver.ARBITER_ROLE(), arbiter or deployer.address, sender=deployer)
    if params.devnet_faucet:
        token.grantRole(token.MINTER_ROLE(), deployer.address, sender=deployer)
    return {"RewardToken": token, "ProviderStaking": staking, "JobMarket": market, "ArbiterResolver": resolver}


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
