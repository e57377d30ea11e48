"""The local SOS model path on a tiny random Qwen3 (same architecture as Qwen3-4B), on the CPU.

Real code paths throughout: bitsandbytes NF4 loading, a peft LoRA adapter made by a short
training run here, merging, the continuous-batching engine, the answerer with the real
retriever and grounding guard. Answers are gibberish (random weights); what is checked is the
machinery: streaming, batching correctness, cancellation, failure isolation, links.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from catalog.datasets import Catalog
from llm.base import AnswerError, AnswerRequest, ChatMessage, Link, TextDelta
from llm.config import LlmConfig
from llm.transformers import (
    GenerationEngine,
    LoadedModel,
    TransformersAnswerer,
    load_model,
)

pytest.importorskip("bitsandbytes")

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MEMO_ANSWER = (
    "Tsunamis are giant ocean waves, most often set off by undersea earthquakes.\n"
    "More information: https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"
)


def train_tiny_adapter(base_dir: Path, out_dir: Path, steps: int = 8, lr: float = 2e-2) -> Path:
    """A real LoRA adapter (r=8, alpha=32, dropout 0.05, all 7 projections): a few AdamW steps
    on one memorizable answer, so its B matrices are non-zero. Saved like training/ saves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm.chat_format import render_example

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    torch.manual_seed(0)
    lora = LoraConfig(
        r=8, lora_alpha=32, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, lora)
    prompt, completion = render_example(
        tokenizer, [{"role": "user", "content": "What causes a tsunami?"}], MEMO_ANSWER
    )
    ids = torch.tensor([prompt + completion])
    n = len(completion)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    peft_model.train()
    for _ in range(steps):
        # Logits for the completion only: the 151k-token vocabulary dominates the cost.
        logits = peft_model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits, ids[0, -n:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(str(out_dir))
    return out_dir


def tiny_cfg(base: Path, **overrides: object) -> LlmConfig:
    values: dict[str, object] = {
        "base_model": str(base),
        "adapter": "",
        "load_in_4bit": True,
        "temperature": 0.0,
        "max_new_tokens": 12,
        "max_batch": 4,
        "timeout_s": 120.0,
    }
    values.update(overrides)
    return LlmConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def adapter_dir(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_adapter(tiny_qwen_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="module")
def base_4bit(tiny_qwen_dir: Path) -> LoadedModel:
    return load_model(tiny_cfg(tiny_qwen_dir), device="cpu")


@pytest.fixture(scope="module")
def lora_4bit(tiny_qwen_dir: Path, adapter_dir: Path) -> LoadedModel:
    return load_model(tiny_cfg(tiny_qwen_dir, adapter=str(adapter_dir)), device="cpu")


@pytest.fixture(scope="module")
def retriever(catalog: Catalog):
    from catalog.retrieval import Retriever

    return Retriever.build(catalog, use_embeddings=False)


@pytest.fixture
async def engine(base_4bit: LoadedModel):
    eng = GenerationEngine(base_4bit, max_batch=4, max_new_tokens=12, temperature=0.0)
    yield eng
    await asyncio.to_thread(eng.close)


async def until(condition, timeout: float = 10.0) -> None:
    """Wait for the worker thread to reach a state (it updates after delivering)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def collect(gen) -> str:
    return "".join([piece async for piece in gen])


def prompt_ids(loaded: LoadedModel, question: str) -> list[int]:
    from llm.chat_format import render_prompt

    text = render_prompt(loaded.tokenizer, [{"role": "user", "content": question}])
    return loaded.tokenizer.encode(text, add_special_tokens=False)


async def greedy(loaded: LoadedModel, ids: list[int], n: int = 8) -> str:
    eng = GenerationEngine(loaded, max_batch=1, max_new_tokens=n, temperature=0.0)
    try:
        return await collect(eng.generate(ids, ignore_eos=True))
    finally:
        await asyncio.to_thread(eng.close)


# ---- loading ----------------------------------------------------------------------------------


def test_loads_4bit_nf4_double_quant(base_4bit: LoadedModel) -> None:
    import bitsandbytes as bnb

    model = base_4bit.model
    linears = [m for n, m in model.named_modules() if n.endswith(tuple(LORA_TARGETS))]
    assert len(linears) == 7 * model.config.num_hidden_layers
    for layer in linears:
        assert isinstance(layer, bnb.nn.Linear4bit)
        assert layer.weight.quant_type == "nf4"
        assert layer.weight.quant_state.nested, "double quantization"
    assert base_4bit.quantized and base_4bit.device == "cpu" and base_4bit.load_s > 0
    assert base_4bit.max_context == 4096
    assert "4-bit NF4" in base_4bit.describe()


async def test_lora_adapter_loads_and_changes_output(
    base_4bit: LoadedModel, lora_4bit: LoadedModel
) -> None:
    import torch
    from peft import PeftModel

    assert isinstance(lora_4bit.model, PeftModel)
    lora_b = [p for n, p in lora_4bit.model.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 7 * 2 and all(torch.count_nonzero(p) > 0 for p in lora_b)
    ids = prompt_ids(base_4bit, "What causes a tsunami?")
    assert await greedy(base_4bit, ids) != await greedy(lora_4bit, ids)


def _first_logits(loaded: LoadedModel, ids: list[int]):
    import torch

    with torch.inference_mode():
        return loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_merge_into_4bit_keeps_the_adapter(
    tiny_qwen_dir: Path, adapter_dir: Path, base_4bit: LoadedModel, lora_4bit: LoadedModel
) -> None:
    import bitsandbytes as bnb
    from peft import PeftModel

    merged = load_model(
        tiny_cfg(tiny_qwen_dir, adapter=str(adapter_dir), merge_adapter=True), device="cpu"
    )
    assert merged.merged and not isinstance(merged.model, PeftModel)
    assert isinstance(merged.model.model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    assert not any("lora" in n for n, _ in merged.model.named_modules())
    ids = prompt_ids(base_4bit, "What causes a tsunami?")
    with_lora = _first_logits(lora_4bit, ids)
    # Merged (one rounding to NF4 of base + delta) is closer to base + LoRA than the base is.
    to_merged = (_first_logits(merged, ids) - with_lora).abs().mean()
    to_base = (_first_logits(base_4bit, ids) - with_lora).abs().mean()
    assert to_merged < to_base


async def test_merged_model_folder_without_adapter(
    tiny_qwen_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir), dtype=torch.float32)
    PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().save_pretrained(tmp_path)
    full = load_model(tiny_cfg(tmp_path, load_in_4bit=False), device="cpu")  # no tokenizer there
    assert not full.quantized and not full.adapter
    text = await greedy(full, prompt_ids(full, "What causes a tsunami?"), n=4)
    assert text


# ---- the engine -------------------------------------------------------------------------------


async def test_streams_several_pieces(engine: GenerationEngine, base_4bit: LoadedModel) -> None:
    pieces = [p async for p in engine.generate(prompt_ids(base_4bit, "Hi"), ignore_eos=True)]
    assert len(pieces) >= 3 and all(pieces)
    stats = engine.finished[-1]
    assert stats.finish_reason == "length" and stats.generated_tokens == 12
    assert stats.ttft_s is not None and stats.ttft_s <= stats.total_s


async def test_batched_equals_sequential(tiny_qwen_dir: Path) -> None:
    """Continuous batching (left padding, staggered admission, cache merging) changes nothing:
    each session gets exactly the greedy answer it would get alone."""
    full = load_model(tiny_cfg(tiny_qwen_dir, load_in_4bit=False), device="cpu")
    questions = ["What causes a tsunami?", "Hi", "Why do hurricanes spin?", "Tell me more!!"]
    ids = [prompt_ids(full, q) for q in questions]
    alone = [await greedy(full, i, n=10) for i in ids]
    eng = GenerationEngine(full, max_batch=3, max_new_tokens=10, temperature=0.0)
    try:

        async def late(i: list[int], delay: float) -> str:
            await asyncio.sleep(delay)
            return await collect(eng.generate(i, ignore_eos=True))

        together = await asyncio.gather(*(late(i, 0.02 * n) for n, i in enumerate(ids)))
    finally:
        await asyncio.to_thread(eng.close)
    assert together == alone


async def test_cancel_frees_the_worker(engine: GenerationEngine, base_4bit: LoadedModel) -> None:
    engine.max_batch = 1  # the second request can only run once the first is gone
    ids = prompt_ids(base_4bit, "Tell me everything about the ocean.")
    first = engine.generate(ids, max_new_tokens=400, ignore_eos=True)
    got = [await anext(first) for _ in range(2)]
    second = asyncio.create_task(collect(engine.generate(ids, max_new_tokens=5, ignore_eos=True)))
    await first.aclose()
    assert all(got) and await asyncio.wait_for(second, 120)
    reasons = {s.finish_reason: s.generated_tokens for s in engine.finished}
    assert reasons["length"] == 5
    assert reasons["cancelled"] < 10, "the cancelled request stopped within a step or two"
    await until(lambda: engine.active == 0 and engine.waiting == 0)


async def test_cancel_one_of_a_batch(engine: GenerationEngine, base_4bit: LoadedModel) -> None:
    ids = prompt_ids(base_4bit, "Hi")
    keep = asyncio.create_task(collect(engine.generate(ids, max_new_tokens=30, ignore_eos=True)))
    drop = engine.generate(ids, max_new_tokens=400, ignore_eos=True)
    await anext(drop)
    await drop.aclose()
    assert await asyncio.wait_for(keep, 120)
    stats = {s.finish_reason: s.generated_tokens for s in engine.finished}
    assert stats["length"] == 30 and stats["cancelled"] < 30


async def test_prompt_longer_than_the_model_fails_alone(
    engine: GenerationEngine, base_4bit: LoadedModel
) -> None:
    ok = asyncio.create_task(collect(engine.generate(prompt_ids(base_4bit, "Hi"))))
    with pytest.raises(AnswerError, match="context"):
        await collect(engine.generate([100] * 5000))
    assert await asyncio.wait_for(ok, 120) is not None


async def test_failure_in_prefill_ends_only_that_request(
    engine: GenerationEngine, base_4bit: LoadedModel
) -> None:
    """A real exception inside the model's forward, for one request of a batch being admitted:
    that request gets AnswerError; the two admitted with it answer; the worker lives on."""
    poison = base_4bit.tokenizer.convert_tokens_to_ids("<|box_start|>")

    def hook(module, args):
        input_ids = args[0]
        if input_ids.shape[1] > 1 and (input_ids == poison).any():
            raise RuntimeError("poisoned prompt")

    handle = base_4bit.model.get_input_embeddings().register_forward_pre_hook(hook)
    try:
        good = prompt_ids(base_4bit, "Hi")
        bad = [*good[:-3], poison, *good[-3:]]
        results = await asyncio.gather(
            *(collect(engine.generate(i, ignore_eos=True)) for i in (good, bad, good)),
            return_exceptions=True,
        )
    finally:
        handle.remove()
    assert isinstance(results[1], AnswerError) and "poisoned prompt" in str(results[1])
    assert isinstance(results[0], str) and results[0] == results[2]
    assert await collect(engine.generate(good)) is not None


async def test_out_of_memory_in_decode_ends_the_newest(
    engine: GenerationEngine, base_4bit: LoadedModel
) -> None:
    import torch

    fired: list[int] = []

    def hook(module, args):
        if args[0].shape == (3, 1) and not fired:
            fired.append(1)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    handle = base_4bit.model.get_input_embeddings().register_forward_pre_hook(hook)
    try:
        ids = [prompt_ids(base_4bit, q) for q in ("Hi", "Hello", "Hey")]
        results = await asyncio.gather(
            *(collect(engine.generate(i, ignore_eos=True)) for i in ids), return_exceptions=True
        )
    finally:
        handle.remove()
    errors = [r for r in results if isinstance(r, AnswerError)]
    assert len(errors) == 1 and "out of memory" in str(errors[0])
    assert sum(isinstance(r, str) and bool(r) for r in results) == 2
    assert [s.generated_tokens for s in engine.finished if s.finish_reason == "length"] == [12, 12]


# ---- the answerer -----------------------------------------------------------------------------


@pytest.fixture
async def answerer(tiny_qwen_dir: Path, catalog: Catalog, retriever, lora_4bit: LoadedModel):
    ans = TransformersAnswerer(tiny_cfg(tiny_qwen_dir), catalog, retriever, lora_4bit)
    yield ans
    await ans.aclose()


async def answer(ans, request: AnswerRequest) -> tuple[list[str], list[Link]]:
    texts: list[str] = []
    links: list[Link] = []
    async for event in ans.stream(request):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            assert isinstance(event, Link)
            links.append(event)
    return texts, links


async def test_answerer_streams_and_links_a_catalog_page(answerer, catalog: Catalog) -> None:
    assert answerer.name == "transformers"
    texts, links = await answer(answerer, AnswerRequest(question="What causes a tsunami?"))
    assert len(texts) >= 2
    assert len(links) <= 1 and all(catalog.is_catalog_url(link.url) for link in links)


@pytest.fixture(scope="module")
def lora_full(tiny_qwen_dir: Path, adapter_dir: Path) -> LoadedModel:
    return load_model(
        tiny_cfg(tiny_qwen_dir, adapter=str(adapter_dir), load_in_4bit=False), device="cpu"
    )


async def test_four_concurrent_sessions_get_their_own_answers(
    tiny_qwen_dir: Path, catalog: Catalog, retriever, lora_full: LoadedModel
) -> None:
    """Each of four concurrent sessions gets exactly the answer it gets alone.

    In full precision (float32, the adapter unmerged), where batching is exact. Under 4-bit
    the compute is bfloat16, whose logits on this random model are often exactly tied, and a
    batch's shape changes the order of its sums: a greedy token then flips now and then (seen
    once in CI), which says nothing about whose answer is whose. The 4-bit engine's batching
    (admission, cancelling one of a batch) is exercised by the engine tests above.
    """
    cfg = tiny_cfg(tiny_qwen_dir, load_in_4bit=False)
    answerer = TransformersAnswerer(cfg, catalog, retriever, lora_full)
    try:
        questions = ["What causes a tsunami?", "Why do hurricanes spin?", "What is El Niño?", "Hi"]
        requests = [AnswerRequest(question=q, audience="kids") for q in questions]
        together = await asyncio.gather(*(answer(answerer, r) for r in requests))
        alone = [await answer(answerer, r) for r in requests]
    finally:
        await answerer.aclose()
    assert ["".join(t) for t, _ in together] == ["".join(t) for t, _ in alone]
    assert len({"".join(t) for t, _ in together}) > 1


async def test_history_is_trimmed_to_the_budget(tiny_qwen_dir, catalog, retriever, lora_4bit):
    from catalog.grounding import build_grounding

    cfg = tiny_cfg(tiny_qwen_dir, history_tokens=80)
    ans = TransformersAnswerer(cfg, catalog, retriever, lora_4bit)
    try:
        history = tuple(
            ChatMessage(role, f"{role} message {i} " + "ocean " * 20)
            for i in range(10)
            for role in ("user", "assistant")
        )
        request = AnswerRequest(question="And the waves?", history=history)
        grounding = build_grounding(
            request.question, request.showing, retriever, cfg.grounding_entries
        )
        short = ans.prompt_ids(dataclasses.replace(request, history=()), grounding)
        ids = ans.prompt_ids(request, grounding)
        assert 0 < len(ids) - len(short) <= 80
        assert "message 9" in lora_4bit.tokenizer.decode(ids)
        assert "message 8" not in lora_4bit.tokenizer.decode(ids)
        too_long = dataclasses.replace(request, question="wave " * 5000, history=())
        with pytest.raises(AnswerError, match="too long"):
            await answer(ans, too_long)
    finally:
        await ans.aclose()


class ScriptedEngine(GenerationEngine):
    """The real engine's tokenizer side, with a fixed model output: to check what happens to
    the text after generation (think removal, link checking) deterministically."""

    def __init__(self, loaded: LoadedModel, pieces: list[str]) -> None:
        super().__init__(loaded, max_batch=1)
        self.pieces = pieces

    async def generate(self, prompt_ids, **_: object):  # type: ignore[override]
        for piece in self.pieces:
            yield piece


@pytest.mark.parametrize(
    "url_said, expect_same",
    [
        ("https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014", True),
        ("https://sos.noaa.gov/catalog/datasets/no-such-dataset-anywhere", False),
        ("https://example.com/tsunamis", False),
    ],
)
async def test_output_link_is_checked_against_the_catalog(
    tiny_qwen_dir, catalog, retriever, base_4bit, url_said: str, expect_same: bool
) -> None:
    pieces = ["<think>", "let me think", "</think>\n\n", "Tsunamis are giant waves.", "\n"]
    pieces += ["More information: ", url_said[:30], url_said[30:]]
    engine = ScriptedEngine(base_4bit, pieces)
    cfg = tiny_cfg(tiny_qwen_dir)
    ans = TransformersAnswerer(cfg, catalog, retriever, base_4bit, engine=engine)
    try:
        texts, links = await answer(ans, AnswerRequest(question="What causes a tsunami?"))
    finally:
        await ans.aclose()
    text = "".join(texts)
    assert text.startswith("Tsunamis are giant waves.") and "think" not in text
    assert "http" not in text
    assert len(links) == 1 and catalog.is_catalog_url(links[0].url)
    assert (links[0].url.rstrip("/") == url_said) is expect_same
