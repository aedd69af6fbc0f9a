"""Shared Python for depin-compute: config, contract bindings, chain client, job spec schema and the `depin` CLI."""

__version__ = "0.1.0"
