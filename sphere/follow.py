"""Following the sphere: poll the current clip and the playlist, keep the Exhibit in step.

The protocol has no notifications we could confirm, so the follower polls: the current clip
every ``poll_s`` (one short query), the playlist's names only when the clip count changes,
after a reconnect, or every ``playlist_refresh_s``. A clip whose name matches no catalog entry
clears the exhibit (unknown, logged once per name) rather than leaving the previous dataset in
place: a visitor must never be told about the wrong one. While the host is unreachable the
exhibit keeps the last clip seen; the sphere usually goes on playing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from catalog.datasets import CatalogEntry
from sphere import protocol
from sphere.client import SosClient, SosError, SosUnavailable
from sphere.matching import ClipMatcher
from sphere.protocol import ProtocolError
from voice.exhibit import Exhibit

log = logging.getLogger(__name__)

__all__ = ["Clip", "Follower"]

SOURCE = "sos"


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip of the open playlist: its 1-based number, name and catalog entry (or None)."""

    number: int
    name: str
    entry: CatalogEntry | None

    def describe(self) -> dict[str, object]:
        return {
            "number": self.number,
            "name": self.name,
            "slug": self.entry.slug if self.entry else None,
            "title": self.entry.title if self.entry else None,
        }


class Follower:
    """Polls one SOS host and updates one Exhibit. ``run()`` until cancelled."""

    def __init__(
        self,
        client: SosClient,
        exhibit: Exhibit,
        matcher: ClipMatcher,
        *,
        poll_s: float = 2.0,
        playlist_refresh_s: float = 60.0,
    ) -> None:
        self.client = client
        self.exhibit = exhibit
        self.matcher = matcher
        self.poll_s = poll_s
        self.playlist_refresh_s = playlist_refresh_s
        self.playlist: tuple[Clip, ...] = ()
        self.current: Clip | None = None
        self.polls = 0
        self._playlist_at = -float("inf")
        self._playlist_connects = -1
        self._unknown_logged: set[str] = set()
        self._shown: tuple[CatalogEntry | None] | None = None  # last entry we set, once set
        self._changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self.poll_once()
            self._changed.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # races its time-out, and this loop must stop when the Sphere is closed.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._changed.wait()

    def played(self, number: int) -> None:
        """The host accepted ``play number``: show it now (the next command, maybe "next one",
        must start from it) and poll at once to confirm, not at the next tick."""
        self._show(number)
        self._changed.set()

    async def poll_once(self) -> None:
        """One round; every failure is logged by the client and ends the round quietly."""
        self.polls += 1
        try:
            count = protocol.parse_int(await self.client.query(protocol.CLIP_COUNT_QUERY))
            stale = (
                count != len(self.playlist)
                or self.client.connects != self._playlist_connects
                or time.monotonic() - self._playlist_at >= self.playlist_refresh_s
            )
            if stale:
                await self._read_playlist(count)
            number = await self._current_number()
        except (SosUnavailable, SosError) as exc:
            log.debug("sos: poll failed: %s", exc)
            return
        except ProtocolError as exc:
            await self.client.reset(f"unexpected reply: {exc}")
            return
        self._show(number)

    def clip(self, number: int) -> Clip | None:
        return self.playlist[number - 1] if 1 <= number <= len(self.playlist) else None

    def describe(self) -> dict[str, object]:
        return {
            "connected": self.client.connected,
            "last_error": self.client.last_error or None,
            "current": self.current.describe() if self.current else None,
            "playlist": [c.describe() for c in self.playlist],
        }

    # ----------------------------------------------------------------- internals
    async def _current_number(self) -> int:
        try:
            return protocol.parse_int(await self.client.query(protocol.CURRENT_CLIP_QUERY))
        except SosError:
            return 0  # [seen] some hosts answer E04 when nothing is loaded

    async def _read_playlist(self, count: int) -> None:
        clips = []
        for number in range(1, count + 1):
            name = await self._clip_name(number)
            clips.append(Clip(number, name, self.matcher.match(name) if name else None))
        self.playlist = tuple(clips)
        self._playlist_at = time.monotonic()
        self._playlist_connects = self.client.connects
        log.info("sos: playlist of %d clips: %s", count, ", ".join(c.name for c in clips))

    async def _clip_name(self, number: int) -> str:
        """[doc] ``name`` of ``get_all_name_value_pairs N``; else [seen] ``get_clip_info N``."""
        try:
            reply = await self.client.query(protocol.CLIP_PAIRS_QUERY, number)
            name = protocol.parse_name_values(reply.text).get("name", "").strip()
            if name:
                return name
        except (SosError, ProtocolError):
            pass
        reply = await self.client.query(protocol.CLIP_INFO_QUERY, number)
        return protocol.parse_clip_info(reply.text, number)

    def _show(self, number: int) -> None:
        clip = self.clip(number)
        self.current = clip
        if clip is not None and clip.entry is None and clip.name not in self._unknown_logged:
            self._unknown_logged.add(clip.name)
            log.warning("sos: clip %d %r matches no catalog dataset: unknown", number, clip.name)
        entry = clip.entry if clip is not None else None
        # Only a change on the sphere moves the exhibit: an operator's /exhibit/showing
        # between two polls of the same clip is not undone every poll_s.
        if self._shown != (entry,):
            self._shown = (entry,)
            self.exhibit.set(entry, source=SOURCE)
