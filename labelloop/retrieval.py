"""Passage retrieval for question answering over the stored documents (issue 19: ``qa``).

:func:`load_passages` reads the current version's paragraphs of every document; a :class:`Retriever` ranks them
for a question with BM25 (the ``bm25s`` library) over :func:`terms`, and, given an embedder, fuses that ranking
with the cosine ranking of the embeddings by reciprocal-rank fusion (RRF).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ProjectError

if TYPE_CHECKING:
    from .store import Store

BM25_HINT = "qa retrieval needs bm25s: pip install 'labelloop[docs]'"
RRF_K0 = 60  # the constant of reciprocal-rank fusion: score = sum of 1 / (RRF_K0 + rank)

# Han ideographs (with extension A, compatibility and the supplementary planes) and kana: written without spaces
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TOKEN = re.compile(f"([{_CJK}]+)|([^\\W{_CJK}]+)")
# English function words: articles, pronouns, auxiliaries, prepositions, conjunctions and question words
STOP_WORDS = frozenset(
    "a an the and or but if of to in on at for with by from as into about than then so not no is are was were be "
    "been being am do does did have has had can could will would should shall may might must i me my we our you "
    "your he she his her it its they them their this that these those there here what which who whom whose when "
    "where why how s t".split()  # s, t: what is left of 's and n't
)
# Chinese function characters (particles, 'is', 'in', 'and') and question words: dropped, and no bigram is made
# across them
STOP_CHARS = frozenset("的了是在和与及或也都就而吗呢吧啊呀之着过")
ZH_STOP_WORDS = frozenset("怎么 怎样 什么 为什么 哪里 哪儿 哪些 哪个 多少 请问".split())
_ZH_STOP = re.compile("|".join(sorted(ZH_STOP_WORDS, key=lambda w: (-len(w), w))) + f"|[{''.join(sorted(STOP_CHARS))}]")


@dataclass(frozen=True)
class Passage:
    """One paragraph of a document version, as retrieval returns it."""

    doc: str
    version: int
    paragraph: str
    start: int  # offsets of the paragraph in the document version's text
    end: int
    text: str  # document_text[start:end]
    title: str | None
    rank: int = 0  # 1-based rank in the result list
    score: float = 0.0  # BM25, or the fused score with embeddings

    def as_dict(self) -> dict:
        return asdict(self)


def terms(text: str) -> list[str]:
    """BM25 tokens: NFKC-normalised and lowercased; each character and each adjacent pair of a CJK run, and the
    ``\\w+`` words of other text; :data:`STOP_WORDS`, :data:`STOP_CHARS` and :data:`ZH_STOP_WORDS` left out."""
    found: list[str] = []
    for cjk, word in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if word:
            if word not in STOP_WORDS:
                found.append(word)
            continue
        for run in _ZH_STOP.split(cjk):
            for i, char in enumerate(run):
                found += [char, run[i : i + 2]] if i + 1 < len(run) else [char]
    return found


class Retriever:
    """Ranks ``passages`` (title and text) for a question: BM25, fused with ``embedder``'s cosine ranking when
    one is given (each passage is embedded once, here)."""

    def __init__(self, passages: Sequence[Passage], embedder: Any | None = None):
        try:
            import bm25s
        except ImportError:
            raise ProjectError(BM25_HINT) from None
        self.passages = list(passages)
        self.embedder = embedder
        corpus = [terms(_full_text(p)) for p in self.passages]
        self._bm25: Any = None
        if any(corpus):  # bm25s cannot index a corpus without a single token
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)
        self._vectors: np.ndarray | None = None
        if embedder is not None and self.passages:
            self._embed_query = getattr(embedder, "embed_query", embedder.embed)  # E5 embeds questions as queries
            self._vectors = np.asarray(embedder.embed([_full_text(p) for p in self.passages]), dtype=np.float32)

    @property
    def method(self) -> str:
        return "bm25" if self.embedder is None else f"bm25+{self.embedder.name}"

    def search(self, question: str, k: int) -> list[Passage]:
        """The top ``k`` passages, with rank and score filled; ties keep the input order."""
        if k <= 0 or not self.passages:
            return []
        bm25 = self._bm25_scores(question)
        matched = [i for i in _ranking(bm25) if bm25[i] > 0]
        if self._vectors is None:
            return [replace(self.passages[i], rank=r, score=float(bm25[i])) for r, i in enumerate(matched[:k], 1)]
        query = np.asarray(self._embed_query([question]), dtype=np.float32)[0]
        fused = np.zeros(len(self.passages))
        for ranking in (matched, _ranking(self._vectors @ query)):
            for rank, i in enumerate(ranking, 1):
                fused[i] += 1.0 / (RRF_K0 + rank)
        order = _ranking(fused)[:k]
        return [replace(self.passages[i], rank=r, score=float(fused[i])) for r, i in enumerate(order, 1)]

    def _bm25_scores(self, question: str) -> np.ndarray:
        if self._bm25 is None:
            return np.zeros(len(self.passages))
        vocab = self._bm25.vocab_dict
        ids = [vocab[t] for t in terms(question) if t in vocab]  # get_scores fails on an empty token list
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)


def _ranking(scores: np.ndarray) -> list[int]:
    """Indices by descending score, ties in index order."""
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def _full_text(passage: Passage) -> str:
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


def load_passages(store: Store, collection: str = "default") -> list[Passage]:
    """The paragraphs of the current version of every document in ``collection``, in document and paragraph
    order."""
    return [
        Passage(doc_id, version, paragraph, start, end, text[start:end], title)
        for doc_id, version, title, text, paragraph, start, end in store.current_paragraphs(collection)
    ]
