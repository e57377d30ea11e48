"""The sphere for one process: client, follower and control built from ``[sos]``, started and
stopped together, and the per-session pieces (answerer wrapper, rate limiter) handed out.

The CLI creates one :class:`Sphere` next to the :class:`voice.exhibit.Exhibit`; the server
asks it for a wrapped answerer per connection and serves its HTTP actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from catalog.retrieval import Retriever
from sphere.answerer import SphereAnswerer
from sphere.client import SosClient
from sphere.commands import Command
from sphere.config import SosConfig
from sphere.control import ActionResult, ClipPolicy, RateLimiter, SphereControl
from sphere.follow import Follower
from sphere.matching import ClipMatcher
from voice.exhibit import Exhibit

if TYPE_CHECKING:
    from voice.services import Services

log = logging.getLogger(__name__)

__all__ = ["Sphere"]


class Sphere:
    """Follows (and, if enabled, drives) the installation's SOS host."""

    def __init__(
        self, config: SosConfig, exhibit: Exhibit, retriever: Retriever | None = None
    ) -> None:
        self.config = config
        self.client = SosClient(
            config.host,
            config.port,
            control=config.control,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            backoff_initial_s=config.backoff_initial_s,
            backoff_max_s=config.backoff_max_s,
        )
        self.follower = Follower(
            self.client,
            exhibit,
            ClipMatcher(exhibit.catalog, retriever),
            poll_s=config.poll_s,
            playlist_refresh_s=config.playlist_refresh_s,
        )
        self.control = SphereControl(
            self.client, self.follower, ClipPolicy(config.allow, config.deny), retriever
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """One poll now (so the first question already knows the clip; a dead host costs at
        most the connect time-out), then follow in the background."""
        if self._task is None:
            await self.follower.poll_once()
            self._task = asyncio.create_task(self.follower.run(), name="sos-follow")
            log.info(
                "sos: following %s:%d (control %s)",
                self.config.host,
                self.config.port,
                "on" if self.config.control else "off",
            )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.aclose()

    def limiter(self) -> RateLimiter:
        """A fresh per-session (or per-caller) rate limiter."""
        return RateLimiter(self.config.rate_limit, self.config.rate_window_s)

    def session_services(
        self, services: Services, on_action: Callable[[ActionResult], None] | None = None
    ) -> Services:
        """``services`` with its answerer wrapped for one session (models stay shared)."""
        answerer = SphereAnswerer(services.answerer, self.control, self.limiter(), on_action)
        return dataclasses.replace(services, answerer=answerer)

    async def perform(self, command: Command, limiter: RateLimiter) -> ActionResult:
        return await self.control.perform(command, limiter)

    def describe(self) -> dict[str, object]:
        return {
            "host": self.config.host,
            "port": self.config.port,
            "control": self.config.control,
            **self.follower.describe(),
        }
