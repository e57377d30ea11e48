"""Loading the SOS model: Qwen3 base + LoRA adapter, 4-bit NF4 or full precision, merged or not.

:func:`load_model` loads the base model and adapter once per process (4-bit NF4 with double
quantization and bf16 compute, on the GPU when there is one; bitsandbytes >= 0.50 also runs it
on the CPU, which is how the tests exercise the real path). Training (``training/``) and the
benchmarks load through the same function, so what they measure is what is served.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.chat_format import bundled_qwen_tokenizer_path

if TYPE_CHECKING:
    from llm.config import LlmConfig

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The base model or the adapter could not be loaded; the message names which and why."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for generation, with what start-up logs and the benchmark report."""

    model: Any
    tokenizer: Any
    device: str
    quantized: bool
    adapter: str
    merged: bool
    load_s: float
    gpu_memory_bytes: int = 0
    gpu_peak_bytes: int = 0
    max_context: int = 32768

    def describe(self) -> str:
        parts = [getattr(self.model.config, "_name_or_path", "") or "model"]
        if self.adapter:
            parts.append(f"+ {self.adapter}{' (merged)' if self.merged else ''}")
        parts.append("4-bit NF4" if self.quantized else "full precision")
        parts.append(f"on {self.device}, loaded in {self.load_s:.1f} s")
        if self.gpu_memory_bytes:
            parts.append(f"{self.gpu_memory_bytes / 2**30:.2f} GiB GPU memory")
        return ", ".join(parts)


def bnb_4bit_config() -> Any:
    """QLoRA's quantization: NF4, double quantization, bf16 compute (the SOS adapter's setup)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _load_base(path: str, device: str, quantize: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    on_gpu = device.startswith("cuda")
    kwargs: dict[str, Any] = {"device_map": {"": device}}
    if quantize:
        kwargs["quantization_config"] = bnb_4bit_config()
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = torch.bfloat16 if on_gpu else torch.float32
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the base model {path!r}: {exc}") from exc


def _apply_adapter(model: Any, adapter: str) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the LoRA adapter {adapter!r}: {exc}") from exc


def load_tokenizer(cfg: LlmConfig) -> Any:
    """The base model's tokenizer; else the adapter folder's; else the bundled Qwen3 one.

    A merged or random-init model folder may hold weights only; the Qwen3 tokenizer (with its
    chat template) is the same for every Qwen3 size, so the bundled copy is a safe fallback.
    """
    from transformers import AutoTokenizer

    candidates = [cfg.base_model]
    if cfg.adapter and (Path(cfg.adapter) / "tokenizer_config.json").is_file():
        candidates.append(cfg.adapter)
    errors = []
    for source in candidates:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as exc:
            errors.append(f"{source}: {exc}")
            continue
        # transformers 5 builds an empty tokenizer for a folder without tokenizer files.
        if getattr(tokenizer, "chat_template", None) and len(tokenizer) > 1000:
            return tokenizer
        errors.append(f"{source}: no tokenizer with a chat template")
    try:
        path = bundled_qwen_tokenizer_path()
    except FileNotFoundError as exc:
        raise ModelLoadError("no tokenizer found: " + "; ".join([*errors, str(exc)])) from exc
    log.info("no tokenizer with %s; using the bundled Qwen3 tokenizer", cfg.base_model)
    return AutoTokenizer.from_pretrained(str(path))


def load_model(cfg: LlmConfig, device: str | None = None) -> LoadedModel:
    """Load ``cfg.base_model`` (+ ``cfg.adapter``) once, as configured.

    * 4-bit, adapter not merged (the default): the adapter runs as LoRA layers over the NF4
      base, exactly the QLoRA setup it was trained in.
    * 4-bit and ``merge_adapter``: merging into NF4 weights would round the small LoRA delta
      into the 4-bit grid (it largely vanishes). So the base is loaded in bf16, the adapter
      merged there, the merged model written to a temporary folder and loaded again in 4-bit:
      one rounding, of the merged weights. It costs a bf16 copy in memory and on disk once at
      start-up.
    * Full precision: load, apply, optionally ``merge_and_unload``.
    * ``adapter = ""``: ``base_model`` is used as it is (e.g. a merged model folder).
    """
    import torch

    device = device or default_device()
    on_gpu = device.startswith("cuda")
    start = time.perf_counter()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if on_gpu else 0
    tokenizer = load_tokenizer(cfg)
    merged = bool(cfg.adapter) and cfg.merge_adapter
    if merged and cfg.load_in_4bit:
        model = _merge_then_quantize(cfg, device, tokenizer)
    else:
        model = _load_base(cfg.base_model, device, quantize=cfg.load_in_4bit)
        if cfg.adapter:
            model = _apply_adapter(model, cfg.adapter)
            if merged:
                model = model.merge_and_unload()
    model.eval()
    if on_gpu:
        torch.cuda.synchronize(device)
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        quantized=cfg.load_in_4bit,
        adapter=cfg.adapter,
        merged=merged,
        load_s=time.perf_counter() - start,
        gpu_memory_bytes=(torch.cuda.memory_allocated(device) - before) if on_gpu else 0,
        gpu_peak_bytes=torch.cuda.max_memory_allocated(device) if on_gpu else 0,
        max_context=int(getattr(model.config, "max_position_embeddings", 32768) or 32768),
    )
    log.info("LLM loaded: %s", loaded.describe())
    return loaded


def _merge_then_quantize(cfg: LlmConfig, device: str, tokenizer: Any) -> Any:
    import torch

    with tempfile.TemporaryDirectory(prefix="sos-merged-") as tmp:
        full = _load_base(cfg.base_model, device, quantize=False)
        if device.startswith("cuda"):
            full = full.to(torch.bfloat16)
        merged = _apply_adapter(full, cfg.adapter).merge_and_unload()
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del full, merged
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        return _load_base(tmp, device, quantize=True)
