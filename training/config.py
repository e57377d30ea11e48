"""What a training run depends on: the TrainConfig sections, and reading them.

The sections are plain (mutable) dataclasses, unlike the serving side's frozen ones: a resumed
run takes its saved config and raises ``max_steps``, and evaluation points a saved config at
another base model. Loading goes through the ``settings`` package like every other config, so
an unknown key or a mistyped value is a ``settings.ConfigError`` naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from settings import ConfigError, build, merge, parse_assignments, read_toml

RUN_RECORD = "train_config.json"


@dataclass
class ModelConfig:
    base_model: str = "Qwen/Qwen3-4B"
    tokenizer: str = ""
    load_in_4bit: bool = True
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "auto"
    gradient_checkpointing: bool = True
    attn_implementation: str = "sdpa"


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


@dataclass
class DataConfig:
    prompt_column: str = "prompt"
    completion_column: str = "completion"
    difficulty_column: str = "difficulty"
    title_key_column: str = "title_key"
    max_length: int = 8192
    near_duplicate_threshold: float = 0.9
    eval_fraction: float = 0.1
    split_seed: int = 42
    split_from: str = ""
    completion_only_loss: bool = True
    system_prompt: str = ""
    catalog_pairs: str = "none"
    catalog_path: str = ""


@dataclass
class OptimConfig:
    seed: int = 42
    epochs: int = 3
    max_steps: int = 0
    batch_size: int = 1
    grad_accum: int = 4
    learning_rate: float = 2e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optimizer: str = "paged_adamw_8bit"
    group_by_length: bool = False
    logging_steps: int = 10
    save_steps: int = 10
    save_total_limit: int = 1
    progress: bool = True


@dataclass
class EvalConfig:
    eval_steps: int = 10
    loss_examples: int = 0
    generate_examples: int = 32
    max_new_tokens: int = 256
    batch_size: int = 8
    metric_for_best: str = "bertscore_f1"
    bertscore_model: str = "auto"
    bertscore_idf: bool = False
    bertscore_layer: int = -1


@dataclass
class TrainConfig:
    """Everything a run depends on; saved with the run in ``train_config.json``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    values: Mapping[str, Mapping[str, Any]] | None = None,
) -> TrainConfig:
    """Defaults < TOML file < ``section.key=value`` overrides (TOML literals) < ``values``.

    ``values`` are typed overrides from code, e.g. the CLI's named flags, which win over
    ``--set`` as they always have.
    """
    data: dict[str, Any] = {}
    sources = []
    if path:
        merge(data, read_toml(Path(path)), str(path))
        sources.append(str(path))
    if overrides:
        merge(data, parse_assignments(overrides, "--set"), "--set")
        sources.append("--set")
    if values:
        merge(data, values, "options")
        sources.append("options")
    return build(TrainConfig, data, " + ".join(sources) or "training config")


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run was trained with, from its ``train_config.json``."""
    record = Path(run_dir) / RUN_RECORD
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read the run's config {record}: {exc}") from exc
    return build(TrainConfig, saved, str(record))
