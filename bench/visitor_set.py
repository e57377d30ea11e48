"""The visitor-question set: questions written the way visitors talk, each with the catalog
pages that would be a right answer, split by topic into a tuning part and a test part.

Why topics and title patterns rather than one slug per question: "What causes a tsunami?" is
answered right by any of the catalog's 23 tsunami datasets, and a set that names one of them
would score a good answer as a miss. Each topic's ``right`` pattern is matched against catalog
titles (case-insensitive), so the right set is explicit, reviewable and follows the catalog.

Why split by topic: questions about one topic share words, so a tuning change that helps one
would leak into its siblings on the test part. The test part (about 30 % of the topics, chosen
by a hash of the topic name, so it never moves) is for reporting only: never read its questions
or failures while tuning.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from catalog.datasets import CatalogEntry

DATA = Path(__file__).resolve().parent / "data" / "visitor_questions.jsonl"
Part = Literal["tune", "test"]
TEST_SHARE = 3  # of 10 hash buckets


@dataclass(frozen=True)
class VisitorQuestion:
    question: str
    topic: str
    right: frozenset[str]  # slugs of the catalog pages that answer it
    part: Part


def part_of(topic: str) -> Part:
    """The topic's part; stable across runs and machines."""
    bucket = int(hashlib.sha256(topic.encode()).hexdigest(), 16) % 10
    return "test" if bucket < TEST_SHARE else "tune"


def load(catalog: Iterable[CatalogEntry], path: Path = DATA) -> list[VisitorQuestion]:
    """Every question with its right pages; a topic whose pattern matches nothing is an error."""
    entries = list(catalog)
    out: list[VisitorQuestion] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        pattern = re.compile(row["right"], re.I)
        right = frozenset(e.slug for e in entries if pattern.search(e.title))
        if not right:
            raise ValueError(f"{path}:{n}: topic {row['topic']!r} matches no catalog title")
        part = part_of(row["topic"])
        out += [VisitorQuestion(q, row["topic"], right, part) for q in row["questions"]]
    return out
