"""Evaluation inside a training run: eval loss and generated answers every ``eval_steps``.

The best checkpoint is chosen by BERTScore F1 of *generated* answers (or eval loss when no
answers are generated), which is why the loop is ours and not HF Trainer's teacher-forced eval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from catalog.datasets import Catalog
from settings import ConfigError
from training.config import TrainConfig
from training.data import Encoded, Example
from training.evaluate import eval_loss, generate_answers
from training.metrics import BertScorer, perplexity, text_metrics

BEST_METRICS = ("bertscore_f1", "eval_loss")


def eval_mode_for_training(model: Any) -> None:
    """Eval mode (no dropout) that leaves the 4-bit layers as training sees them.

    On CPU, bitsandbytes repacks a Linear4bit's weights for fast inference the first time it
    runs in eval mode; training then backpropagates through the repacked kernel, which has no
    autograd support (wrong gradients, and runs that resume differently). Keeping those
    layers' ``training`` flag avoids the repacking; dropout still turns off.
    """
    model.eval()
    try:
        import bitsandbytes as bnb
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.training = True


class PeriodicEvaluator:
    """Eval loss + generated-answer metrics on the fixed eval sample, and best tracking."""

    def __init__(
        self,
        cfg: TrainConfig,
        tokenizer: Any,
        eval_enc: list[Encoded],
        gen_examples: list[Example],
        system_prompt: str | None,
        catalog: Catalog | None,
        log: Callable[[str], None],
    ) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer
        self.eval_enc, self.gen_examples = eval_enc, gen_examples
        self.system_prompt, self.catalog = system_prompt, catalog
        self.enabled = bool(eval_enc)
        wants_bertscore = cfg.eval.metric_for_best == "bertscore_f1" and bool(gen_examples)
        self.best_key = "bertscore_f1" if wants_bertscore else "eval_loss"
        if cfg.eval.metric_for_best not in BEST_METRICS:
            raise ConfigError(f"eval.metric_for_best: unknown metric {cfg.eval.metric_for_best!r}")
        if cfg.eval.metric_for_best == "bertscore_f1" and not gen_examples and self.enabled:
            log("no eval generation (eval.generate_examples = 0): best checkpoint by eval loss")
        self.scorer: BertScorer | None = None
        if self.enabled and gen_examples:
            e = cfg.eval
            self.scorer = BertScorer(
                e.bertscore_model, idf=e.bertscore_idf, layer=e.bertscore_layer
            )

    def due(self, step: int, total_steps: int) -> bool:
        """Every ``eval_steps`` and at the last step (never when there is no eval split)."""
        every = self.cfg.eval.eval_steps
        return self.enabled and (bool(every and step % every == 0) or step == total_steps)

    def run(self, model: Any, step: int) -> dict[str, Any]:
        eval_mode_for_training(model)
        try:
            nll, n = eval_loss(
                model, self.eval_enc, self.tokenizer.pad_token_id, self.cfg.eval.batch_size
            )
            metrics: dict[str, Any] = {
                "step": step,
                "eval_loss": nll / max(n, 1),
                "perplexity": perplexity(nll, n),
            }
            if self.gen_examples:
                answers = generate_answers(
                    model,
                    self.tokenizer,
                    self.gen_examples,
                    system_prompt=self.system_prompt,
                    max_new_tokens=self.cfg.eval.max_new_tokens,
                    batch_size=self.cfg.eval.batch_size,
                )
                refs = [e.completion for e in self.gen_examples]
                metrics.update(
                    text_metrics(answers, refs, scorer=self.scorer, catalog=self.catalog)
                )
        finally:
            model.train()
        return metrics

    def is_better(self, metrics: dict[str, Any], best: dict[str, Any]) -> bool:
        value = metrics.get(self.best_key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return not best
        if self.best_key not in best:
            return True
        return (
            value > best[self.best_key]
            if self.best_key != "eval_loss"
            else value < best[self.best_key]
        )
