"""Catalog grounding: which datasets a question is about.

Three answerers (catalog, local transformers model, OpenAI-compatible) must agree on what a
visitor notices: what "this" refers to (the dataset on the sphere) and which catalog pages an
answer may send them to. So that decision lives here, once: :func:`build_grounding` picks the
entries (the showing one first for "what does this show?", the question's own dataset first
for "what causes hurricanes?" while tsunamis play). The check on the link a model's answer
ends with is in :mod:`llm.link_guard`; this module knows nothing of answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from catalog.datasets import Catalog, CatalogEntry
from catalog.retrieval import Retriever, ScoredEntry
from catalog.terms import analyze, query_terms

# --------------------------------------------------------------------------------------------
# Deictic questions: about what is on the sphere now
# --------------------------------------------------------------------------------------------

_DISPLAY_NOUNS = (
    r"animation|dataset|data|visuali[sz]ation|map|globe|sphere|picture|image|movie|video|film|"
    r"one|show|display|thing|model|simulation|presentation|colou?rs?|part|parts|area|areas|"
    r"region|spot|spots|line|lines|dot|dots|circle|circles|arrow|arrows|shape|pattern|swirl|"
    r"swirls|stuff|red|blue|green|yellow|orange|purple|white|black|dark|bright"
)
_TIME_WORDS = r"year|week|month|morning|afternoon|evening|weekend|time|summer|winter|spring|fall"

DEICTIC: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.I)
    for p in (
        r"\bwhat am i (looking at|seeing|watching)\b",
        r"\bwhat are we (looking at|seeing|watching)\b",
        r"\bwhat(?:'s| is| are)? (?:being )?(?:shown|showing|displayed|playing|on) "
        r"(?:here|now|right now|on (?:the )?(?:sphere|globe|screen|display|ball))\b",
        r"\b(?:on|in) (?:the )?(?:sphere|globe|screen|display)\b",
        r"\b(?:here|right now)\s*\??$",
        r"\bwhat (?:does|do|did) (?:this|that|it|these|those) (?:show|shows|mean|represent|"
        r"depict|tell)\b",
        r"\bwhat (?:is|'s|are) (?:this|that|these|those|it)\b",
        r"\bwhat(?:'s| is)? (?:this|that|it) about\b",
        r"\b(?:like|similar to|related to|about) (?:this|that|it)\b(?! (?:" + _TIME_WORDS + r")\b)",
        r"\bthis(?! (?:" + _TIME_WORDS + r")\b)\b",
        r"\b(?:these|those)\b",
        r"\bthat (?:" + _DISPLAY_NOUNS + r")\b",
        r"\b(?:is|was|explain|describe|mean) that\s*[?.!]*$",
        r"\bwhy (?:is|are|does|do) (?:it|they)\b",
        r"\bthe (?:red|blue|green|yellow|orange|purple|white|black|dark|bright) "
        r"(?:part|parts|area|areas|spot|spots|line|lines|dots?|regions?|colou?r)\b",
    )
)


def is_deictic(question: str) -> bool:
    """Is the question about what is on the sphere now rather than something it names?

    "What does this show?", "what am I looking at", "why is that part red", "what else is like
    this" are; "What causes a tsunami?" or "this week's weather" are not.
    """
    text = " ".join(question.strip().split()).replace("\u2019", "'")
    return any(p.search(text) for p in DEICTIC)


_RELATED_RE = re.compile(
    r"\b(?:what|which|anything|something|any|show me|are there)\b.*"
    r"\b(?:else|similar|related|like (?:this|that|it))\b|"
    r"\b(?:other|similar|related) (?:datasets?|ones?|animations?|things)\b|"
    r"\bmore like (?:this|that|it)\b",
    re.I,
)


def asks_for_related(question: str) -> bool:
    """ "What else is like this?", "any similar datasets?", "show me other ones" (not "what
    other planets have rings?", which is a question of its own)."""
    return _RELATED_RE.search(question) is not None


# --------------------------------------------------------------------------------------------
# Grounding
# --------------------------------------------------------------------------------------------

# A question "is clearly about another dataset" when its best hit is strong and beats the
# showing entry's own score by this much (scores are on the retriever's fixed scale). 0.12 since
# the hybrid score leans on the encoder: a detail question about the showing dataset kept it
# 92.2 % of the time at 0.1, 94.6 % at 0.12 (bench/retrieval.py, 614 SOS Q&A questions; 94.5 %
# before), while visitor questions on another topic still override it as often (63.9 vs 64.2 %
# of the visitor set's tune part with one of three unrelated datasets showing).
OTHER_DATASET_MARGIN = 0.12
# How many retrieval hits may vouch for a model's URL (see LinkGuard).
RELEVANT_HITS = 10


@dataclass(frozen=True)
class Grounding:
    """What an answer is grounded in.

    ``entries``: best first; the showing dataset first when the question is deictic or not
    clearly about another dataset. ``primary``: the entry whose link the answer gets by
    default (None: nothing matched well, so no link). ``pinned``: the link must be
    ``primary`` whatever the model says (a deictic question about the showing dataset).
    ``relevant``: slugs of further catalog pages retrieval found relevant enough that a model
    may cite them. ``hits``: the retrieval results behind all this, so answerers need not
    search twice. ``deictic``: the question was about what is on the sphere. ``showing``: the
    dataset on the sphere (labelled so in the prompt), ``showing_score`` its retrieval score
    for this question.
    """

    entries: tuple[CatalogEntry, ...]
    primary: CatalogEntry | None
    pinned: bool = False
    relevant: frozenset[str] = frozenset()
    hits: tuple[ScoredEntry, ...] = ()
    deictic: bool = False
    showing: CatalogEntry | None = None
    showing_score: float = 0.0

    def allows(self, entry: CatalogEntry) -> bool:
        """May an answer link to ``entry``?"""
        if self.pinned:
            return entry == self.primary
        return entry in self.entries or entry.slug in self.relevant


def _unique(entries: Iterable[CatalogEntry]) -> list[CatalogEntry]:
    return list(dict.fromkeys(entries))


def build_grounding(
    question: str, showing: CatalogEntry | None, retriever: Retriever, k: int = 3
) -> Grounding:
    """The grounding for one question. Runs retrieval: call it off the event loop when the
    retriever uses the dense encoder (tens of milliseconds per query on a CPU)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    scores = retriever.scores(question)
    hits = tuple(retriever.top_k(scores, max(k, RELEVANT_HITS)))
    matched = [h for h in hits if retriever.is_match(h)]
    relevant = frozenset(h.entry.slug for h in matched)
    deictic = is_deictic(question)
    common = {"relevant": relevant, "hits": hits, "deictic": deictic}

    named = retriever.titles.named_in(question)
    if named is not None:
        # The visitor named a dataset: the answer is about exactly that one, whatever shows.
        others = [h.entry for h in matched if h.entry != named]
        entries = tuple(_unique([named, *others])[:k])
        if showing is not None:
            common.update(showing=showing, showing_score=retriever.score_of(scores, showing))
        return Grounding(entries, named, pinned=True, **common)

    if showing is None:
        entries = tuple(h.entry for h in matched[:k])
        return Grounding(entries, entries[0] if entries else None, **common)

    showing_score = retriever.score_of(scores, showing)
    common.update(showing=showing, showing_score=showing_score)
    if deictic:
        fill = [
            *(h.entry for h in matched),
            *related_entries(showing, retriever.catalog),
            *_keyword_neighbours(showing, retriever, k),
        ]
        entries = tuple(_unique([showing, *fill])[:k])
        return Grounding(entries, showing, pinned=True, **common)

    top = hits[0] if hits else None
    if (
        top is not None
        and top.entry != showing
        and retriever.is_strong(top)
        and showing_score < top.score - OTHER_DATASET_MARGIN
    ):
        others = [h.entry for h in matched if h.entry != showing][: max(1, k - 1)]
        return Grounding(tuple(_unique([*others, showing])), top.entry, **common)
    entries = tuple(_unique([showing, *(h.entry for h in matched)])[:k])
    return Grounding(entries, showing, **common)


# --------------------------------------------------------------------------------------------
# Unsure: datasets to ask the visitor to choose between
# --------------------------------------------------------------------------------------------

# Chosen on the visitor set's tune part, typed and as heard (bench/understanding.py), and the
# off-topic questions of bench/retrieval.py; the test part only reports. Scores are on the
# retriever's fixed scale, so each mode's thresholds sit relative to its own ``weak``.
MAYBE_BELOW_WEAK = 0.04
"""A best hit this far below ``weak`` may still be what was meant (a misheard word, a rare
phrasing): offer it rather than say "sorry". Further down, off-topic questions live."""
UNSURE_BELOW_STRONG = 0.08
"""A match no higher than ``strong`` plus this ... (0.05 before the hybrid score leaned on the
encoder; at 0.08 the tune part's confident wrong answers fall a point, typed and heard, for half
a point of right pages, and a right page is offered more often)"""
UNSURE_MARGIN = 0.02
"""... whose runner-up on another topic is this close is a coin toss: ask instead of guessing."""
OFFER = 2


def _another_topic(entry: CatalogEntry, chosen: list[CatalogEntry], asked: set[str]) -> bool:
    """Not a sibling of one already chosen. Siblings: half or more of the title words in
    common ("Sea Ice Extent" and "Sea Ice Age"), or a word of the question in both titles
    ("wildfires": "Fire Observations" and "Fires, Real-time" both answer it)."""
    mine = set(analyze(entry.title))
    for other in chosen:
        theirs = set(analyze(other.title))
        shared = mine & theirs
        if len(shared) >= 0.5 * max(1, min(len(mine), len(theirs))) or shared & asked:
            return False
    return True


def choices_to_offer(
    question: str, grounding: Grounding, retriever: Retriever
) -> tuple[CatalogEntry, ...]:
    """The datasets to ask about ("Did you mean A, or B?") when the question is neither
    clearly about one dataset nor clearly about none; () when the answer is clear.

    Never for a named or deictic question (those are pinned), nor when the dataset on the
    sphere fits the question. Two cases: the best hit is just under ``weak`` (it would
    otherwise be "sorry"), or it is a match but not a strong one and a dataset on another
    topic scores within :data:`UNSURE_MARGIN` of it.
    """
    if grounding.pinned or not grounding.hits:
        return ()
    weak, strong = retriever.thresholds.weak, retriever.thresholds.strong
    if grounding.showing is not None and grounding.showing_score >= weak:
        return ()
    asked = set(query_terms(question))
    distinct: list[ScoredEntry] = []  # the best hit of each topic, best first
    for hit in grounding.hits:
        if _another_topic(hit.entry, [d.entry for d in distinct], asked):
            distinct.append(hit)
    top = distinct[0]
    if top.score < weak:
        floor = weak - MAYBE_BELOW_WEAK
        return tuple(d.entry for d in distinct if d.score >= floor)[:OFFER]
    if top.score >= strong + UNSURE_BELOW_STRONG or len(distinct) < 2:
        return ()
    if top.score - distinct[1].score >= UNSURE_MARGIN:
        return ()
    return tuple(d.entry for d in distinct[:OFFER])


def _keyword_neighbours(entry: CatalogEntry, retriever: Retriever, k: int) -> list[CatalogEntry]:
    """Entries retrieval finds for this entry's own keywords and categories."""
    tags = " ".join([*entry.keywords, *entry.categories])
    return [h.entry for h in retriever.search(tags, k=k + 1) if h.entry != entry][:k]


def related_entries(
    entry: CatalogEntry, catalog: Catalog, *, retriever: Retriever | None = None, k: int = 5
) -> list[CatalogEntry]:
    """Datasets like ``entry``: its catalog "related datasets" that still exist, else the
    entries that share most of its keywords and categories (via ``retriever`` if given)."""
    found = [e for r in entry.related if (e := catalog.by_url(r.url)) and e != entry]
    if found:
        return _unique(found)[:k]
    if retriever is not None:
        return _keyword_neighbours(entry, retriever, k)
    mine = set(analyze(" ".join([*entry.keywords, *entry.categories])))
    if not mine:
        return []
    scored = []
    for other in catalog:
        if other == entry:
            continue
        theirs = set(analyze(" ".join([*other.keywords, *other.categories])))
        overlap = len(mine & theirs) / len(mine | theirs) if theirs else 0.0
        if overlap > 0:
            scored.append((-overlap, other.title, other))
    return [e for _, _, e in sorted(scored, key=lambda t: (t[0], t[1]))[:k]]
