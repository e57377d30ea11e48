"""Does the spoken answer answer the question? Scored against the real SOS Q&A references.

Usage:
    python bench/answer_relevance.py                  # both parts, writes the JSON
    python bench/answer_relevance.py --limit 100 --out /tmp/r.json

Questions: the shared SOS Q&A pairs (../shared/sos-data/sos_qa_pairs.jsonl) whose reference
answers a question about a dataset's content: ``fact`` ("In the dataset X, <question>?",
references of about 25 words) and ``about`` ("What is 'X' about?"). The education templates
(K-12 use, NGSS, activities) are left out: the catalog answerer does not write lesson plans.
Split by dataset title (bench/visitor_set.part_of on the ``title_key``), so the test part's
datasets are never looked at while tuning.

Each question goes through the session's own answerer chain, typed (Services: conversation
layer, educator modes, catalog answerer with hybrid retrieval), exactly as bench/understanding.py
answers. The spoken text is scored against the reference without its "More information" line:

* ``bertscore_f1``: BERTScore F1 with the offline all-MiniLM-L6-v2 (training/metrics.py; no
  baseline rescaling, so compare only runs of this bench);
* ``rougeL``: ROUGE-L F-measure (rouge-score, stemmed);
* ``fact``: for ``fact`` rows, the share of the reference's *new* words (content words of the
  reference that are not in the question, stemmed by the catalog analyzer) that the answer
  says; ``fact_found``: the share of questions where it says at least half of them. This is the
  "does it contain the fact the question asks for" check;
* ``link``: the answer's link is the reference's dataset page (these questions name it, so this
  is the "exact titles win" rate).

Writes bench/results/answer_relevance.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, load_average, run_record, table, write_json  # noqa: E402
from bench.understanding import answer  # noqa: E402
from bench.visitor_set import part_of  # noqa: E402
from catalog.datasets import Catalog, slug_of  # noqa: E402
from catalog.terms import analyze  # noqa: E402
from cli.config import load_config  # noqa: E402
from training.metrics import BertScorer, rouge  # noqa: E402
from voice.services import Services  # noqa: E402

DATA = ROOT.parent / "shared" / "sos-data" / "sos_qa_pairs.jsonl"
RESULTS = RESULTS_DIR / "answer_relevance.json"
_MORE_INFO = re.compile(r"\s*More information:\s*(\S+)\s*$")
_THUMBNAIL = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_ABOUT = re.compile(r"^What is '(.+)' about\?$")
_FACT = re.compile(r"^In the dataset .+?, (?=\w)")
FACT_FOUND = 0.5


@dataclass(frozen=True)
class Pair:
    question: str
    reference: str
    url: str
    kind: str  # "fact" | "about"
    part: str


def load_pairs(path: Path = DATA, catalog: Catalog | None = None) -> list[Pair]:
    """The content questions whose link is a page of the catalog, in file order (a few
    references link an old address, "the-human-era", that no catalog entry has)."""
    catalog = catalog or Catalog.load(None)
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        prompt, completion = row["prompt"].strip(), row["completion"]
        link = _MORE_INFO.search(completion)
        slug = slug_of(link.group(1)) if link else None
        if slug is None or catalog.by_slug(slug) is None:
            continue
        if _ABOUT.match(prompt):
            kind = "about"
        elif _FACT.match(prompt):
            kind = "fact"
        else:
            continue
        reference = _THUMBNAIL.sub("", _MORE_INFO.sub("", completion)).strip()
        pairs.append(Pair(prompt, reference, link.group(1), kind, part_of(row["title_key"])))
    return pairs


def new_words(question: str, reference: str) -> set[str]:
    """Content words of the reference the question does not already say (stemmed)."""
    asked = set(analyze(question))
    return {w for w in analyze(reference) if w not in asked}


def fact_recall(question: str, reference: str, said: str) -> float | None:
    wanted = new_words(question, reference)
    if not wanted:
        return None
    return len(wanted & set(analyze(said))) / len(wanted)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    facts = [r["fact"] for r in rows if r["fact"] is not None]
    return {
        "questions": n,
        "bertscore_f1": round(statistics.fmean(r["bertscore_f1"] for r in rows), 4),
        "rougeL": round(statistics.fmean(r["rougeL"] for r in rows), 4),
        "fact": round(statistics.fmean(facts), 3) if facts else None,
        "fact_found": round(sum(f >= FACT_FOUND for f in facts) / len(facts), 3) if facts else None,
        "link": round(sum(r["link_right"] for r in rows) / max(1, n), 3),
        "words": round(statistics.fmean(len(r["said"].split()) for r in rows), 1),
    }


async def answer_all(pairs: list[Pair]) -> list[tuple[str, str | None]]:
    services = await Services.load(load_config(environ={}))
    try:
        return [await answer(services, p.question) for p in pairs]
    finally:
        await services.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="questions (half per part)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started, load_before = time.time(), load_average()
    pairs = load_pairs(args.data)
    if args.limit:
        pairs = [p for p in pairs if p.part == "tune"][: args.limit // 2] + [
            p for p in pairs if p.part == "test"
        ][: args.limit // 2]
    answers = asyncio.run(answer_all(pairs))
    said = [text.strip() for text, _ in answers]  # the chain's LinkGuard keeps the link out
    scorer = BertScorer()
    f1 = scorer.score(said, [p.reference for p in pairs]).f1
    rows = []
    for p, s, (_, link), f in zip(pairs, said, answers, f1, strict=True):
        rows.append(
            {
                "question": p.question,
                "kind": p.kind,
                "part": p.part,
                "said": s,
                "bertscore_f1": f,
                "rougeL": rouge([s], [p.reference])["rougeL"],
                "fact": fact_recall(p.question, p.reference, s) if p.kind == "fact" else None,
                "link_right": link is not None and slug_of(link) == slug_of(p.url),
            }
        )
    results: dict[str, Any] = {}
    table_rows = []
    for kind in ("fact", "about"):
        for part in ("tune", "test"):
            chosen = [r for r in rows if r["kind"] == kind and r["part"] == part]
            if not chosen:
                continue
            s = results[f"{kind}/{part}"] = summarize(chosen)
            table_rows.append(
                [
                    kind,
                    part,
                    s["questions"],
                    s["bertscore_f1"],
                    s["rougeL"],
                    "-" if s["fact"] is None else s["fact"],
                    "-" if s["fact_found"] is None else s["fact_found"],
                    s["link"],
                    s["words"],
                ]
            )
    print(
        table(
            ["kind", "part", "n", "BERTScore F1", "ROUGE-L", "fact", "fact found", "link", "words"],
            table_rows,
        )
    )
    path = write_json(
        args.out,
        {
            **run_record(started, load_before),
            "results": results,
            # Only the tune part's answers are written out: the test part is for reporting.
            "tune_rows": [r for r in rows if r["part"] == "tune"],
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
