"""What the generation engine keeps per request, and what it reports when one ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestStats:
    """How one generation went: kept by the engine for logs, tests and the benchmark."""

    request_id: int
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str  # "stop", "length", "cancelled", "error", "closed"
    queued_s: float  # submit -> admitted into the batch
    ttft_s: float | None  # submit -> first token sampled
    total_s: float
    error: str = ""


@dataclass(eq=False)
class Request:
    """One sequence's state. Only the worker thread touches it, except ``cancelled``."""

    id: int
    prompt_ids: list[int]
    max_new_tokens: int
    ignore_eos: bool
    deliver: Callable[[object], None]
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    admitted: float | None = None
    first_token: float | None = None
    generated: list[int] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0


@dataclass(frozen=True)
class Finished:
    stats: RequestStats
