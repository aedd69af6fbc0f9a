"""Chain event indexer: reorg-safe ingestion of contract events into Redis, plus its query API."""
