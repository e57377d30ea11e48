"""Choosing the answerer: auto rules, explicit choices, offline-safe model availability."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llm import factory
from llm.config import LlmConfig
from llm.factory import AnswererUnavailable, build_answerer, choose_answerer, model_source


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No hub, an empty HF cache of our own: checks must never touch the network here."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def retriever(catalog):
    from catalog.retrieval import Retriever

    return Retriever.build(catalog, use_embeddings=False)


def fake_cached(cache: Path, repo: str, filename: str) -> None:
    """Lay out one file as huggingface_hub caches it (refs/main -> snapshots/<sha>/file)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("abc123")
    snap = root / "snapshots" / "abc123"
    snap.mkdir(parents=True, exist_ok=True)
    (snap / filename).write_text("{}")


def test_model_source(tmp_path: Path, offline_hub: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert model_source(str(folder), "config.json") is None
    (folder / "config.json").write_text("{}")
    assert "local folder" in (model_source(str(folder), "config.json") or "")
    assert model_source(str(tmp_path / "missing"), "config.json") is None
    assert model_source("Qwen/Qwen3-4B", "config.json") is None  # offline, not cached
    fake_cached(offline_hub, "Qwen/Qwen3-4B", "config.json")
    assert "cache" in (model_source("Qwen/Qwen3-4B", "config.json") or "")


def test_auto_without_cuda_or_url_is_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "cuda_available", lambda: False)
    kind, reason = choose_answerer(LlmConfig())
    assert kind == "catalog" and "no CUDA" in reason and "base_url" in reason


def test_auto_with_url_is_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "cuda_available", lambda: False)
    kind, reason = choose_answerer(LlmConfig(base_url="http://gpu-server:8000/v1"))
    assert kind == "openai" and "gpu-server" in reason


def test_auto_with_cuda_and_cached_model_is_local(
    monkeypatch: pytest.MonkeyPatch, offline_hub: Path
) -> None:
    monkeypatch.setattr(factory, "cuda_available", lambda: True)
    cfg = LlmConfig(base_url="http://gpu-server:8000/v1")
    kind, reason = choose_answerer(cfg)
    assert kind == "openai" and "not cached" in reason and "offline" in reason
    fake_cached(offline_hub, cfg.base_model, "config.json")
    kind, reason = choose_answerer(cfg)
    assert kind == "openai" and "adapter" in reason  # base cached, adapter not
    fake_cached(offline_hub, cfg.adapter, "adapter_config.json")
    kind, reason = choose_answerer(cfg)
    assert kind == "transformers" and "CUDA" in reason and "cache" in reason


def test_explicit_choices_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(AnswererUnavailable, match="base_url"):
        choose_answerer(LlmConfig(answerer="openai"))
    with pytest.raises(AnswererUnavailable, match="base model"):
        choose_answerer(LlmConfig(answerer="transformers", base_model=str(tmp_path / "none")))
    with pytest.raises(AnswererUnavailable, match="offline"):
        choose_answerer(LlmConfig(answerer="transformers"))


def test_build_catalog_answerer(catalog, retriever, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm.factory")
    answerer, reason = build_answerer(LlmConfig(answerer="catalog"), catalog, retriever)
    assert answerer.name == "catalog" and "catalog" in reason
    assert any("answerer: catalog" in r.getMessage() for r in caplog.records)


async def test_build_openai_answerer(catalog, retriever) -> None:
    cfg = LlmConfig(answerer="openai", base_url="http://127.0.0.1:9/v1")
    answerer, _ = build_answerer(cfg, catalog, retriever)
    assert answerer.name == "openai"
    await answerer.aclose()


async def test_build_local_model_explicitly_on_cpu(tiny_qwen_dir: Path, catalog, retriever) -> None:
    pytest.importorskip("bitsandbytes")
    cfg = LlmConfig(answerer="transformers", base_model=str(tiny_qwen_dir), adapter="")
    answerer, reason = build_answerer(cfg, catalog, retriever)
    try:
        assert answerer.name == "transformers"
        assert "CPU" in reason and "4-bit NF4" in reason
    finally:
        await answerer.aclose()
