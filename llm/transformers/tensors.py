"""Tensor steps of continuous batching that do not depend on the engine's state.

How this transformers version takes the KV cache, a fresh cache, sampling the next token per
row, and left-padding a KV tensor so two batches can share one time axis.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class ForwardStyle:
    """How this transformers version wants the KV cache passed (``cache`` since 5.2x)."""

    def __init__(self, model: Any) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.logits_to_keep = "logits_to_keep" in params


def new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:
        return DynamicCache()


def sample(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else temperature + nucleus sampling."""
    import torch

    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1).squeeze(-1)


def left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """Pad dim 2 (sequence) of a [batch, heads, seq, dim] KV tensor with n zeros on the left."""
    import torch

    if n == 0:
        return t
    shape = list(t.shape)
    shape[2] = n
    return torch.cat([t.new_zeros(shape), t], dim=2)
