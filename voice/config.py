"""The voice loop's settings: audio devices, VAD, speech-to-text, text-to-speech and the
pipeline, plus :class:`VoiceConfig`, everything a Session and the shared models read.

Each section is a frozen dataclass; ``config/default.toml`` holds the documented defaults and
must name exactly the fields declared (a test checks that). Loading them from files and the
environment is ``cli.config.load_config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from catalog.config import CatalogConfig
from llm.config import LlmConfig
from settings import ConfigError, build

Eagerness = Literal["off", "low", "medium", "high", "auto"]
EAGERNESS: tuple[Eagerness, ...] = ("off", "low", "medium", "high", "auto")
"""How readily a turn ends on its words (voice/turn_end.py); Realtime's semantic_vad names."""


ECHO_CANCELLATION = ("webrtc", "off", "headset")
"""How the live kiosk keeps from hearing itself (config/default.toml explains each)."""


@dataclass(frozen=True)
class AudioConfig:
    input_device: str = ""
    output_device: str = ""
    frame_ms: int = 30
    play: bool = True
    echo_cancellation: str = "webrtc"
    noise_suppression: bool = False

    def validate(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ConfigError(f"audio.frame_ms must be 10, 20 or 30, not {self.frame_ms}")
        if self.echo_cancellation not in ECHO_CANCELLATION:
            raise ConfigError(
                f"audio.echo_cancellation must be one of {', '.join(ECHO_CANCELLATION)}, "
                f"not {self.echo_cancellation!r}"
            )


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2
    start_frames: int = 4
    start_window: int = 6
    end_silence_ms: int = 500
    preroll_ms: int = 300
    min_speech_ms: int = 250
    max_turn_s: float = 20.0
    eagerness: str = "auto"
    unfinished_silence_ms: int = 1200

    def validate(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ConfigError(f"vad.aggressiveness must be 0..3, not {self.aggressiveness}")
        if not 1 <= self.start_frames <= self.start_window:
            raise ConfigError("vad.start_frames must be between 1 and vad.start_window")
        for name in ("end_silence_ms", "preroll_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name} must be >= 0")
        if self.max_turn_s <= 0:
            raise ConfigError("vad.max_turn_s must be > 0")
        if self.eagerness not in EAGERNESS:
            raise ConfigError(
                f"vad.eagerness must be one of {', '.join(EAGERNESS)}, not {self.eagerness!r}"
            )
        if not 0 <= self.unfinished_silence_ms <= 5000:
            raise ConfigError("vad.unfinished_silence_ms must be between 0 and 5000")


@dataclass(frozen=True)
class SttConfig:
    model: str = "auto"
    gpu_model: str = "distil-large-v3"
    device: str = "auto"
    compute_type: str = "auto"
    language: str = "en"
    beam_size: int = 5
    use_sos_vocabulary: bool = True
    hotwords: str = ""
    workers: int = 2
    encoder_window: str = "20"

    def validate(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"stt.device must be auto, cpu or cuda, not {self.device!r}")
        if self.beam_size < 1 or self.workers < 1:
            raise ConfigError("stt.beam_size and stt.workers must be >= 1")
        self.window_seconds("cpu")

    def window_seconds(self, device: str) -> float:
        """The shortest encoder window in seconds (30 = Whisper's full window on every call).
        20 is the default: it nearly halves tiny.en's time on a CPU, with fewer word errors on
        the visitor set than the full window (see :mod:`voice.whisper_window`). ``device`` is
        where the model runs: on CUDA the encoder is cheap and a short window only risks
        words, so it is always full there."""
        value = self.encoder_window.strip().lower()
        try:
            seconds = 30.0 if value == "full" else float(value)
        except ValueError:
            seconds = -1.0
        if not 10.0 <= seconds <= 30.0:
            raise ConfigError(
                "stt.encoder_window must be 'full' or seconds from 10 to 30, "
                f"not {self.encoder_window!r}"
            )
        return 30.0 if device == "cuda" else seconds


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "auto"
    length_scale: float = 1.0
    workers: int = 2

    def validate(self) -> None:
        if not 0.3 <= self.length_scale <= 3.0:
            raise ConfigError("tts.length_scale must be between 0.3 and 3.0")
        if self.workers < 1:
            raise ConfigError("tts.workers must be >= 1")


@dataclass(frozen=True)
class PipelineConfig:
    barge_in: bool = True
    half_duplex: bool = False
    resume_false_interruptions: bool = True
    early_stt: bool = True
    first_chunk_min_chars: int = 24
    max_history_turns: int = 6
    reprompt: str = "Sorry, I didn't catch that. Could you say it again?"
    reprompt_interval_s: float = 20.0

    def validate(self) -> None:
        if self.first_chunk_min_chars < 1 or self.max_history_turns < 0:
            raise ConfigError("pipeline.first_chunk_min_chars >= 1, max_history_turns >= 0")
        if not 0.0 <= self.reprompt_interval_s <= 3600.0:
            raise ConfigError("pipeline.reprompt_interval_s must be between 0 and 3600")


@dataclass(frozen=True)
class VoiceConfig:
    """What the voice loop reads. Build with ``cli.config.load_config``; never mutate (use
    :meth:`replace`)."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def replace(self, **sections: Mapping[str, Any]) -> Self:
        """A validated copy with some keys changed: ``cfg.replace(vad={"end_silence_ms": 300})``."""
        merged = dataclasses.asdict(self)
        for name, values in sections.items():
            if name not in merged:
                raise ConfigError(f"unknown config section [{name}]")
            merged[name].update(values)
        return build(type(self), merged, "override")
