"""The museum prompt, history trimming and <think> removal (no model needed)."""

from __future__ import annotations

import pytest

from llm.base import AnswerRequest, ChatMessage
from llm.chat_format import bundled_qwen_tokenizer_path, render_prompt
from llm.prompt import (
    MESSAGE_OVERHEAD_TOKENS,
    ThinkFilter,
    approx_token_count,
    build_messages,
    strip_think_stream,
    system_prompt,
    token_counter,
    trim_history,
)

TSUNAMI = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_path()))


@pytest.fixture(scope="module")
def retriever(catalog):
    from catalog.retrieval import Retriever

    return Retriever.build(catalog, use_embeddings=False)


def test_system_prompt_per_audience() -> None:
    prompts = {a: system_prompt(a) for a in ("kids", "general", "educator")}
    assert len(set(prompts.values())) == 3
    for text in prompts.values():
        assert "More information: URL" in text
        assert "two or three" in text and "markdown" in text
    assert "simple" in prompts["kids"] and "classroom" in prompts["educator"]
    with pytest.raises(ValueError):
        system_prompt("adults")  # type: ignore[arg-type]


def test_build_messages_has_grounding_showing_history_instructions(catalog, retriever) -> None:
    from catalog.grounding import build_grounding

    showing = catalog.by_url(TSUNAMI)
    request = AnswerRequest(
        question="What does this show?",
        history=(ChatMessage("user", "Hi!"), ChatMessage("assistant", "Hello!")),
        showing=showing,
        audience="kids",
        instructions="Answer like a pirate.",
    )
    grounding = build_grounding(request.question, request.showing, retriever, 3)
    messages = build_messages(request, grounding)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert system.startswith(system_prompt("kids"))
    assert showing is not None and showing.title in system
    assert any(e.url in system for e in grounding.entries), "catalog facts with their URLs"
    assert system.rstrip().endswith("Answer like a pirate.")
    assert messages[-1]["content"] == "What does this show?"


def test_prompt_renders_with_thinking_disabled(catalog, retriever, tokenizer) -> None:
    from catalog.grounding import build_grounding

    request = AnswerRequest(question="What causes a tsunami?")
    text = render_prompt(
        tokenizer,
        build_messages(request, build_grounding(request.question, request.showing, retriever, 3)),
    )
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def _history(turns: int) -> tuple[ChatMessage, ...]:
    out: list[ChatMessage] = []
    for i in range(turns):
        out.append(ChatMessage("user", f"question number {i} about the ocean"))
        out.append(ChatMessage("assistant", f"answer number {i}: the ocean is deep and wide"))
    return tuple(out)


def test_trim_history_drops_oldest_whole_turns(tokenizer) -> None:
    history = _history(5)
    count = token_counter(tokenizer)
    per_turn = sum(count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in history[-2:])
    kept = trim_history(history, tokenizer, per_turn * 2 + 1)
    assert kept == history[-4:]
    assert trim_history(history, tokenizer, 10**6) == history
    assert trim_history(history, tokenizer, per_turn - 1) == ()
    assert trim_history(history, tokenizer, 0) == ()
    # An assistant message is never kept without the question it answered.
    assert trim_history(history[1:], len, 10**6) == history[1:]
    for budget in range(0, 400, 7):
        kept = trim_history(history, approx_token_count, budget)
        assert not kept or kept[0].role == "user"
        assert history[len(history) - len(kept) :] == kept


def test_token_counter_accepts_tokenizer_or_function(tokenizer) -> None:
    assert token_counter(tokenizer)("hello world") == 2
    assert token_counter(len)("hello") == 5
    with pytest.raises(TypeError):
        token_counter(42)


@pytest.mark.parametrize(
    "pieces, expected",
    [
        (["\n\nTsunamis are", " waves."], "Tsunamis are waves."),
        (["<think>hmm</think>\n\nAnswer."], "Answer."),
        (["<thi", "nk>secret", " thoughts</th", "ink>Real", " answer"], "Real answer"),
        (["A <", "b> c"], "A <b> c"),
        (["</think>", "Done"], "Done"),
        (["Start</thi", "nk> end"], "Start end"),
        (["<think>never closed"], ""),
        (["Ends with <"], "Ends with <"),
    ],
)
def test_think_filter(pieces: list[str], expected: str) -> None:
    filt = ThinkFilter()
    out = "".join(filt.feed(p) for p in pieces) + filt.flush()
    assert out == expected


async def test_strip_think_stream() -> None:
    async def source():
        for piece in ["<think>", "x", "</think>", "\n\n", "Hi", " there"]:
            yield piece

    assert [p async for p in strip_think_stream(source())] == ["Hi", " there"]
