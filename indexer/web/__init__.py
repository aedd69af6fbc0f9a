"""The explorer: HTML pages over the index, served by the indexer's FastAPI app (:mod:`indexer.web.app`)."""
