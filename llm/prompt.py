"""What the SOS model is told: the museum system prompt, grounding, history, output cleanup.

Every LLM backend (local transformers, OpenAI-compatible server) builds its chat messages here,
so a visitor gets the same kind of answer whichever backend serves the exhibit: spoken (no
markdown), short unless asked for more, safe for children, and ending with the model card's
answer shape "More information: URL" where the URL is one of the catalog pages we put in front
of the model. The link itself is checked afterwards (``llm.link_guard.guard_stream``); asking for
it here just makes a right link likely.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from catalog.text import entry_summary
from llm.base import AnswerRequest, Audience, ChatMessage
from llm.chat_format import THINK_CLOSE, THINK_OPEN

if TYPE_CHECKING:
    from catalog.grounding import Grounding

TokenCounter = Callable[[str], int]

# Tokens the Qwen chat template adds around every message: <|im_start|>, role, "\n",
# <|im_end|>, "\n". Counted so a budget of N tokens means N tokens in the rendered prompt.
MESSAGE_OVERHEAD_TOKENS = 5

_BASE_PROMPT = (
    "You are the voice of NOAA's Science On a Sphere (SOS), a museum exhibit that shows "
    "global data about the Earth, the ocean, the atmosphere and space on a large globe. "
    "Visitors ask you questions out loud and hear your answer spoken by a speech synthesizer.\n"
    "Rules:\n"
    "- Answer in two or three short sentences unless the visitor asks for more.\n"
    "- Write plain spoken sentences: no markdown, no lists, no headings, no emoji, and no web "
    "addresses inside sentences.\n"
    "- Be accurate, friendly and safe for children. If you are not sure, say so; never make "
    "up facts. Politely steer away from topics that are not for a family audience.\n"
    "- Use the catalog facts below when they fit the question.\n"
    '- End every answer with a last line "More information: URL", where URL is copied exactly '
    "from the catalog facts below: the page of the dataset that best fits the question. "
    "If the facts list no dataset, give no link."
)

_AUDIENCE_PROMPTS: dict[str, str] = {
    "kids": (
        "You are talking with children. Use simple, everyday words and short sentences, "
        "explain any science word you use, and sound curious and encouraging."
    ),
    "general": (
        "You are talking with museum visitors of all ages. Be clear and vivid; explain "
        "science words briefly."
    ),
    "educator": (
        "You are talking with a teacher or an outreach educator. You may use scientific "
        "terms, suggest grade levels, classroom activities, discussion questions and related "
        "datasets when asked, and give a longer answer when the question needs one."
    ),
}


def system_prompt(audience: Audience = "general") -> str:
    """The fixed part of the system prompt for one audience (no grounding, no session data)."""
    try:
        level = _AUDIENCE_PROMPTS[audience]
    except KeyError:
        raise ValueError(f"unknown audience {audience!r}: kids, general or educator") from None
    return f"{_BASE_PROMPT}\n{level}"


def build_system_message(request: AnswerRequest, grounding: Grounding) -> str:
    """System prompt + what the sphere shows + catalog facts + per-session instructions.

    Session instructions come last and are framed as subordinate to the rules, so an
    installation can shape answers ("answer in Spanish") without switching off kid-safety.
    """
    parts = [system_prompt(request.audience)]
    if request.showing is not None and request.showing not in grounding.entries:
        parts.append(
            f'The sphere is showing "{request.showing.title}" right now '
            f'({request.showing.url}). Questions such as "what is this?" or '
            '"what am I looking at?" are about it.'
        )
    facts = grounding_prompt(grounding).strip()
    if facts:
        parts.append(facts)
    if request.instructions.strip():
        parts.append(
            "Instructions for this session (follow them unless they conflict with the rules "
            f"above):\n{request.instructions.strip()}"
        )
    return "\n\n".join(parts)


def build_messages(request: AnswerRequest, grounding: Grounding) -> list[dict[str, str]]:
    """Chat messages for one answer: system, the (already trimmed) history, the question.

    The history is used as given: trim it first with :func:`trim_history` (the budget needs a
    token counter, which only the backend has).
    """
    messages = [{"role": "system", "content": build_system_message(request, grounding)}]
    messages.extend(
        {"role": m.role, "content": m.content} for m in request.history if m.content.strip()
    )
    messages.append({"role": "user", "content": request.question.strip()})
    return messages


def approx_token_count(text: str) -> int:
    """A tokenizer-free upper-ish estimate (3 characters a token) for remote backends.

    English BPE averages about 4 characters a token; 3 errs on the side of a shorter history,
    which is the safe side when the server's context limit is unknown.
    """
    return math.ceil(len(text) / 3)


def token_counter(tokenizer_or_counter: Any) -> TokenCounter:
    """A ``str -> int`` counter from a Hugging Face tokenizer or from a counter function."""
    encode = getattr(tokenizer_or_counter, "encode", None)
    if callable(encode):
        return lambda text: len(encode(text, add_special_tokens=False))
    if callable(tokenizer_or_counter):
        return tokenizer_or_counter
    raise TypeError("expected a tokenizer (with .encode) or a function str -> int")


def _turns(history: Sequence[ChatMessage]) -> list[list[ChatMessage]]:
    """Group messages into turns: a user message and the assistant replies that follow it."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def trim_history(
    history: Sequence[ChatMessage], tokenizer_or_counter: Any, budget_tokens: int
) -> tuple[ChatMessage, ...]:
    """The newest whole turns of ``history`` that fit in ``budget_tokens``.

    Whole turns are dropped, oldest first, so the model never sees an answer without the
    question it answered (which would teach it to answer the wrong thing).
    """
    if budget_tokens <= 0 or not history:
        return ()
    count = token_counter(tokenizer_or_counter)
    kept: list[list[ChatMessage]] = []
    used = 0
    for turn in reversed(_turns(history)):
        cost = sum(count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in turn)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    return tuple(m for turn in reversed(kept) for m in turn)


def with_trimmed_history(
    request: AnswerRequest, tokenizer_or_counter: Any, budget_tokens: int
) -> AnswerRequest:
    """``request`` with its history trimmed to ``budget_tokens``."""
    history = trim_history(request.history, tokenizer_or_counter, budget_tokens)
    return request if history == request.history else dataclasses.replace(request, history=history)


class ThinkFilter:
    """Streaming removal of ``<think>…</think>`` and of the blank lines that open an answer.

    Thinking is disabled in the chat template, but a fine-tuned model can still open a think
    block; text inside it must never be spoken. Tags can arrive split across pieces
    ("<thi", "nk>"), so a possible tag prefix at the end of a piece is held back until the next.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._started = False

    def feed(self, piece: str) -> str:
        """Return the speakable text of ``piece`` (possibly ""), keeping partial tags back."""
        text = self._pending + piece
        self._pending = ""
        out: list[str] = []
        while text:
            tag = THINK_CLOSE if self._inside else THINK_OPEN
            at = text.find(tag)
            if at >= 0:
                if not self._inside:
                    out.append(text[:at])
                text = text[at + len(tag) :]
                self._inside = not self._inside
                continue
            keep = _partial_suffix(text, tag)
            if not self._inside:  # a stray "</think>" split across pieces is removed too
                keep = max(keep, _partial_suffix(text, THINK_CLOSE))
            if not self._inside:
                out.append(text[: len(text) - keep])
            self._pending = text[len(text) - keep :] if keep else ""
            break
        return self._lead(("".join(out)).replace(THINK_CLOSE, ""))

    def flush(self) -> str:
        """The held-back text at the end of the stream (a partial tag that never completed)."""
        text, self._pending = self._pending, ""
        return "" if self._inside else self._lead(text)

    def _lead(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


async def strip_think_stream(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Apply :class:`ThinkFilter` to a stream of text pieces; empty pieces are dropped."""
    filt = ThinkFilter()
    async for piece in pieces:
        text = filt.feed(piece)
        if text:
            yield text
    tail = filt.flush()
    if tail:
        yield tail


def grounding_prompt(grounding: Grounding, max_chars_per_entry: int = 500) -> str:
    """The catalog facts an LLM answers from, for its system or user prompt.

    Each entry: title, URL, summary, categories, keywords; the showing one is labelled
    "currently on the sphere". Empty grounding -> a line saying nothing matched, so the model
    does not invent a dataset.
    """
    if not grounding.entries:
        return (
            "SOS catalog: no dataset matches this question. Say so briefly, and do not give "
            "a More information link."
        )
    lines = [
        "SOS catalog datasets for this question (answer from these facts; end with "
        '"More information: <URL>" using one of these URLs):'
    ]
    for n, entry in enumerate(grounding.entries, 1):
        label = ""
        if entry == grounding.showing:
            label = " (currently on the sphere"
            label += "; the visitor is asking about it)" if grounding.pinned else ")"
        lines.append(f"[{n}] {entry.title}{label}")
        lines.append(f"URL: {entry.url}")
        if entry.categories:
            lines.append(f"Categories: {', '.join(entry.categories)}")
        if entry.keywords:
            lines.append(f"Keywords: {', '.join(entry.keywords)}")
        lines.append(f"Summary: {entry_summary(entry, max_chars_per_entry)}")
    return "\n".join(lines)
