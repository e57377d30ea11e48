"""Whisper on a window shorter than 30 seconds (the CPU default): the same decoding, in about
half the time.

Why: faster-whisper pads every call to Whisper's 30 s window, and on a CPU the encoder over
that window is most of a turn's transcription: tiny.en's encoder alone took 457 ms of a
~650 ms call on two cores for a 3 s question, 27 s of it padding. The encoder itself accepts a
shorter input (CTranslate2 slices the position embeddings; whisper.cpp offers the same as
``audio_ctx``), and its cost falls with the window. How short is safe was measured on the
visitor set's tune part (96 questions, two espeak-ng voices, clean and over babble; word
error rate en-us clean / babble, en-gb clean / babble, and the median time per call):

    30 s (faster-whisper)  0.167 / 0.425, 0.178 / 0.368   ~650 ms
    20 s                   0.154 / 0.414, 0.169 / 0.404   ~360 ms
    15 s                   0.151 / 0.549, 0.174 / 0.401   ~300 ms
    10 s                   0.187 / 0.538, 0.178 / 0.447   ~250 ms

Clean speech is heard as well in any window; over babble, windows under 20 s lose words. So
the setting (``stt.encoder_window``) is offered at 20 s and up, growing in 5 s steps with the
turn. 20 s is the CPU default: on the whole visitor set (313 questions, two voices, clean and
babble) it has fewer word errors than the full window on every row. It was opt-in first,
because the voice-control test's "Show me the hurricanes." was heard "Show me my
vericanes." and spoken commands matched clip names by spelling; they match by sound too now
(:mod:`sphere.choosing`). Made the default once, it was taken back when the real-echo-path
test failed twice in the suite (a barge-in heard as nothing, the kiosk cutting its own answer);
since a barge-in pauses the answer and the words decide (:mod:`voice.interruptions`), that test
passes in it.

One thing differs besides the window: the audio is padded with silence before the log-mel, as
Whisper's reference code pads it and as it was trained, where faster-whisper pads the finished
features with zeros. In a 20 s window the zero features weakened the SOS vocabulary's pull:
espeak-ng's "What causes a tsunami?" (six renderings, three voices) came out "What causes us
to army?" three times, and five questions' key words were heard in 27 of 30 renderings (30 of
30 padded with silence, as in the full window); Piper's "Tsunamis are giant waves ..." 9 of 12
(10 of 12 with silence, 12 of 12 in the full window that day). (The window table above was
measured with zero features.)

Everything else is faster-whisper's own: its log-mel features, its prompt (the vocabulary as
``hotwords``, a per-call ``initial_prompt``), its token suppression and its scores, so the
transcript guards in :mod:`voice.stt` read the same numbers. Audio of 30 s or more goes
through faster-whisper's ``transcribe`` unchanged, and so does a turn whose window transcript
the guards reject: the window is a shortcut, and the full window decides what it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

FULL_WINDOW_S = 30.0
FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s, 100 mel frames a second
WINDOW_STEP_FRAMES = 500  # windows grow by 5 s


@dataclass(frozen=True)
class WindowSegment:
    """One decoded window, with the fields faster-whisper's ``Segment`` carries that the
    transcript guards read."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def window_frames(feature_frames: int, min_window_s: float) -> int | None:
    """The encoder window for ``feature_frames`` of log-mel features: at least
    ``min_window_s``, rounded up to a 5 s step; None when only the full 30 s window fits (or
    ``min_window_s`` asks for it)."""
    least = max(round(min_window_s * 100), feature_frames)
    if least >= FULL_WINDOW_FRAMES:
        return None
    return -(-least // WINDOW_STEP_FRAMES) * WINDOW_STEP_FRAMES  # 3000 is a whole step


def decode_window(
    model: WhisperModel,
    audio: np.ndarray,
    *,
    min_window_s: float,
    language: str,
    beam_size: int,
    max_new_tokens: int,
    hotwords: str = "",
    prompt: str | None = None,
) -> WindowSegment | None:
    """Transcribe ``audio`` (16 kHz float32) in one window of at most 30 s; None when it
    needs the full window (then use faster-whisper's ``transcribe``).

    Blocking and thread-safe (it reads the shared model, never changes it). ``language`` must
    be set: a window this short is not used to detect one.
    """
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    hop = model.feature_extractor.hop_length
    frames = window_frames(audio.size // hop + 1, min_window_s)
    if frames is None:
        return None
    # Silence to the window's end, then the log-mel: the padding is what Whisper was trained
    # on (its reference code pads the waveform), not faster-whisper's zero features, which a
    # short window is more sensitive to (see the module docstring).
    silent = np.pad(audio, (0, frames * hop - audio.size))  # frames > audio.size // hop
    features = model.feature_extractor(silent)[:, :frames]  # it adds one hop: frames + 1
    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
    tokens = model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=hotwords)
    result = model.model.generate(
        model.encode(features),
        [tokens],
        beam_size=beam_size,
        max_length=min(len(tokens) + max_new_tokens, model.max_length),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )[0]
    ids = result.sequences_ids[0]
    text = tokenizer.decode(ids).strip()
    # faster-whisper's average log probability: the summed score over the tokens and the end.
    avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
    return WindowSegment(
        text=text,
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(result.no_speech_prob),
        compression_ratio=get_compression_ratio(text),
    )
