"""Pipecat's Smart Turn v3, an audio end-of-turn model, as a candidate for the kiosk's
turn-taking (bench/turn_taking.py ``--turn-model``); not used by the product.

The word rules of :mod:`voice.turn_end` read Whisper's early transcript, which on a 2-core
kiosk arrives ~450 ms into the silence, and words miss what the voice says: "What causes..."
with a held pitch is unfinished whatever Whisper writes. Smart Turn (BSD-2-Clause, Daily) is a
Whisper-tiny encoder with a classifier head, trained to tell a finished turn from a pause by
the sound of its last 8 s; it returns the probability that the speaker is done, in ~0.1 s on
one core here.

Why it is not in the product: on this project's spoken sets (espeak-ng voices, a pause inside
one utterance; Piper cut mid-sentence) it does not tell finished questions from paused ones
(bench/README.md). Its weights ship inside the ``pipecat-ai`` wheel
(``pipecat/audio/turn/smart_turn/data``): ``pip install --no-deps pipecat-ai==1.14.0``. The
file is found without importing ``pipecat`` (its package init needs a dozen more packages).
The features are Whisper's log-mel of the zero-mean, unit-variance waveform, computed with
faster-whisper's :class:`FeatureExtractor` (already installed); this wrapper's probabilities
equal Pipecat's own ``LocalSmartTurnAnalyzerV3`` to 1e-4 on the same audio (checked).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

RATE = 16000
WINDOW_S = 8
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
PACKAGE_DATA = ("audio", "turn", "smart_turn", "data")

AudioVerdict = Literal["complete", "unfinished", "unsure"]


class TurnModelError(RuntimeError):
    """The end-of-turn model cannot be loaded (missing package or file, bad file)."""


def bundled_model_path() -> Path | None:
    """The model file inside the installed ``pipecat-ai`` package, or None."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*PACKAGE_DATA, MODEL_FILE)
        if path.is_file():
            return path
    return None


class SmartTurn:
    """One loaded Smart Turn model; :meth:`probability` is safe from any number of threads
    (an ONNX Runtime session's ``run`` is; the feature extractor holds no per-call state)."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:  # pragma: no cover - both are core dependencies
            raise TurnModelError(
                f"the turn model needs onnxruntime and faster-whisper: {exc}"
            ) from exc
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise TurnModelError(f"cannot load the turn model {str(path)!r}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [80, 100 * WINDOW_S]:
            raise TurnModelError(
                f"{str(path)!r} is not a Smart Turn v3 model (inputs {[i.shape for i in inputs]})"
            )
        self._input = inputs[0].name
        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)
        self.path = path
        self.description = f"Smart Turn v3 ({path.name})"

    @classmethod
    def load(cls, path: str = "") -> SmartTurn:
        """The model at ``path``, or the one bundled with ``pipecat-ai`` when ``path`` is ""."""
        if path:
            model = Path(path).expanduser()
            if not model.is_file():
                raise TurnModelError(f"no turn model file at {str(model)!r}")
        else:
            found = bundled_model_path()
            if found is None:
                raise TurnModelError(
                    "the Smart Turn model ships in the pipecat-ai wheel, which is not installed "
                    "(pip install --no-deps pipecat-ai==1.14.0)"
                )
            model = found
        started = time.perf_counter()
        loaded = cls(model)
        log.info("loaded %s in %.2f s", loaded.description, time.perf_counter() - started)
        return loaded

    def probability(self, pcm16: bytes) -> float:
        """How likely the speaker has finished their turn, from its audio so far (16 kHz mono
        PCM16; only the last 8 s count, as the model was trained)."""
        samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
        samples = samples[-RATE * WINDOW_S :] / 32768.0
        window = np.zeros(RATE * WINDOW_S, dtype=np.float32)
        if samples.size:
            window[-samples.size :] = samples  # padded at the front, as in training
        window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
        features = self._features(window, padding=0)[:, : 100 * WINDOW_S]
        out = self._session.run(None, {self._input: features[None].astype(np.float32)})[0]
        return float(np.asarray(out).ravel()[0])


# Probability bounds of the verdicts: Pipecat's 0.5 for "complete"; below 0.2 it is taken
# for a pause (a sweep on the tune part of bench/turn_taking.py found no better pair).
COMPLETE_AT = 0.5
UNFINISHED_BELOW = 0.2


def audio_verdict(probability: float) -> AudioVerdict:
    """The model's probability as a verdict :class:`voice.turn_end.TurnEndPolicy` acts on."""
    if probability >= COMPLETE_AT:
        return "complete"
    if probability < UNFINISHED_BELOW:
        return "unfinished"
    return "unsure"
