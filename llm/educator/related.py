""" "What else is like this?": the catalog's own related datasets, then close neighbours.

Spoken as titles, with their pages as "More information" lines of text (silent for TTS, shown
on screen) and the first suggestion as the answer's link.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import related_entries
from catalog.retrieval import Retriever
from catalog.text import join_spoken, spoken_title
from llm.base import Audience
from llm.educator.activities import TOP_SECTIONS
from llm.educator.reply import Reply

RELATED_SHOWN = 3
_SECTION_KEYS = frozenset(c.lower() for c in TOP_SECTIONS)


def related(
    entry: CatalogEntry, catalog: Catalog, retriever: Retriever, k: int = RELATED_SHOWN
) -> list[CatalogEntry]:
    """The catalog's own related datasets first, then the closest by shared topics."""
    found = related_entries(entry, catalog, k=k)
    if len(found) < k:
        tags = " ".join([*entry.keywords, *entry.categories])
        for hit in retriever.search(tags, k=k + 2):
            if hit.entry != entry and hit.entry not in found:
                found.append(hit.entry)
    return found[:k]


def related_reply(
    entry: CatalogEntry, audience: Audience, catalog: Catalog, retriever: Retriever
) -> Reply:
    """The spoken suggestions for ``entry``: fewer for kids, shared topics for educators."""
    shown = related(entry, catalog, retriever, 2 if audience == "kids" else RELATED_SHOWN)
    title = spoken_title(entry.title)
    if not shown:
        return Reply(f"I don't know of datasets like {title} in the catalog.", entry)
    names = join_spoken([spoken_title(e.title) for e in shown])
    if audience == "kids":
        text = f"If you like this one, you might also like {names}."
    else:
        text = f"If you like {title}, have a look at {names}."
    if audience == "educator":
        shared = _shared_topics(entry, shown)
        if shared:
            text += f" They share topics like {join_spoken(shared)}."
    links = "\n".join(f"More information: {e.url}" for e in shown)
    return Reply(f"{text}\n\n{links}", shown[0])


def _shared_topics(entry: CatalogEntry, others: Sequence[CatalogEntry]) -> list[str]:
    mine = {k.lower(): k for k in [*entry.keywords, *entry.categories]}
    theirs = {k.lower() for e in others for k in [*e.keywords, *e.categories]}
    return [k.lower() for key, k in mine.items() if key in theirs and key not in _SECTION_KEYS][:3]
