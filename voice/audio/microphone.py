"""The microphone: frames of 16 kHz mono PCM16 from a sound card, at whatever rate it runs.

PortAudio calls back on its own thread; the event loop must never be blocked by it, nor the
callback by the loop. So the callback only converts its block, appends frames to a bounded
queue under a lock and wakes the loop (see :class:`MicrophoneSource`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from time import monotonic
from types import TracebackType
from typing import Any

import numpy as np

from voice.audio.devices import (
    LIST_DEVICES_HINT,
    STALL_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    STREAM_LATENCY,
    AudioDeviceError,
    close_stream,
    device_info,
    open_stream,
    resolve_device,
    sounddevice_module,
)
from voice.audio.format import SAMPLE_RATE, float_to_pcm16, to_float_mono
from voice.audio.framing import Framer
from voice.audio.resample import Resampler

log = logging.getLogger(__name__)


class MicrophoneSource:
    """Frames of 16 kHz mono PCM16 from a sound card, at whatever rate the card runs.

    The stream runs at the device's native rate (many cards and USB microphones cannot do
    16 kHz; letting PortAudio or ALSA convert is lower quality and sometimes fails), and
    :class:`Resampler` converts it. PortAudio calls back on its own thread: the callback
    converts the block, appends the frames to a bounded queue under a lock and wakes the event
    loop with ``loop.call_soon_threadsafe``. Only one wake-up is outstanding at a time, so a
    stalled loop cannot pile up callbacks; if the consumer falls behind by more than
    ``queue_frames`` frames, the oldest are dropped (stale audio is worth less than fresh
    audio for turn taking) and counted in :attr:`dropped_frames`.

    Use as ``async with MicrophoneSource(...) as mic: async for frame in mic.frames(): ...``.
    """

    def __init__(
        self,
        device: str = "",
        frame_ms: int = 30,
        queue_frames: int = 200,
        *,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        if queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        self.device = device
        self.stall_timeout_s = stall_timeout_s
        self.frame_ms = frame_ms
        self._framer = Framer(frame_ms)
        self._queue: deque[tuple[bytes, float]] = deque()
        self._queue_frames = queue_frames
        self._lock = threading.Lock()
        self._dropped = 0
        self._delivered = False  # any audio yet (the stall timeout starts to apply)
        self._wake_pending = False
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._resampler: Resampler | None = None
        self._closing = False
        self._ended = False
        self.sample_rate: int | None = None  # the device's rate, once open
        self.channels: int | None = None
        self.device_name: str | None = None

    @property
    def latency_s(self) -> float:
        """The input stream's latency as PortAudio reports it (0 before it is open)."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    @property
    def dropped_frames(self) -> int:
        """Frames thrown away because the consumer fell behind."""
        return self._dropped

    async def __aenter__(self) -> MicrophoneSource:
        sd = sounddevice_module()
        index = resolve_device(self.device, "input")
        info = device_info(sd, index, "input")
        rate = int(info["default_samplerate"])
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._resampler = Resampler(rate, SAMPLE_RATE)
        self._closing = self._ended = self._delivered = False
        self._framer = Framer(self.frame_ms)
        self._queue.clear()
        stream, channels = open_stream(
            sd.InputStream,
            info,
            "input",
            self.device,
            device=index,
            samplerate=rate,
            dtype="float32",
            blocksize=max(1, rate * self.frame_ms // 1000),
            latency=STREAM_LATENCY,
            callback=self._callback,
            finished_callback=self._finished,
        )
        try:
            stream.start()
        except Exception as exc:
            stream.close(ignore_errors=True)
            raise AudioDeviceError(
                f"cannot start audio input device {info['name']!r}: {exc}; {LIST_DEVICES_HINT}"
            ) from exc
        self._stream = stream
        self.sample_rate, self.channels, self.device_name = rate, channels, str(info["name"])
        log.info("microphone: %s at %d Hz, %d channel(s)", info["name"], rate, channels)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop and close the stream; a running :meth:`frames` loop ends."""
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await close_stream(stream)
        self._ended = True
        if self._ready is not None:
            self._ready.set()

    # PortAudio's thread -------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        assert self._resampler is not None
        pcm = float_to_pcm16(self._resampler.process(to_float_mono(indata)))
        ready = self._framer.push(pcm)
        if not ready:
            return
        self._delivered = True
        captured_at = monotonic()
        with self._lock:
            for frame in ready:
                if len(self._queue) >= self._queue_frames:
                    self._queue.popleft()
                    self._dropped += 1
                self._queue.append((frame, captured_at))
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._wake()

    def _finished(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody listens
            loop.call_soon_threadsafe(self._on_wake)

    # The event loop's thread --------------------------------------------
    def _on_wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        if self._ready is not None:
            self._ready.set()

    async def frames(self) -> AsyncIterator[bytes]:
        """Frames as they arrive; ends when the source is closed.

        Raises AudioDeviceError if the device stops on its own (unplugged, server gone) or
        delivers nothing for ``stall_timeout_s``.
        """
        async for frame, _ in self.timed_frames():
            yield frame

    async def timed_frames(self) -> AsyncIterator[tuple[bytes, float]]:
        """Frames with the ``time.monotonic()`` at which PortAudio delivered them, as
        :meth:`frames`. The echo canceller pairs them with what the speaker had played by
        then, however late the event loop gets to them."""
        if self._ready is None:
            raise RuntimeError("open the microphone first: `async with MicrophoneSource(...)`")
        while True:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
            for timed in batch:
                yield timed
            if batch:
                continue
            if self._ended:
                if self._closing:
                    return
                raise AudioDeviceError(
                    f"the audio input device {self.device_name!r} stopped; {LIST_DEVICES_HINT}"
                )
            self._ready.clear()
            with self._lock:
                if self._queue:
                    continue
            limit = self.stall_timeout_s if self._delivered else STARTUP_TIMEOUT_S
            try:
                await asyncio.wait_for(self._ready.wait(), limit)
            except TimeoutError:
                if self._closing:
                    return
                raise AudioDeviceError(
                    f"the audio input device {self.device_name!r} delivered no audio for "
                    f"{limit:g} s; {LIST_DEVICES_HINT}"
                ) from None
