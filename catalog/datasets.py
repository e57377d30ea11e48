"""The SOS dataset catalog: 520 real datasets, loaded once, looked up by URL, slug or title.

The catalog is the ground truth for links: every "More information" URL the assistant shows
must be one of these pages. It ships inside the ``zyra`` package (NOAA), so it works offline;
``sos-voice catalog refresh`` can write a newer copy when online and ``catalog.path`` points at it.
"""

from __future__ import annotations

import ast
import difflib
import importlib.resources
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATALOG_PREFIX = "https://sos.noaa.gov/catalog/datasets/"
_URL_RE = re.compile(r"https?://sos\.noaa\.gov/catalog/datasets/([A-Za-z0-9_\-]+)/?", re.I)


class CatalogError(LookupError):
    """A dataset reference matched nothing in the catalog; the message says what was tried."""


MAX_CANDIDATES = 10


class AmbiguousDataset(CatalogError):
    """A name several datasets match ("sea surface temperature": eleven): picking one silently
    would put the wrong dataset on every session, so the caller gets the candidates (best
    first, at most :data:`MAX_CANDIDATES`; ``total`` counts them all) to choose from."""

    def __init__(self, ref: str, candidates: tuple[CatalogEntry, ...], total: int) -> None:
        self.ref = ref
        self.candidates = candidates
        self.total = total
        shown = "; ".join(f"{e.title} ({e.slug})" for e in candidates[:3])
        more = f"; and {total - 3} more" if total > 3 else ""
        super().__init__(
            f"{ref!r} matches {total} SOS datasets: {shown}{more}. Give the slug, the catalog "
            "URL or the full title of one"
        )


def normalize_title(text: str) -> str:
    """Lower-case words only: the same normalization the SOS Q&A data uses for ``title_key``."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def slug_of(url: str) -> str | None:
    """The dataset slug of a catalog URL, or None if it is not a catalog dataset URL."""
    match = _URL_RE.match(url.strip())
    return match.group(1).lower() if match else None


@dataclass(frozen=True, slots=True)
class RelatedDataset:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One SOS dataset, with the fields retrieval and answers use."""

    slug: str
    url: str
    title: str
    description: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    related: tuple[RelatedDataset, ...] = ()
    notable_features: tuple[str, ...] = ()
    date_added: str = ""
    thumbnail: str = ""
    available_for: tuple[str, ...] = field(default=())

    @property
    def title_key(self) -> str:
        return normalize_title(self.title)

    def summary(self, max_chars: int = 600) -> str:
        """The description's first paragraphs, cut at a sentence boundary near ``max_chars``."""
        text = re.sub(r"\s+", " ", self.description).strip()
        if len(text) <= max_chars:
            return text
        cut = text[:max_chars]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        return cut[: end + 1] if end > max_chars // 3 else cut.rsplit(" ", 1)[0] + "…"


def _as_tuple(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value if str(v).strip())


def _categories(value: Any) -> tuple[str, ...]:
    """``{"Water": ["Tsunamis, Waves"]}`` -> ("Water", "Tsunamis", "Waves")."""
    out: list[str] = []
    if isinstance(value, dict):
        for top, subs in value.items():
            out.append(str(top))
            for sub in _as_tuple(subs):
                out.extend(s.strip() for s in sub.split(",") if s.strip())
    else:
        out.extend(_as_tuple(value))
    return tuple(dict.fromkeys(out))


def _related(value: Any) -> tuple[RelatedDataset, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return ()
    items: list[RelatedDataset] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("url") and item.get("title"):
            url = str(item["url"]).strip()
            if slug_of(url):
                items.append(RelatedDataset(title=str(item["title"]).strip(), url=url.rstrip("/")))
    return tuple(items)


def entry_from_record(record: dict[str, Any]) -> CatalogEntry | None:
    """Build an entry from one catalog JSON record; None if it has no usable catalog URL."""
    url = str(record.get("url", "")).strip().rstrip("/")
    slug = slug_of(url)
    title = str(record.get("title", "")).strip()
    if not slug or not title:
        return None
    return CatalogEntry(
        slug=slug,
        url=url,
        title=title,
        description=str(record.get("description", "") or ""),
        categories=_categories(record.get("categories")),
        keywords=_as_tuple(record.get("keywords")),
        related=_related(record.get("related_datasets")),
        notable_features=_as_tuple(record.get("notable_features")),
        date_added=str(record.get("date_added", "") or ""),
        thumbnail=str(record.get("thumbnail_image", "") or ""),
        available_for=_as_tuple(record.get("available_for")),
    )


def _words(entry: CatalogEntry) -> set[str]:
    """The words of a dataset's title and slug, as a visitor or a controller would name it."""
    return set(entry.title_key.split()) | set(entry.slug.replace("-", " ").split())


def _likeness(key: str, entry: CatalogEntry) -> float:
    """How close a normalized name is to a dataset's title (0..1), to rank candidates."""
    return difflib.SequenceMatcher(None, key, entry.title_key).ratio()


def default_catalog_path() -> Path:
    """The catalog JSON shipped in the zyra package."""
    try:
        root = importlib.resources.files("zyra.assets.metadata")
    except ModuleNotFoundError as exc:
        raise CatalogError(
            "the SOS catalog ships in the 'zyra' package: pip install zyra "
            "(or set catalog.path to a catalog JSON file)"
        ) from exc
    return Path(str(root / "sos_dataset_metadata.json"))


class Catalog:
    """All datasets, indexed by slug and normalized title. Immutable after construction."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._entries: tuple[CatalogEntry, ...] = tuple(entries)
        self._by_slug = {e.slug: e for e in self._entries}
        self._by_title = {e.title_key: e for e in self._entries}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        """Read a catalog JSON (a list of records); default: the copy in zyra."""
        source = Path(path).expanduser() if path else default_catalog_path()
        try:
            records = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogError(f"cannot read the SOS catalog at {source}: {exc}") from exc
        if not isinstance(records, list):
            raise CatalogError(f"{source}: expected a JSON list of datasets")
        entries = [e for r in records if isinstance(r, dict) and (e := entry_from_record(r))]
        if not entries:
            raise CatalogError(f"{source}: no datasets with catalog URLs")
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries)

    @property
    def entries(self) -> tuple[CatalogEntry, ...]:
        return self._entries

    def by_url(self, url: str) -> CatalogEntry | None:
        """The entry for a catalog URL (any scheme/trailing slash/case), or None."""
        slug = slug_of(url)
        return self._by_slug.get(slug) if slug else None

    def by_slug(self, slug: str) -> CatalogEntry | None:
        return self._by_slug.get(slug.strip().strip("/").lower())

    def by_title(self, title: str) -> CatalogEntry | None:
        return self._by_title.get(normalize_title(title))

    def is_catalog_url(self, url: str) -> bool:
        return self.by_url(url) is not None

    def resolve(self, ref: str) -> CatalogEntry:
        """A dataset from a URL, slug or (approximate) title; CatalogError if none is close,
        :class:`AmbiguousDataset` if several are.

        This is how an installation names what the sphere shows, so near-misses ("tsunami
        locations", a typo) must still find the entry, but nonsense must fail loudly and a
        name shared by several datasets must not silently pick one. In order: an exact URL,
        slug or title; the datasets whose title or slug holds every word of ``ref`` (one: it;
        several: ambiguous); else the one title or slug closest in spelling.
        """
        ref = ref.strip()
        if not ref:
            raise CatalogError("empty dataset reference")
        found = self.by_url(ref) or self.by_slug(ref) or self.by_title(ref)
        if found:
            return found
        key = normalize_title(ref.replace("-", " "))
        words = set(key.split())
        if words:
            holding = [e for e in self._entries if words <= _words(e)]
            if len(holding) == 1:
                return holding[0]
            if holding:
                ranked = sorted(holding, key=lambda e: (-_likeness(key, e), e.title))
                raise AmbiguousDataset(ref, tuple(ranked[:MAX_CANDIDATES]), len(holding))
        slug_keys = {e.slug.replace("-", " "): e for e in self._entries}
        for keys in (slug_keys, self._by_title):
            close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75)
            if close:
                return keys[close[0]]
        raise CatalogError(
            f"no SOS dataset matches {ref!r}: give a catalog URL "
            f"({CATALOG_PREFIX}<slug>), a slug, or a title"
        )
