"""Provider executor: Celery app for job dispatch, hardened container runs, result store, chain actions and verifier mode."""
