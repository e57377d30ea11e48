"""Acoustic echo cancellation for an open-speaker kiosk: WebRTC's AEC3, fed what was played.

A kiosk's speaker is a metre from its microphone. Without cancelling, the assistant hears its
own answer, the VAD takes it for a visitor, and barge-in cancels the answer. This module
removes that echo from the microphone before the VAD and Whisper see it.

Why WebRTC's canceller (through the ``livekit`` package's ``AudioProcessingModule``) and not
our own adaptive filter or speex's: AEC3 estimates the render-to-capture delay itself (device
buffers, a loopback's latency, drift between two sound cards), has a residual echo suppressor
for what the linear filter leaves, and measured best on the same echo recordings
(``python bench/echo.py``; the numbers and the comparison with speexdsp are in
bench/README.md).

The reference is what the speaker *actually* handed to the sound card, block by block, taken
in the PortAudio callback (:class:`EchoReference`), not what the assistant meant to say: a
barge-in that empties the speaker's queue, a stall, or silence between answers are all in it,
and its timing is the device's. The canceller feeds all reference that has arrived before each
microphone frame, so the reference always leads its echo; AEC3 finds the rest of the delay.

:class:`EchoCanceller` also measures how well it works (:attr:`EchoCanceller.converged`): the
session listens while it talks only when the echo is shown to be removed (or the microphone
does not hear the speaker at all); until then it is half duplex.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from time import monotonic

import numpy as np

from voice.audio.clock_drift import ClockDrift, Stretch
from voice.audio.format import SAMPLE_RATE
from voice.audio.framing import Framer
from voice.audio.resample import PcmStream
from voice.audio.webrtc_apm import APM_FRAME, new_apm
from voice.audio.webrtc_apm import frame as apm_frame

log = logging.getLogger(__name__)

MAX_REFERENCE_S = 2.0
"""Reference not yet consumed beyond this is dropped, oldest first: a microphone that stopped
delivering must not let the speaker's audio pile up (AEC3 cannot use reference this old)."""


REFERENCE_HOLD_FRAMES = 50
"""The meter counts a microphone frame as "while playing" when any reference frame of the
last 0.5 s was loud: the echo arrives up to a few hundred ms after its reference is fed."""


GATE_DB = 18.0
"""While the speaker plays, a microphone frame the canceller removed more than this from
(dB) is taken to hold only echo, and its leftover is lowered to the room's floor (see
:meth:`EchoCanceller._gate`; chosen on the tune part of ``python bench/echo.py``)."""

BELOW_ECHO_DB = 20.0
"""While the speaker plays, what is left more than this under the echo's usual level at the
microphone (dB) is taken for leftover echo, not a visitor (see :meth:`EchoCanceller._gate`)."""

DRIFT_CHECK_FRAMES = 100
"""How often (10 ms frames) the clock ratio is looked at."""
DRIFT_STEP = 20e-6
"""Stretch the reference anew when the measured ratio moves by 20 ppm (what is left, a 1 ms
shift of the echo every 50 s, AEC3 follows; about twice the estimate's error, so its noise
does not keep nudging the reference)."""

MIN_FLOOR_DB = -90.0
"""The room's floor is never taken as lower than this (dBFS): a virtual or digital microphone
is exactly silent between answers, and an inaudible residual must not count as loud over it."""


class EchoReference:
    """What the speaker handed to the sound card, in order, for the canceller.

    :meth:`push` runs in PortAudio's callback thread and only appends under a lock (no
    resampling there: the callback must return within its block); :meth:`take` runs on the
    event loop and drains it.
    """

    def __init__(self) -> None:
        self._blocks: deque[tuple[np.ndarray, int, float]] = deque()
        self._samples = 0
        self._lock = threading.Lock()
        self.dropped_s = 0.0

    def push(self, block: np.ndarray, sample_rate: int, at: float | None = None) -> None:
        """One block of mono int16 as handed to the device (silence included), now or at the
        ``time.monotonic()`` given (a simulation's clock)."""
        pushed_at = monotonic() if at is None else at
        with self._lock:
            self._blocks.append((block, sample_rate, pushed_at))
            self._samples += len(block)
            while self._samples > MAX_REFERENCE_S * sample_rate and len(self._blocks) > 1:
                old, rate, _ = self._blocks.popleft()
                self._samples -= len(old)
                self.dropped_s += len(old) / rate

    def take(self, until: float | None = None) -> list[tuple[np.ndarray, int, float]]:
        """What was pushed since the last call, oldest first, with when it was pushed: all
        of it, or only the blocks pushed at or before ``until`` (a ``time.monotonic()``)."""
        taken = []
        with self._lock:
            while self._blocks and (until is None or self._blocks[0][2] <= until):
                block, rate, pushed_at = self._blocks.popleft()
                self._samples -= len(block)
                taken.append((block, rate, pushed_at))
        return taken


@dataclass(frozen=True)
class EchoHealth:
    """How the canceller is doing, from the last seconds of playback (levels in dB)."""

    playing_s: float  # seconds of sound from the speaker seen so far
    echo_db: float  # microphone while playing, over the room's floor: is there echo at all?
    erle_db: float  # echo return loss enhancement: level removed while playing (median)
    residual_db: float  # the loudest 1 % of what reaches the VAD while playing, over the floor
    leak_db: float  # the loudest 5 % of it, over the floor
    floor_db: float = MIN_FLOOR_DB  # the room's level with the speaker silent (dBFS)


class ConvergenceMeter:
    """Decides from levels alone whether the echo is gone, so barge-in can be trusted.

    Over the last ten seconds of the speaker playing: the room's floor (the quietest tenth of
    the microphone over the last half minute of the speaker silent), the microphone while
    the speaker plays over that floor (is there echo at all?), the level the canceller
    removes (ERLE, median), and the loudest 1 % and 5 % of what reaches the VAD after the
    canceller's gate, over the floor. A canceller is trusted when it removes at least
    ``erle_db`` *and* its loudest 1 % stays within ``residual_db`` of the floor: WebRTC's
    suppressor lowers the median even when its filter has not learned the echo, and in a
    reverberant hall it lets a burst through every few seconds while removing 40 dB the rest
    of the time; one burst is one self-interruption, so the rare loud frames are what
    counts. In such a room the kiosk stays half duplex (bench/echo.py measures how often). A
    microphone that does not hear the speaker (a headset) has nothing to remove: trusted.

    Trust is lost again when the median ERLE falls under ``lost_erle_db`` or the loudest 5 %
    rise ``lost_leak_db`` over the floor. A visitor who talks over an answer is loud too:
    the first few hundred ms of it do not cost the trust, a longer stretch does, and the
    kiosk then answers half duplex until ten seconds of clean playing have earned it back.
    """

    def __init__(
        self,
        *,
        min_playing_s: float = 1.5,
        erle_db: float = 15.0,
        residual_db: float = 10.0,
        echo_db: float = 6.0,
        lost_erle_db: float = 6.0,
        lost_leak_db: float = 15.0,
        window_frames: int = 1000,
        floor_frames: int = 3000,
    ) -> None:
        self.min_playing_s = min_playing_s
        self.min_erle_db = erle_db
        self.max_residual_db = residual_db
        self.min_echo_db = echo_db
        self.lost_erle_db = lost_erle_db
        self.lost_leak_db = lost_leak_db
        self._quiet: deque[float] = deque(maxlen=floor_frames)
        self._playing_in: deque[float] = deque(maxlen=window_frames)
        self._playing_out: deque[float] = deque(maxlen=window_frames)
        self._playing_passed: deque[float] = deque(maxlen=window_frames)
        self._playing_frames = 0
        self._converged = False
        self._last = EchoHealth(0.0, 0.0, 0.0, 0.0, 0.0)  # as of the last verdict

    def add(
        self,
        reference_db: float,
        mic_in_db: float,
        mic_out_db: float,
        passed_db: float | None = None,
    ) -> None:
        """One 10 ms frame's levels (dBFS): the reference, the microphone, the canceller's
        output and what was passed on after the gate (the output, without one)."""
        if reference_db < -70.0:
            self._quiet.append(mic_in_db)
        elif reference_db > -50.0:
            self._playing_frames += 1
            self._playing_in.append(mic_in_db)
            self._playing_out.append(mic_out_db)
            self._playing_passed.append(mic_out_db if passed_db is None else passed_db)
            if self._playing_frames % 10 == 0:
                self._last = self.health
                self._converged = self._judge(self._last)

    @property
    def floor_db(self) -> float:
        """The room's level with the speaker silent (dBFS), as of the last verdict."""
        return self._last.floor_db

    @property
    def echo_present(self) -> bool:
        """The microphone hears the speaker, as of the last verdict."""
        return self._last.echo_db >= self.min_echo_db

    @property
    def echo_level_db(self) -> float:
        """The microphone's median level while the speaker plays (dBFS), as of the last
        verdict."""
        return self._last.echo_db + self._last.floor_db

    def _judge(self, health: EchoHealth) -> bool:
        if health.playing_s < self.min_playing_s:
            return False
        if health.echo_db < self.min_echo_db:
            return True
        if self._converged:
            return health.erle_db >= self.lost_erle_db and health.leak_db <= self.lost_leak_db
        return health.erle_db >= self.min_erle_db and health.residual_db <= self.max_residual_db

    @property
    def health(self) -> EchoHealth:
        playing_s = self._playing_frames * APM_FRAME / SAMPLE_RATE
        if not self._playing_in:
            return EchoHealth(playing_s, 0.0, 0.0, 0.0, 0.0)
        floor = max(MIN_FLOOR_DB, float(np.percentile(self._quiet or self._playing_in, 10)))
        playing_in = np.asarray(self._playing_in)
        playing_out = np.asarray(self._playing_out)
        return EchoHealth(
            playing_s,
            float(np.median(playing_in)) - floor,
            float(np.median(playing_in - playing_out)),
            float(np.percentile(self._playing_passed, 99)) - floor,
            float(np.percentile(self._playing_passed, 95)) - floor,
            floor,
        )

    @property
    def converged(self) -> bool:
        """Echo shown removed (or absent) over enough playback to trust barge-in."""
        return self._converged


def _level_db(frame: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-120 for digital silence)."""
    if not len(frame):
        return -120.0
    rms = math.sqrt(float(np.mean(np.square(frame.astype(np.float64)))))
    return max(-120.0, 20.0 * math.log10(max(rms, 1e-9) / 32768.0))


class EchoCanceller:
    """Microphone frames in, the same frames with the speaker's echo removed out.

    ``reference`` is filled by the speaker (:class:`voice.audio.speaker.SpeakerSink`);
    ``delay_ms`` is a starting hint of render-to-capture delay (output plus input latency of
    the streams); AEC3 refines it. ``noise_suppression`` turns on WebRTC's suppressor too.
    Frames are 16 kHz mono PCM16 of any multiple of 10 ms; a remainder is held for the next.
    """

    def __init__(
        self,
        reference: EchoReference,
        *,
        delay_ms: int = 0,
        noise_suppression: bool = False,
        meter: ConvergenceMeter | None = None,
        gate_db: float | None = GATE_DB,
    ) -> None:
        self.reference = reference
        self.gate_db = gate_db
        self.meter = meter or ConvergenceMeter()
        self._apm = new_apm(echo_cancellation=True, noise_suppression=noise_suppression)
        self._delay_ms = max(0, int(delay_ms))
        self._streams: dict[int, PcmStream] = {}  # the speaker's rate(s) to 16 kHz
        self._drift = ClockDrift()
        self._stretch = Stretch()
        self._ratio = 1.0  # the speaker's clock over the microphone's, as compensated now
        self._frames = 0
        self._dropped_s = 0.0
        self._far = np.zeros(0, dtype=np.int16)  # reference at 16 kHz not yet fed
        self._near = Framer(10)  # microphone bytes short of a 10 ms frame wait here
        self._recent_far_db: deque[float] = deque([-120.0], maxlen=REFERENCE_HOLD_FRAMES)

    @property
    def converged(self) -> bool:
        return self.meter.converged

    @property
    def health(self) -> EchoHealth:
        return self.meter.health

    def process(self, pcm16: bytes, captured_at: float | None = None) -> bytes:
        """Cancel the echo in a microphone frame; returns as many whole 10 ms frames as are
        ready (the same length as the input when it is a multiple of 10 ms).

        ``captured_at`` is when the sound card delivered the frame (``time.monotonic()``, see
        :meth:`voice.audio.microphone.MicrophoneSource.timed_frames`): only the speaker's
        audio handed over before then is fed first. Without it, all of it is. It matters when
        the event loop falls behind (two busy cores): frames then arrive here in bursts, and
        feeding all the reference before a burst would shift the echo's delay by the burst's
        length each time, which AEC3 must find again, letting echo through meanwhile.
        """
        if captured_at is not None:
            self._drift.microphone(len(pcm16) / 2 / SAMPLE_RATE, captured_at)
        self._feed_reference(captured_at)
        out = bytearray()
        for ten_ms in self._near.push(pcm16):
            self._frames += 1
            if self._frames % DRIFT_CHECK_FRAMES == 0:
                self._follow_drift()
            frame = bytearray(ten_ms)
            mic_in_db = _level_db(np.frombuffer(frame, dtype="<i2"))
            self._apm.set_stream_delay_ms(self._delay_ms)  # AEC3 expects it before each frame
            self._apm.process_stream(apm_frame(frame))
            mic_out_db = _level_db(np.frombuffer(frame, dtype="<i2"))
            far_db = max(self._recent_far_db)
            passed = self._gate(frame, far_db, mic_in_db, mic_out_db)
            passed_db = mic_out_db if passed is frame else _level_db(np.frombuffer(passed, "<i2"))
            self.meter.add(far_db, mic_in_db, mic_out_db, passed_db)
            out += passed
        return bytes(out)

    def _gate(
        self, frame: bytearray, far_db: float, in_db: float, out_db: float
    ) -> bytes | bytearray:
        """Lower a frame that holds only leftover echo to the room's floor.

        AEC3 leaves short bursts in a reverberant hall (its filter is shorter than the
        room's tail), 10-20 dB over a quiet room's floor, mostly in the pauses of the answer
        when the microphone's echo decays: enough for the VAD to open a turn on the kiosk's
        own voice. While the speaker plays, two kinds of frame are taken for leftover echo:
        one the canceller took more than ``gate_db`` out of, and one whose output is more
        than :data:`BELOW_ECHO_DB` under the echo's usual level at the microphone. A visitor
        who talks over an answer is about as loud there as the echo (that is what barge-in
        is measured at: 0 and -6 dB), the canceller leaves most of them, and they pass.
        """
        if (
            self.gate_db is None
            or far_db <= -50.0
            or not self.meter.echo_present
            or out_db <= self.meter.floor_db
        ):
            return frame
        echo_only = in_db - out_db >= self.gate_db
        below_echo = out_db < self.meter.echo_level_db - BELOW_ECHO_DB
        if not (echo_only or below_echo):
            return frame
        scale = 10.0 ** ((self.meter.floor_db - out_db) / 20.0)
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) * scale
        return np.round(samples).astype("<i2").tobytes()

    @property
    def drift_ppm(self) -> float:
        """How much faster the speaker's clock runs than the microphone's, as compensated
        (parts per million; 0 until measured, or on one clock)."""
        return (self._ratio - 1.0) * 1e6

    def _follow_drift(self) -> None:
        """Stretch the reference onto the microphone's clock when the measured ratio has
        moved (:mod:`voice.audio.clock_drift`): a second of the speaker's audio lasts
        1 / ratio seconds of the microphone's."""
        ratio = self._drift.ratio()
        if ratio is None or abs(ratio - self._ratio) < DRIFT_STEP:
            return
        log.info(
            "echo cancelling: the speaker's clock runs %+.0f ppm against the microphone's; "
            "its audio is stretched to match",
            (ratio - 1.0) * 1e6,
        )
        self._ratio = ratio

    def _feed_reference(self, until: float | None) -> None:
        """Hand AEC3 the speaker audio played (until then), in 10 ms frames."""
        if self.reference.dropped_s != self._dropped_s:  # a gap the clocks cannot be read over
            self._dropped_s = self.reference.dropped_s
            self._drift = ClockDrift()
        for block, rate, pushed_at in self.reference.take(until):
            if until is not None:  # real (or simulated) callback times: the clocks can be read
                self._drift.speaker(len(block) / rate, pushed_at)
            stream = self._streams.get(rate)
            if stream is None:
                stream = self._streams[rate] = PcmStream(rate, SAMPLE_RATE)
            pcm = np.frombuffer(stream.convert(block.astype("<i2").tobytes()), dtype="<i2")
            if self._ratio != 1.0:  # onto the microphone's clock
                stretched = self._stretch.process(pcm, self._ratio)
                pcm = np.clip(np.round(stretched), -32768, 32767).astype(np.int16)
            self._far = np.concatenate([self._far, pcm])
        whole = len(self._far) // APM_FRAME * APM_FRAME
        for start in range(0, whole, APM_FRAME):
            frame = self._far[start : start + APM_FRAME]
            self._recent_far_db.append(_level_db(frame))
            self._apm.process_reverse_stream(apm_frame(bytearray(frame.tobytes())))
        self._far = self._far[whole:]
