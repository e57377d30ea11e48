"""The train/eval split, grouped by dataset title and stratified, and catalog pairs beside it.

Grouped because sibling questions about one dataset share facts: with one on each side, eval
would score memorized facts. Stratified by catalog category and difficulty so the eval side
looks like the whole; seeded and saved with the run (``split.json``) so eval repeats and a
resumed run trains on the same rows. Catalog pairs live here because they must respect the
split: titles on the eval side are never added to training.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.datasets import Catalog, CatalogEntry
from training.data import (
    UNKNOWN,
    DataError,
    Example,
    compact_title,
    example_id,
    more_information_url,
    norm_text,
)

# --------------------------------------------------------------------------- catalog lookup


class CategoryLookup:
    """title_key -> catalog entry, so the split can stratify by catalog category.

    The data's title keys drop apostrophes ("jupiters") while the catalog's normalization
    splits on them, so both spellings are indexed; titles that still miss are found by the
    "More information" URL their own "What is 'X' about?" answer links to.
    """

    def __init__(self, catalog: Catalog | None, examples: Iterable[Example] = ()) -> None:
        self._by_key: dict[str, CatalogEntry] = {}
        if catalog is None:
            return
        for entry in catalog:
            self._by_key.setdefault(compact_title(entry.title), entry)
            self._by_key.setdefault(entry.title_key, entry)
        urls: dict[str, Counter[str]] = defaultdict(Counter)
        for ex in examples:
            url = more_information_url(ex.completion)
            if url and ex.title_key not in self._by_key:
                weight = 10 if ex.prompt.lower().startswith("what is") else 1
                urls[ex.title_key][url] += weight
        for key, counter in urls.items():
            entry = catalog.by_url(counter.most_common(1)[0][0])
            if entry is not None:
                self._by_key[key] = entry

    def entry(self, title_key: str) -> CatalogEntry | None:
        return self._by_key.get(title_key) or self._by_key.get(compact_title(title_key))

    def category(self, title_key: str) -> str:
        entry = self.entry(title_key)
        return entry.categories[0] if entry and entry.categories else UNKNOWN


# --------------------------------------------------------------------------- split


@dataclass(frozen=True, slots=True)
class Split:
    """Which example ids are train and eval, with what was needed to repeat it."""

    train_ids: tuple[str, ...]
    eval_ids: tuple[str, ...]
    seed: int
    eval_fraction: float
    eval_title_keys: tuple[str, ...] = ()
    train_title_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "eval_fraction": self.eval_fraction,
            "train_ids": list(self.train_ids),
            "eval_ids": list(self.eval_ids),
            "train_title_keys": list(self.train_title_keys),
            "eval_title_keys": list(self.eval_title_keys),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        return cls(
            train_ids=tuple(data["train_ids"]),
            eval_ids=tuple(data["eval_ids"]),
            seed=int(data["seed"]),
            eval_fraction=float(data["eval_fraction"]),
            eval_title_keys=tuple(data.get("eval_title_keys", ())),
            train_title_keys=tuple(data.get("train_title_keys", ())),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Split:
        source = Path(path)
        if source.is_dir():
            source = source / "split.json"
        try:
            return cls.from_dict(json.loads(source.read_text(encoding="utf-8")))
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read a saved split at {source}: {exc}") from exc

    def select(self, examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
        """(train, eval) examples of this split; ids the data no longer has are skipped."""
        train, evals = set(self.train_ids), set(self.eval_ids)
        return [e for e in examples if e.id in train], [e for e in examples if e.id in evals]


def split_examples(
    examples: Sequence[Example],
    lookup: CategoryLookup | None = None,
    *,
    eval_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """A grouped, stratified, seeded train/eval split.

    Groups are title keys (rows without one are their own group): all siblings land on one
    side. Within each catalog category, groups are visited in a seeded random order and a
    group goes to eval when that brings the eval side's (hard, medium, ...) row counts closer
    to ``eval_fraction`` of that category's counts; so each category and each difficulty
    gets about the same eval share, as far as whole groups allow.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    lookup = lookup or CategoryLookup(None)
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex.title_key or f"row:{ex.id}"].append(ex)
    strata: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        strata[lookup.category(key)].append(key)
    rng = random.Random(seed)
    eval_groups: set[str] = set()
    for category in sorted(strata):
        keys = strata[category]
        rng.shuffle(keys)
        totals = Counter(e.difficulty for k in keys for e in groups[k])
        target = {d: eval_fraction * n for d, n in totals.items()}
        have: Counter[str] = Counter()

        def cost(counts: Counter[str], target: dict[str, float] = target) -> float:
            return sum((counts[d] - t) ** 2 for d, t in target.items())

        for key in keys:
            added = have + Counter(e.difficulty for e in groups[key])
            if cost(added) < cost(have):
                have = added
                eval_groups.add(key)
    train_ids = tuple(e.id for e in examples if (e.title_key or f"row:{e.id}") not in eval_groups)
    eval_ids = tuple(e.id for e in examples if (e.title_key or f"row:{e.id}") in eval_groups)
    return Split(
        train_ids=train_ids,
        eval_ids=eval_ids,
        seed=seed,
        eval_fraction=eval_fraction,
        eval_title_keys=tuple(sorted(eval_groups)),
        train_title_keys=tuple(sorted(set(groups) - eval_groups)),
    )


def split_summary(
    split: Split, examples: Sequence[Example], lookup: CategoryLookup | None = None
) -> dict[str, Any]:
    """Counts per side, category and difficulty: what the report shows and tests check."""
    lookup = lookup or CategoryLookup(None)
    train, evals = split.select(examples)
    by: dict[str, Counter[str]] = {"train": Counter(), "eval": Counter()}
    for side, rows in (("train", train), ("eval", evals)):
        for e in rows:
            by[side][f"category:{lookup.category(e.title_key)}"] += 1
            by[side][f"difficulty:{e.difficulty}"] += 1
    return {
        "seed": split.seed,
        "eval_fraction": split.eval_fraction,
        "train_rows": len(train),
        "eval_rows": len(evals),
        "train_groups": len(split.train_title_keys),
        "eval_groups": len(split.eval_title_keys),
        "train_by": dict(sorted(by["train"].items())),
        "eval_by": dict(sorted(by["eval"].items())),
    }


# --------------------------------------------------------------------------- catalog pairs


def catalog_pairs(
    catalog: Catalog, *, exclude_title_keys: Iterable[str] = (), max_chars: int = 900
) -> list[Example]:
    """Extra "What is 'X' about?" pairs from the catalog, in the SOS data's answer style.

    They teach titles (and their exact links) that the Q&A data does not cover. Titles on the
    eval side are excluded, or the eval answers' facts and links would leak into training.
    """
    excluded = {compact_title(k) for k in exclude_title_keys}
    out: list[Example] = []
    for entry in catalog:
        key = compact_title(entry.title)
        if key in excluded or not entry.description.strip():
            continue
        prompt = f"What is '{entry.title}' about?"
        completion = f"{entry.summary(max_chars)}\n\nMore information: {entry.url}"
        out.append(
            Example(
                id=example_id(prompt, completion),
                row=0,
                prompt=prompt,
                completion=completion,
                difficulty="catalog",
                title_key=key,
                source="catalog",
            )
        )
    return out


def dedupe_against(extra: Sequence[Example], base: Sequence[Example]) -> list[Example]:
    """Drop extra pairs whose question the data already asks (the data's answer wins)."""
    asked = {norm_text(e.prompt) for e in base}
    return [e for e in extra if norm_text(e.prompt) not in asked]
