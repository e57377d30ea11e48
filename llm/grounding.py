"""Catalog grounding shared by every answerer: which datasets a question is about, the prompt
block of their facts, and the check on the link an answer ends with.

Three answerers (catalog, local transformers model, OpenAI-compatible) must agree on two things
a visitor notices: what "this" refers to (the dataset on the sphere) and which "More
information" page they are sent to. So both decisions live here, once:

- :func:`build_grounding` picks the entries (the showing one first for "what does this show?",
  the question's own dataset first for "what causes hurricanes?" while tsunamis play).
- :class:`LinkGuard` sits between a model's raw text and the client. It strips every
  "More information: URL" marker and raw URL out of the spoken text as it streams (a URL read
  aloud is useless, and a hallucinated one is worse), keeps the model's URL only if it is a
  real catalog page that fits the grounding, and otherwise substitutes the grounding's primary
  entry. The published SOS adapter is known to favour support pages; none get through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from llm.base import AnswerEvent, AnswerRequest, Link, TextDelta
from llm.catalog import Catalog, CatalogEntry
from llm.retrieval import Retriever, ScoredEntry, analyze

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
# showing entry's own score by this much (scores are on the retriever's fixed scale).
OTHER_DATASET_MARGIN = 0.1
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


def build_grounding(request: AnswerRequest, retriever: Retriever, k: int = 3) -> Grounding:
    """The grounding for one question. Runs retrieval: call it off the event loop when the
    retriever uses the dense encoder (tens of milliseconds per query on a CPU)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    showing = request.showing
    scores = retriever.scores(request.question)
    hits = tuple(retriever.top_k(scores, max(k, RELEVANT_HITS)))
    matched = [h for h in hits if retriever.is_match(h)]
    relevant = frozenset(h.entry.slug for h in matched)
    deictic = is_deictic(request.question)
    common = {"relevant": relevant, "hits": hits, "deictic": deictic}

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


# --------------------------------------------------------------------------------------------
# Catalog text, cleaned
# --------------------------------------------------------------------------------------------

_URLISH = r"(?:https?://|www\.|sos\.noaa\.gov/)\S*"
_CLUTTER_LINE_RE = re.compile(
    r"^\s*(?:sources?|credits?|references?|length of dataset|youtube version|"
    r"note|paper globe cutouts|this movie is available|simply tap the overlays|"
    r"overlays are accessible)\b",
    re.I,
)
_CLUTTER_SENTENCE_RE = re.compile(
    r"youtube|vimeo|click here|\bhere\.$|website|download|available (?:for|on|in|from) "
    r"(?:sos|science on a sphere|the sos)|paper globe|overlays? button|sos remote|"
    r"\bapp\b|ipad|iphone|\bftp\b|playlist",
    re.I,
)
_PAREN_RE = re.compile(r"\s*[\(\[][^()\[\]]*[\)\]]")
_BOUNDARY_RE = re.compile(r"[.!?][\"')\]]?\s+(?=[A-Z0-9\"'(])")
_ABBREVIATIONS_TEXT = (
    "st dr mr mrs ms prof mt ft no vs etc e.g i.e approx jan feb mar apr jun jul aug sep sept "
    "oct nov dec u.s u.k inc co jr sr fig ca al"
)
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of catalog prose; "St. Thomas", "Dr. Smith", "U.S. coast" do not end one."""
    out: list[str] = []
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        word = text[start : match.start()].rsplit(None, 1)[-1] if match.start() > start else ""
        word = word.lower().lstrip("(\"'")
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def clean_sentence(sentence: str) -> str:
    """A sentence as it can be spoken: no URLs, no parenthetical asides, no markdown."""
    text = re.sub(_URLISH, "", sentence)
    text = _PAREN_RE.sub("", text)
    text = re.sub(r"^\s*(?:\(?\d{1,2}[).]|[-•*])\s+", "", text)  # list markers: "1) ", "- "
    text = re.sub(r"[()\[\]]", "", text)
    text = re.sub(r"[*_`#>]+", "", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(text.split()))
    text = text.strip(" -–—:")
    return text[:1].upper() + text[1:]


def description_sentences(entry: CatalogEntry) -> list[str]:
    """The entry's description as clean, speakable sentences, in order.

    Drops the catalog's housekeeping ("YouTube version: ...", "Sources:", "Length of dataset",
    "Paper Globe Cutouts are available") and everything after a "Sources:" line.
    """
    out: list[str] = []
    for line in entry.description.splitlines():
        line = line.strip()
        if not line:
            continue
        if re.match(r"^\s*(?:sources?|references?|credits?)\s*:?\s*$", line, re.I):
            break
        if _CLUTTER_LINE_RE.match(line):
            continue
        for raw in split_sentences(line):
            if _CLUTTER_SENTENCE_RE.search(raw):
                continue
            sentence = clean_sentence(raw)
            if len(sentence.split()) >= 4 and sentence[-1:] in ".!?":
                out.append(sentence)
    return out


def entry_summary(entry: CatalogEntry, max_chars: int = 500) -> str:
    """Clean sentences from the start of the description, up to about ``max_chars``."""
    picked: list[str] = []
    used = 0
    for sentence in description_sentences(entry):
        if picked and used + len(sentence) + 1 > max_chars:
            break
        picked.append(sentence)
        used += len(sentence) + 1
    text = " ".join(picked)
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + "…"
    return text


def grounding_prompt(grounding: Grounding, max_chars_per_entry: int = 500) -> str:
    """The catalog facts an LLM answers from, for its system or user prompt.

    Each entry: title, URL, summary, categories, keywords; the showing one is labelled
    "currently on the sphere". Empty grounding -> a line saying nothing matched, so the model
    does not invent a dataset.
    """
    if not grounding.entries:
        return (
            "SOS catalog: no dataset matches this question. Say so briefly, and do not give "
            "a More information link."
        )
    lines = [
        "SOS catalog datasets for this question (answer from these facts; end with "
        '"More information: <URL>" using one of these URLs):'
    ]
    for n, entry in enumerate(grounding.entries, 1):
        label = ""
        if entry == grounding.showing:
            label = " (currently on the sphere"
            label += "; the visitor is asking about it)" if grounding.pinned else ")"
        lines.append(f"[{n}] {entry.title}{label}")
        lines.append(f"URL: {entry.url}")
        if entry.categories:
            lines.append(f"Categories: {', '.join(entry.categories)}")
        if entry.keywords:
            lines.append(f"Keywords: {', '.join(entry.keywords)}")
        lines.append(f"Summary: {entry_summary(entry, max_chars_per_entry)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Link guard
# --------------------------------------------------------------------------------------------

_URL_BODY = r"(?:https?://|www\.|sos\.noaa\.gov/)[^\s<>\"'()\[\]]*"
_URL_RE = re.compile(rf"\({_URL_BODY}\)|{_URL_BODY}", re.I)
_MARKER_RE = re.compile(
    r"[*_]*(?:for )?more info(?:rmation)?[*_]*"
    r"(?:\s*:|,? (?:please )?(?:visit|see|go to|check out)(?: the page)?(?: at)?:?)[*_]*[ \t]*"
    r"|\blearn more (?:at|here):?[ \t]*",
    re.I,
)
# Texts that may be the beginning of a marker or URL, normalized (lower-case, single spaces).
_TRIGGERS = (
    "more information:",
    "more info:",
    "for more information:",
    "learn more:",
    "https://",
    "http://",
    "www.",
    "sos.noaa.gov/",
    "(https://",
    "(http://",
    "(www.",
    "for more information, visit",
    "for more information, see",
    "learn more at",
)
_LONGEST_TRIGGER = max(len(t) for t in _TRIGGERS)
_URL_TRAILING = ".,;:!?"


class LinkGuard:
    """Streaming filter between a model's raw text and the client: removes every
    "More information: URL" line / raw URL from the text deltas, checks the model's URL against
    the catalog (a real catalog page that is in the grounding or strongly relevant is kept;
    anything else — hallucinated slugs, support pages, non-SOS sites — is replaced by
    grounding.primary), and emits exactly one Link at the end when there is one to give.

    Latency: text is passed on as soon as it cannot be the start of a marker or URL; only a
    trailing fragment such as "More inf" or "htt" (and trailing whitespace) is held back.
    """

    def __init__(self, catalog: Catalog, grounding: Grounding) -> None:
        self._catalog = catalog
        self._grounding = grounding
        self._pending = ""
        self._urls: list[str] = []
        self._finished = False
        self._emitted_any = False
        self._tail = ""  # the last text passed on, to see whether a sentence just ended

    @property
    def urls_seen(self) -> tuple[str, ...]:
        """The URLs the model wrote (for logging and link-accuracy measurement)."""
        return tuple(self._urls)

    def feed(self, raw: str) -> list[AnswerEvent]:
        if self._finished:
            raise RuntimeError("LinkGuard.feed after finish")
        self._pending += raw
        return self._drain(final=False)

    def finish(self) -> list[AnswerEvent]:
        if self._finished:
            return []
        events = self._drain(final=True)
        self._finished = True
        link = self.choose_link()
        if link is not None:
            events.append(Link(url=link.url, title=link.title))
        return events

    def choose_link(self) -> CatalogEntry | None:
        """The model's first acceptable catalog URL, else the grounding's primary entry."""
        for url in self._urls:
            entry = self._catalog.by_url(url)
            if entry is not None and self._grounding.allows(entry):
                return entry
        return self._grounding.primary

    def _drain(self, final: bool) -> list[AnswerEvent]:
        out: list[str] = []
        while True:
            url = _URL_RE.search(self._pending)
            marker = _MARKER_RE.search(self._pending)
            match = min(
                (m for m in (url, marker) if m is not None), key=lambda m: m.start(), default=None
            )
            if match is None:
                break
            if match.end() == len(self._pending) and not final:
                # The URL, or the marker's trailing space, may go on in the next piece: pass on
                # the text before it, keep the rest (and the space before it) for later.
                cut = match.start()
                while cut > 0 and (
                    self._pending[cut - 1].isspace() or self._pending[cut - 1] == "("
                ):
                    cut -= 1
                out.append(self._pending[:cut])
                self._pending = self._pending[cut:]
                return self._emit(out)
            before = self._pending[: match.start()]
            rest = self._pending[match.end() :]
            head = before.rstrip()
            gap = before[len(head) :]
            if match is url:
                found = match.group(0).strip("()")
                clean = found.rstrip(_URL_TRAILING)
                self._urls.append(clean)
                rest = found[len(clean) :] + rest  # "see URL." keeps its full stop
                if rest[:1] and rest[0] in _URL_TRAILING:
                    gap = ""
                    prior = (self._tail + "".join(out) + head).rstrip()
                    ended = prior[-1:] in (*_URL_TRAILING, "")
                    if ended:  # "waves. More information: URL." -> no second full stop
                        rest = rest[1:]
            if rest[:1].isspace():
                gap = ""  # one run of whitespace where the URL or marker was, not two
            out.append(head)
            self._pending = gap + rest
        if final:
            out.append(self._pending.rstrip())
            self._pending = ""
        else:
            cut = len(self._pending) - _held_suffix(self._pending)
            out.append(self._pending[:cut])
            self._pending = self._pending[cut:]
        return self._emit(out)

    def _emit(self, pieces: list[str]) -> list[AnswerEvent]:
        text = "".join(pieces)
        if not self._emitted_any:
            text = text.lstrip()
        if not text:
            return []
        self._emitted_any = True
        self._tail = text[-8:]
        return [TextDelta(text)]


def _held_suffix(text: str) -> int:
    """How many trailing characters could begin a marker or URL (or are whitespace that a
    following marker would swallow), and so must wait for the next piece."""
    stripped = text.rstrip()
    trailing_space = len(text) - len(stripped)
    lowered = stripped.lower()
    for start in range(max(0, len(lowered) - _LONGEST_TRIGGER - 4), len(lowered)):
        if start > 0 and lowered[start - 1].isalnum():
            continue
        fragment = " ".join(lowered[start:].split()).lstrip("*_")
        if fragment and any(t.startswith(fragment) for t in _TRIGGERS):
            while start > 0 and text[start - 1].isspace():
                start -= 1  # the space before a marker or URL goes with it
            return len(text) - start
    return trailing_space


async def guard_stream(
    raw: AsyncIterator[str], catalog: Catalog, grounding: Grounding
) -> AsyncIterator[AnswerEvent]:
    """Wrap a model's raw text stream with a :class:`LinkGuard`.

    Closing this stream closes ``raw`` too, so barge-in reaches the generator underneath.
    """
    guard = LinkGuard(catalog, grounding)
    try:
        async for piece in raw:
            for event in guard.feed(piece):
                yield event
        for event in guard.finish():
            yield event
    finally:
        aclose = getattr(raw, "aclose", None)
        if aclose is not None:
            await aclose()


def split_for_streaming(text: str, words_per_piece: int = 3) -> Sequence[str]:
    """Text -> small word groups (with their spaces), the way an LLM's tokens would arrive."""
    words = re.findall(r"\S+\s*", text)
    return ["".join(words[i : i + words_per_piece]) for i in range(0, len(words), words_per_piece)]
