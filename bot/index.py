"""The search index: the only module that imports chromadb.

Chunks and their sentences live in a Chroma collection per generation. A small pointer collection
names the generation patients are served from; ingest builds a new generation beside it and only
then moves the pointer, so a failed or killed ingest never leaves a half-built index in service.
Holds explainer content only, never patient text.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np

from bot.config import Settings
from bot.embed import Embedder
from bot.errors import ConfigError, IndexUnavailable
from bot.knowledge import split_sentences
from bot.schemas import Chunk

log = logging.getLogger(__name__)

POINTER = "clinicbot-pointer"
PREFIX = "explainers-"
SECTION = "section"
SENTENCE = "sentence"


def _set_timeout(client: Any, seconds: float) -> None:
    """Give the Chroma HTTP client a request timeout: chromadb builds its httpx client with none, so a hung server
    would hold a reply for as long as the socket stays open."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(seconds)


def connect(settings: Settings) -> Any:
    """A Chroma client for the configured store; a one-line error when it cannot be reached."""
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"CLINICBOT_CHROMA_URL={settings.chroma_url!r} is not an http(s) URL; "
                "use e.g. http://127.0.0.1:8001 or leave it empty for the embedded store"
            )
        try:
            client = chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 80),
                ssl=url.scheme == "https",
            )
            _set_timeout(client, settings.chroma_timeout_s)
            client.heartbeat()
        except Exception:
            raise IndexUnavailable(
                f"cannot reach the Chroma server at CLINICBOT_CHROMA_URL={settings.chroma_url}; "
                "start it or fix the setting"
            ) from None
        return client
    try:
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir))
    except Exception as exc:  # a full disk or a read-only folder, raised by chromadb in several types
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise IndexUnavailable(
            f"cannot open the search index under CLINICBOT_DATA_DIR ({settings.chroma_dir}): {reason}; "
            "check free space and permissions there"
        ) from None


@dataclass
class Row:
    id: str
    explainer_id: str
    title: str
    section: str
    text: str
    version: int
    reviewed_on: str
    chunk_id: str


@dataclass
class Snapshot:
    """The serving generation held in memory: section rows, sentence rows and sentence vectors."""

    generation: str
    sections: list[Row] = field(default_factory=list)
    sentences: list[Row] = field(default_factory=list)
    sentence_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 384), np.float32))
    sentences_of: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0
    generation: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Index:
    def __init__(self, client: Any, embedder: Embedder, prefix: str = ""):
        self._client = client
        self._pointer = f"{prefix}{POINTER}"  # a prefix lets several deployments share one Chroma server
        self._generations = f"{prefix}{PREFIX}"
        self._embedder = embedder
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0

    # ---- the pointer -------------------------------------------------------------
    def active_generation(self) -> str | None:
        try:
            pointer = self._client.get_collection(self._pointer)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise IndexUnavailable("the search index cannot be read; check the Chroma store") from None
        return (pointer.metadata or {}).get("active")

    def _set_active(self, generation: str) -> None:
        pointer = self._client.get_or_create_collection(self._pointer, metadata={"active": generation})
        pointer.modify(metadata={"active": generation})

    def collection(self, generation: str) -> Any:
        return self._client.get_collection(generation)

    # ---- serving -----------------------------------------------------------------
    def snapshot(self, max_age_s: float = 5.0) -> Snapshot:
        """The serving generation, re-checked at most every few seconds so other processes' ingests show up."""
        now = time.monotonic()
        if self._snapshot is None or now - self._checked_at > max_age_s:
            generation = self.active_generation()
            self._checked_at = now
            if generation is None:
                raise IndexUnavailable("the search index has not been built; run `clinicbot ingest`")
            if self._snapshot is None or self._snapshot.generation != generation:
                self._snapshot = self._load(generation)
        return self._snapshot

    def refresh(self) -> None:
        """Re-read the pointer at the next query (after this process published a new generation)."""
        self._snapshot = None

    def _load(self, generation: str) -> Snapshot:
        data = self.collection(generation).get(include=["metadatas", "documents", "embeddings"])
        snap = Snapshot(generation=generation)
        vectors = []
        for row_id, meta, doc, vector in zip(
            data["ids"], data["metadatas"], data["documents"], data["embeddings"], strict=True
        ):
            row = Row(
                id=row_id,
                explainer_id=str(meta["explainer_id"]),
                title=str(meta["title"]),
                section=str(meta["section"]),
                text=str(doc),
                version=int(meta["version"]),
                reviewed_on=str(meta["reviewed_on"]),
                chunk_id=str(meta["chunk_id"]),
            )
            if meta["level"] == SECTION:
                snap.sections.append(row)
            else:
                snap.sentences_of.setdefault(row.chunk_id, []).append(len(snap.sentences))
                snap.sentences.append(row)
                vectors.append(vector)
        if vectors:
            snap.sentence_vectors = np.asarray(vectors, dtype=np.float32)
        return snap

    def query_sections(self, vector: list[float], k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest chunks: a chunk scores its own vector or its best sentence's."""
        found = None
        for attempt in range(2):  # another process's ingest may have retired the generation we were reading
            snap = self.snapshot(max_age_s=5.0 if attempt == 0 else 0.0)
            try:
                found = self.collection(snap.generation).query(
                    query_embeddings=[vector], n_results=k, include=["distances"]
                )
                break
            except Exception:
                self._snapshot = None
        if found is None:
            raise IndexUnavailable("the search index cannot be reached right now")
        best: dict[str, float] = {}
        for row_id, distance in zip(found["ids"][0], found["distances"][0], strict=True):
            chunk_id = row_id.split("~", 1)[0]
            best[chunk_id] = max(best.get(chunk_id, -1.0), 1.0 - float(distance))
        return sorted(best.items(), key=lambda kv: -kv[1])

    def status(self) -> dict[str, object]:
        try:
            generation = self.active_generation()
            if generation is None:
                return {"status": "empty", "detail": "run `clinicbot ingest`"}
            count = self.collection(generation).count()
            return {"status": "ok", "generation": generation, "rows": count}
        except Exception:
            return {"status": "down", "detail": "the Chroma store cannot be reached"}

    # ---- ingest ------------------------------------------------------------------
    def sync(self, chunks: Iterable[Chunk], progress: Callable[[str], None] = lambda _: None) -> SyncReport:
        """Build a new generation from `chunks`, reusing vectors whose content hash is unchanged, then switch."""
        wanted = list(chunks)
        current = self.active_generation()
        old: dict[str, tuple[str, list[float]]] = {}
        old_chunk_hash: dict[str, str] = {}
        if current is not None:
            data = self.collection(current).get(include=["metadatas", "embeddings"])
            for row_id, meta, vector in zip(data["ids"], data["metadatas"], data["embeddings"], strict=True):
                old[row_id] = (str(meta["hash"]), list(vector))
                if meta["level"] == SECTION:
                    old_chunk_hash[row_id] = str(meta["chunk_hash"])
        report = SyncReport()
        for chunk in wanted:
            if chunk.id not in old_chunk_hash:
                report.added.append(chunk.id)
            elif old_chunk_hash[chunk.id] != chunk.content_hash:
                report.updated.append(chunk.id)
            else:
                report.unchanged += 1
        report.removed = sorted(set(old_chunk_hash) - {c.id for c in wanted})
        if current is not None and not report.changed:
            report.generation = current
            return report

        rows = _rows(wanted)
        todo = [r for r in rows if r["id"] not in old or old[r["id"]][0] != r["meta"]["hash"]]
        progress(f"building a new index generation: {len(rows)} rows, {len(todo)} to embed")
        if todo:
            vectors = self._embedder.encode([r["embed_text"] for r in todo])
            for row, vector in zip(todo, vectors, strict=True):
                row["vector"] = vector.tolist()
            report.embedded = len(todo)
        for row in rows:
            if "vector" not in row:
                row["vector"] = old[row["id"]][1]

        generation = f"{self._generations}{time.time_ns():x}"
        try:
            target = self._client.create_collection(
                generation, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
            for start in range(0, len(rows), 256):
                batch = rows[start : start + 256]
                target.add(
                    ids=[r["id"] for r in batch],
                    embeddings=[r["vector"] for r in batch],
                    documents=[r["text"] for r in batch],
                    metadatas=[r["meta"] for r in batch],
                )
                progress(f"written {min(start + 256, len(rows))}/{len(rows)} rows")
        except Exception as exc:  # chromadb wraps disk and server errors in several types; explainer text only
            self._drop_old(keep={current})
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise IndexUnavailable(
                f"could not write the new index generation ({reason}); check free space and permissions under "
                "CLINICBOT_DATA_DIR or the Chroma server; the previous index keeps serving"
            ) from None
        if target.count() != len(rows):
            raise IndexUnavailable("the new index generation is incomplete; the previous one stays in service")
        self._set_active(generation)
        report.generation = generation
        self._drop_old(keep={generation, current})
        self._snapshot = None
        return report

    def _drop_old(self, keep: set[str | None]) -> None:
        for name in self._collection_names():
            if name.startswith(self._generations) and name not in keep:
                try:
                    self._client.delete_collection(name)
                except Exception:
                    log.warning("could not delete old index generation %s", name)

    def _collection_names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self._client.list_collections()]


def _is_missing(exc: Exception) -> bool:
    return type(exc).__name__ in ("NotFoundError", "InvalidCollectionException") or "does not exist" in str(exc)


def _rows(chunks: list[Chunk]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for chunk in chunks:
        base = {
            "explainer_id": chunk.explainer_id,
            "title": chunk.title,
            "section": chunk.section,
            "version": chunk.version,
            "reviewed_on": chunk.reviewed_on,
            "chunk_id": chunk.id,
        }
        embed_text = f"{chunk.title}. {chunk.section}. {chunk.text}"
        rows.append(
            {
                "id": chunk.id,
                "text": chunk.text,
                "embed_text": embed_text,
                "meta": {**base, "level": SECTION, "hash": _hash(embed_text), "chunk_hash": chunk.content_hash},
            }
        )
        for number, sentence in enumerate(split_sentences(chunk.text)):
            rows.append(
                {
                    "id": f"{chunk.id}~{number}",
                    "text": sentence,
                    "embed_text": sentence,
                    "meta": {**base, "level": SENTENCE, "hash": _hash(sentence)},
                }
            )
    return rows
