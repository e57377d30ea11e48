"""Turn detection: when did the visitor start speaking, and when have they finished?

:class:`Endpointer` is a pure state machine over fixed-size frames (no I/O, no asyncio, no
clocks): the same frames always give the same events, it costs microseconds per frame on the
event loop, and tests can drive it with real recordings and exact expectations.

Two detectors vote on each frame:

* webrtcvad (GMM-based, good at telling voice from steady noise, but it flags clicks, music
  and some broadband noise as speech);
* an energy gate against an adaptive noise floor, so that a frame only counts as voiced if it
  is also clearly louder than the room. The gate has hysteresis: a turn needs
  ``START_MARGIN_DB`` above the floor to begin, while inside a turn ``CONTINUE_MARGIN_DB``
  suffices, so that soft word endings do not end the turn early.

Why SpeechStarted waits for ``min_speech_ms``: the Realtime protocol pairs every
speech_started with a speech_stopped, and barge-in cancels the answer on speech_started. A
door slam must do neither, so a candidate turn is announced only once it has lasted
``min_speech_ms`` (its ``audio_ms`` is still the true start); shorter candidates vanish without
events. The cost is at most ``min_speech_ms`` of extra delay before a barge-in.

Why a turn's start is judged again when it opens: a frame is judged against the noise floor
known *at that frame*. When a stream begins with speech (a WAV with no leading silence, a
push-to-talk recording or a WebSocket stream that starts mid-word) there is no floor yet: the
first word is louder than every estimate, and it took the first pause between words to pull
the floor down, so "Where do earthquakes happen?" was heard as "quakes happen". When a turn
opens, the frames just before it are judged again against the floor as it is known now, and
the turn starts at the earliest of them that is speech (within ``START_LOOKBACK_MS``, with
gaps no longer than ``START_GAP_MS``); when the floor falls by ``RESCAN_DROP_DB`` outside a
turn, the look-back is searched for a turn the old floor hid; and before a turn ends, the
frames since its last voiced one are judged again, so a soft last syllable is not cut.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import numpy as np
import webrtcvad

from voice.audio.format import SAMPLE_RATE
from voice.audio.framing import frame_bytes
from voice.config import VadConfig
from voice.events import SpeechStarted, SpeechStopped

TRAILING_KEEP_MS = 150
"""Silence kept after the last voiced frame in a turn's audio (Whisper likes a little)."""
ABSOLUTE_FLOOR_DBFS = -60.0
"""Frames quieter than this are never speech (digital silence, a muted microphone)."""
START_LOOKBACK_MS = 1500
"""How far before an opening turn its frames are judged again (a long first word or two)."""
START_GAP_MS = 240
"""The longest pause between re-judged speech frames that still belongs to the same turn."""
RESCAN_DROP_DB = 6.0
"""A fall of the start threshold this large outside a turn judges the look-back again."""


def frame_energy_dbfs(frame: bytes) -> float:
    """RMS level of a PCM16 frame in dB relative to full scale (silence is clamped to -130)."""
    x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    rms = math.sqrt(float(np.dot(x, x)) / max(len(x), 1))
    return 20.0 * math.log10(max(rms, 1e-2) / 32768.0)


class _Heard(NamedTuple):
    """One frame with what the detectors said of it, kept so that it can be judged again."""

    frame: bytes
    level: float
    speechlike: bool

    def voiced(self, threshold: float) -> bool:
        """Speech by both detectors against a noise-floor threshold (of now or of then)."""
        return self.speechlike and self.level > threshold


class NoiseFloor:
    """How loud the room is, so that only frames clearly louder than it can count as speech.

    The reference level is the median frame level of the last ``HISTORY_S`` of background
    (every frame outside a turn, and the unvoiced frames inside one): a median ignores the
    short bursts of speech that precede a turn's detection. Two things keep it honest:

    * a lower envelope (falls within tens of ms to any quieter frame, rises slowly) caps the
      reference, so a stream that *begins* with speech is not taken for a loud room: the
      first pause between words pulls the cap down;
    * the margins grow with the spread of the background (median minus 10th percentile):
      steady white noise varies by tenths of a dB from frame to frame, pink (fan-like) noise
      by several dB, and a fixed margin would be either deaf in a quiet room or fooled in
      a noisy one.

    Starting a turn needs ``START_MARGIN_DB + 2 * spread`` above the reference; keeping a
    turn going needs only ``CONTINUE_MARGIN_DB + spread`` (hysteresis), so soft word endings
    do not end a turn, while steady noise after the question does not prolong it. When the
    envelope caps the median (the background holds speech: a stream that began with it), the
    spread is zero: it would measure the speech, and the cap already allows for the room's.

    The margins (5 dB, and at most 1.5 dB of spread, doubled, to start) were chosen on the
    tune part of ``python bench/noise.py``: with 6 dB and 3 dB, a question spoken 10 dB over
    a hall's babble opened a turn only one time in four, because babble's frame levels
    spread by several dB and the start threshold rose to 12 dB over the babble's median.
    """

    HISTORY_S = 2.0
    START_MARGIN_DB = 5.0
    CONTINUE_MARGIN_DB = 4.0
    MAX_SPREAD_DB = 1.5
    ENVELOPE_CAP_DB = 8.0
    ENVELOPE_FALL_TAU_S = 0.05
    ENVELOPE_RISE_DB_PER_S = 6.0

    def __init__(self, frame_ms: int) -> None:
        self._levels: deque[float] = deque(maxlen=max(1, round(self.HISTORY_S * 1000 / frame_ms)))
        self._fall = 1.0 - math.exp(-frame_ms / 1000.0 / self.ENVELOPE_FALL_TAU_S)
        self._rise = self.ENVELOPE_RISE_DB_PER_S * frame_ms / 1000.0
        self._envelope: float | None = None
        self._cached: tuple[float, float] | None = None

    def track(self, level: float) -> None:
        """Every frame's level feeds the lower envelope."""
        if self._envelope is None or level < self._envelope:
            env = level if self._envelope is None else self._envelope
            self._envelope = env + self._fall * (level - env)
        else:
            self._envelope = min(level, self._envelope + self._rise)
        self._cached = None

    def add_background(self, level: float) -> None:
        """A frame known not to be speech feeds the median."""
        self._levels.append(level)
        self._cached = None

    def _reference(self) -> tuple[float, float] | None:
        if self._cached is None and self._levels and self._envelope is not None:
            levels = sorted(self._levels)  # ~70-200 values: cheaper than np.percentile
            p10, p50 = levels[len(levels) // 10], levels[len(levels) // 2]
            capped = self._envelope + self.ENVELOPE_CAP_DB
            if p50 > capped:  # the median holds speech: the cap already allows for spread
                self._cached = (capped, 0.0)
            else:
                self._cached = (p50, min(p50 - p10, self.MAX_SPREAD_DB))
        return self._cached

    def threshold(self, in_turn: bool) -> float:
        """The level a frame must exceed to count as speech (-inf before any background)."""
        ref = self._reference()
        if ref is None:
            return -math.inf
        level, spread = ref
        if in_turn:
            return level + self.CONTINUE_MARGIN_DB + spread
        return level + self.START_MARGIN_DB + 2.0 * spread


class Endpointer:
    """webrtcvad-based turn detection over 16 kHz mono PCM16 frames of ``frame_ms``.

    Speech starts after ``cfg.start_frames`` voiced frames within the last
    ``cfg.start_window`` frames; the start offset is the first voiced frame of that window,
    and ``cfg.preroll_ms`` of audio before it is kept so the first syllable is not cut. The
    turn ends after ``cfg.end_silence_ms`` without a voiced frame (its end offset is the end of
    the last voiced frame), or is forced to end ``cfg.max_turn_s`` after its start. Turns
    whose speech (start to last voiced frame) is shorter than ``cfg.min_speech_ms`` are
    dropped without any event. The frame counts are literal frames of ``frame_ms``.

    Offsets (``audio_ms``) count from the first frame ever processed; :meth:`reset` forgets a
    turn in progress but not the position in the stream or the noise estimate.
    """

    def __init__(self, cfg: VadConfig, frame_ms: int = 30) -> None:
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), not {frame_ms}")
        cfg.validate()
        self.cfg = cfg
        self.frame_ms = frame_ms
        self.frame_bytes = frame_bytes(frame_ms)
        self._vad = webrtcvad.Vad(cfg.aggressiveness)
        self._preroll_frames = math.ceil(cfg.preroll_ms / frame_ms)
        self._end_frames = max(1, math.ceil(cfg.end_silence_ms / frame_ms))
        self._keep_frames = math.ceil(min(TRAILING_KEEP_MS, cfg.end_silence_ms) / frame_ms)
        self._max_frames = max(1, math.floor(cfg.max_turn_s * 1000 / frame_ms))  # never longer
        self._lookback_frames = math.ceil(START_LOOKBACK_MS / frame_ms)
        self._gap_frames = max(1, START_GAP_MS // frame_ms)
        self._index = 0  # index of the next frame in the stream
        self._noise = NoiseFloor(frame_ms)
        self.reset()

    # ------------------------------------------------------------------ public
    @property
    def in_speech(self) -> bool:
        """True between a SpeechStarted and its SpeechStopped."""
        return self._confirmed

    @property
    def position_ms(self) -> int:
        """How much audio has been processed, in ms."""
        return self._index * self.frame_ms

    def reset(self) -> None:
        """Forget any turn in progress and the pre-roll (e.g. after the input was cleared)."""
        self._window: deque[bool] = deque(maxlen=self.cfg.start_window)
        self._history: deque[_Heard] = deque(
            maxlen=self._preroll_frames + self._lookback_frames + self.cfg.start_window
        )
        self._turn: list[bytes] | None = None  # audio of the open (candidate) turn
        self._turn_first = 0  # stream index of the turn's first audio frame (pre-roll)
        self._start = 0  # stream index of the first voiced frame
        self._last_voiced = 0  # stream index of the latest voiced frame
        self._confirmed = False
        self._hold_frames: int | None = None  # a longer end silence for unfinished words
        self._preroll_from = self._index  # pre-roll never reaches back before this frame
        self._rescan_above = -math.inf  # highest start threshold since the last look-back

    def process(self, frame: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Feed one frame; returns the events it caused (usually none)."""
        if len(frame) != self.frame_bytes:
            raise ValueError(
                f"VAD frame must be {self.frame_bytes} bytes ({self.frame_ms} ms of 16 kHz mono "
                f"PCM16), got {len(frame)}"
            )
        index = self._index
        self._index += 1
        heard = self._hear(frame)
        voiced = self._is_voiced(heard)
        self._history.append(heard)
        if self._turn is None:
            self._window.append(voiced)
            if sum(self._window) >= self.cfg.start_frames:
                return self._open_turn(index)
            return self._open_missed_turn(index)
        self._turn.append(frame)
        events: list[SpeechStarted | SpeechStopped] = []
        if voiced:
            self._last_voiced = index
            self._hold_frames = None  # the visitor went on: the next silence is judged anew
            events += self._maybe_confirm()
        silent_too_long = index - self._last_voiced >= (self._hold_frames or self._end_frames)
        if silent_too_long and self._speech_went_on(index):
            silent_too_long = False
        too_long = index + 1 - self._start >= self._max_frames
        if silent_too_long or too_long:
            events += self._close_turn(forced=too_long and not silent_too_long)
        return events

    def early_audio(self) -> bytes | None:
        """The audio this turn will have if it ends in the current silence, or None.

        Returned once, on the frame where the trailing silence reaches what a closed turn keeps
        of it: from then on, if the visitor says nothing more, :class:`SpeechStopped` carries
        exactly these bytes. The pipeline transcribes them while the end-of-turn silence is
        still running, so the transcript is (nearly) ready when the turn is declared over.
        """
        if self._turn is None or not self._confirmed:
            return None
        if self._index != self._last_voiced + 1 + self._keep_frames:
            return None
        return b"".join(self._turn[: self._index - self._turn_first])

    @property
    def silence_from_ms(self) -> int | None:
        """Where the trailing silence of a confirmed turn began (the end of its last voiced
        frame), or None when no confirmed turn is open."""
        if self._turn is None or not self._confirmed:
            return None
        return (self._last_voiced + 1) * self.frame_ms

    @property
    def silence_ms(self) -> int | None:
        """How long the trailing silence of a confirmed turn has lasted, or None."""
        start = self.silence_from_ms
        return None if start is None else self.position_ms - start

    def end_now(self) -> list[SpeechStopped]:
        """End the open turn in its current silence: its words sound finished.

        Only once the silence has reached what a closed turn keeps of it, so the turn's audio is
        exactly what :meth:`early_audio` returned (the early transcript is of these bytes).
        """
        if self._turn is None or not self._confirmed:
            return []
        if self._index < self._last_voiced + 1 + self._keep_frames:
            return []
        return [e for e in self._close_turn() if isinstance(e, SpeechStopped)]

    def hold(self, silence_ms: int) -> None:
        """Wait up to ``silence_ms`` (never less than ``end_silence_ms``) in the current
        silence before ending the turn: its words sound unfinished. Speech resets it."""
        if self._turn is not None:
            self._hold_frames = max(self._end_frames, math.ceil(silence_ms / self.frame_ms))

    def flush(self) -> list[SpeechStopped]:
        """End of the stream: close an open turn if it was long enough."""
        if self._turn is None:
            return []
        return [e for e in self._close_turn() if isinstance(e, SpeechStopped)]

    # ------------------------------------------------------------------ internals
    def _hear(self, frame: bytes) -> _Heard:
        """What both detectors say of a frame on its own (no noise floor yet)."""
        level = frame_energy_dbfs(frame)
        speechlike = level >= ABSOLUTE_FLOOR_DBFS and self._vad.is_speech(frame, SAMPLE_RATE)
        return _Heard(frame, level, speechlike)

    def _is_voiced(self, heard: _Heard) -> bool:
        """webrtcvad's verdict, vetoed when the frame is not clearly louder than the room."""
        in_turn = self._turn is not None
        voiced = heard.voiced(self._noise.threshold(in_turn))
        self._noise.track(heard.level)
        if not (in_turn and voiced):
            self._noise.add_background(heard.level)
        return voiced

    @property
    def _oldest(self) -> int:
        """Stream index of the oldest frame still in the history."""
        return self._index - len(self._history)

    def _heard_at(self, index: int) -> _Heard:
        """The history's frame at stream ``index`` (``_oldest`` <= index < ``_index``)."""
        return self._history[index - self._oldest]

    def _speech_began_at(self, first_voiced: int) -> int:
        """The earliest frame before ``first_voiced`` that is speech by today's noise floor.

        Walks back over the history while speech frames follow each other with gaps of at
        most ``START_GAP_MS``; never before ``_preroll_from`` (the previous turn's end).
        """
        threshold = self._noise.threshold(in_turn=False)
        begin = first_voiced
        index = first_voiced - 1
        stop = max(self._oldest, self._preroll_from, first_voiced - self._lookback_frames)
        while index >= stop and begin - index <= self._gap_frames:
            if self._heard_at(index).voiced(threshold):
                begin = index
            index -= 1
        return begin

    def _speech_went_on(self, index: int) -> bool:
        """Before a turn ends, the frames since its last voiced one are judged again.

        The floor may have fallen since they were judged (it is learned during the first turn
        of a stream that began with speech), and a soft last syllable is then speech after all.
        Moves ``_last_voiced`` and returns True if that leaves the silence too short to end.
        """
        threshold = self._noise.threshold(in_turn=True)
        for i in range(index, max(self._last_voiced, self._oldest - 1), -1):
            if self._heard_at(i).voiced(threshold):
                self._last_voiced = i
                return index - i < self._end_frames
        return False

    def _open_turn(self, index: int) -> list[SpeechStarted | SpeechStopped]:
        window = list(self._window)
        base = index - len(window) + 1  # stream index of window[0]
        voiced_at = [base + i for i, flag in enumerate(window) if flag]
        return self._start_turn(index, voiced_at[0], voiced_at[-1])

    def _open_missed_turn(self, index: int) -> list[SpeechStarted | SpeechStopped]:
        """A turn the old noise floor hid, found when the floor has just dropped.

        When the floor falls by ``RESCAN_DROP_DB`` (the first quiet frame after a stream that
        began with speech), the frames still in the look-back are judged again; if they hold
        ``start_frames`` voiced frames within ``start_window``, the turn is opened where they
        begin, and closed at once if its end-of-turn silence has already passed.
        """
        threshold = self._noise.threshold(in_turn=False)
        if threshold >= self._rescan_above - RESCAN_DROP_DB:
            self._rescan_above = max(self._rescan_above, threshold)
            return []
        self._rescan_above = threshold
        since = max(self._oldest, self._preroll_from, index + 1 - self._lookback_frames)
        voiced_at = [i for i in range(since, index + 1) if self._heard_at(i).voiced(threshold)]
        width, need = self.cfg.start_window, self.cfg.start_frames
        for k in range(len(voiced_at) - need + 1):
            if voiced_at[k + need - 1] - voiced_at[k] < width:
                events = self._start_turn(index, voiced_at[k], voiced_at[-1])
                if index - self._last_voiced >= self._end_frames:
                    events += self._close_turn()
                return events
        return []

    def _start_turn(
        self, index: int, first_voiced: int, last_voiced: int
    ) -> list[SpeechStarted | SpeechStopped]:
        first_voiced = self._speech_began_at(first_voiced)
        first = max(self._oldest, first_voiced - self._preroll_frames, self._preroll_from)
        self._turn = [heard.frame for heard in list(self._history)[first - self._oldest :]]
        self._turn_first = first
        self._start = first_voiced
        self._last_voiced = last_voiced
        self._window.clear()
        return self._maybe_confirm()

    def _maybe_confirm(self) -> list[SpeechStarted | SpeechStopped]:
        if self._confirmed:
            return []
        speech_ms = (self._last_voiced + 1 - self._start) * self.frame_ms
        if speech_ms < self.cfg.min_speech_ms:
            return []
        self._confirmed = True
        return [SpeechStarted(audio_ms=self._start * self.frame_ms)]

    def _close_turn(self, *, forced: bool = False) -> list[SpeechStarted | SpeechStopped]:
        assert self._turn is not None
        events: list[SpeechStarted | SpeechStopped] = []
        if self._confirmed:
            end = min(self._index, self._last_voiced + 1 + self._keep_frames)
            audio = b"".join(self._turn[: end - self._turn_first])
            events.append(
                SpeechStopped(
                    audio_ms=(self._last_voiced + 1) * self.frame_ms, audio=audio, forced=forced
                )
            )
        self._turn = None
        self._confirmed = False
        self._hold_frames = None
        self._window.clear()
        # The next turn's pre-roll must not repeat this turn's audio (after a forced end the
        # speaker is still talking; after a short end_silence_ms the pre-roll could reach back).
        self._preroll_from = self._index
        self._rescan_above = -math.inf
        return events
