"""The dataset a question names by its title: "What is 'Aurora (3D)' about?", "In the dataset
Sea Ice Extent - 1978 - Present, what are the colors?", "Tell me about Io Volcanoes".

Why not leave it to retrieval: a title's words are shared with its siblings ("X" and "X and
Land Vegetation", "X - 2012" and "X", "Io: ..." and "Io Volcanoes: ..."), and a ranking that
weighs words cannot promise the visitor exactly the dataset they named. A name is a lookup,
not a guess: the longest title the question contains wins.

Two ways a question names a dataset:

- **A naming frame** ("what is X about", "the dataset X", "tell me about X", "show me X", or
  X in double quotes): X is looked up exactly, then, because a spoken title reaches us through
  Whisper ("Tsunami locations 2000 BC to 2014"), by fuzzy ratio with rapidfuzz (a kept
  library; a hand-made edit distance would be slower and no better).
- **Unframed**, only for titles with at least three content words: short titles are ordinary
  phrases ("Largest", "Frozen", "Surface Temperature"), and "what's the largest volcano?"
  names no dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

from catalog.datasets import CatalogEntry, normalize_title

# A title heard through speech-to-text is close to, not equal to, the catalog's; below this
# rapidfuzz ratio (0-100) a framed phrase is not taken as a title (measured on the catalog's
# own titles: sibling titles are further apart than this).
FUZZY_CUTOFF = 90.0
MIN_UNFRAMED_WORDS = 3
_CONTENT_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "of",
        "in",
        "on",
        "to",
        "with",
        "without",
        "for",
        "by",
        "from",
        "our",
        "its",
        "s",
    ]
)

_KIND_WORDS = r"dataset|data set|animation|visuali[sz]ation|movie|film|video"
_KINDS = rf"(?:{_KIND_WORDS})"
_FRAMES = tuple(
    re.compile(p, re.I)
    for p in (
        r"\bwhat(?:'s| is| are) (?P<x>.+?)\s*about\b",
        r"\b(?:in|from|on|about|of) the (?:sos )?" + _KINDS + r"(?: called| named| titled)?"
        r"[ :,]+(?P<x>[^?!]+?)(?:,|[?!.]|$)",
        r"\btell me (?:more )?about (?P<x>[^?!]+?)[?!.]*$",
        r"\b(?:show|play|put on|display|switch to) (?:me |us )?(?P<x>[^?!]+?)[?!.]*$",
        r"[\"“](?P<x>[^\"”]{2,})[\"”]",
        r"(?:^|\s)'(?P<x>[^']{2,}(?:'s[^']*)?)'(?=[\s,.?!]|$)",
    )
)
# Words around a title in a frame that are not part of it: "the", "dataset", "animation".
_LEAD_RE = re.compile(rf"^(?:the |this |that )?(?:sos )?(?:(?:{_KIND_WORDS}) )?(?:called |named )?")
_TAIL_RE = re.compile(rf" (?:{_KIND_WORDS}|one)$")


def _content_words(key: str) -> int:
    return sum(1 for w in key.split() if w not in _CONTENT_STOP)


class TitleIndex:
    """Looks up the dataset a question names. Immutable after construction: share it."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._by_key = {e.title_key: e for e in entries}
        # Longest first, so "x and land vegetation" is tried before "x".
        self._keys = sorted(self._by_key, key=len, reverse=True)
        self._unframed = [k for k in self._keys if _content_words(k) >= MIN_UNFRAMED_WORDS]

    def named_in(self, question: str) -> CatalogEntry | None:
        """The dataset the question names, or None when it names none."""
        text = question.replace("\u2019", "'").replace("\u2018", "'")
        for frame in _FRAMES:
            for match in frame.finditer(text):
                if (entry := self._lookup(match.group("x"))) is not None:
                    return entry
        padded = f" {normalize_title(text)} "
        for key in self._unframed:
            if f" {key} " in padded:
                return self._by_key[key]
        return None

    def _lookup(self, phrase: str) -> CatalogEntry | None:
        raw = normalize_title(phrase)
        bare = _TAIL_RE.sub("", _LEAD_RE.sub("", raw))
        for candidate in dict.fromkeys((raw, bare, _TAIL_RE.sub("", raw), _LEAD_RE.sub("", raw))):
            if (entry := self._by_key.get(candidate)) is not None:
                return entry
        key = bare
        if not key:
            return None
        padded = f" {key} "
        contained = next((k for k in self._keys if f" {k} " in padded), None)
        if contained is not None and (
            _content_words(contained) >= MIN_UNFRAMED_WORDS or len(contained) >= 0.6 * len(key)
        ):
            return self._by_key[contained]
        best = process.extractOne(key, self._keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
        return self._by_key[best[0]] if best is not None else None
