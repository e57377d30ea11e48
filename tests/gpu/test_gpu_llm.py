"""The local SOS model on a real GPU: Qwen3-4B's shape in 4-bit NF4 (random weights).

Skipped without CUDA (tests/conftest.py). Set SOS_GPU_MODEL_DIR to reuse a model folder built
by ``bench/llm_speed.py --model-dir`` (building one writes about 8 GB).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from llm.base import AnswerError, AnswerRequest, Link, TextDelta
from llm.config import LlmConfig
from llm.transformers import GenerationEngine, LoadedModel, load_model

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.llm_speed import build_qwen3_4b_shaped

    folder = os.environ.get("SOS_GPU_MODEL_DIR")
    path = Path(folder) if folder else tmp_path_factory.mktemp("qwen3-4b-shaped")
    return build_qwen3_4b_shaped(path, "cuda")


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedModel:
    return load_model(LlmConfig(base_model=str(model_dir), adapter=""), device="cuda:0")


async def collect(gen) -> str:
    return "".join([piece async for piece in gen])


def prompt(loaded: LoadedModel, question: str, repeat: int = 1) -> list[int]:
    from llm.chat_format import render_prompt

    text = render_prompt(loaded.tokenizer, [{"role": "user", "content": question * repeat}])
    return loaded.tokenizer.encode(text, add_special_tokens=False)


def test_4b_shape_loads_in_4bit_on_the_gpu(loaded: LoadedModel) -> None:
    import bitsandbytes as bnb

    layer = loaded.model.model.layers[0]
    assert isinstance(layer.mlp.down_proj, bnb.nn.Linear4bit)
    assert layer.mlp.down_proj.weight.device.type == "cuda"
    assert layer.mlp.down_proj.weight.quant_state.nested
    assert loaded.model.config.num_hidden_layers == 36
    # 4.0B parameters: ~1.9 GiB in NF4 + bf16 embeddings (0.7 GiB) and norms.
    assert 1.5 * 2**30 < loaded.gpu_memory_bytes < 4 * 2**30, loaded.describe()


async def test_concurrent_streams_and_cancel_on_the_gpu(loaded: LoadedModel) -> None:
    engine = GenerationEngine(loaded, max_batch=8, max_new_tokens=32)
    try:
        ids = [prompt(loaded, f"Question {i}: what causes a tsunami?") for i in range(8)]
        drop = engine.generate(ids[0], max_new_tokens=1000, ignore_eos=True)
        await anext(drop)
        rest = [asyncio.create_task(collect(engine.generate(i, ignore_eos=True))) for i in ids[1:]]
        await drop.aclose()
        answers = await asyncio.wait_for(asyncio.gather(*rest), 120)
        assert all(answers)
        stats = list(engine.finished)
        assert [s.generated_tokens for s in stats if s.finish_reason == "length"] == [32] * 7
        assert [s.generated_tokens < 32 for s in stats if s.finish_reason == "cancelled"] == [True]
        assert max(s.ttft_s or 0 for s in stats) < 10
    finally:
        await asyncio.to_thread(engine.close)


async def test_real_out_of_memory_ends_only_that_request(loaded: LoadedModel) -> None:
    """With the GPU nearly full, a huge prompt's prefill runs out of memory: that request ends
    with AnswerError, the running one finishes, and the engine serves the next request."""
    import torch

    engine = GenerationEngine(loaded, max_batch=4, max_new_tokens=64)
    hog = None
    try:
        running = engine.generate(prompt(loaded, "Hi"), max_new_tokens=64, ignore_eos=True)
        first = await anext(running)
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        hog = torch.empty(free - 768 * 2**20, dtype=torch.uint8, device="cuda")
        huge = prompt(loaded, "tsunami waves and earthquakes ", repeat=6000)  # ~30k tokens
        assert len(huge) < loaded.max_context
        with pytest.raises(AnswerError, match="memory"):
            await asyncio.wait_for(collect(engine.generate(huge)), 120)
        rest = await asyncio.wait_for(collect(running), 120)
        assert first and rest
        del hog
        hog = None
        torch.cuda.empty_cache()
        assert await asyncio.wait_for(collect(engine.generate(prompt(loaded, "Again?"))), 120)
        reasons = [s.finish_reason for s in engine.finished]
        assert reasons.count("error") == 1 and reasons.count("length") >= 1
    finally:
        del hog
        await asyncio.to_thread(engine.close)


async def test_answerer_end_to_end_on_the_gpu(tiny_qwen_dir: Path, catalog) -> None:
    """The tiny Qwen3 + real grounding on the GPU: text streams, the link is a catalog page."""
    from catalog.retrieval import Retriever
    from llm.transformers import TransformersAnswerer

    cfg = LlmConfig(base_model=str(tiny_qwen_dir), adapter="", max_new_tokens=24)
    tiny = load_model(cfg, device="cuda:0")
    answerer = TransformersAnswerer(
        cfg, catalog, Retriever.build(catalog, use_embeddings=False), tiny
    )
    try:
        events = [e async for e in answerer.stream(AnswerRequest(question="Tsunamis?"))]
    finally:
        await answerer.aclose()
    assert sum(isinstance(e, TextDelta) for e in events) >= 2
    links = [e for e in events if isinstance(e, Link)]
    assert len(links) <= 1 and all(catalog.is_catalog_url(link.url) for link in links)
