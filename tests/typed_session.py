"""A real Session driven by typed questions, for tests of what a conversation says."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from voice.events import ResponseDone
from voice.pipeline import Session
from voice.services import Services

Say = Callable[[str], Awaitable[ResponseDone]]


@contextlib.asynccontextmanager
async def typed_session(services: Services) -> AsyncIterator[Say]:
    """``say(text)``: ask ``text`` in one Session on the shared models, wait until it is
    answered, and return that answer's ResponseDone. The Session is closed on exit."""
    done: list[ResponseDone] = []
    session = Session(services, lambda e: done.append(e) if isinstance(e, ResponseDone) else None)

    async def say(text: str) -> ResponseDone:
        session.ask(text)
        await session.wait_idle()
        return done[-1]

    try:
        yield say
    finally:
        await session.aclose()
