"""Clip names -> catalog entries, with the catalog's own matching and no guessing.

A site's playlist names its clips as the site installed them: usually the catalog title
("Blue Marble"), sometimes a folder name ("Earth_Blue_Marble") or a local rename. The catalog's
resolver (exact slug/title first, then close titles) handles those; anything it cannot place is
tried once more with retrieval, accepted only when the top hit is strong and its title contains
every word of the clip's name. Otherwise the clip is unknown: telling visitors about the wrong
dataset is worse than not knowing.
"""

from __future__ import annotations

from catalog.datasets import Catalog, CatalogEntry, CatalogError
from catalog.retrieval import Retriever
from catalog.terms import analyze

__all__ = ["ClipMatcher"]


class ClipMatcher:
    """Memoized name -> entry (or None); names repeat every poll."""

    def __init__(self, catalog: Catalog, retriever: Retriever | None = None) -> None:
        self.catalog = catalog
        self.retriever = retriever
        self._cache: dict[str, CatalogEntry | None] = {}

    def match(self, name: str) -> CatalogEntry | None:
        if name not in self._cache:
            self._cache[name] = self._match(name)
        return self._cache[name]

    def _match(self, name: str) -> CatalogEntry | None:
        readable = name.replace("_", " ").strip()
        if not readable:
            return None
        try:
            return self.catalog.resolve(readable)
        except CatalogError:
            pass
        if self.retriever is None:
            return None
        hits = self.retriever.search(readable, k=1)
        if not hits or not self.retriever.is_strong(hits[0]):
            return None
        words = set(analyze(readable))
        if words and words <= set(analyze(hits[0].entry.title)):
            return hits[0].entry
        return None
