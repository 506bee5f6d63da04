"""Ingest: validate every explainer, then sync the approved ones into a new index generation.

A file that fails validation stops the ingest before the index is touched, so the previous index keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.embed import Embedder
from bot.index import Index, SyncReport, connect
from bot.knowledge import chunks, load_explainers, serving
from bot.store import Store


def ingest(
    settings: Settings, embedder: Embedder | None = None, progress: Callable[[str], None] = lambda _: None
) -> SyncReport:
    explainers = load_explainers(settings.knowledge_dir)  # raises KnowledgeError with path:line problems
    shown = serving(explainers, settings.production)
    samples = sum(e.meta.status == "sample" for e in shown)
    progress(f"{len(explainers)} explainers valid, {len(shown) - samples} approved, {samples} sample (labelled)")
    embedder = embedder or Embedder(
        settings.embedding_model_path, settings.embedding_model_sha256, settings.torch_threads
    )
    index = Index(connect(settings), embedder, settings.chroma_prefix)
    store = Store(settings.database_url_resolved, settings.encryption_key)
    try:
        with store.exclusive("ingest"):  # one writer at a time, across processes and machines
            progress("holding the ingest lock")
            return index.sync([c for e in shown for c in chunks(e)], progress=progress)
    finally:
        store.engine.dispose()
