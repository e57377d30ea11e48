"""Audio in and out: microphones, speakers and WAV files, all as 16 kHz mono PCM16 frames.

Everything downstream (VAD, Whisper, the WebSocket protocol) speaks one format: 16 kHz mono
signed 16-bit little-endian PCM, cut into 10/20/30 ms frames. This module is the only place
that knows about device sample rates, channel counts and WAV encodings, so the rest of the
program never has to.

Why sounddevice is imported lazily: without the PortAudio shared library, ``import
sounddevice`` raises OSError. A kiosk without a sound card must still answer ``--text`` and
``--wav`` questions, and ``--list-devices`` must explain what is missing instead of crashing,
so the import happens only when a device is actually needed and its failure becomes an
:class:`AudioDeviceError` that tells the user what to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import struct
import threading
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable
from math import ceil, gcd
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The internal rate: 16 kHz mono PCM16 (what webrtcvad and Whisper want)."""

LIST_DEVICES_HINT = "run `sos-voice --list-devices`"

Kind = Literal["input", "output"]

STALL_TIMEOUT_S = 3.0
"""A running stream that moves no audio for this long is broken (device unplugged, sound
server hung): better a clear AudioDeviceError than a kiosk that silently stops listening or a
drain() that never returns."""

STARTUP_TIMEOUT_S = 10.0
"""Before a new stream's first audio, allow longer: through ALSA's pulse plugin on a busy
machine the first callback was seen to take 2 s."""

STREAM_LATENCY = "high"
"""PortAudio's latency class for our streams. Why not "low" (~9 ms buffers): the callbacks are
Python, competing for the GIL and, on a busy kiosk, for the CPU; through ALSA's pulse plugin
(the "default" device on most Linux desktops) such short buffers underrun and the stream
falls behind real time. "high" (~35 ms) is invisible next to the VAD's 500 ms end-of-turn
silence, and a barge-in stop() still silences the speaker within one such buffer."""


class AudioDeviceError(RuntimeError):
    """A sound device is missing, ambiguous or cannot be opened.

    The message always says how to find a working device (``sos-voice --list-devices``): the
    person reading it is standing at a kiosk, not reading a traceback.
    """


# --------------------------------------------------------------------------- resampling
class Resampler:
    """Streaming polyphase windowed-sinc resampler for a rational rate ratio.

    Why not a simpler method: linear interpolation or decimation without a low-pass filter
    folds everything above the new Nyquist frequency back into the speech band (a 44.1 kHz
    microphone picks up plenty of 8-20 kHz hiss), which hurts both the VAD and Whisper. Why
    streaming: a microphone delivers short blocks, and resampling each block on its own would
    put a click at every block edge; this class keeps the filter's history between calls.

    The Kaiser-windowed sinc has ``zeros`` zero crossings on each side and its cutoff at
    ``rolloff`` times the lower Nyquist frequency. With the defaults the stop band (~ -80 dB)
    starts at the lower Nyquist frequency, so nothing aliases audibly, and the pass band is flat
    to ~80 % of it (6.4 kHz at 16 kHz, plenty for speech).
    """

    _CHUNK = 4096  # outputs computed per vectorized step: bounds memory for long inputs

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        zeros: int = 24,
        rolloff: float = 0.9,
        beta: float = 8.6,
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        g = gcd(int(from_rate), int(to_rate))
        self.up = int(to_rate) // g  # L: output samples per period
        self.down = int(from_rate) // g  # M: input samples per period
        cutoff = 0.5 * min(1.0, self.up / self.down) * rolloff  # cycles per input sample
        self._half = max(1, ceil(zeros / (2.0 * cutoff)))  # filter half-width, input samples
        taps = np.arange(2 * self._half)
        # Row p holds the weights of inputs i-K+1 .. i+K for an output at time i + p/L.
        dist = (np.arange(self.up) / self.up)[:, None] + (self._half - 1 - taps)[None, :]
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (dist / self._half) ** 2, 0.0, 1.0)))
        table = 2.0 * cutoff * np.sinc(2.0 * cutoff * dist) * window / np.i0(beta)
        self._table = table / table.sum(axis=1, keepdims=True)  # unity gain at DC
        self._offsets = taps - (self._half - 1)
        self.reset()

    def reset(self) -> None:
        """Forget all history (start a new, unrelated signal)."""
        self._buf = np.zeros(self._half - 1, dtype=np.float64)  # zeros before the signal
        self._buf_start = -(self._half - 1)  # absolute input index of _buf[0]
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples produced

    def _produce(self, n_end: int) -> np.ndarray:
        """Outputs ``_n_out .. n_end-1``; the buffer must hold the inputs they need."""
        parts = []
        for start in range(self._n_out, n_end, self._CHUNK):
            ns = np.arange(start, min(start + self._CHUNK, n_end), dtype=np.int64)
            pos = ns * self.down
            centre, phase = pos // self.up, pos % self.up
            idx = (centre - self._buf_start)[:, None] + self._offsets[None, :]
            parts.append(np.einsum("ij,ij->i", self._buf[idx], self._table[phase]))
        self._n_out = max(self._n_out, n_end)
        keep_from = (self._n_out * self.down) // self.up - (self._half - 1)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono float samples; returns every output sample that is already determined.

        The output lags the input by the filter's half-width (a few ms), which :meth:`flush`
        releases at the end of the stream.
        """
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.up == self.down:
            self._n_in += len(x)
            self._n_out += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        last_usable = self._n_in - 1 - self._half  # the newest centre with a full window
        if last_usable < 0:
            return np.zeros(0, dtype=np.float64)
        n_end = ((last_usable + 1) * self.up + self.down - 1) // self.down
        return self._produce(n_end)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining outputs (zeros assumed after the signal), then reset.

        In total, ``ceil(n_in * to_rate / from_rate)`` samples come out, so a one-second input
        gives exactly one second of output.
        """
        if self.up == self.down:
            self.reset()
            return np.zeros(0, dtype=np.float64)
        total = (self._n_in * self.up + self.down - 1) // self.down
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1)])
        out = self._produce(total)
        self.reset()
        return out


def _to_float_mono(samples: np.ndarray) -> np.ndarray:
    """Any common sample format, mono or (n, channels), as float64 mono in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 2:
        pass
    elif x.ndim == 1:
        x = x[:, None]
    else:
        raise ValueError(f"audio must be 1-D or (samples, channels), got shape {x.shape}")
    if x.dtype == np.int16:
        y = x.astype(np.float64) / 32768.0
    elif x.dtype == np.int32:
        y = x.astype(np.float64) / 2147483648.0
    elif x.dtype == np.uint8:
        y = (x.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.floating):
        y = x.astype(np.float64)
    else:
        raise ValueError(f"unsupported sample type {x.dtype} (use int16, int32, uint8 or float)")
    return y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]


def _float_to_pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2").tobytes()


def to_pcm16_mono(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> bytes:
    """float32/float64/int16/int32/uint8 audio, mono or (n, channels), as mono PCM16 bytes.

    Channels are averaged; the rate is converted with :class:`Resampler` (anti-aliased).
    """
    mono = _to_float_mono(samples)
    if rate != target_rate:
        resampler = Resampler(rate, target_rate)
        mono = np.concatenate([resampler.process(mono), resampler.flush()])
    return _float_to_pcm16(mono)


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Mono PCM16 bytes from one rate to another (a no-op copy when the rates match)."""
    if len(pcm) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    if from_rate == to_rate:
        return bytes(pcm)
    return to_pcm16_mono(np.frombuffer(pcm, dtype="<i2"), from_rate, to_rate)


# --------------------------------------------------------------------------- framing
def frame_bytes(frame_ms: int) -> int:
    """Bytes in one ``frame_ms`` frame of 16 kHz mono PCM16 (960 for 30 ms)."""
    if frame_ms <= 0 or (SAMPLE_RATE * frame_ms) % 1000:
        raise ValueError(f"frame_ms must be a positive whole number of samples, not {frame_ms}")
    return SAMPLE_RATE * frame_ms // 1000 * 2


class Framer:
    """Cuts a stream of PCM16 chunks of any length into exact ``frame_ms`` frames.

    Network clients and sound cards deliver audio in whatever sizes they like (a WebSocket
    message may even split a sample in two); the VAD needs exact frames. Bytes that do not
    fill a frame yet, including half a sample, wait for the next push.
    """

    def __init__(self, frame_ms: int = 30) -> None:
        self.frame_ms = frame_ms
        self.frame_bytes = frame_bytes(frame_ms)
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        """Add audio; returns the frames that are now complete (possibly none)."""
        self._pending += pcm
        n = len(self._pending) // self.frame_bytes
        if n == 0:
            return []
        size = self.frame_bytes
        frames = [bytes(self._pending[i * size : (i + 1) * size]) for i in range(n)]
        del self._pending[: n * size]
        return frames

    def flush(self) -> bytes | None:
        """The remainder padded with silence to a whole frame, or None if nothing is left."""
        if not self._pending:
            return None
        frame = bytes(self._pending) + bytes(self.frame_bytes - len(self._pending))
        self._pending.clear()
        return frame


# --------------------------------------------------------------------------- WAV files
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def _decode_samples(data: bytes, fmt: int, width: int, channels: int) -> np.ndarray:
    usable = len(data) - len(data) % (width * channels)
    data = data[:usable]
    if fmt == _WAVE_FORMAT_FLOAT and width in (4, 8):
        x = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8")
    elif fmt == _WAVE_FORMAT_PCM and width == 1:
        x = np.frombuffer(data, dtype=np.uint8)
    elif fmt == _WAVE_FORMAT_PCM and width == 2:
        x = np.frombuffer(data, dtype="<i2")
    elif fmt == _WAVE_FORMAT_PCM and width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = (raw[:, 0] << 8 | raw[:, 1] << 16 | raw[:, 2] << 24).astype(np.int32)
    elif fmt == _WAVE_FORMAT_PCM and width == 4:
        x = np.frombuffer(data, dtype="<i4")
    else:
        kind = {1: "integer PCM", 3: "float"}.get(fmt, f"format tag {fmt:#x}")
        raise ValueError(f"unsupported WAV encoding: {kind}, {8 * width}-bit")
    return x.reshape(-1, channels)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as ``(samples[n, channels], rate)`` in its own sample format.

    Why not the ``wave`` module: it rejects float WAVs and WAVE_FORMAT_EXTENSIBLE headers,
    which many recorders write. Handles 8/16/24/32-bit integer PCM and 32/64-bit float, and
    data chunks whose size field is wrong (files written by a stream that never went back to
    fix the header). Any problem is a ValueError that names the file.
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
            fmt_info = (tag, channels, rate, (bits + 7) // 8)
        elif chunk_id == b"data":
            data = body  # a too-large size (streamed file) simply takes the rest
            break
        pos += 8 + size + (size & 1)
    if fmt_info is None or data is None:
        raise ValueError(f"{path}: broken WAV file (missing fmt or data chunk)")
    tag, channels, rate, width = fmt_info
    if channels < 1 or rate < 1 or width < 1:
        raise ValueError(f"{path}: broken WAV header ({channels} channels, {rate} Hz)")
    try:
        samples = _decode_samples(data, tag, width, channels)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return samples, rate


def write_wav(path: str | Path, pcm: bytes, rate: int) -> Path:
    """Write mono PCM16 bytes as a WAV file."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


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
        samples, rate = read_wav(self.path)
        self.pcm = to_pcm16_mono(samples, rate)
        self.source_rate = rate
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


# --------------------------------------------------------------------------- devices
def _sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a clear AudioDeviceError."""
    try:
        return importlib.import_module("sounddevice")
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise AudioDeviceError(
            f"the PortAudio library is not installed ({exc}); install it "
            f"(apt install libportaudio2), then {LIST_DEVICES_HINT}"
        ) from exc
    except ImportError as exc:
        raise AudioDeviceError(
            f"the sounddevice package is not installed ({exc}); pip install sounddevice, "
            f"then {LIST_DEVICES_HINT}"
        ) from exc


def _devices(sd: ModuleType) -> list[dict[str, Any]]:
    try:
        return [dict(d) for d in sd.query_devices()]
    except Exception as exc:  # PortAudioError: a broken host API should not be a traceback
        raise AudioDeviceError(f"cannot list audio devices: {exc}; {LIST_DEVICES_HINT}") from exc


def _channels_key(kind: Kind) -> str:
    return "max_input_channels" if kind == "input" else "max_output_channels"


def _default_index(sd: ModuleType, kind: Kind) -> int:
    """PortAudio's default device of this kind, or -1 if there is none."""
    try:
        pair = sd.default.device
        index = pair[0] if kind == "input" else pair[1]
        return int(index) if index is not None else -1
    except Exception:
        return -1


def list_devices() -> str:
    """A printable table of audio devices for ``sos-voice --list-devices``; never raises."""
    try:
        sd = _sounddevice()
        devices = _devices(sd)
    except AudioDeviceError as exc:
        return f"No audio devices available: {exc}"
    if not devices:
        return (
            "No audio devices found: PortAudio sees no sound card (and no sound server such as "
            "PulseAudio).\nConnect a microphone/speaker, or use --wav FILE / --text QUESTION."
        )
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    try:
        apis = [a["name"] for a in sd.query_hostapis()]
    except Exception:
        apis = []
    lines = ["  index  in  out  rate(Hz)  name", "  -----  --  ---  --------  ----"]
    for i, dev in enumerate(devices):
        mark = ("*" if i == default_in else " ") + ("+" if i == default_out else " ")
        api = dev.get("hostapi")
        api_name = f" ({apis[api]})" if isinstance(api, int) and 0 <= api < len(apis) else ""
        lines.append(
            f"{mark}{i:>5}  {dev['max_input_channels']:>2}  {dev['max_output_channels']:>3}  "
            f"{int(dev['default_samplerate']):>8}  {dev['name']}{api_name}"
        )
    lines.append("")
    lines.append("* = default input, + = default output.")
    lines.append(
        "Choose with --device N|NAME (microphone) and --output-device N|NAME (speaker); "
        "NAME is any unique part of a name."
    )
    return "\n".join(lines)


def resolve_device(spec: str, kind: Kind) -> int | None:
    """Turn a ``--device`` value into a PortAudio index (None = the system default).

    ``""`` means the system default, ``"2"`` the device with index 2, anything else a unique
    case-insensitive part of a device name (an exact name wins over partial matches). The
    device must have channels of ``kind``. Anything that cannot work raises AudioDeviceError
    now, at start-up, instead of failing when the first visitor speaks.
    """
    spec = spec.strip()
    sd = _sounddevice()
    devices = _devices(sd)
    key = _channels_key(kind)
    usable = [i for i, d in enumerate(devices) if d[key] > 0]
    if not usable:
        raise AudioDeviceError(f"no audio {kind} device found; {LIST_DEVICES_HINT}")
    if not spec:
        return None
    if spec.lstrip("-").isdigit():
        index = int(spec)
        if not 0 <= index < len(devices):
            raise AudioDeviceError(
                f"there is no audio device {index} (valid: 0..{len(devices) - 1}); "
                f"{LIST_DEVICES_HINT}"
            )
        if index not in usable:
            raise AudioDeviceError(
                f"audio device {index} ({devices[index]['name']}) has no {kind} channels; "
                f"{LIST_DEVICES_HINT}"
            )
        return index
    wanted = spec.lower()
    exact = [i for i in usable if devices[i]["name"].lower() == wanted]
    matches = exact or [i for i in usable if wanted in devices[i]["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(f"no audio {kind} device matches {spec!r}; {LIST_DEVICES_HINT}")
    names = ", ".join(f"{i}: {devices[i]['name']}" for i in matches)
    raise AudioDeviceError(
        f"{spec!r} matches several audio {kind} devices ({names}); use the index or a longer "
        f"name; {LIST_DEVICES_HINT}"
    )


def _device_info(sd: ModuleType, index: int | None, kind: Kind) -> dict[str, Any]:
    try:
        return dict(
            sd.query_devices(index, kind=kind) if index is None else sd.query_devices(index)
        )
    except Exception as exc:
        raise AudioDeviceError(
            f"no default audio {kind} device is set ({exc}); pick one with "
            f"{'--device' if kind == 'input' else '--output-device'}; {LIST_DEVICES_HINT}"
        ) from exc


def _open_stream(
    factory: Callable[..., Any], info: dict[str, Any], kind: Kind, spec: str, **kwargs: Any
) -> tuple[Any, int]:
    """Open a PortAudio stream, mono if the device allows it, else stereo (mixed/duplicated).

    Some hardware devices refuse mono; trying 1 then 2 channels covers them without asking
    the user to know their card's channel layout.
    """
    max_ch = int(info[_channels_key(kind)])
    errors = []
    for channels in dict.fromkeys((1, min(2, max_ch))):
        try:
            return factory(channels=channels, **kwargs), channels
        except Exception as exc:  # PortAudioError / ValueError from sounddevice
            errors.append(str(exc))
    what = spec or "default"
    raise AudioDeviceError(
        f"cannot open audio {kind} device {what!r} ({info.get('name', '?')}): "
        f"{'; '.join(errors)}; {LIST_DEVICES_HINT}"
    )


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
        self._queue: deque[bytes] = deque()
        self._queue_frames = queue_frames
        self._lock = threading.Lock()
        self._dropped = 0
        self._overflows = 0
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
    def dropped_frames(self) -> int:
        """Frames thrown away because the consumer fell behind."""
        return self._dropped

    @property
    def input_overflows(self) -> int:
        """Blocks PortAudio reported as overflowed (audio lost before it reached us)."""
        return self._overflows

    async def __aenter__(self) -> MicrophoneSource:
        sd = _sounddevice()
        index = resolve_device(self.device, "input")
        info = _device_info(sd, index, "input")
        rate = int(info["default_samplerate"])
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._resampler = Resampler(rate, SAMPLE_RATE)
        self._closing = self._ended = self._delivered = False
        self._framer = Framer(self.frame_ms)
        self._queue.clear()
        stream, channels = _open_stream(
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
            await _close_stream(stream)
        self._ended = True
        if self._ready is not None:
            self._ready.set()

    # PortAudio's thread -------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if status and status.input_overflow:
            self._overflows += 1
        assert self._resampler is not None
        pcm = _float_to_pcm16(self._resampler.process(_to_float_mono(indata)))
        ready = self._framer.push(pcm)
        if not ready:
            return
        self._delivered = True
        with self._lock:
            for frame in ready:
                if len(self._queue) >= self._queue_frames:
                    self._queue.popleft()
                    self._dropped += 1
                self._queue.append(frame)
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
        if self._ready is None:
            raise RuntimeError("open the microphone first: `async with MicrophoneSource(...)`")
        while True:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
            for frame in batch:
                yield frame
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


# --------------------------------------------------------------------------- sinks
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


class SpeakerSink:
    """Plays PCM16 on a sound card through a sounddevice OutputStream.

    The stream runs at the device's native rate; each written chunk is resampled to it and
    appended to a buffer that PortAudio's callback pulls from (silence when it runs dry). So
    :meth:`stop` only has to empty that buffer, under a lock, and the sound stops within one
    device buffer (tens of ms, see :data:`STREAM_LATENCY`). The stream is opened in the
    constructor so that a missing speaker is reported at start-up.
    """

    def __init__(self, device: str = "", *, stall_timeout_s: float = STALL_TIMEOUT_S) -> None:
        sd = _sounddevice()
        self.device = device
        self.stall_timeout_s = stall_timeout_s
        index = resolve_device(device, "output")
        info = _device_info(sd, index, "output")
        self.sample_rate = int(info["default_samplerate"])
        self.device_name = str(info["name"])
        self._chunks: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._empty_notified = True
        self._played = 0  # samples of real audio handed to the device
        self._closed = False
        self._stream, self.channels = _open_stream(
            sd.OutputStream,
            info,
            "output",
            device,
            device=index,
            samplerate=self.sample_rate,
            dtype="int16",
            latency=STREAM_LATENCY,
            callback=self._callback,
        )
        try:
            self._stream.start()
        except Exception as exc:
            self._stream.close(ignore_errors=True)
            raise AudioDeviceError(
                f"cannot start audio output device {self.device_name!r}: {exc}; {LIST_DEVICES_HINT}"
            ) from exc
        log.info("speaker: %s at %d Hz", self.device_name, self.sample_rate)

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        filled = 0
        with self._lock:
            while filled < frames and self._chunks:
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
        if notify and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_empty)

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
        data = np.frombuffer(resample_pcm16(pcm, sample_rate, self.sample_rate), dtype="<i2")
        if not len(data):
            return
        with self._lock:
            self._chunks.append(data)
            self._empty_notified = False
            self._idle.clear()

    async def drain(self) -> None:
        """Until the queue has played out; AudioDeviceError if the device stops taking audio."""
        loop = asyncio.get_running_loop()
        played, progress_at = self._played, loop.time()
        while not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 0.25)
            if self._played != played:
                played, progress_at = self._played, loop.time()
            elif (
                loop.time() - progress_at
                > (self.stall_timeout_s if self._played else STARTUP_TIMEOUT_S)
                and not self._idle.is_set()
            ):
                raise AudioDeviceError(
                    f"the audio output device {self.device_name!r} stopped playing; "
                    f"{LIST_DEVICES_HINT}"
                )
        if not self._closed:
            # What the callback handed to PortAudio last is still in the device's buffer.
            await asyncio.sleep(float(self._stream.latency))

    def stop(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._empty_notified = True
        self._idle.set()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        await _close_stream(self._stream)


async def _close_stream(stream: Any, timeout_s: float = 2.0) -> None:
    """Abort and close a PortAudio stream off the event loop.

    On a hung sound server PortAudio's abort blocks for about a minute; on the loop that would
    freeze every session (and Ctrl-C). A daemon thread finishes it whenever it can.
    """

    def close() -> None:
        with contextlib.suppress(Exception):
            stream.abort(ignore_errors=True)
        with contextlib.suppress(Exception):
            stream.close(ignore_errors=True)

    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run() -> None:
        close()
        with contextlib.suppress(RuntimeError):  # the loop may be gone by then
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    threading.Thread(target=run, name="portaudio-close", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout_s)
    except TimeoutError:
        log.warning("the audio device did not close within %.0f s; leaving it", timeout_s)


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
