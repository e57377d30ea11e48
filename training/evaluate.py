"""Evaluate adapters: generate answers for the eval split and score them.

One adapter gives one column of numbers; two adapters (or an adapter and its base) are scored
on the same rows, with the same greedy decoding, side by side, so a change to the recipe shows
up as a difference in one table. The rows are the run's saved eval split (``split.json``), so
the numbers repeat; a data file that is a held-out set on its own is scored whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.batches import collate
from training.config import RUN_RECORD, TrainConfig, read_run_config
from training.data import (
    IGNORE_INDEX,
    ColumnMap,
    Encoded,
    Example,
    ValidationOptions,
    encode_example,
    read_rows,
    validate_rows,
)
from training.metrics import BertScorer, perplexity, text_metrics
from training.model import load_base_model
from training.prepare import columns_of, load_catalog, system_prompt_of
from training.split import Split

METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("rouge1", "ROUGE-1"),
    ("rouge2", "ROUGE-2"),
    ("rougeL", "ROUGE-L"),
    ("bleu", "BLEU"),
    ("bertscore_f1", "BERTScore F1"),
    ("perplexity", "Perplexity"),
    ("eval_loss", "Eval loss"),
    ("link_accuracy", "Link accuracy"),
    ("link_valid", "Valid links"),
)
LOWER_IS_BETTER = {"perplexity", "eval_loss"}


def _autocast(model: Any) -> Any:
    """bf16 autocast on CUDA, as in training; nothing on CPU (fp32 compute there)."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eval_loss(
    model: Any, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 8
) -> tuple[float, int]:
    """(summed NLL, number of scored tokens) over the examples' labelled tokens."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad(), _autocast(model):
        for start in range(0, len(encoded), batch_size):
            batch = collate(encoded[start : start + batch_size], pad_id)
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            if n == 0:
                continue
            batch = {k: v.to(device) for k, v in batch.items()}
            # num_items_in_batch=1 turns the model's mean loss into the sum over tokens.
            out = model(**batch, num_items_in_batch=torch.tensor(1, device=device))
            total += float(out.loss)
            count += n
    return total, count


def generate_answers(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    system_prompt: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers, rendered with serving's chat format (thinking off), left-padded."""
    import torch

    from llm.chat_format import render_prompt, strip_thinking

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            prompts = [render_prompt(tokenizer, e.messages(system_prompt)) for e in chunk]
            enc = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
            enc = enc.to(device)
            with torch.no_grad(), _autocast(model):
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    use_cache=True,
                    pad_token_id=tokenizer.pad_token_id,
                )
            width = enc["input_ids"].shape[1]
            for row in out[:, width:]:
                text = tokenizer.decode(row, skip_special_tokens=True)
                answers.append(strip_thinking(text).strip())
    finally:
        tokenizer.padding_side = side
    return answers


# --------------------------------------------------------------------------- whole evaluation


@dataclass
class EvalReport:
    """Metrics per model label, the rows they were computed on, and the answers."""

    models: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    n_examples: int = 0
    data: str = ""
    split: str = ""
    answers: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "sources": self.sources,
            "n_examples": self.n_examples,
            "data": self.data,
            "split": self.split,
        }

    def markdown(self) -> str:
        return markdown_table(self.models, n_examples=self.n_examples)

    def save(self, out: str | Path, examples: Sequence[Example] = ()) -> tuple[Path, Path]:
        """Write ``<out>.json`` and ``<out>.md`` (and answers as ``<out>.answers.jsonl``)."""
        path = Path(out)
        base = path.with_suffix("") if path.suffix in {".json", ".md"} else path
        base.parent.mkdir(parents=True, exist_ok=True)
        json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        md_path.write_text(self.markdown() + "\n", encoding="utf-8")
        if self.answers and examples:
            with base.with_suffix(".answers.jsonl").open("w", encoding="utf-8") as f:
                for i, ex in enumerate(examples):
                    row = {"id": ex.id, "prompt": ex.prompt, "reference": ex.completion}
                    row.update({label: ans[i] for label, ans in self.answers.items()})
                    f.write(json.dumps(row) + "\n")
        return json_path, md_path


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in {"bleu", "perplexity"}:
        return f"{value:.2f}"
    return f"{value:.4f}"


def markdown_table(models: dict[str, dict[str, float]], *, n_examples: int = 0) -> str:
    """Metrics as rows, models as columns; with two models a Δ column (second − first)."""
    labels = list(models)
    header = ["metric", *labels]
    two = len(labels) == 2
    if two:
        header.append(f"Δ ({labels[1]} − {labels[0]})")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, name in METRIC_ROWS:
        values = [models[label].get(key) for label in labels]
        if all(v is None for v in values):
            continue
        cells = [name, *(_fmt(key, v) for v in values)]
        if two:
            a, b = values
            ok = a is not None and b is not None and not (math.isnan(a) or math.isnan(b))
            cells.append(f"{b - a:+.4f}" if ok else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if n_examples:
        lines.append("")
        lines.append(
            f"{n_examples} eval examples; greedy decoding. Higher is better except "
            "perplexity and eval loss. ROUGE/BERTScore/link accuracy in [0, 1], BLEU 0-100."
        )
    return "\n".join(lines)


def load_eval_examples(
    data_path: str | Path,
    *,
    columns: ColumnMap | None = None,
    split_from: str | Path | None = None,
    max_examples: int = 0,
    seed: int = 42,
    log: Callable[[str], None] = print,
) -> tuple[list[Example], str]:
    """The rows to score: the saved split's eval side, or the whole (validated) file.

    ``max_examples`` takes a seeded sample (not the first N rows, which are a few titles).
    """
    examples, report = validate_rows(
        read_rows(data_path),
        columns or ColumnMap(),
        options=ValidationOptions(),
        source=str(data_path),
    )
    if report.dropped_total:
        log(str(report))
    source = "all rows"
    if split_from:
        split = Split.load(split_from)
        _, examples = split.select(examples)
        source = f"eval split of {split_from}"
        if not examples:
            raise ValueError(f"none of the eval ids of {split_from} are in {data_path}")
    if max_examples and len(examples) > max_examples:
        examples = random.Random(seed).sample(examples, max_examples)
        source += f" (sample of {max_examples})"
    return examples, source


def _run_config(adapter: Path, base_model: str | None) -> TrainConfig:
    """The run's own config if ``adapter`` is a run folder, else defaults on its base model."""
    cfg = TrainConfig()
    if (adapter / RUN_RECORD).is_file():
        cfg = read_run_config(adapter)
    elif (adapter / "adapter_config.json").is_file():
        meta = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        cfg.model.base_model = meta.get("base_model_name_or_path") or cfg.model.base_model
    if base_model:
        cfg.model.base_model = base_model
    return cfg


def evaluate(
    adapter: str | Path,
    data_path: str | Path,
    *,
    adapter_b: str | Path | None = None,
    with_base: bool = False,
    split_from: str | Path | None = None,
    base_model: str | None = None,
    max_examples: int = 0,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[EvalReport, list[Example]]:
    """Score ``adapter`` (and ``adapter_b`` or the bare base) on the same eval rows.

    The base model is loaded once, as training loaded it (4-bit NF4 per the run's config);
    adapters are attached by name and switched, and the base is scored with adapters disabled.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    a_dir = Path(adapter)
    cfg = _run_config(a_dir, base_model)
    if split_from is None and (a_dir / "split.json").is_file():
        split_from = a_dir
    d = cfg.data
    examples, source = load_eval_examples(
        data_path, columns=columns_of(d), split_from=split_from, max_examples=max_examples, log=log
    )
    tok_source = a_dir if (a_dir / "tokenizer_config.json").is_file() else cfg.model.base_model
    tokenizer = AutoTokenizer.from_pretrained(str(tok_source))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    system_prompt = system_prompt_of(d)
    encoded = [encode_example(tokenizer, e, system_prompt) for e in examples]
    scorer = BertScorer(
        cfg.eval.bertscore_model, idf=cfg.eval.bertscore_idf, layer=cfg.eval.bertscore_layer
    )
    catalog = load_catalog(d)
    new_tokens = max_new_tokens or cfg.eval.max_new_tokens
    bs = batch_size or cfg.eval.batch_size

    log(f"evaluating on {len(examples)} examples ({source}), base {cfg.model.base_model}")
    base = load_base_model(cfg.model, for_training=False)
    model = PeftModel.from_pretrained(base, str(a_dir), adapter_name="a")
    runs: list[tuple[str, str, Any]] = [(a_dir.name or "adapter", str(a_dir), "a")]
    if adapter_b is not None:
        b_dir = Path(adapter_b)
        model.load_adapter(str(b_dir), adapter_name="b")
        label_b = b_dir.name if b_dir.name != a_dir.name else f"{b_dir.name} (b)"
        runs.append((label_b, str(b_dir), "b"))
    elif with_base:
        runs.append(("base", cfg.model.base_model, None))
    model.eval()
    report = EvalReport(n_examples=len(examples), data=str(data_path), split=source)
    for label, src, name in runs:
        ctx = model.disable_adapter() if name is None else contextlib.nullcontext()
        if name is not None:
            model.set_adapter(name)
        with ctx:
            nll, n = eval_loss(model, encoded, tokenizer.pad_token_id, bs)
            answers = generate_answers(
                model,
                tokenizer,
                examples,
                system_prompt=system_prompt,
                max_new_tokens=new_tokens,
                batch_size=bs,
            )
        refs = [e.completion for e in examples]
        metrics = text_metrics(answers, refs, scorer=scorer, catalog=catalog)
        metrics.update(eval_loss=nll / max(n, 1), perplexity=perplexity(nll, n))
        report.models[label] = metrics
        report.sources[label] = src
        report.answers[label] = answers
        log(f"{label}: BERTScore F1 {metrics['bertscore_f1']:.4f}, ppl {metrics['perplexity']:.2f}")
    del model, base
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return report, examples
