"""Where the assistant's speech goes: the :class:`AudioSink` protocol, and the speaker.

:meth:`AudioSink.stop` is barge-in: a visitor who starts talking must silence the answer at
once, so every sink keeps what it has not played yet where it can drop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from typing import Any, Protocol, runtime_checkable

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
from voice.audio.echo import EchoReference
from voice.audio.resample import resample_pcm16

log = logging.getLogger(__name__)


class AudioSink(Protocol):
    """Where the assistant's speech goes: a speaker, a WAV file, a WebSocket."""

    async def write(self, pcm: bytes, sample_rate: int) -> None:
        """Queue mono PCM16 audio for playback; returns quickly (does not wait for playing)."""
        ...

    async def drain(self) -> None:
        """Wait until everything queued has been played (or written)."""
        ...

    def stop(self) -> None:
        """Barge-in: drop everything queued and go silent now."""
        ...

    async def aclose(self) -> None:
        """Release the device/file. Does not wait for queued audio: drain() first for that."""
        ...


@runtime_checkable
class PausableSink(AudioSink, Protocol):
    """A sink heard live in the room, whose playing can be held and taken up again."""

    def pause(self) -> None:
        """Go silent now, keeping what is queued (and what is written meanwhile)."""
        ...

    def resume(self) -> None:
        """Play on from where :meth:`pause` stopped."""
        ...


class SpeakerSink:
    """Plays PCM16 on a sound card through a sounddevice OutputStream.

    The stream runs at the device's native rate; each written chunk is resampled to it and
    appended to a buffer that PortAudio's callback pulls from (silence when it runs dry). So
    :meth:`stop` only has to empty that buffer, under a lock, and the sound stops within one
    device buffer (tens of ms, see :data:`STREAM_LATENCY`). The stream is opened in the
    constructor so that a missing speaker is reported at start-up. With a ``reference``, every
    block handed to the device (silence too) is also given to the echo canceller. :meth:`pause`
    makes the callback play silence without taking from the buffer; :meth:`stop` also ends a
    pause (the next answer must be heard).
    """

    def __init__(
        self,
        device: str = "",
        *,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        reference: EchoReference | None = None,
    ) -> None:
        sd = sounddevice_module()
        self.device = device
        self.stall_timeout_s = stall_timeout_s
        self.reference = reference  # what the echo canceller is told was played
        index = resolve_device(device, "output")
        info = device_info(sd, index, "output")
        self.sample_rate = int(info["default_samplerate"])
        self.device_name = str(info["name"])
        self._chunks: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._empty_notified = True
        self._played = 0  # samples of real audio handed to the device
        self._paused = False
        self.underflows = 0  # times the device ran dry (PortAudio said so)
        self._closed = False
        self._stalled = False  # the stream stopped taking audio: reopen it before the next answer
        self._stream, self.channels = self._open(sd, index, info)
        log.info("speaker: %s at %d Hz", self.device_name, self.sample_rate)

    def _open(self, sd: Any, index: int | None, info: dict[str, Any]) -> tuple[Any, int]:
        """Open and start the output stream at the device's native rate."""
        stream, channels = open_stream(
            sd.OutputStream,
            info,
            "output",
            self.device,
            device=index,
            samplerate=self.sample_rate,
            dtype="int16",
            latency=STREAM_LATENCY,
            callback=self._callback,
        )
        try:
            stream.start()
        except Exception as exc:
            stream.close(ignore_errors=True)
            raise AudioDeviceError(
                f"cannot start audio output device {self.device_name!r}: {exc}; {LIST_DEVICES_HINT}"
            ) from exc
        return stream, channels

    async def _reopen(self) -> None:
        """Replace a stream that stalled with a fresh one.

        A PortAudio stream whose sound server hung (an unplugged USB speaker, a frozen
        PulseAudio) does not always resume when the server comes back: it stays open and never
        calls back again, so every later answer would fail with "stopped playing". The old
        stream is closed off the loop first (on a server still hung that does not finish, and
        this turn fails with a clear error; the next one tries again). Opening runs in a
        thread too: PortAudio can block there on the same hung server.
        """
        old, self._stream = self._stream, None
        if old is not None and not await close_stream(old):
            raise AudioDeviceError(
                f"the audio output device {self.device_name!r} is still not playing; "
                f"{LIST_DEVICES_HINT}"
            )
        sd = sounddevice_module()
        index = resolve_device(self.device, "output")
        info = device_info(sd, index, "output")
        if int(info["default_samplerate"]) != self.sample_rate:
            self.sample_rate = int(info["default_samplerate"])  # a different card came back
        opening = asyncio.ensure_future(asyncio.to_thread(self._open, sd, index, info))
        try:
            self._stream, self.channels = await asyncio.wait_for(
                asyncio.shield(opening), STARTUP_TIMEOUT_S
            )
        except TimeoutError:
            opening.add_done_callback(_close_when_opened)
            raise AudioDeviceError(
                f"the audio output device {self.device_name!r} did not open again within "
                f"{STARTUP_TIMEOUT_S:.0f} s; {LIST_DEVICES_HINT}"
            ) from None
        self._stalled = False
        log.info("speaker: reopened %s after it stalled", self.device_name)

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if status.output_underflow:
            self.underflows += 1
        filled = 0
        with self._lock:
            while filled < frames and self._chunks and not self._paused:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk))
                outdata[filled : filled + take, :] = chunk[:take, None]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._played += filled
            notify = not self._chunks and not self._empty_notified
            if notify:
                self._empty_notified = True
        outdata[filled:, :] = 0
        if self.reference is not None:
            self.reference.push(outdata[:, 0].copy(), self.sample_rate)
        if notify and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_empty)

    @property
    def latency_s(self) -> float:
        """The output stream's latency as PortAudio reports it (0 while it is being reopened)."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    @property
    def played_s(self) -> float:
        """Seconds of audio handed to the device so far (what a visitor has heard, give or
        take the device's buffer): after a barge-in, how much of the answer got out."""
        return self._played / self.sample_rate

    def _on_empty(self) -> None:
        with self._lock:
            if not self._chunks:
                self._idle.set()

    async def write(self, pcm: bytes, sample_rate: int) -> None:
        if self._closed:
            raise RuntimeError("the speaker is closed")
        self._loop = asyncio.get_running_loop()
        if self._stalled:
            await self._reopen()
        data = np.frombuffer(resample_pcm16(pcm, sample_rate, self.sample_rate), dtype="<i2")
        if not len(data):
            return
        with self._lock:
            self._chunks.append(data)
            self._empty_notified = False
            self._idle.clear()

    async def drain(self) -> None:
        """Until the queue has played out; AudioDeviceError if the device stops taking audio.
        A paused sink is waiting, not stalled."""
        loop = asyncio.get_running_loop()
        played, progress_at = self._played, loop.time()
        while not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 0.25)
            if self._played != played or self._paused:
                played, progress_at = self._played, loop.time()
            elif (
                loop.time() - progress_at
                > (self.stall_timeout_s if self._played else STARTUP_TIMEOUT_S)
                and not self._idle.is_set()
            ):
                self.stop()
                self._stalled = True
                raise AudioDeviceError(
                    f"the audio output device {self.device_name!r} stopped playing; "
                    f"{LIST_DEVICES_HINT}"
                )
        if not self._closed and self._stream is not None:
            # What the callback handed to PortAudio last is still in the device's buffer.
            await asyncio.sleep(float(self._stream.latency))

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def stop(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._empty_notified = True
            self._paused = False
        self._idle.set()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._stream is not None:
            await close_stream(self._stream)


def _close_when_opened(opening: asyncio.Future[tuple[Any, int]]) -> None:
    """Close a stream whose opening finished after the caller stopped waiting for it."""
    if not opening.cancelled() and opening.exception() is None:
        stream, _ = opening.result()
        with contextlib.suppress(Exception):
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
