"""training/metrics.py against values computed by hand on tiny examples."""

from __future__ import annotations

import math

import pytest
import torch

from catalog.datasets import Catalog
from training.evaluate import markdown_table
from training.metrics import (
    BertScorer,
    bleu,
    greedy_match,
    idf_weights,
    link_accuracy,
    perplexity,
    rouge,
)

URL = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"


def test_rouge_by_hand() -> None:
    # pred "the cat sat" vs ref "the cat sat on the mat":
    # ROUGE-1: P = 3/3, R = 3/6 -> F = 2/3; ROUGE-2: 2 of 2 pred bigrams, 2 of 5 ref bigrams
    # -> F = 2 * 1 * 0.4 / 1.4 = 4/7; ROUGE-L: LCS 3 -> same as ROUGE-1.
    scores = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(2 / 3)
    assert scores["rouge2"] == pytest.approx(4 / 7)
    assert scores["rougeL"] == pytest.approx(2 / 3)
    # Mean over pairs: a perfect pair and a disjoint one average to 0.5.
    assert rouge(["a b", "c d"], ["a b", "e f"])["rouge1"] == pytest.approx(0.5)


def test_bleu_by_hand() -> None:
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat" (same length, BP = 1):
    # n-gram precisions 5/6, 3/5, 2/4, 1/3 -> BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4).
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 2 * 1 / 3) ** 0.25
    assert bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(
        expected, abs=0.01
    )
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    with pytest.raises(ValueError):
        bleu(["a"], [])


def test_perplexity_by_hand() -> None:
    # Two tokens with NLL ln 2 and ln 8: mean ln 4 -> perplexity 4.
    assert perplexity(math.log(2) + math.log(8), 2) == pytest.approx(4.0)
    assert math.isnan(perplexity(0.0, 0))


def test_greedy_match_by_hand() -> None:
    e1, e2, e3 = torch.eye(3)
    mid = (e1 + e2) / math.sqrt(2)
    cand = torch.stack([e1, e2])
    ref = torch.stack([e1, mid, e3])
    # cand e1 best matches e1 (1.0); e2 best matches mid (1/sqrt2): P = (1 + 0.7071) / 2.
    # ref e1 -> 1, mid -> 1/sqrt2, e3 -> 0: R = (1 + 0.7071 + 0) / 3.
    p, r, f = greedy_match(cand, ref)
    s = 1 / math.sqrt(2)
    assert p == pytest.approx((1 + s) / 2)
    assert r == pytest.approx((1 + s) / 3)
    assert f == pytest.approx(2 * p * r / (p + r))
    # Weights: reference weights (2, 1, 1) -> R = (2 + s + 0) / 4.
    _, r_w, _ = greedy_match(cand, ref, None, torch.tensor([2.0, 1.0, 1.0]))
    assert r_w == pytest.approx((2 + s) / 4)
    assert greedy_match(cand[:0], ref) == (0.0, 0.0, 0.0)


def test_idf_by_hand() -> None:
    # 3 references; token 1 in all, token 2 in one: idf = log(4/4) = 0 and log(4/2).
    idf = idf_weights([[1, 2], [1], [1, 1]])
    assert idf[1] == pytest.approx(0.0)
    assert idf[2] == pytest.approx(math.log(2))


def test_link_accuracy_by_hand(catalog: Catalog) -> None:
    refs = [
        f"Tsunamis...\n\nMore information: {URL}",
        f"Tsunamis...\n\nMore information: {URL}",
        f"Tsunamis...\n\nMore information: {URL}",
        "A classroom activity (no link expected).",
    ]
    preds = [
        f"Waves.\n\nMore information: {URL}/",  # right page (trailing slash is fine)
        "Waves.\n\nMore information: https://sos.noaa.gov/catalog/datasets/made-up-page",
        "Waves, no link.",
        "Activity.\n\nMore information: https://sos.noaa.gov/catalog/datasets/age-of-the-seafloor",
    ]
    score = link_accuracy(preds, refs, catalog)
    assert (score.expected, score.given, score.valid_given, score.correct) == (3, 3, 2, 1)
    assert score.accuracy == pytest.approx(1 / 3)
    assert score.valid == pytest.approx(2 / 3)


def test_bertscore_with_offline_minilm() -> None:
    scorer = BertScorer(device="cpu")
    ref = "Tsunamis are large ocean waves caused by undersea earthquakes."
    res = scorer.score(
        [ref, "Huge sea waves are set off by earthquakes under the ocean.", "I like pizza."],
        [ref, ref, ref],
    )
    assert res.f1[0] == pytest.approx(1.0, abs=1e-5)
    assert res.f1[0] > res.f1[1] > res.f1[2]
    assert scorer.score([""], [ref]).f1 == [0.0]
    idf_scorer = BertScorer(device="cpu", idf=True)
    assert idf_scorer.score([ref], [ref]).f1[0] == pytest.approx(1.0, abs=1e-5)
    idf = idf_scorer.score([ref, "Pizza."], [ref, "The sun is a star."])
    assert idf.f1[0] == pytest.approx(1.0, abs=1e-5) and idf.f1[1] < 0.9


def test_markdown_table_side_by_side() -> None:
    table = markdown_table(
        {"sos": {"bertscore_f1": 0.8, "bleu": 12.5}, "base": {"bertscore_f1": 0.7, "bleu": 8.0}},
        n_examples=3,
    )
    lines = table.splitlines()
    assert lines[0] == "| metric | sos | base | Δ (base − sos) |"
    assert "| BLEU | 12.50 | 8.00 | -4.5000 |" in lines
    assert "| BERTScore F1 | 0.8000 | 0.7000 | -0.1000 |" in lines
    assert "ROUGE-1" not in table
