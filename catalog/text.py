"""Catalog prose made speakable: sentences, cleaned of URLs, asides and housekeeping lines.

Every answerer and the quiz read the catalog's descriptions; they must agree on what a
sentence is ("St. Thomas" does not end one) and what is never spoken (YouTube lines, credits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from catalog.datasets import CatalogEntry

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
# Sentences that lean on the one before ("But as the waves...", "The third location...") or
# point back at a list or a previous step make no sense on their own.
_DANGLING_RE = re.compile(
    r"^(?:but|however|as a result|this means|also|and|so|thus|therefore|because of this|"
    r"in addition|additionally|furthermore|it|its|they|these|those|this|that|he|she|here|"
    r"then|next|finally|lastly|similarly|likewise|in contrast|on the other hand|"
    r"the (?:first|second|third|fourth|fifth|next|last|final|other|latter|former|same))\b",
    re.I,
)


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


def spoken_title(title: str) -> str:
    """A catalog title as it is said: "Tsunami Locations - 2000 BCE - 2014" ->
    "Tsunami Locations, 2000 BCE to 2014"."""
    text = re.sub(r"[()\[\]]", "", title)
    text = re.sub(
        r"(\d{1,4}(?:\s*(?:BCE|BC|CE|AD))?)\s*[-–]\s*(\d{1,4}|[Pp]resent)\b", r"\1 to \2", text
    )
    text = re.sub(r"\s+[-–]\s+", ", ", text)
    return " ".join(text.split())


def leans_on_previous(sentence: str) -> bool:
    """True for a sentence that needs the one before it ("However, ...", "They ...", "The
    third location ..."): said alone, out of its paragraph, it would not make sense."""
    return _DANGLING_RE.match(sentence) is not None


def join_spoken(items: Sequence[str]) -> str:
    """A list as it is said: "a", "a and b", "a, b, and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (", and " if len(items) > 2 else " and ") + items[-1]
