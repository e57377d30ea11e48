"""Driving the sphere: play a clip from the open playlist, next, back, pause, play again.

Every action ends in ``play N`` (or ``pause``) for a clip of the playlist that is open on the
host, never ``open_playlist`` or anything else: visitors can move around the exhibit the
operator set up, not load their own. Next and back skip clips the operator's policy forbids, so
they are computed here rather than sent as ``next_clip``/``prev_clip``. The outcome of every
attempt, allowed or not, is an :class:`ActionResult` with a few words to say and the function
call a client can show.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.retrieval import Retriever
from sphere.choosing import ClipChooser, clip_title
from sphere.client import ControlDisabled, SosClient, SosError, SosUnavailable
from sphere.commands import Command
from sphere.follow import Clip, Follower

log = logging.getLogger(__name__)

__all__ = ["ActionResult", "ClipPolicy", "RateLimiter", "SphereControl"]

FUNCTION_NAME = "sphere_play"


@dataclass(frozen=True)
class ClipPolicy:
    """The operator's allow/deny patterns (fnmatch, case-insensitive) on clip name or slug."""

    allow: Sequence[str] = ()
    deny: Sequence[str] = ()

    def permits(self, clip: Clip) -> bool:
        keys = [clip.name.lower()]
        if clip.entry is not None:
            keys += [clip.entry.slug.lower(), clip.entry.title.lower()]

        def hit(patterns: Sequence[str]) -> bool:
            return any(fnmatch.fnmatchcase(k, p.lower()) for p in patterns for k in keys)

        if hit(self.deny):
            return False
        return not self.allow or hit(self.allow)


class RateLimiter:
    """At most ``limit`` actions per sliding ``window_s``; one per session (or API caller)."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._times: deque[float] = deque()

    def take(self) -> bool:
        now = self._clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


@dataclass(frozen=True)
class ActionResult:
    """What happened. ``status``: ok, not_found, denied, rate_limited, disabled, unavailable,
    failed. ``say`` is the few words the assistant speaks."""

    action: str
    status: str
    say: str
    query: str = ""
    clip: Clip | None = None
    detail: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status,
            "say": self.say,
            "query": self.query or None,
            "clip": self.clip.describe() if self.clip else None,
            "detail": self.detail or None,
        }


class SphereControl:
    """Performs commands on one SOS host, within the operator's policy."""

    def __init__(
        self,
        client: SosClient,
        follower: Follower,
        policy: ClipPolicy,
        retriever: Retriever | None = None,
    ) -> None:
        self.client = client
        self.follower = follower
        self.policy = policy
        self.chooser = ClipChooser(retriever)

    @property
    def enabled(self) -> bool:
        return self.client.control_enabled

    async def perform(self, command: Command, limiter: RateLimiter) -> ActionResult:
        """Carry out ``command`` if allowed; never raises for host trouble."""
        action, query = command.action, command.query
        args = {"action": action, **({"query": query} if query else {})}

        def result(
            status: str, say: str, clip: Clip | None = None, detail: str = ""
        ) -> ActionResult:
            return ActionResult(action, status, say, query, clip, detail, args)

        if not self.enabled:
            return result("disabled", "Sorry, I can't change the sphere here.")
        if not self.follower.playlist:
            await self.follower.poll_once()  # first command before the first poll
        if not self.follower.playlist:
            return result("unavailable", "Sorry, I can't reach the sphere right now.")
        if action == "pause":
            target: Clip | None = None
        else:
            # Off the event loop: retrieval and the sounds-like reading take milliseconds.
            target = await asyncio.to_thread(self._target, command)
            if target is None:
                if action == "play":
                    anywhere = await asyncio.to_thread(self._best, query, allowed_only=False)
                    if anywhere is not None:
                        return result("denied", "Sorry, that one isn't available here.")
                what = "that" if action == "play" else "another clip"
                return result("not_found", f"Sorry, I can't find {what} in today's playlist.")
            if not self.policy.permits(target):
                return result("denied", "Sorry, that one isn't available here.", target)
        if not limiter.take():
            return result("rate_limited", "Let's stay with this one for a moment.", target)
        try:
            if target is None:
                await self.client.control("pause")
            else:
                await self.client.control("play", target.number)
        except ControlDisabled:
            return result("disabled", "Sorry, I can't change the sphere here.", target)
        except (SosUnavailable, SosError) as exc:
            log.warning("sos: %s failed: %s", action, exc)
            return result("unavailable", "Sorry, the sphere isn't answering.", target, str(exc))
        if target is not None:
            self.follower.played(target.number)
        log.info("sos: %s -> %s", args, target.name if target else "pause")
        if target is None:
            return result("ok", "Pausing the sphere.")
        verb = "Playing it again" if action == "replay" else "Showing"
        return result("ok", f"{verb}: {clip_title(target)}.", target)

    # ----------------------------------------------------------------- choosing a clip
    def clip_meant(self, query: str) -> Clip | None:
        """The clip of the open playlist ``query`` names, allowed or not (blocking: see
        :meth:`ClipChooser.best`)."""
        return self._best(query, allowed_only=False)

    def _target(self, command: Command) -> Clip | None:
        follower = self.follower
        if command.action == "play":
            return self._best(command.query, allowed_only=True)
        current = follower.current.number if follower.current else 0
        if command.action == "replay":
            return follower.current
        step = 1 if command.action == "next" else -1
        n = len(follower.playlist)
        start = current if current else (0 if step == 1 else 1)
        for k in range(1, n + 1):
            clip = follower.playlist[(start - 1 + step * k) % n]
            if self.policy.permits(clip) and clip.number != current:
                return clip
        return None

    def _best(self, query: str, *, allowed_only: bool) -> Clip | None:
        clips = self.follower.playlist
        if allowed_only:
            clips = [clip for clip in clips if self.policy.permits(clip)]
        return self.chooser.best(query, clips)
