"""The visitor-question set is what understanding is measured on; it must stay sound."""

from __future__ import annotations

from collections import Counter

from bench.visitor_set import load, part_of
from catalog.datasets import Catalog


def test_set_is_large_split_and_covers_every_category(catalog: Catalog) -> None:
    items = load(catalog)
    assert len(items) >= 300
    parts = Counter(item.part for item in items)
    assert parts["test"] >= 60 and parts["tune"] >= 150
    topics_by_part = {item.topic: item.part for item in items}
    assert all(part_of(topic) == part for topic, part in topics_by_part.items())
    by_slug = {e.slug: e for e in catalog}
    covered = {c for item in items for slug in item.right for c in by_slug[slug].categories[:1]}
    top = {e.categories[0] for e in catalog if e.categories}
    assert covered == top, f"categories without a question: {top - covered}"


def test_no_question_is_in_both_parts(catalog: Catalog) -> None:
    items = load(catalog)
    tune = {i.question.lower() for i in items if i.part == "tune"}
    test = {i.question.lower() for i in items if i.part == "test"}
    assert not tune & test
