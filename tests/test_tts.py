"""Text-to-speech on the real offline Piper voice (joe), checked by ear: Whisper listens back."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from voice.config import TtsConfig
from voice.stt import Transcriber
from voice.tts import Synthesizer, TtsError, load_voice, resolve_voice

pytestmark = pytest.mark.slow

# Sentences Piper's joe voice and tiny.en agree on (measured); with the words to hear back.
SENTENCES = [
    "Hurricanes draw their energy from warm sea surface temperatures.",
    "Ocean acidification happens when seawater absorbs carbon dioxide.",
    "Arctic sea ice shrinks every summer and grows back in winter.",
    "The jet stream steers storms across North America.",
]
KEYS = [
    ["hurrican", "energy", "warm", "sea", "surface", "temperature"],
    ["ocean", "acidification", "carbon", "dioxide"],
    ["arctic", "sea", "ice", "summer", "winter"],
    ["jet", "stream", "storms", "america"],
]


def seconds(pcm: bytes, rate: int) -> float:
    return len(pcm) / 2 / rate


def rms_dbfs(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    return 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)


def heard(keys: list[str], text: str, share: float = 0.75) -> bool:
    """Most key words (or their stems) are in the text. Not all: Piper samples its prosody, so
    one take in a few loses a word to tiny.en ("Our canes draw ..."); a wrong or garbled
    sentence still fails."""
    found = re.findall(r"[a-z0-9]+", text.lower())
    hits = sum(any(w.startswith(k) for w in found) for k in keys)
    return hits >= share * len(keys)


@pytest.fixture(scope="module")
def listener(transcriber: Transcriber) -> Transcriber:
    """Whisper at beam 5: the most reliable ear this machine has (same model, no reload)."""
    return transcriber.with_options(beam_size=5)


def test_voice_and_rate(synthesizer: Synthesizer) -> None:
    assert synthesizer.sample_rate == 22050
    assert synthesizer.description.startswith("piper en_US-joe-medium (bundled), 22050 Hz")


def test_a_sentence_is_real_speech(synthesizer: Synthesizer, listener: Transcriber) -> None:
    chunks = list(synthesizer.synthesize(SENTENCES[0]))
    assert len(chunks) == 1
    pcm = chunks[0]
    assert len(pcm) % 2 == 0
    assert 2.0 < seconds(pcm, synthesizer.sample_rate) < 8.0
    assert rms_dbfs(pcm) > -30.0, "audible, not near-silence"
    text = listener.transcribe(pcm, synthesizer.sample_rate)
    assert heard(KEYS[0], text), text


def test_chunks_stream_one_per_sentence(synthesizer: Synthesizer) -> None:
    text = " ".join(SENTENCES[1:])
    stream = synthesizer.synthesize(text)
    first = next(stream)  # one sentence synthesized, the rest not yet
    rest = list(stream)
    assert len(rest) == 2
    rate = synthesizer.sample_rate
    total = seconds(first, rate) + sum(seconds(c, rate) for c in rest)
    assert seconds(first, rate) < 0.6 * total, "the first chunk is one sentence, not the answer"
    assert all(seconds(c, rate) > 0.8 for c in rest)


def test_the_generator_is_lazy(synthesizer: Synthesizer) -> None:
    """Barge-in stops between sentences: an unconsumed or closed generator costs nothing."""
    stream = synthesizer.synthesize("One. Two. Three.")
    assert len(next(stream)) > 0
    stream.close()
    assert list(stream) == []


@pytest.mark.parametrize("text", ["", "   ", "...", "\n\n", "🌊 🌍", "—"])
def test_nothing_to_say_yields_nothing(synthesizer: Synthesizer, text: str) -> None:
    assert list(synthesizer.synthesize(text)) == []


def test_length_scale_slows_speech(synthesizer: Synthesizer) -> None:
    rate = synthesizer.sample_rate
    slow = synthesizer.with_options(length_scale=1.6)
    assert "length_scale 1.6" in slow.description
    normal_s = seconds(b"".join(synthesizer.synthesize(SENTENCES[2])), rate)
    slow_s = seconds(b"".join(slow.synthesize(SENTENCES[2])), rate)
    assert slow_s > 1.3 * normal_s


def test_concurrent_synthesis(synthesizer: Synthesizer, listener: Transcriber) -> None:
    rate = synthesizer.sample_rate
    serial = [seconds(b"".join(synthesizer.synthesize(s)), rate) for s in SENTENCES]
    jobs = SENTENCES * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        outputs = list(pool.map(lambda s: b"".join(synthesizer.synthesize(s)), jobs))
    for sentence, pcm in zip(jobs, outputs, strict=True):
        expected = serial[SENTENCES.index(sentence)]
        # Piper samples its durations, so renderings differ a little; a mix-up would not.
        assert abs(seconds(pcm, rate) - expected) < 0.2 * expected, sentence
        assert rms_dbfs(pcm) > -30.0
    for i, pcm in enumerate(outputs):  # each thread got its own sentence, whole
        text = listener.transcribe(pcm, rate)
        assert heard(KEYS[i % len(SENTENCES)], text), (jobs[i], text)


# ----------------------------------------------------------------------- voice errors


def test_auto_is_the_bundled_joe_voice() -> None:
    model, config, label = resolve_voice(TtsConfig())
    assert model.name == "en_US-joe-medium.onnx" and model.is_file()
    assert config.name == "en_US-joe-medium.onnx.json" and config.is_file()
    assert label == "en_US-joe-medium (bundled)"


def test_missing_voice_file(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.onnx"
    with pytest.raises(TtsError, match="no such Piper voice file") as info:
        Synthesizer.load(TtsConfig(voice=str(missing)))
    assert str(missing) in str(info.value)


def test_voice_without_its_json(tmp_path: Path) -> None:
    model, _, _ = resolve_voice(TtsConfig())
    lonely = tmp_path / "joe.onnx"
    lonely.symlink_to(model)
    with pytest.raises(TtsError, match=r"joe\.onnx\.json is missing"):
        Synthesizer.load(TtsConfig(voice=str(lonely)))


def test_not_an_onnx_path(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match=r"must be 'auto' or a Piper \.onnx file"):
        Synthesizer.load(TtsConfig(voice=str(tmp_path)))


def test_corrupt_voice(tmp_path: Path) -> None:
    _, config, _ = resolve_voice(TtsConfig())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    shutil.copy(config, tmp_path / "bad.onnx.json")
    with pytest.raises(TtsError, match="cannot load the Piper voice"):
        Synthesizer.load(TtsConfig(voice=str(bad)))


def test_a_copied_voice_loads_from_a_path(tmp_path: Path) -> None:
    model, config, _ = resolve_voice(TtsConfig())
    (tmp_path / "v.onnx").symlink_to(model)
    shutil.copy(config, tmp_path / "v.onnx.json")
    got, got_config, label = resolve_voice(TtsConfig(voice=str(tmp_path / "v.onnx")))
    assert got == tmp_path / "v.onnx" and got_config == tmp_path / "v.onnx.json"
    assert label == str(tmp_path / "v.onnx")


def test_the_voice_session_keeps_no_plan_per_sentence_length() -> None:
    """ONNX Runtime's memory pattern would keep one plan per input length, forever (see
    voice/tts.py); the arena, which levels off, stays on."""
    model, config, _ = resolve_voice(TtsConfig())
    options = load_voice(model, config).session.get_session_options()
    assert options.enable_mem_pattern is False
    assert options.enable_cpu_mem_arena is True


def test_corrupt_voice_config(tmp_path: Path) -> None:
    model, _, _ = resolve_voice(TtsConfig())
    (tmp_path / "v.onnx").symlink_to(model)
    (tmp_path / "v.onnx.json").write_text("{not json")
    with pytest.raises(TtsError, match="cannot load the Piper voice"):
        Synthesizer.load(TtsConfig(voice=str(tmp_path / "v.onnx")))
