"""What a run leaves in its output folder, besides checkpoints.

- at the start: ``train_config.json`` (the run record: config, data file and its hash, the
  system prompt), ``split.json``, ``data_report.json`` and an empty ``log.jsonl``;
- while it runs: one ``log.jsonl`` line per logged step and per evaluation;
- at the end: the best adapter at the top of the folder, the tokenizer, ``metrics.json`` and
  ``best_checkpoint.json``; optionally ``merged/`` (base + adapter in plain bf16 weights).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import RUN_RECORD, TrainConfig, read_run_config
from training.prepare import PreparedData, file_sha256

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
LOG_FILE = "log.jsonl"


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    total_steps: int
    best: dict[str, Any]
    history: list[dict[str, Any]]
    train_tokens_per_s: float
    step_time_s: float
    peak_gpu_memory_gb: float
    stopped_early: bool = False
    # Share of step time in clip + optimizer step: tells a slow (e.g. paged) optimizer apart.
    optimizer_time_s: float = 0.0


def write_run_start(
    out: Path,
    cfg: TrainConfig,
    data_path: str | Path,
    data: PreparedData,
    system_prompt: str | None,
) -> None:
    """The files a fresh run writes before its first step (a resumed run keeps them)."""
    data.split.save(out / "split.json")
    data.report.save(out / "data_report.json")
    record = {
        "config": dataclasses.asdict(cfg),
        "data_path": str(data_path),
        "data_sha256": file_sha256(data_path),
        "system_prompt": system_prompt,
    }
    (out / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / LOG_FILE).write_text("")


def append_log(out: Path, entry: dict[str, Any]) -> None:
    with (out / LOG_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def write_outputs(out: Path, tokenizer: Any, result: TrainResult, cfg: TrainConfig) -> None:
    """Put the best adapter at the top of the folder with tokenizer, metrics and best info."""
    best_dir = out / "best"
    for name in ADAPTER_FILES:
        if (best_dir / name).is_file():
            shutil.copy2(best_dir / name, out / name)
    tokenizer.save_pretrained(out)
    evals = [h for h in result.history if "eval_loss" in h]
    metrics = {
        "steps": result.steps,
        "total_steps": result.total_steps,
        "best": result.best,
        "final_eval": evals[-1] if evals else {},
        "train_tokens_per_s": result.train_tokens_per_s,
        "step_time_s": result.step_time_s,
        "peak_gpu_memory_gb": result.peak_gpu_memory_gb,
        "optimizer_time_s": result.optimizer_time_s,
        "history": result.history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "best_checkpoint.json").write_text(
        json.dumps({"metric": cfg.eval.metric_for_best if evals else None, **result.best}, indent=2)
        + "\n"
    )


def export_merged(
    out: str | Path, cfg: TrainConfig | None = None, *, log: Callable[[str], None] = print
) -> Path:
    """base (bf16, not quantized) + adapter merged into plain weights under ``out/merged``.

    Serving then needs no peft. The merge is into the full-precision base, not the NF4 one the
    adapter was trained on: that is the standard QLoRA export, and the small difference is
    the reason evaluation scores the adapter on the 4-bit base as served by default.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if cfg is None:
        cfg = read_run_config(out)
    base = AutoModelForCausalLM.from_pretrained(cfg.model.base_model, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(base, str(out)).merge_and_unload()
    target = out / "merged"
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(out)).save_pretrained(target)
    log(f"merged model written to {target}")
    return target
