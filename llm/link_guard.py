"""The check on the link an answer ends with, applied to a model's text as it streams.

:class:`LinkGuard` sits between a model's raw text and the client. It strips every
"More information: URL" marker and raw URL out of the spoken text as it streams (a URL read
aloud is useless, and a hallucinated one is worse), keeps the model's URL only if it is a real
catalog page that fits the grounding (:mod:`catalog.grounding`), and otherwise substitutes the
grounding's primary entry. The published SOS adapter is known to favour support pages; none
get through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import Grounding
from llm.base import AnswerEvent, Link, TextDelta

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
