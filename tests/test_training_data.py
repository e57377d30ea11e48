"""training/data.py (reading, validation report, formatting) and training/split.py."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from catalog.datasets import Catalog
from training.data import (
    IGNORE_INDEX,
    ColumnMap,
    DataError,
    Example,
    ValidationOptions,
    compact_title,
    encode_example,
    encode_pair,
    find_near_duplicates,
    more_information_url,
    read_rows,
    validate_rows,
)
from training.split import CategoryLookup, Split, catalog_pairs, split_examples, split_summary


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from llm.chat_format import bundled_qwen_tokenizer_path

    return AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_path()))


@pytest.fixture(scope="module")
def sos_examples(sos_pairs_path: Path) -> list[Example]:
    examples, report = validate_rows(read_rows(sos_pairs_path), source="sos")
    assert report.kept == len(examples) > 1500
    return examples


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"prompt": "What is 'Age of the Seafloor' about?", "completion": "The age of crust."},
    {"prompt": "What causes a tsunami?", "completion": "Undersea earthquakes move water."},
]


def test_reads_jsonl_csv_and_hf_parquet_with_mapped_columns(tmp_path: Path) -> None:
    jsonl = _write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert read_rows(jsonl) == ROWS
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["question", "answer"])
        writer.writeheader()
        for r in ROWS:
            writer.writerow({"question": r["prompt"], "answer": r["completion"]})
    examples, _ = validate_rows(read_rows(path), ColumnMap(prompt="question", completion="answer"))
    assert [e.completion for e in examples] == [r["completion"] for r in ROWS]
    assert examples[0].title_key == "age of the seafloor"  # from the quoted title
    with pytest.raises(DataError, match="no 'prompt'/'completion' columns"):
        validate_rows(read_rows(path))
    datasets = pytest.importorskip("datasets")
    parquet = tmp_path / "d.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(parquet))
    assert read_rows(parquet) == ROWS


def test_bad_rows_are_dropped_and_reported(tmp_path: Path, tokenizer) -> None:
    long_answer = "word " * 400
    rows = [
        *ROWS,
        {"prompt": "", "completion": "no question"},
        {"prompt": "A question without answer?", "completion": "   "},
        {"prompt": "Only a prompt"},
        dict(ROWS[0]),  # exact duplicate
        {"prompt": "what causes a TSUNAMI", "completion": "Something else."},  # same question
        {
            "prompt": "What is 'Age of the Seafloor' about, really?",
            "completion": "The age of crust.",
        },
        {"prompt": "Tell me everything.", "completion": long_answer},
    ]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with path.open("a") as f:
        f.write("{not json\n")
    examples, report = validate_rows(
        read_rows(path),
        tokenizer=tokenizer,
        options=ValidationOptions(max_length=300, near_duplicate_threshold=0.5),
        source=str(path),
    )
    assert [e.prompt for e in examples] == [r["prompt"] for r in ROWS]
    assert report.rows_read == 10 and report.kept == 2
    assert report.dropped == {
        "missing_prompt": 1,
        "missing_completion": 2,
        "exact_duplicate": 1,
        "duplicate_prompt": 1,
        "near_duplicate": 1,
        "too_long": 1,
        "invalid_row": 1,
    }
    assert report.examples["duplicate_prompt"][0]["detail"] == "same question as row 2"
    assert "tokens > 300" in report.examples["too_long"][0]["detail"]
    text = str(report)
    assert "dropped 8" in text and "near_duplicate" in text
    report.save(tmp_path / "report.json")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["dropped_total"] == 8


def test_near_duplicates_found_exactly() -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    texts = [base, base + " again", "completely different words about ocean waves and wind"]
    found = find_near_duplicates(texts, threshold=0.8)
    assert set(found) == {1} and found[1][0] == 0 and found[1][1] >= 0.8
    assert find_near_duplicates(texts, threshold=0.99) == {}


def test_prompt_tokens_are_masked(tokenizer) -> None:
    ex = Example(id="x", row=1, prompt="What causes a tsunami?", completion="Earthquakes.")
    prompt_ids, completion_ids = encode_pair(tokenizer, ex)
    enc = encode_example(tokenizer, ex)
    assert enc.input_ids == prompt_ids + completion_ids
    assert enc.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert enc.labels[len(prompt_ids) :] == completion_ids
    assert enc.loss_tokens == len(completion_ids)
    full = encode_example(tokenizer, ex, completion_only_loss=False)
    assert full.labels == full.input_ids
    assert tokenizer.decode(completion_ids).strip().endswith("<|im_end|>")


@pytest.mark.parametrize("system_prompt", [None, "You are the Science On a Sphere guide."])
def test_training_prompt_tokens_equal_serving(tokenizer, system_prompt: str | None) -> None:
    """What training feeds as the prompt is token for token what serving renders."""
    from llm.chat_format import render_prompt

    ex = Example(id="x", row=1, prompt="What is 'Age of the Seafloor' about?", completion="Crust.")
    messages = ex.messages(system_prompt)
    served = render_prompt(tokenizer, messages)
    assert served.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    served_ids = tokenizer(served, add_special_tokens=False)["input_ids"]
    enc = encode_example(tokenizer, ex, system_prompt)
    n_prompt = enc.labels.index(next(t for t in enc.labels if t != IGNORE_INDEX))
    assert enc.input_ids[:n_prompt] == served_ids
    assert encode_pair(tokenizer, ex, system_prompt)[0] == served_ids


def test_category_lookup_resolves_every_sos_title(sos_examples, catalog: Catalog) -> None:
    lookup = CategoryLookup(catalog, sos_examples)
    keys = {e.title_key for e in sos_examples}
    assert all(lookup.entry(k) is not None for k in keys)
    assert compact_title("Callisto: Jupiter's Moon") == "callisto jupiters moon"
    assert lookup.entry("callisto jupiters moon").slug.startswith("callisto")


def test_split_is_grouped_stratified_and_repeatable(sos_examples, catalog: Catalog) -> None:
    lookup = CategoryLookup(catalog, sos_examples)
    split = split_examples(sos_examples, lookup, eval_fraction=0.1, seed=7)
    train, evals = split.select(sos_examples)
    assert len(train) + len(evals) == len(sos_examples)
    assert not {e.title_key for e in train} & {e.title_key for e in evals}
    assert 0.07 <= len(evals) / len(sos_examples) <= 0.13
    # Stratified: each difficulty's eval share is near 10%, and every category with more than
    # a couple of titles is represented on the eval side.
    for difficulty in ("hard", "medium"):
        total = sum(e.difficulty == difficulty for e in sos_examples)
        share = sum(e.difficulty == difficulty for e in evals) / total
        assert 0.06 <= share <= 0.14, (difficulty, share)
    titles_per_cat = Counter(lookup.category(k) for k in {e.title_key for e in sos_examples})
    eval_cats = {lookup.category(e.title_key) for e in evals}
    assert {c for c, n in titles_per_cat.items() if n >= 8} <= eval_cats
    # Repeatable, seed-dependent, and saved/loaded exactly.
    assert split_examples(sos_examples, lookup, eval_fraction=0.1, seed=7) == split
    assert split_examples(sos_examples, lookup, eval_fraction=0.1, seed=8) != split
    summary = split_summary(split, sos_examples, lookup)
    assert summary["eval_rows"] == len(evals)


def test_split_round_trips_through_file(tmp_path: Path, sos_examples) -> None:
    split = split_examples(sos_examples, eval_fraction=0.1, seed=1)
    split.save(tmp_path / "split.json")
    again = Split.load(tmp_path)
    assert again == split
    shuffled = list(reversed(sos_examples))
    assert {e.id for e in again.select(shuffled)[1]} == set(split.eval_ids)


def test_catalog_pairs_skip_eval_titles_and_link_real_pages(catalog: Catalog) -> None:
    keys = [compact_title(e.title) for e in list(catalog)[:5]]
    pairs = catalog_pairs(catalog, exclude_title_keys=keys)
    assert len(pairs) >= len(catalog) - 5 - 10  # a few entries have no description
    assert not {p.title_key for p in pairs} & set(keys)
    for p in pairs[:50]:
        url = more_information_url(p.completion)
        assert url is not None and catalog.is_catalog_url(url)
        assert p.source == "catalog"
