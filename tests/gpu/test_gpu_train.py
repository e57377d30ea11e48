"""QLoRA training on a CUDA GPU: bf16 compute, paged 8-bit AdamW, memory and speed sanity.

Run where CUDA is available (skipped elsewhere by tests/conftest.py). The Qwen3-4B-shaped
throughput numbers come from bench/train_speed.py; this checks the GPU code path is right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def test_tiny_qlora_trains_on_cuda_in_bf16(
    tiny_qwen_dir: Path, sos_pairs_path: Path, tmp_path: Path
) -> None:
    import torch

    from training.config import load_config
    from training.model import resolve_compute_dtype
    from training.train import train

    rows = sos_pairs_path.read_text(encoding="utf-8").splitlines()[:60]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = load_config(
        None,
        [
            f"model.base_model={json.dumps(str(tiny_qwen_dir))}",
            "train.max_steps=12",
            "train.learning_rate=1e-2",
            "train.logging_steps=1",
            "train.save_steps=6",
            "train.progress=false",
            "eval.eval_steps=6",
            "eval.generate_examples=0",
            "data.eval_fraction=0.2",
        ],
    )
    assert resolve_compute_dtype(cfg.model.compute_dtype) == torch.bfloat16
    result = train(cfg, data, tmp_path / "run", log=print)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 12 and all(map(torch.isfinite, torch.tensor(losses)))
    assert min(losses[-3:]) < losses[0]
    assert result.peak_gpu_memory_gb > 0 and result.train_tokens_per_s > 0
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()

    from peft import PeftModel

    from training.model import load_base_model

    base = load_base_model(cfg.model, for_training=False)
    model = PeftModel.from_pretrained(base, str(tmp_path / "run"))
    assert next(model.parameters()).device.type == "cuda"
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert type(layer.base_layer).__name__ == "Linear4bit"


def test_resume_on_cuda(tiny_qwen_dir: Path, sos_pairs_path: Path, tmp_path: Path) -> None:
    """Stop after 2 steps, resume to 4: the same losses as a straight run (GPU RNG restored)."""
    from training.config import load_config
    from training.train import train

    rows = sos_pairs_path.read_text(encoding="utf-8").splitlines()[:40]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    overrides = [
        f"model.base_model={json.dumps(str(tiny_qwen_dir))}",
        "train.max_steps=4",
        "train.logging_steps=1",
        "train.save_steps=2",
        "train.progress=false",
        "eval.eval_steps=0",
        "eval.generate_examples=0",
    ]
    straight = train(load_config(None, overrides), data, tmp_path / "a", log=print)
    train(load_config(None, overrides), data, tmp_path / "b", stop_after=2, log=print)
    resumed = train(load_config(None, overrides), data, tmp_path / "b", resume=True, log=print)
    a = [h["loss"] for h in straight.history if "loss" in h]
    b = [h["loss"] for h in resumed.history if "loss" in h]
    assert a == pytest.approx(b, rel=1e-3)
