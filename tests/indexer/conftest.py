"""Fixtures for the indexer tests (defined in ``services.py`` so other test modules can reuse them):

- ``chain_env``: a fresh anvil + redis-server + deployment (the project's ape deploy) for one test;
- ``populated_env``: the session's read-only populated chain (every transition type plus 60 bulk
  jobs, several transactions per block) with a fresh redis-server for the test.
"""

from .services import chain_env, populated_chain, populated_env  # noqa: F401  (pytest fixtures)
