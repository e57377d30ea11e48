"""Shared fixtures: the real offline models, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.datasets import Catalog
from cli.config import Config, load_config

SOS_DATA = Path(__file__).resolve().parents[2] / "shared" / "sos-data" / "sos_qa_pairs.jsonl"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def config() -> Config:
    """The default config as a CPU machine resolves it (environment ignored)."""
    return load_config(environ={})


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def sos_pairs_path() -> Path:
    """The 1,603 real SOS prompt/completion pairs from ../shared/sos-data."""
    if not SOS_DATA.is_file():
        pytest.skip(f"SOS data not found at {SOS_DATA}")
    return SOS_DATA


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Qwen3 with the real Qwen3 tokenizer, saved once per session."""
    from tests.tiny_models import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def services(config: Config):
    """The offline default models (catalog answerer, tiny.en, Piper joe), loaded once.

    Loaded with its own short-lived loop: Services holds thread pools and models, nothing tied
    to a particular event loop, so every async test can share it.
    """
    import asyncio

    from voice.services import Services

    loaded = asyncio.run(Services.load(config))
    yield loaded
    asyncio.run(loaded.aclose())


@pytest.fixture(scope="session")
def transcriber(services):
    """The offline default Whisper (tiny.en, CPU int8) with the SOS vocabulary: the one the
    shared ``services`` loaded, so a test session holds one copy of each model."""
    return services.transcriber


@pytest.fixture(scope="session")
def synthesizer(services):
    """The offline default Piper voice (joe, 22,050 Hz), shared with ``services``."""
    return services.synthesizer
