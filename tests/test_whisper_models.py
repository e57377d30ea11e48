"""The offline Whisper models that ship in registry packages: put together, checked, and heard
through for real (Whisper base from its two packages, on real espeak-ng speech)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from catalog.datasets import Catalog
from tests.speech import espeak_wav, read_pcm16
from voice import whisper_models
from voice.config import SttConfig
from voice.stt import SttError, Transcriber, bundled_model_path, resolve_model
from voice.whisper_models import BASE_SHA256, OfflineModelError, base_path

pytestmark = pytest.mark.slow


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return base_path(tmp_path_factory.mktemp("cache"))


def test_base_is_put_together_from_its_two_packages_and_checked(base_folder: Path) -> None:
    model = base_folder / "model.bin"
    assert _sha256(model) == BASE_SHA256
    assert {p.name for p in base_folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    stamp = model.stat().st_mtime_ns
    assert base_path(base_folder.parent) == base_folder  # found, not made again
    assert model.stat().st_mtime_ns == stamp


def test_parts_that_do_not_make_the_model_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(whisper_models, "BASE_SHA256", "0" * 64)
    with pytest.raises(OfflineModelError, match="reinstall"):
        base_path(tmp_path)
    left = list(tmp_path.rglob("*"))
    assert not [p for p in left if p.is_file()], left  # nothing half-made is left to load


def test_offline_names_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tiny = resolve_model(SttConfig(model="offline:tiny.en", device="cpu"))
    assert tiny == (str(bundled_model_path()), "cpu", "int8")
    model, device, _ = resolve_model(SttConfig(model="offline:base", device="cpu"))
    assert Path(model).parent == tmp_path / "sos-voice" and device == "cpu"
    with pytest.raises(SttError, match=r"offline:tiny\.en.*offline:base"):
        resolve_model(SttConfig(model="offline:large", device="cpu"))


def test_base_hears_a_visitor_question(base_folder: Path, catalog: Catalog, tmp_path: Path) -> None:
    """Loaded the way the kiosk loads it (SOS vocabulary, English), on real speech."""
    transcriber = Transcriber.load(SttConfig(model=str(base_folder), device="cpu"), catalog)
    assert transcriber.description == "faster-whisper base (offline) on cpu/int8, 20 s window"
    pcm, _ = read_pcm16(espeak_wav("Where do earthquakes happen?", tmp_path / "q.wav"))
    text = transcriber.transcribe(pcm).lower()
    assert "earthquake" in text, text
