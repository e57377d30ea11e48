"""The model side of QLoRA: the quantized base, its LoRA adapter, optimizer and schedule.

Evaluation loads the base through :func:`load_base_model` too, so an adapter is scored on the
same 4-bit base it was trained on.
"""

from __future__ import annotations

from typing import Any

from settings import ConfigError
from training.config import LoraSettings, ModelConfig, OptimConfig
from training.errors import TrainError


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
        raise ConfigError(f"model.compute_dtype: unknown dtype {name!r}") from exc


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
    raise ConfigError(f"train.optimizer: unknown optimizer {cfg.optimizer!r}")


def make_scheduler(optimizer: Any, cfg: OptimConfig, total_steps: int) -> Any:
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler, cfg.lr_scheduler)
    if name not in {"linear", "cosine", "constant_with_warmup"}:
        raise ConfigError(f"train.lr_scheduler: unknown schedule {cfg.lr_scheduler!r}")
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


def device_of(model: Any) -> Any:
    return next(p.device for p in model.parameters())
