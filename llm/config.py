"""The ``[llm]`` settings: which answerer, which model and adapter, how it generates."""

from __future__ import annotations

from dataclasses import dataclass

from settings import ConfigError


@dataclass(frozen=True)
class LlmConfig:
    answerer: str = "auto"
    base_model: str = "Qwen/Qwen3-4B"
    adapter: str = "HacksHaven/sos-qwen3-4b-lora"
    merge_adapter: bool = False
    load_in_4bit: bool = True
    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.9
    history_tokens: int = 1536
    max_batch: int = 32
    grounding_entries: int = 3
    base_url: str = ""
    model: str = "sos"
    api_key: str = ""
    timeout_s: float = 30.0

    def validate(self) -> None:
        allowed = ("auto", "transformers", "openai", "catalog")
        if self.answerer not in allowed:
            raise ConfigError(f"llm.answerer must be one of {allowed}, not {self.answerer!r}")
        if self.max_new_tokens < 1 or self.max_batch < 1 or self.grounding_entries < 1:
            raise ConfigError("llm.max_new_tokens, max_batch, grounding_entries must be >= 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError("llm.temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("llm.top_p must be in (0, 1]")
