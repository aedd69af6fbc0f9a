"""`make sim` / `depin sim`: a fresh anvil, the contracts deployed with the default parameters, every
strategy run on chain, one table.

The parameters are the production entry of ``deployments/parameters.toml`` (``sepolia``: the
defaults of VERIFICATION.md §6 with L1 windows, 12 s blocks, a 64-block stake activation delay),
with two changes a simulation needs: ``randomness = "mock"`` (MockRandomness, so that the sim can
set each anchor block's value: anvil's ``prevrandao`` cannot be set) and the deployer's faucet
(it mints the agents' tokens). Windows are never waited for: the sim moves anvil's clock.
"""

from __future__ import annotations

import json
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from depin.deployment import DEFAULT_PARAMETERS_FILE
from depinctl.deploy import deploy_with_ape
from depinctl.procs import start_anvil
from depinctl.sim.model import Row, format_table
from depinctl.sim.protocol import Actors, Protocol
from depinctl.sim.strategies import Assumptions, Strategies
from depinctl.sim.world import WAD, World

SOURCE_NETWORK = "sepolia"  # the entry whose parameters are the defaults (real windows, real bonds)
CHAIN_ID = 31337
ACCOUNTS = 24


def sim_parameters(source: Path = DEFAULT_PARAMETERS_FILE, network: str = SOURCE_NETWORK) -> dict[str, Any]:
    """The `network` entry of the parameters file, for the sim's anvil: mock randomness, faucet on."""
    entry = dict(tomllib.loads(source.read_text())["networks"][network])
    entry["chain_ids"] = [CHAIN_ID]
    entry["randomness"] = "mock"
    entry["devnet_faucet"] = True
    return entry


def write_parameters(path: Path, entry: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps({"networks": {"sim": entry}}))
    return path


def setup_actors(world: World) -> Actors:
    """Funds, registers and stakes the agents: providers in staking, verifiers in the court."""
    acc = world.accounts
    if len(acc) < 21:
        raise RuntimeError(f"anvil has {len(acc)} accounts; the sim needs 21 (start it with --accounts {ACCOUNTS})")
    actors = Actors(
        deployer=world.deployer,
        requester=acc[1],
        provider=acc[2],
        honest_provider=acc[3],
        sybil=acc[4],
        canary=acc[5],
        canary_requester=acc[6],
        wash=acc[7],
        lazy=acc[8],
        honest=acc[9:17],
        coalition=acc[17:21],
    )
    p = Protocol(world, actors)
    p.fund(actors.everyone(), 100_000 * WAD)
    min_stake = int(world.read(world.staking, "minStake"))
    for provider in (actors.provider, actors.honest_provider, actors.canary, actors.wash):
        p.register_provider(provider, min_stake + 200 * WAD)
    court = p.court_params()
    unit = max(int(court.get("minStake", 0)), (int(court["canarySlashMul"]) + 10) * WAD)
    for v in actors.honest:
        p.join_court(v, 5 * unit)
    p.join_court(actors.lazy, unit)
    for c in actors.coalition:
        p.join_court(c, unit)
    # the canary key signs exposures only; the operator's job accounts hold no role
    canary_role = world.read(world.court, "CANARY_ROLE")
    world.send(world.deployer, world.court, "grantRole", canary_role, world.deployer)
    world.anvil.mine(int(court["activationDelayBlocks"]) + 2)
    return actors


def run(
    json_path: Path | None = None,
    *,
    workdir: Path | None = None,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    assumptions: Assumptions | None = None,
) -> tuple[list[Row], dict[str, Any], dict[str, Any] | None]:
    """Runs the whole simulation on a throwaway anvil; returns the rows, the parameters they share
    and the audited job's gas (:func:`audited_path_gas`), and writes them all, with every branch,
    to `json_path`."""
    say = progress or (lambda _m: None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depin-sim-") as tmp:
        base = workdir or Path(tmp)
        anvil, url = start_anvil(base / "anvil", args=["--accounts", str(ACCOUNTS), "--balance", "100000"])
        try:
            params = sim_parameters()
            params_file = write_parameters(base / "parameters.toml", params)
            say(f"anvil at {url}; deploying ({SOURCE_NETWORK} parameters, mock randomness)")
            deployment = deploy_with_ape(url, base / "deployments", extra_args=["--parameters", str(params_file)])
            addresses = dict(deployment.addresses)
            addresses.setdefault("MockRandomness", addresses.get("Randomness", ""))
            world = World(url, addresses, deployment.deployer)
            actors = setup_actors(world)
            strategies = Strategies(world, actors, assumptions)
            rows = strategies.all(say, only=only)
            shared = strategies.shared_params()
            gas = audited_path_gas(strategies.audited_gas)
            say(f"{world.tx_count} transactions, {time.monotonic() - started:.0f} s")
        finally:
            anvil.stop()
    if json_path is not None:
        json_path.write_text(json.dumps(table_json(rows, params, shared, gas), indent=2) + "\n")
    return rows, shared, gas


def table_json(rows: list[Row], params: dict[str, Any], shared: dict[str, Any], gas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"parameters": params, "shared": shared, "rows": [r.as_dict() for r in rows], "audited_path_gas": gas}


# The sim forces draws through MockRandomness; a real deployment reads a block's randomness instead.
_STAND_IN = ("MockRandomness.",)


def audited_path_gas(logs: dict[int, list[tuple[str, int]]]) -> dict[str, Any] | None:
    """The gas of every transaction of one honest job drawn for audit and settled through the real
    VerificationCourt (the sim's "honest, drawn" branch at the lowest k it measured): post, claim,
    submit, the audit round (startAudit, commit, reveal, revealProvider) and the advances that tally
    and conclude it. The MockRandomness calls that force the draw are listed but not counted."""
    if not logs:
        return None
    k_pct = min(logs)
    calls: list[dict[str, Any]] = [{"call": what, "gas": gas, "counted": not what.startswith(_STAND_IN)} for what, gas in logs[k_pct]]
    total = sum(int(c["gas"]) for c in calls if c["counted"])
    return {"k": k_pct / 100, "calls": calls, "total": total}


def format_gas(gas: dict[str, Any]) -> str:
    lines = [f"gas of one honest audited job (drawn, one verifier, ProviderRight; k={gas['k']:g}), every transaction:"]
    for c in gas["calls"]:
        lines.append(f"  {c['call']:<38} {c['gas']:>10,}" + ("" if c["counted"] else "  (the sim's draw stand-in; not counted)"))
    lines.append(f"  {'total':<38} {gas['total']:>10,}")
    return "\n".join(lines)


def main(json_path: Path | None = None, only: list[str] | None = None) -> int:
    """Prints the table; exit status 1 when any row has a non-negative attacker EV, an honest loss
    above its designed allowance, or failed on chain."""
    rows, shared, gas = run(json_path, only=only, progress=lambda m: print(m, flush=True))
    print()
    print(format_table(rows, shared))
    if gas is not None:
        print()
        print(format_gas(gas))
    bad = [r.strategy for r in rows if not row_ok(r)]
    if bad:
        print(f"\nFAILED: {', '.join(bad)}")
        return 1
    return 0


def row_ok(row: Row) -> bool:
    """A row passes when the attacker loses in expectation and no honest party loses more than the
    designed allowance; a strategy the contracts cannot express passes only as declared (note)."""
    if not row.on_chain:
        return not row.note.startswith("FAILED")
    ev, loss = row.attacker_ev, row.honest_loss
    return ev is not None and ev < 0 and loss is not None and loss <= row.honest_allowance + 1e-9
