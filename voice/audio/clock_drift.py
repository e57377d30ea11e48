"""How much faster the speaker's clock runs than the microphone's, from the streams themselves.

A kiosk with a USB microphone and a separate speaker (HDMI, another USB device) has two
crystals, each within some 50-100 ppm of its nominal rate. The echo canceller (AEC3) is built
for one clock: fed a reference that gains or loses a sample every few thousand against the
microphone, its delay estimate and linear filter chase an echo that keeps moving, and echo
leaks through. Measured in simulated halls (``python bench/echo.py --drift-ppm 300``): the
echo removed fell from 39 to 30 dB, and a kiosk listening while it talked cut its own answer
14 times in 100 instead of never.

How: each device's true rate against the host's monotonic clock is the slope of the samples
it has moved (exact, counted at each of its callbacks) over when the callback ran (jittered by
a millisecond or so). A least-squares slope over two minutes of such points is good to well
under 1 ppm; the ratio of the two slopes is the drift. Counting one stream against the other
without times cannot do this: the speaker's count advances in whole blocks, and as the two
block grids slide past each other (once per block / drift seconds) the count's error is a whole
block, 30 ms, against a drift of 3 ms a minute at 50 ppm.

A stream that stops (the speaker closed, a stalled device) starts its estimate again. No kept
library does this for a Python audio path: WebRTC's drift compensation is part of its audio
device module, which this project does not use (PortAudio is).
"""

from __future__ import annotations

from collections import deque

import numpy as np

WINDOW_S = 120.0
"""How much of the recent stream each slope is fitted over (seconds of host time)."""
MIN_SPAN_S = 20.0
"""No estimate before both streams have been seen for this long."""
POINT_EVERY_S = 0.1
"""At most one point per stream per this much host time."""
GAP_S = 1.0
"""A stream silent for this long (host time) has stopped: its estimate starts again."""
MAX_DRIFT = 2e-3
"""Beyond 2,000 ppm it is not a crystal's drift but a wrong nominal rate or a broken stream."""


class _Rate:
    """One stream's seconds of audio (at its nominal rate) per second of host time."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque()
        self._total = 0.0
        self._last_at: float | None = None

    def add(self, seconds: float, at: float) -> None:
        """``seconds`` more audio moved by a callback at host time ``at``."""
        if self._last_at is not None and at - self._last_at > GAP_S:
            self._points.clear()  # the stream stopped: its count no longer follows its clock
        self._last_at = at
        self._total += seconds
        if not self._points or at - self._points[-1][0] >= POINT_EVERY_S:
            self._points.append((at, self._total))
            while self._points[0][0] < at - WINDOW_S:
                self._points.popleft()

    def slope(self) -> float | None:
        if len(self._points) < 3 or self._points[-1][0] - self._points[0][0] < MIN_SPAN_S:
            return None
        points = np.asarray(self._points, dtype=np.float64)
        at = points[:, 0] - points[:, 0].mean()
        moved = points[:, 1] - points[:, 1].mean()
        return float(np.dot(at, moved) / np.dot(at, at))


class ClockDrift:
    """Feed it both streams as their callbacks run; :meth:`ratio` is the speaker's seconds
    per microphone second (1.0 on one clock), or None while it cannot tell."""

    def __init__(self) -> None:
        self._speaker = _Rate()
        self._microphone = _Rate()

    def speaker(self, seconds: float, at: float) -> None:
        """The speaker's callback at host time ``at`` took ``seconds`` of audio."""
        self._speaker.add(seconds, at)

    def microphone(self, seconds: float, at: float) -> None:
        """The microphone's callback at host time ``at`` delivered ``seconds`` of audio."""
        self._microphone.add(seconds, at)

    def ratio(self) -> float | None:
        """The measured clock ratio, or None (too little seen, or not a plausible drift)."""
        speaker, microphone = self._speaker.slope(), self._microphone.slope()
        if speaker is None or microphone is None or microphone <= 0:
            return None
        ratio = speaker / microphone
        return ratio if abs(ratio - 1.0) <= MAX_DRIFT else None


class Stretch:
    """A stream resampled by a ratio within :data:`MAX_DRIFT` of 1: linear interpolation
    with a running phase, so the ratio may change between chunks and nothing is held back.

    Why not soxr (voice/audio/resample.py): at a ratio like 48,014.4 / 16,000 it picks a long
    filter whose held-back output shifted the reference by ~45 ms when the ratio was set
    (measured), which the echo canceller cannot follow. The correction here moves the signal
    by a sample every few thousand; linear interpolation between 16 kHz samples softens only
    what is near 8 kHz, where speech (and the echo) has little energy.
    """

    def __init__(self) -> None:
        self._last: float | None = None  # the previous chunk's last sample
        self._phase = 0.0  # where the next output falls, in samples after ``_last``

    def process(self, samples: np.ndarray, step: float) -> np.ndarray:
        """``step`` input samples per output sample (the speaker's clock over the
        microphone's); returns float64 samples."""
        x = np.asarray(samples, dtype=np.float64)
        if not len(x):
            return x
        if self._last is None:
            buf, phase = x, self._phase
        else:
            buf, phase = np.concatenate([[self._last], x]), self._phase
        last = len(buf) - 1
        count = int(np.floor((last - phase) / step)) + 1 if phase <= last else 0
        at = phase + step * np.arange(count)
        out = np.interp(at, np.arange(len(buf)), buf)
        self._phase = (at[-1] + step - last) if count else phase - last
        self._last = float(buf[-1])
        return out
