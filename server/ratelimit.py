"""Per-connection rate limit on client messages: token buckets for messages and bytes.

Why: one client sending tens of thousands of tiny events a second keeps the event loop busy
parsing and answering them, and every other client's audio waits behind it (the first audio of
another client went from 0.14 s to 2.34 s). The limit is checked on each incoming WebSocket
frame before it is assembled into a message, so an over-limit message costs nothing but the
check. Written here rather than taken from a library because the kept rate-limit packages
(``aiolimiter``, ``limits``) wait for capacity or count requests per key in a store; this needs
a synchronous yes/no per frame, a byte budget next to the message budget, and a count of drops
that tells a burst from a client that never stops.

Pure logic with an injectable clock (the loop's ``time``), so the unit tests step time
exactly; :class:`server.front.FrontConnection` applies the verdicts to a real connection.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimit", "TokenBucket", "Verdict"]

NOTIFY_INTERVAL_S = 1.0  # at most one rate_limited error a second: the reply must not flood


class TokenBucket:
    """``rate`` tokens a second up to ``burst``. :meth:`take` refuses when short;
    :meth:`charge` always takes (the balance may go negative: a debt paid back by time)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs rate > 0 and burst > 0")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, amount: float = 1.0) -> bool:
        self._refill()
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def charge(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount


class Verdict(enum.Enum):
    ALLOW = "allow"  # deliver the message
    DROP = "drop"  # drop it silently (the client was told within the last second)
    DROP_NOTIFY = "drop_notify"  # drop it and send a rate_limited error
    CLOSE = "close"  # drop it and close the connection with 1008


@dataclass(frozen=True)
class Limits:
    """The ``[server]`` rate-limit keys (see config/default.toml); 0 turns a bucket off."""

    messages_per_s: float
    burst: int
    bytes_per_s: float
    burst_bytes: int
    close_after: int  # dropped messages before the connection is closed (0 = never)


class RateLimit:
    """The verdict for each client message of one connection, and the counts behind it."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._messages = (
            TokenBucket(limits.messages_per_s, limits.burst, clock)
            if limits.messages_per_s > 0
            else None
        )
        self._bytes = (
            TokenBucket(limits.bytes_per_s, limits.burst_bytes, clock)
            if limits.bytes_per_s > 0
            else None
        )
        self.dropped = 0
        self.dropped_since_notice = 0
        self._last_notice: float | None = None

    @property
    def enabled(self) -> bool:
        return self._messages is not None or self._bytes is not None

    def message(self, nbytes: int) -> Verdict:
        """A new message starts with ``nbytes`` in its first frame."""
        ok = self._messages is None or self._messages.tokens >= 1
        ok = ok and (self._bytes is None or self._bytes.tokens >= nbytes)
        if ok:
            if self._messages is not None:
                self._messages.take(1)
            if self._bytes is not None:
                self._bytes.charge(nbytes)
            return Verdict.ALLOW
        self.dropped += 1
        self.dropped_since_notice += 1
        if self.limits.close_after and self.dropped >= self.limits.close_after:
            return Verdict.CLOSE
        now = self._clock()
        if self._last_notice is None or now - self._last_notice >= NOTIFY_INTERVAL_S:
            self._last_notice = now
            return Verdict.DROP_NOTIFY
        return Verdict.DROP

    def continuation(self, nbytes: int) -> None:
        """More bytes of a message already admitted: charged, never refused (a message cut in
        the middle would be corrupt), so the next message pays for them."""
        if self._bytes is not None:
            self._bytes.charge(nbytes)

    def notice_sent(self) -> int:
        """The drops the error just sent reports; the count starts again."""
        count, self.dropped_since_notice = self.dropped_since_notice, 0
        return count
