"""The answer stream both language-model backends share: grounding in, checked events out.

The local model (:mod:`llm.transformers`) and an OpenAI-compatible server
(:mod:`llm.openai_answerer`) differ only in how a grounded request becomes raw text pieces.
Everything around that is the same and lives here once: retrieve the catalog grounding (off
the event loop), hand it to the backend's ``generate``, drop any ``<think>`` text, and let the
link guard turn "More information: URL" into a checked :class:`llm.base.Link`. Closing the
answer stream closes every stream underneath, so barge-in reaches the model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from catalog.grounding import build_grounding
from llm.link_guard import guard_stream
from llm.prompt import strip_think_stream

if TYPE_CHECKING:
    from catalog.datasets import Catalog
    from catalog.grounding import Grounding
    from catalog.retrieval import Retriever
    from llm.base import AnswerEvent, AnswerRequest

# A backend's generation step: the grounding -> the model's raw text pieces.
Generate = Callable[["Grounding"], Awaitable[AsyncIterator[str]]]


async def aclose_quietly(stream: Any) -> None:
    """Close an async generator if it is one; errors while closing are not the answer's."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


async def grounded_answer(
    request: AnswerRequest,
    catalog: Catalog,
    retriever: Retriever,
    entries: int,
    generate: Generate,
) -> AsyncIterator[AnswerEvent]:
    """Answer ``request`` from ``generate``'s text, grounded on ``entries`` catalog entries."""
    grounding = await asyncio.to_thread(
        build_grounding, request.question, request.showing, retriever, entries
    )
    raw = await generate(grounding)
    text = strip_think_stream(raw)
    guarded = guard_stream(text, catalog, grounding)
    try:
        async for event in guarded:
            yield event
    finally:
        for stream in (guarded, text, raw):
            await aclose_quietly(stream)
