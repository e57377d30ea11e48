"""An Answerer that hears sphere commands and passes every other question through.

Wrapping the answerer keeps the voice loop unaware of the sphere (the layering points down):
the Session asks its answerer as always, and this wrapper, made per session by the CLI or the
server, answers "show me hurricanes" by playing the clip and saying so in a few words. The
rate limiter lives in the wrapper, so the limit is per session. Questions go to the inner
answerer unchanged. With control off, a command is answered as a question, and one that means
a clip of the open playlist (matched as a command would be, by sound too) is asked about
that clip by its title: "Show me my vericanes." (Whisper's "Show me the hurricanes.") is
answered about the playlist's hurricane season, not with "Sorry, I don't have a dataset".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

from llm.base import Answerer, AnswerEvent, AnswerRequest, TextDelta
from sphere.commands import recognize
from sphere.control import ActionResult, RateLimiter, SphereControl

__all__ = ["SphereAnswerer"]


class SphereAnswerer:
    """``Answerer`` for one session: sphere commands here, the rest to ``inner``."""

    def __init__(
        self,
        inner: Answerer,
        control: SphereControl,
        limiter: RateLimiter,
        on_action: Callable[[ActionResult], None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.control = control
        self.limiter = limiter
        self.on_action = on_action

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        command = recognize(request.question)
        if command is None or not self.control.enabled:
            if command is not None and command.action == "play":
                request = await self._about_clip(request, command.query)
            async with contextlib.aclosing(self.inner.stream(request)) as inner:
                async for event in inner:
                    yield event
            return
        result = await self.control.perform(command, self.limiter)
        if self.on_action is not None:
            self.on_action(result)
        yield TextDelta(result.say)

    async def _about_clip(self, request: AnswerRequest, query: str) -> AnswerRequest:
        """``request`` asking about the playlist clip ``query`` means, if there is one."""
        clip = await asyncio.to_thread(self.control.clip_meant, query)
        if clip is None or clip.entry is None:
            return request
        return dataclasses.replace(request, question=f'What is "{clip.entry.title}" about?')

    async def aclose(self) -> None:
        """Nothing of its own to release: the inner answerer belongs to the Services."""
