"""Does a visitor's question reach a right SOS dataset? The visitor-question set, typed.

Usage: python bench/visitor_retrieval.py [--no-embeddings] [--out PATH]

Every question of ``bench/data/visitor_questions.jsonl`` (see :mod:`bench.visitor_set`) goes
through :func:`catalog.grounding.build_grounding` with nothing on the sphere, exactly as an
answerer grounds a question. Reported per part (``tune``: what tuning may look at; ``test``:
held-out topics, for reporting only) and per retrieval mode:

* ``link``: the answer's link (``Grounding.primary``) is one of the right pages; no link counts
  as wrong (a visitor asked about something the catalog has).
* ``top3``: a right page is among the first three retrieval hits (what a model may cite).

The questions are typed; spoken questions add speech-to-text errors on top of these numbers.
Writes bench/results/visitor_retrieval.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, machine_info, table, write_json  # noqa: E402
from bench.visitor_set import VisitorQuestion, load  # noqa: E402
from catalog.datasets import Catalog  # noqa: E402
from catalog.embeddings import embeddings_available  # noqa: E402
from catalog.grounding import build_grounding  # noqa: E402
from catalog.retrieval import Retriever  # noqa: E402

PARTS = ("tune", "test")


def score(retriever: Retriever, questions: list[VisitorQuestion]) -> dict[str, float | int]:
    """Link and top-3 hit rates of one retriever on some questions."""
    link = top3 = 0
    for q in questions:
        grounding = build_grounding(q.question, None, retriever)
        link += grounding.primary is not None and grounding.primary.slug in q.right
        top3 += any(h.entry.slug in q.right for h in grounding.hits[:3])
    n = len(questions)
    return {"questions": n, "link": round(link / n, 3), "top3": round(top3 / n, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-embeddings", action="store_true", help="lexical only")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "visitor_retrieval.json")
    args = parser.parse_args()

    info = machine_info()
    catalog = Catalog.load(None)
    questions = load(catalog.entries)
    modes = ["lexical"]
    if not args.no_embeddings and embeddings_available():
        modes.append("hybrid")
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    rows = []
    for mode in modes:
        started = time.perf_counter()
        retriever = Retriever.build(catalog, use_embeddings=mode == "hybrid")
        results[mode] = {}
        for part in PARTS:
            chosen = [q for q in questions if q.part == part]
            results[mode][part] = r = score(retriever, chosen)
            rows.append([mode, part, r["questions"], f"{r['link']:.3f}", f"{r['top3']:.3f}"])
        results[mode]["seconds"] = {"build_and_score": round(time.perf_counter() - started, 1)}
    print(table(["mode", "part", "questions", "link right", "right in top 3"], rows))
    path = write_json(args.out, {"machine": info, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
