"""A per-connection outgoing queue bounded in bytes.

Why bytes and not messages: one message may be 20 bytes of JSON or 16 KB of audio, and memory
is what must stay bounded when a headset stops reading (walked out of Wi-Fi range, app frozen).
The producer (the Session's synchronous ``emit``) never waits: ``put`` either queues or says
the bound is reached, and the connection then drops the client. Audio of a cancelled response
is purged so a barge-in is not followed by seconds of stale speech.
"""

from __future__ import annotations

import asyncio
from collections import deque

from server.mapper import Outgoing


class SendQueue:
    """FIFO of :class:`Outgoing` with a byte bound; one consumer (the connection's writer)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.bytes = 0
        self.peak_bytes = 0
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> bool:
        """Queue ``item``; False (nothing queued) if that would pass the bound or after close."""
        if self._closed:
            return False
        if self.bytes + item.size > self.limit_bytes:
            return False
        self._items.append(item)
        self.bytes += item.size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._ready.set()
        return True

    def purge_audio(self, response_id: str) -> int:
        """Drop the not-yet-sent audio of one response; returns the bytes dropped."""
        kept = deque(m for m in self._items if not (m.audio and m.response_id == response_id))
        dropped = sum(m.size for m in self._items) - sum(m.size for m in kept)
        self._items = kept
        self.bytes -= dropped
        return dropped

    async def get(self) -> Outgoing | None:
        """The next message, waiting for one; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self.bytes -= item.size
        return item

    def close(self) -> None:
        """No more puts; the consumer gets what is left, then None."""
        self._closed = True
        self._ready.set()

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
