"""An asyncio client of the SOS Automation Interface that can never hurt the assistant.

One connection is kept open (the protocol allows many commands per connection). Every read has
a time-out; a time-out, a closed socket or garbage closes the connection, because a late reply
would otherwise be read as the answer to the next command. Reconnecting is not a sleep: after
a failure the client refuses requests at once (:class:`SosUnavailable`) until the back-off
(exponential, jittered, capped) has passed, so a dead host costs callers nothing and the host
is not hammered. Control commands are refused here, not only by callers, unless control is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from sphere import protocol
from sphere.protocol import ENABLE, ProtocolError, Reply, encode, parse_reply

log = logging.getLogger(__name__)

__all__ = ["ControlDisabled", "SosClient", "SosError", "SosUnavailable"]


# What a broken or confused link raises: the socket, a timeout, the host hanging up, and
# ValueError (a ProtocolError or an overlong line).
LINK_ERRORS = (OSError, TimeoutError, EOFError, ValueError)


class SosUnavailable(ConnectionError):
    """The host cannot be reached now (down, slow, backing off); try again later."""


class SosError(RuntimeError):
    """The host answered with an error code (``E04``)."""

    def __init__(self, command: str, reply: Reply) -> None:
        super().__init__(f"SOS host refused {command!r}: {reply.text}")
        self.code = reply.code


class ControlDisabled(PermissionError):
    """A control command while ``[sos] control`` is off: never sent."""


class SosClient:
    """One connection to one SOS host; requests are serialized (one in flight)."""

    def __init__(
        self,
        host: str,
        port: int = protocol.PORT,
        *,
        control: bool = False,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 2.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.control_enabled = control
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self.last_error = ""
        self.connects = 0  # successful connections so far (reconnects are connects - 1)

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def query(self, command: str, *args: str | int) -> Reply:
        """A command that only asks; its one reply line (``SosError`` for ``E``-codes)."""
        if protocol.is_control(command):
            raise ValueError(f"{command!r} changes the sphere: use control()")
        return await self._request(command, args)

    async def control(self, command: str, *args: str | int) -> Reply:
        """A command that changes the sphere; ``ControlDisabled`` unless control is on."""
        if not self.control_enabled:
            raise ControlDisabled(f"[sos] control is off: {command!r} was not sent")
        if not protocol.is_control(command):
            raise ValueError(f"{command!r} is not a control command")
        return await self._request(command, args)

    async def reset(self, why: str) -> None:
        """A reply that does not fit its query means the stream is out of step (a late or
        unprompted line): drop the connection and back off, so the next one starts clean."""
        async with self._lock:
            await self._fail(why)

    async def aclose(self) -> None:
        async with self._lock:
            await self._disconnect("closed")

    # ----------------------------------------------------------------- internals
    async def _request(self, command: str, args: tuple[str | int, ...]) -> Reply:
        line = encode(command, *args)
        async with self._lock:
            await self._connect()
            try:
                reply = await self._exchange(line)
            except LINK_ERRORS as exc:
                await self._fail(f"{command}: {_describe(exc)}")
                raise SosUnavailable(self.last_error) from exc
        if reply.kind == "error":
            raise SosError(command, reply)
        return reply

    async def _connect(self) -> None:
        if self._writer is not None:
            return
        now = self._clock()
        if now < self._retry_at:
            raise SosUnavailable(
                f"SOS host {self.host}:{self.port} unavailable ({self.last_error}); "
                f"retrying in {self._retry_at - now:.1f} s"
            )
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            reply = await self._exchange(encode(ENABLE))
            if reply.kind == "error":
                raise ProtocolError(f"the host refused 'enable': {reply.text}")
        except LINK_ERRORS as exc:
            await self._fail(f"connect: {_describe(exc)}")
            raise SosUnavailable(self.last_error) from exc
        self._failures = 0
        self.connects += 1
        log.info("sos: connected to %s:%d", self.host, self.port)

    async def _exchange(self, line: bytes) -> Reply:
        assert self._reader is not None and self._writer is not None
        self._writer.write(line)
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
        async with asyncio.timeout(self._read_timeout):
            await self._writer.drain()
            raw = await self._reader.readline()
        if not raw.endswith(b"\n"):
            raise EOFError("connection closed by the SOS host")
        return parse_reply(raw)

    async def _fail(self, why: str) -> None:
        """Drop the connection and schedule the next attempt (jittered exponential back-off)."""
        await self._disconnect(why)
        delay = min(self._backoff_max, self._backoff_initial * 2.0 ** min(self._failures, 32))
        delay *= self._rng.uniform(0.5, 1.0)
        self._failures += 1
        self._retry_at = self._clock() + delay
        self.last_error = why
        log.warning("sos: %s:%d %s; next try in %.1f s", self.host, self.port, why, delay)

    async def _disconnect(self, why: str) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is None:
            return
        log.info("sos: disconnected from %s:%d (%s)", self.host, self.port, why)
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
