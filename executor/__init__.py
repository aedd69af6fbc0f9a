"""Provider executor: Celery app for job dispatch, hardened container runs, result store, chain actions and the provider's side of the verification court."""
