"""The answerer interface that every backend implements (catalog, transformers, OpenAI).

An answerer turns a question (plus history and exhibit context) into an async stream of
:class:`TextDelta` pieces followed by at most one :class:`Link`. Streaming is the contract
because the voice loop speaks the first sentence while the rest is still being generated;
cancellation is the consumer closing the stream (``aclose()`` / task cancel), which each
backend must turn into "stop generating now and free the GPU".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from catalog.datasets import CatalogEntry

Role = Literal["user", "assistant"]
Audience = Literal["kids", "general", "educator"]
# The audiences in the order they are listed to a client (e.g. in an error message).
AUDIENCES: tuple[Audience, ...] = ("kids", "general", "educator")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    link: str | None = None  # an assistant turn's catalog page: what a follow-up is about


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """Everything an answerer may use for one answer.

    ``showing`` is the dataset on the sphere right now (exhibit context), ``audience`` sets
    length and vocabulary, ``instructions`` are per-session extra instructions (Realtime
    ``session.update``).
    """

    question: str
    history: tuple[ChatMessage, ...] = ()
    showing: CatalogEntry | None = None
    audience: Audience = "general"
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """The checked "More information" page: always a real catalog URL."""

    url: str
    title: str


AnswerEvent = TextDelta | Link


class AnswerError(RuntimeError):
    """An answer could not be produced (backend down, out of memory, ...). Ends that turn only."""


@runtime_checkable
class Answerer(Protocol):
    """A source of streamed, catalog-grounded answers, shared by all sessions of a process."""

    name: str
    # True when a language model writes the answers and follows the request's instructions
    # (mode hints such as "classroom activity"); False when answers are composed from the
    # catalog, so a wrapper must build such replies itself.
    generative: bool

    def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """Yield the answer as TextDelta pieces, then at most one Link."""
        ...

    async def aclose(self) -> None:
        """Release models, threads and connections."""
        ...
