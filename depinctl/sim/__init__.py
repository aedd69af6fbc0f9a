"""The verification protocol proven on the real contracts: `make sim` / `depin sim`.

Layers: :mod:`~depinctl.sim.model` (branch probabilities, expected values, the table; no chain),
:mod:`~depinctl.sim.world` (anvil, accounts, holdings, forced randomness),
:mod:`~depinctl.sim.protocol` (the agents' moves against market and court),
:mod:`~depinctl.sim.strategies` (one row per strategy), :mod:`~depinctl.sim.run` (the command).
"""
