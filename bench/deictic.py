"""Does "what is this about?" get the dataset on the sphere? Measured on the real SOS data.

Usage: python bench/deictic.py [--data PATH] [--no-embeddings] [--limit N]

For every prompt/completion pair of ../shared/sos-data/sos_qa_pairs.jsonl whose completion ends
in "More information: <URL>" and whose URL is a catalog dataset page, the dataset is put on the
sphere (``AnswerRequest.showing``) and four deictic variants are asked through the real answerer
the process would run on a CPU kiosk (the factory's catalog answerer with the educator modes):
"What is this about?", "What does this animation show?", "What am I looking at?", "Tell me more
about this.". Right = the answer's Link is exactly the pair's URL.

The other direction: with a clearly different dataset on the sphere (no top-level catalog
section in common, chosen deterministically), the pair's own prompt, which names its dataset
and is not deictic, must still get its own dataset. Its baseline is the same prompt with
nothing on the sphere (retrieval alone), so the table shows what the exhibit context costs.

Answers are deterministic per (dataset, question), so each distinct one is computed once and
counted once per pair. Writes bench/results/deictic.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from catalog.datasets import Catalog, CatalogEntry  # noqa: E402
from catalog.grounding import is_deictic  # noqa: E402
from catalog.retrieval import Retriever  # noqa: E402
from llm.base import Answerer, AnswerRequest, Link  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "sos-data" / "sos_qa_pairs.jsonl"
RESULTS = ROOT / "bench" / "results" / "deictic.json"
DEICTIC_VARIANTS = (
    "What is this about?",
    "What does this animation show?",
    "What am I looking at?",
    "Tell me more about this.",
)
TOP_SECTIONS = frozenset({"Air", "Water", "Land", "Space", "People", "Snow and Ice", "Extras"})
_MORE_INFO_RE = re.compile(r"More information:\s*(\S+)\s*$")


def load_pairs(path: Path, catalog: Catalog) -> tuple[list[tuple[str, CatalogEntry]], dict]:
    """(prompt, gold entry) for each pair ending in a catalog "More information" URL, and
    the counts of what was left out and why."""
    pairs: list[tuple[str, CatalogEntry]] = []
    skipped = {"no_more_information": 0, "not_a_catalog_dataset": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        match = _MORE_INFO_RE.search(row["completion"].strip())
        if match is None:
            skipped["no_more_information"] += 1
            continue
        entry = catalog.by_url(match.group(1).rstrip(".,)"))
        if entry is None:
            skipped["not_a_catalog_dataset"] += 1
            continue
        pairs.append((row["prompt"], entry))
    return pairs, skipped


def _tops(entry: CatalogEntry) -> set[str]:
    return {c for c in entry.categories if c in TOP_SECTIONS}


def other_dataset(entry: CatalogEntry, catalog: Catalog) -> CatalogEntry:
    """A dataset clearly unlike ``entry`` (no top-level section in common), the same every
    run: the next such entry in slug order, starting half-way round the catalog."""
    ordered = sorted(catalog, key=lambda e: e.slug)
    start = (ordered.index(entry) + len(ordered) // 2) % len(ordered)
    mine = _tops(entry)
    for step in range(len(ordered)):
        candidate = ordered[(start + step) % len(ordered)]
        if candidate != entry and not (_tops(candidate) & mine) and _tops(candidate):
            return candidate
    raise RuntimeError(f"no dataset unlike {entry.slug}")


async def link_of(answerer: Answerer, request: AnswerRequest) -> str | None:
    async for event in answerer.stream(request):
        if isinstance(event, Link):
            return event.url
    return None


def _share(hits: Sequence[bool]) -> float:
    return round(sum(hits) / len(hits), 4) if hits else 0.0


async def measure(answerer: Answerer, catalog: Catalog, pairs, limit: int | None) -> dict:
    if limit:
        pairs = pairs[:limit]
    cache: dict[tuple[str | None, str], str | None] = {}

    async def link(showing: CatalogEntry | None, question: str) -> str | None:
        key = (showing.slug if showing else None, question)
        if key not in cache:
            cache[key] = await link_of(answerer, AnswerRequest(question, showing=showing))
        return cache[key]

    per_variant: dict[str, list[bool]] = {v: [] for v in DEICTIC_VARIANTS}
    wrong_examples: list[dict[str, str | None]] = []
    other_hits: list[bool] = []
    baseline_hits: list[bool] = []
    deictic_prompts = 0
    for prompt, entry in pairs:
        for variant in DEICTIC_VARIANTS:
            got = await link(entry, variant)
            per_variant[variant].append(got == entry.url)
            if got != entry.url and len(wrong_examples) < 10:
                wrong_examples.append({"showing": entry.url, "question": variant, "link": got})
        if is_deictic(prompt):
            deictic_prompts += 1  # it says "this"/"these": it would be about the sphere
            continue
        other = other_dataset(entry, catalog)
        other_hits.append(await link(other, prompt) == entry.url)
        baseline_hits.append(await link(None, prompt) == entry.url)
    all_deictic = [hit for hits in per_variant.values() for hit in hits]
    return {
        "pairs": len(pairs),
        "datasets": len({e.slug for _, e in pairs}),
        "deictic": {
            "questions": len(all_deictic),
            "right_link": _share(all_deictic),
            "per_variant": {v: _share(h) for v, h in per_variant.items()},
            "wrong_examples": wrong_examples,
        },
        "other_dataset_showing": {
            "questions": len(other_hits),
            "own_link_with_other_showing": _share(other_hits),
            "own_link_with_nothing_showing": _share(baseline_hits),
            "prompts_left_out_as_deictic": deictic_prompts,
        },
        "distinct_answers": len(cache),
    }


def table(result: dict) -> str:
    d, o = result["deictic"], result["other_dataset_showing"]
    rows = [
        ("question (dataset X on the sphere)", "n", "link right"),
        *[
            (f'deictic: "{v}"', str(result["pairs"]), f"{share:.1%}")
            for v, share in d["per_variant"].items()
        ],
        ("deictic, all four", str(d["questions"]), f"{d['right_link']:.1%}"),
        (
            "pair's own prompt, unrelated Y on the sphere",
            str(o["questions"]),
            f"{o['own_link_with_other_showing']:.1%}",
        ),
        (
            "pair's own prompt, nothing on the sphere",
            str(o["questions"]),
            f"{o['own_link_with_nothing_showing']:.1%}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>5}  {c:>10}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict:
    from llm.config import LlmConfig
    from llm.factory import build_answerer

    catalog = Catalog.load()
    retriever = Retriever.build(catalog, use_embeddings=False if args.no_embeddings else None)
    answerer, reason = build_answerer(LlmConfig(answerer="catalog"), catalog, retriever)
    pairs, skipped = load_pairs(args.data, catalog)
    start = time.perf_counter()
    result = await measure(answerer, catalog, pairs, args.limit)
    result.update(
        answerer=f"{answerer.name} ({reason})",
        retrieval=retriever.description,
        data=str(args.data),
        skipped_pairs=skipped,
        seconds=round(time.perf_counter() - start, 1),
    )
    await answerer.aclose()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-embeddings", action="store_true", help="lexical retrieval only")
    parser.add_argument("--limit", type=int, help="first N pairs only (quick look)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(table(result))
    print(f"\n{result['answerer']}; {result['retrieval']}; {result['seconds']} s")
    if not args.limit:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
