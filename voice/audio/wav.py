"""WAV files: a question read from a file as if from a microphone, an answer written to one.

Files come from anywhere (recorders, other programs, a visitor's upload one day), so the
reader trusts nothing in a header: an impossible format is a clear error naming the file,
never a multi-gigabyte resampling attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import wave
from collections.abc import AsyncIterator
from math import ceil
from pathlib import Path

from voice.audio.format import SAMPLE_RATE, AudioChunk, AudioFormat
from voice.audio.framing import Framer, frame_bytes
from voice.audio.resample import resample_pcm16, to_pcm16_mono

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def read_wav(path: str | Path) -> AudioChunk:
    """Read a WAV file as it is: its data bytes and their format.

    Why not the ``wave`` module: it rejects float WAVs and WAVE_FORMAT_EXTENSIBLE headers,
    which many recorders write. Handles 8/16/24/32-bit integer PCM and 32/64-bit float, and
    data chunks whose size field is wrong (files written by a stream that never went back to
    fix the header). Any problem is a ValueError that names the file, including a header
    that no real recording has (a 4 GHz rate, no channels, 12-bit samples).
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read audio file: {exc.strerror or exc}") from exc
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt_info: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"{path}: broken WAV header (fmt chunk too short)")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first bytes of the sub-format GUID
            fmt_info = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            data = body  # a too-large size (streamed file) simply takes the rest
            break
        pos += 8 + size + (size & 1)
    if fmt_info is None or data is None:
        raise ValueError(f"{path}: broken WAV file (missing fmt or data chunk)")
    tag, channels, rate, bits = fmt_info
    if tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_FLOAT) or bits % 8:
        kind = {1: "integer PCM", 3: "float"}.get(tag, f"format tag {tag:#x}")
        raise ValueError(f"{path}: unsupported WAV encoding: {kind}, {bits}-bit")
    fmt = AudioFormat(rate, bits // 8, channels, floating=tag == _WAVE_FORMAT_FLOAT)
    try:
        fmt.check()
    except ValueError as exc:
        raise ValueError(f"{path}: broken or unsupported WAV header: {exc}") from exc
    return AudioChunk(data, fmt)


class WavSource:
    """A WAV file that behaves like a microphone: an async stream of 16 kHz PCM16 frames.

    The whole file is decoded and converted up front (test and demo files are short), so any
    problem with the file shows up in the constructor, before models are loaded. With
    ``realtime=True`` each frame is released when a microphone would have delivered it (at
    the end of its duration), which lets the pipeline's latency and barge-in be exercised
    as in a kiosk; otherwise frames come as fast as the consumer takes them, yielding to the
    event loop between frames so other tasks keep running.
    """

    def __init__(self, path: str | Path, frame_ms: int = 30, realtime: bool = False) -> None:
        self.path = Path(path)
        self.frame_ms = frame_ms
        self.realtime = realtime
        frame_bytes(frame_ms)  # validate early
        chunk = read_wav(self.path)
        self.pcm = to_pcm16_mono(chunk.samples(), chunk.format.rate)
        self.source_rate = chunk.format.rate
        self.duration_s = len(self.pcm) / 2 / SAMPLE_RATE

    def frame_count(self) -> int:
        """How many frames :meth:`frames` yields (the last one padded with silence)."""
        return ceil(len(self.pcm) / frame_bytes(self.frame_ms))

    async def frames(self) -> AsyncIterator[bytes]:
        framer = Framer(self.frame_ms)
        frames = framer.push(self.pcm)
        tail = framer.flush()
        if tail is not None:
            frames.append(tail)
        loop = asyncio.get_running_loop()
        start = loop.time()
        period = self.frame_ms / 1000.0
        for k, frame in enumerate(frames):
            if self.realtime:
                # Scheduled against the start, not the previous frame: no accumulated drift.
                await asyncio.sleep(max(0.0, start + (k + 1) * period - loop.time()))
            else:
                await asyncio.sleep(0)
            yield frame


class WavSink:
    """Writes the assistant's speech to a 16-bit mono WAV file (``--out answer.wav``).

    The file's rate is that of the first chunk (Piper's 22,050 Hz, normally), and later chunks
    at other rates are resampled to it. By default the file is a speaker that plays infinitely
    fast: each chunk is written as soon as it arrives, so nothing is ever queued and
    :meth:`stop` has nothing to drop. With ``realtime=True`` the file plays at wall-clock speed
    instead: audio counts as played (and is written) only once its time has come, and
    :meth:`stop` discards the rest, so barge-in can be tested and heard without a sound card.
    A sink closed before any audio writes an empty WAV at 16 kHz.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.sample_rate: int | None = None
        self.written_samples = 0
        self.dropped_samples = 0
        self._out: wave.Wave_write | None = None
        self._pending = bytearray()  # realtime mode: queued but not yet "played"
        self._clock_start = 0.0  # loop time when continuous playback began
        self._clock_played = 0  # samples played since _clock_start
        self._closed = False

    def _open(self, rate: int) -> wave.Wave_write:
        try:
            out = wave.open(str(self.path), "wb")  # noqa: SIM115 (stays open across writes)
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot write WAV file: {exc}") from exc
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        return out

    def _commit(self, pcm: bytes) -> None:
        if pcm and self._out is not None:
            self._out.writeframes(pcm)
            self.written_samples += len(pcm) // 2

    def _advance(self) -> None:
        """Realtime mode: write out what has "played" by now."""
        if not self._pending or self.sample_rate is None:
            return
        now = asyncio.get_running_loop().time()
        due = int((now - self._clock_start) * self.sample_rate) - self._clock_played
        n = min(max(due, 0), len(self._pending) // 2)
        self._commit(bytes(self._pending[: 2 * n]))
        del self._pending[: 2 * n]
        self._clock_played += n

    async def write(self, pcm: bytes, sample_rate: int) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: the WAV sink is closed")
        if self.sample_rate is None:
            self.sample_rate = sample_rate
            self._out = self._open(sample_rate)
        pcm = resample_pcm16(pcm, sample_rate, self.sample_rate)
        if not self.realtime:
            self._commit(pcm)
            return
        self._advance()
        if not self._pending:  # the "device" was idle: playback starts now
            self._clock_start = asyncio.get_running_loop().time()
            self._clock_played = 0
        self._pending += pcm

    async def drain(self) -> None:
        while self._pending:
            assert self.sample_rate is not None
            await asyncio.sleep(len(self._pending) / 2 / self.sample_rate)
            self._advance()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing has played since
            self._advance()
        self.dropped_samples += len(self._pending) // 2
        self._pending.clear()

    async def aclose(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        if self._out is None:
            self._out = self._open(SAMPLE_RATE)
        self._out.close()
