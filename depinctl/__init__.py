"""The user-facing layer: the `depin` CLI, the local devnet, the demo and the development chain helpers."""
