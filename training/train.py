"""QLoRA training of the SOS adapter: an explicit, resumable loop.

Why not HF Trainer / TRL's SFTTrainer: the best checkpoint is chosen by BERTScore of
*generated* answers, which Trainer's eval loop (teacher-forced logits) does not produce;
exact resumption needs our own data order (grouped split, completion-only labels) restored
bit for bit; and the whole loop is ~200 lines that can be read at once. What it does:

- 4-bit NF4 base (double quant) + LoRA on all attention and MLP projections (peft),
  gradient checkpointing, paged 8-bit AdamW, linear schedule, grad accumulation with the loss
  normalized by the completion tokens of the whole accumulation window (so short and long
  answers weigh per token, as one big batch would);
- every ``eval_steps``: eval loss (perplexity) and greedy answers on a fixed sample of the
  eval split scored with BERTScore; the best adapter is kept in ``best/``;
- every ``save_steps``: a checkpoint with adapter, optimizer, scheduler, RNG states and step,
  from which ``resume`` continues to the same weights an uninterrupted run reaches.

Output folder: the best adapter (``adapter_config.json``, ``adapter_model.safetensors``), the
tokenizer, ``train_config.json``, ``split.json``, ``data_report.json``, ``metrics.json``,
``best_checkpoint.json``, ``log.jsonl``; optionally ``merged/`` (base + adapter, bf16).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data import (
    IGNORE_INDEX,
    CategoryLookup,
    ColumnMap,
    DataReport,
    Encoded,
    Example,
    Split,
    ValidationOptions,
    catalog_pairs,
    dedupe_against,
    encode_example,
    read_rows,
    split_examples,
    split_summary,
    validate_rows,
)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class TrainError(RuntimeError):
    """Training cannot start or go on; the message says what to change."""


# --------------------------------------------------------------------------- config


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
    """Everything a run depends on; saved with the run as ``train_config.json``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        cfg = cls()
        cfg.update(data)
        return cfg

    def update(self, data: dict[str, Any]) -> None:
        """Merge a nested dict into this config; unknown sections/keys and bad types fail."""
        for section, values in data.items():
            target = getattr(self, section, None)
            if not dataclasses.is_dataclass(target) or not isinstance(values, dict):
                raise TrainError(f"unknown config section [{section}]")
            for key, value in values.items():
                self.set(f"{section}.{key}", value)

    def set(self, dotted: str, value: Any) -> None:
        section, _, key = dotted.partition(".")
        target = getattr(self, section, None)
        if not dataclasses.is_dataclass(target) or key not in {
            f.name for f in dataclasses.fields(target)
        }:
            raise TrainError(f"unknown config key {dotted!r}")
        current = getattr(target, key)
        if isinstance(current, bool):
            ok = isinstance(value, bool)
        elif isinstance(current, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(current, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(current, list):
            ok = isinstance(value, list)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise TrainError(f"config {dotted}: expected {type(current).__name__}, got {value!r}")
        setattr(target, key, value)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults < TOML file < ``section.key=value`` overrides (values are TOML literals)."""
    cfg = TrainConfig()
    if path:
        try:
            cfg.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise TrainError(f"cannot read training config {path}: {exc}") from exc
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise TrainError(f"override {item!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        cfg.set(key.strip(), value)
    return cfg


# --------------------------------------------------------------------------- model


def resolve_compute_dtype(name: str) -> Any:
    """bf16 on a CUDA GPU with bf16, else fp32: CPUs without native bf16 emulate it slowly."""
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
            name
        ]
    except KeyError as exc:
        raise TrainError(f"model.compute_dtype: unknown dtype {name!r}") from exc


def load_base_model(cfg: ModelConfig, *, for_training: bool) -> Any:
    """The base model as QLoRA trains on it (and as evaluation scores it): 4-bit NF4 etc."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = resolve_compute_dtype(cfg.compute_dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": cfg.attn_implementation}
    if cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant_type,
            bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=torch.uint8,
        )
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    except OSError as exc:
        raise TrainError(f"cannot load base model {cfg.base_model!r}: {exc}") from exc
    if for_training and cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif for_training and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = not for_training
    return model


def add_lora(model: Any, cfg: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def make_optimizer(params: list[Any], cfg: OptimConfig) -> Any:
    import torch

    name = cfg.optimizer.lower()
    if name in {"paged_adamw_8bit", "adamw_8bit"}:
        import bitsandbytes as bnb

        cls = bnb.optim.PagedAdamW8bit if name.startswith("paged") else bnb.optim.AdamW8bit
        return cls(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if name == "adamw_torch":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    raise TrainError(f"train.optimizer: unknown optimizer {cfg.optimizer!r}")


def make_scheduler(optimizer: Any, cfg: OptimConfig, total_steps: int) -> Any:
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler, cfg.lr_scheduler)
    if name not in {"linear", "cosine", "constant_with_warmup"}:
        raise TrainError(f"train.lr_scheduler: unknown schedule {cfg.lr_scheduler!r}")
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


# --------------------------------------------------------------------------- batches


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example of the batch (no fixed-length padding)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_windows(lengths: Sequence[int], cfg: OptimConfig, epoch: int) -> list[list[list[int]]]:
    """The optimizer steps of one epoch: each a list of micro-batches of example indexes.

    The order depends only on (seed, epoch), so a resumed run can rebuild it and skip the
    steps already taken. With ``group_by_length``, examples are sorted by length inside
    shuffled chunks of 50 batches: little padding, still a random order of batches.
    """
    import torch

    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    order = torch.randperm(len(lengths), generator=gen).tolist()
    size = cfg.batch_size
    if cfg.group_by_length and size > 1:
        chunk = size * 50
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        ]
    micro = [order[i : i + size] for i in range(0, len(order), size)]
    if cfg.group_by_length and size > 1:
        perm = torch.randperm(len(micro), generator=gen).tolist()
        micro = [micro[i] for i in perm]
    return [micro[i : i + cfg.grad_accum] for i in range(0, len(micro), cfg.grad_accum)]


def steps_per_epoch(n_examples: int, cfg: OptimConfig) -> int:
    micro = math.ceil(n_examples / cfg.batch_size)
    return math.ceil(micro / cfg.grad_accum)


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# --------------------------------------------------------------------------- data prep


@dataclass
class PreparedData:
    train: list[Example]
    eval: list[Example]
    split: Split
    report: DataReport
    catalog: Any


def system_prompt_of(cfg: DataConfig) -> str | None:
    """The system prompt to train with; "serving" asks llm/prompt.py for serving's default."""
    value = cfg.system_prompt
    if value == "serving":
        try:
            from llm import prompt as serving_prompt  # type: ignore[attr-defined]
        except ImportError as exc:
            raise TrainError("data.system_prompt = 'serving' but llm/prompt.py is missing") from exc
        for name in ("default_system_prompt", "system_prompt", "SYSTEM_PROMPT"):
            found = getattr(serving_prompt, name, None)
            if isinstance(found, str):
                return found
            if callable(found):
                return str(found())
        raise TrainError("llm/prompt.py exposes no default system prompt to train with")
    return value or None


def load_catalog(cfg: DataConfig) -> Any:
    from catalog.datasets import Catalog, CatalogError

    try:
        return Catalog.load(cfg.catalog_path or None)
    except CatalogError:
        if cfg.catalog_path or cfg.catalog_pairs != "none":
            raise
        return None


def prepare_data(
    cfg: TrainConfig,
    data_path: str | Path,
    tokenizer: Any,
    *,
    split_path: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> PreparedData:
    """Read, validate, split (or reuse a saved split) and add catalog pairs to train."""
    d = cfg.data
    columns = ColumnMap(
        d.prompt_column, d.completion_column, d.difficulty_column, d.title_key_column
    )
    rows = read_rows(data_path)
    examples, report = validate_rows(
        rows,
        columns,
        tokenizer=tokenizer,
        system_prompt=system_prompt_of(d),
        options=ValidationOptions(d.max_length, d.near_duplicate_threshold),
        source=str(data_path),
    )
    if not examples:
        raise TrainError(f"no usable rows in {data_path}:\n{report}")
    catalog = load_catalog(d)
    lookup = CategoryLookup(catalog, examples)
    if split_path:
        split = Split.load(split_path)
        missing = len(set(split.train_ids) | set(split.eval_ids)) - len(
            {e.id for e in examples} & (set(split.train_ids) | set(split.eval_ids))
        )
        if missing:
            log(f"warning: {missing} rows of the saved split are not in this data file")
    else:
        split = split_examples(examples, lookup, eval_fraction=d.eval_fraction, seed=d.split_seed)
    train, evals = split.select(examples)
    report.split = split_summary(split, examples, lookup)
    if d.catalog_pairs != "none":
        if d.catalog_pairs not in {"catalog", "train"}:
            raise TrainError(
                f"data.catalog_pairs: expected none/catalog/train, got {d.catalog_pairs!r}"
            )
        extra = catalog_pairs(catalog, exclude_title_keys=split.eval_title_keys)
        if d.catalog_pairs == "train":
            keep = set(split.train_title_keys)
            extra = [e for e in extra if e.title_key in keep]
        extra = dedupe_against(extra, examples)
        report.extra["catalog"] = len(extra)
        train = train + extra
    return PreparedData(train=train, eval=evals, split=split, report=report, catalog=catalog)


def file_sha256(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return ""
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- loop


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


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _device_of(model: Any) -> Any:
    return next(p.device for p in model.parameters())


def _checkpoints(out_dir: Path) -> list[Path]:
    root = out_dir / "checkpoints"
    return sorted(root.glob("step-*")) if root.is_dir() else []


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = [c for c in _checkpoints(Path(out_dir)) if (c / "state.json").is_file()]
    return found[-1] if found else None


def train(
    cfg: TrainConfig,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    merge: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train an adapter into ``out_dir``; see the module docstring for what lands there.

    ``resume`` continues from the latest checkpoint in ``out_dir`` with its saved config and
    split. ``stop_after`` ends the run after that many optimizer steps as if interrupted
    (checkpoint written, no final export): for time-boxed jobs, and to test resumption.
    """
    import torch
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        log(f"no checkpoint in {out}/checkpoints: starting from step 0")
    if checkpoint is not None:
        saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
        saved_cfg = TrainConfig.from_dict(saved["config"])
        # The run's identity (model, data handling, schedule) comes from the checkpoint; only
        # max_steps may be raised on resume.
        saved_cfg.train.max_steps = cfg.train.max_steps or saved_cfg.train.max_steps
        saved_cfg.train.progress = cfg.train.progress
        cfg = saved_cfg
    seed_everything(cfg.train.seed)

    if not Path(data_path).exists():
        raise TrainError(f"no data file at {data_path}")
    tok_source = cfg.model.tokenizer or cfg.model.base_model
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
    except OSError as exc:
        raise TrainError(f"cannot load the tokenizer of {tok_source!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    split_path = out / "split.json" if checkpoint is not None else (cfg.data.split_from or None)
    data = prepare_data(cfg, data_path, tokenizer, split_path=split_path, log=log)
    log(str(data.report))
    system_prompt = system_prompt_of(cfg.data)
    train_enc = [
        encode_example(
            tokenizer, e, system_prompt, completion_only_loss=cfg.data.completion_only_loss
        )
        for e in data.train
    ]
    # Eval loss is always on the answer tokens, so perplexity compares across loss modes.
    eval_enc = [encode_example(tokenizer, e, system_prompt) for e in data.eval]
    if cfg.eval.loss_examples:
        eval_enc = eval_enc[: cfg.eval.loss_examples]
    gen_rng = random.Random(cfg.data.split_seed)
    gen_examples = (
        gen_rng.sample(data.eval, min(cfg.eval.generate_examples, len(data.eval)))
        if cfg.eval.generate_examples
        else []
    )

    if checkpoint is None:
        data.split.save(out / "split.json")
        data.report.save(out / "data_report.json")
        record = {
            "config": cfg.to_dict(),
            "data_path": str(data_path),
            "data_sha256": file_sha256(data_path),
            "system_prompt": system_prompt,
        }
        (out / "train_config.json").write_text(json.dumps(record, indent=2) + "\n")
        (out / "log.jsonl").write_text("")

    compute_dtype = resolve_compute_dtype(cfg.model.compute_dtype)
    on_cuda = torch.cuda.is_available()
    quant = f"4-bit {cfg.model.quant_type}" if cfg.model.load_in_4bit else "full precision"
    dtype_name = str(compute_dtype).removeprefix("torch.")
    log(
        f"base {cfg.model.base_model} ({quant}, compute {dtype_name} "
        f"on {'cuda' if on_cuda else 'cpu'})"
    )
    model = load_base_model(cfg.model, for_training=True)
    seed_everything(cfg.train.seed)  # LoRA init does not depend on what loading consumed
    model = add_lora(model, cfg.lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    log(f"LoRA r={cfg.lora.r} alpha={cfg.lora.alpha}: {n_trainable:,} trainable parameters")
    device = _device_of(model)

    per_epoch = steps_per_epoch(len(train_enc), cfg.train)
    total_steps = cfg.train.max_steps or per_epoch * cfg.train.epochs
    optimizer = make_optimizer(trainable, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, total_steps)
    # Built (and its scoring encoder loaded) before RNG states are set: loading may draw
    # random numbers, and the dropout masks after this point must not depend on it.
    evaluator = _Evaluator(cfg, tokenizer, eval_enc, gen_examples, system_prompt, data.catalog, log)
    seed_everything(cfg.train.seed + 1)
    step = 0
    best: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(
            model, load_file(str(checkpoint / "adapter_model.safetensors"), device=str(device))
        )
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=False))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=False))
        state = json.loads((checkpoint / "state.json").read_text())
        step, best, history = state["step"], state["best"], state["history"]
        set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=False))
        log(f"resumed from {checkpoint} at step {step}/{total_steps}")

    autocast = (
        torch.autocast("cuda", dtype=compute_dtype)
        if on_cuda and compute_dtype != torch.float32
        else contextlib.nullcontext()
    )
    lengths = [len(e.input_ids) for e in train_enc]
    bar = _progress(cfg.train.progress, total_steps, step)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    train_tokens, train_time, optim_time, steps_run = 0, 0.0, 0.0, 0
    window_loss = window_tokens = 0.0
    model.train()
    stopped = False
    for window in _windows_from(lengths, cfg.train, step, total_steps, per_epoch):
        start = time.perf_counter()
        batches = [
            collate([train_enc[i] for i in micro], tokenizer.pad_token_id) for micro in window
        ]
        n_items = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
        loss_sum = 0.0
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            with autocast:
                outputs = model(
                    **b, num_items_in_batch=torch.tensor(max(n_items, 1), device=device)
                )
            outputs.loss.backward()
            loss_sum += float(outputs.loss.detach())
            train_tokens += int(b["attention_mask"].sum())
        if on_cuda:
            torch.cuda.synchronize()
        optim_start = time.perf_counter()
        if cfg.train.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()
        optim_time += time.perf_counter() - optim_start
        train_time += time.perf_counter() - start
        step += 1
        steps_run += 1
        window_loss += loss_sum * n_items
        window_tokens += n_items
        tok_s = train_tokens / max(train_time, 1e-9)
        eta = (total_steps - step) * train_time / steps_run
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tok_s:.0f}")
        if step % cfg.train.logging_steps == 0 or step == total_steps:
            entry = {
                "step": step,
                "epoch": round(step / per_epoch, 3),
                "loss": window_loss / max(window_tokens, 1),
                "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": tok_s,
                "eta_s": eta,
            }
            window_loss = window_tokens = 0.0
            _append_log(out, entry)
            history.append(entry)
            bar.write(
                f"step {step}/{total_steps} loss {entry['loss']:.4f} lr {entry['lr']:.2e} "
                f"{tok_s:.0f} tok/s eta {_fmt_eta(eta)}"
            )
        if evaluator.enabled and (
            (cfg.eval.eval_steps and step % cfg.eval.eval_steps == 0) or step == total_steps
        ):
            metrics = evaluator.run(model, step)
            _append_log(out, metrics)
            history.append(metrics)
            bar.write(_fmt_metrics(metrics))
            if evaluator.is_better(metrics, best):
                best = {"step": step, **metrics}
                model.save_pretrained(out / "best")
                bar.write(
                    f"new best at step {step}: "
                    f"{evaluator.best_key} {metrics[evaluator.best_key]:.4f}"
                )
        if step == total_steps and not evaluator.enabled:
            best = {"step": step}
            model.save_pretrained(out / "best")
        if (cfg.train.save_steps and step % cfg.train.save_steps == 0) or (
            stop_after is not None and steps_run >= stop_after
        ):
            _save_checkpoint(out, model, optimizer, scheduler, step, best, history, cfg)
        if stop_after is not None and steps_run >= stop_after and step < total_steps:
            stopped = True
            break
    bar.close()
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_cuda else 0.0
    result = TrainResult(
        out_dir=out,
        steps=step,
        total_steps=total_steps,
        best=best,
        history=history,
        train_tokens_per_s=train_tokens / max(train_time, 1e-9),
        step_time_s=train_time / max(steps_run, 1),
        peak_gpu_memory_gb=peak,
        stopped_early=stopped,
        optimizer_time_s=optim_time / max(steps_run, 1),
    )
    if stopped:
        log(f"stopped after step {step} (checkpoint kept; --resume continues)")
        return result
    _finish(out, tokenizer, result, cfg)
    if merge:
        del model, optimizer
        export_merged(out, cfg, log=log)
    return result


def _windows_from(
    lengths: Sequence[int], cfg: OptimConfig, step: int, total_steps: int, per_epoch: int
) -> Iterator[list[list[int]]]:
    """Optimizer-step windows from ``step`` on (epochs repeat past the last if max_steps says)."""
    epoch, offset = divmod(step, per_epoch)
    while step < total_steps:
        for window in epoch_windows(lengths, cfg, epoch)[offset:]:
            if step >= total_steps:
                return
            yield window
            step += 1
        epoch, offset = epoch + 1, 0


def _progress(enabled: bool, total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        disable=not enabled or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )


def _append_log(out: Path, entry: dict[str, Any]) -> None:
    with (out / "log.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _fmt_metrics(m: dict[str, Any]) -> str:
    keys = ("eval_loss", "perplexity", "bertscore_f1", "rougeL", "link_accuracy")
    parts = [f"{k} {m[k]:.4f}" for k in keys if isinstance(m.get(k), float)]
    return f"eval step {m['step']}: " + ", ".join(parts)


def _save_checkpoint(
    out: Path,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    step: int,
    best: dict[str, Any],
    history: list[dict[str, Any]],
    cfg: TrainConfig,
) -> None:
    """Adapter + optimizer + scheduler + RNG + step, written to a temp folder then renamed."""
    import torch

    final = out / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(
        json.dumps({"step": step, "best": best, "history": history}, indent=1)
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _checkpoints(out)[: -max(cfg.train.save_total_limit, 1)]:
        shutil.rmtree(old, ignore_errors=True)


def _finish(out: Path, tokenizer: Any, result: TrainResult, cfg: TrainConfig) -> None:
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
        cfg = TrainConfig.from_dict(json.loads((out / "train_config.json").read_text())["config"])
    base = AutoModelForCausalLM.from_pretrained(cfg.model.base_model, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(base, str(out)).merge_and_unload()
    target = out / "merged"
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(out)).save_pretrained(target)
    log(f"merged model written to {target}")
    return target


# --------------------------------------------------------------------------- eval in the loop


def _eval_mode_for_training(model: Any) -> None:
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


class _Evaluator:
    """Eval loss + generated-answer metrics on the fixed eval sample, and best tracking."""

    def __init__(
        self,
        cfg: TrainConfig,
        tokenizer: Any,
        eval_enc: list[Encoded],
        gen_examples: list[Example],
        system_prompt: str | None,
        catalog: Any,
        log: Callable[[str], None],
    ) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer
        self.eval_enc, self.gen_examples = eval_enc, gen_examples
        self.system_prompt, self.catalog = system_prompt, catalog
        self.enabled = bool(eval_enc)
        wants_bertscore = cfg.eval.metric_for_best == "bertscore_f1" and bool(gen_examples)
        self.best_key = "bertscore_f1" if wants_bertscore else "eval_loss"
        if cfg.eval.metric_for_best not in {"bertscore_f1", "eval_loss"}:
            raise TrainError(f"eval.metric_for_best: unknown metric {cfg.eval.metric_for_best!r}")
        if cfg.eval.metric_for_best == "bertscore_f1" and not gen_examples and self.enabled:
            log("no eval generation (eval.generate_examples = 0): best checkpoint by eval loss")
        self.scorer: Any = None
        if self.enabled and gen_examples:
            from training.metrics import BertScorer

            e = cfg.eval
            self.scorer = BertScorer(
                e.bertscore_model, idf=e.bertscore_idf, layer=e.bertscore_layer
            )

    def run(self, model: Any, step: int) -> dict[str, Any]:
        from training.evaluate import eval_loss, generate_answers
        from training.metrics import perplexity, text_metrics

        _eval_mode_for_training(model)
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
