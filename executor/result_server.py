"""The result server: ``GET``/``HEAD /results/<name>`` of the executor's :class:`~executor.results.ResultStore`
(the archives and their manifests, by opaque name) and ``GET /healthz``, run by the executor's
``results`` component (``[executor] results_bind``). Apart from :mod:`executor.results` so that the
other components, which only write the store, do not import FastAPI at start-up."""

from __future__ import annotations

import json

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response

from executor.results import MEDIA_TYPE, NAME_RE, ResultNotFound, ResultStore


def create_app(store: ResultStore) -> FastAPI:
    """The result server: ``GET``/``HEAD /results/<name>`` (the archive), ``/results/<name>.json``
    (its manifest) and ``GET /healthz``. Nothing is addressed by a digest."""
    app = FastAPI(title="depin result store", docs_url=None, redoc_url=None)

    @app.api_route("/results/{name}", methods=["GET", "HEAD"], response_class=FileResponse)
    def get_result(name: str) -> Response:
        manifest = name.endswith(".json")
        base = name.removesuffix(".json")
        if NAME_RE.match(base) is None:
            raise HTTPException(status_code=400, detail="expected /results/<name> or /results/<name>.json (a name is 64 lower-case hex digits)")
        try:
            path = store.manifest_path(base) if manifest else store.path(base)
        except ResultNotFound:
            raise HTTPException(status_code=404, detail=f"no result {name} here") from None
        if manifest:
            return JSONResponse(json.loads(path.read_bytes()), headers={"Cache-Control": "no-cache"})
        return FileResponse(
            path,
            media_type=MEDIA_TYPE,
            filename=f"{base}.tar",
            headers={"ETag": f'"{base}"', "Cache-Control": "public, max-age=31536000, immutable"},
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(store: ResultStore, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Runs the result server in the foreground (uvicorn) until interrupted."""
    import uvicorn  # lazy: start-up (only the result server runs it)

    uvicorn.run(create_app(store), host=host, port=port, log_level="warning", access_log=False)
