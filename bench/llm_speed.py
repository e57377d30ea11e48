"""How fast is the local SOS model under load? Time to first token, tokens/s, GPU memory.

Usage:
    python bench/llm_speed.py                 # Qwen3-4B-shaped model, 4-bit NF4, on the GPU
    python bench/llm_speed.py --tiny          # the tiny test Qwen3 on the CPU (smoke test)
    python bench/llm_speed.py --sessions 1,8,32 --new-tokens 128 --variants base,lora

The model has Qwen3-4B's exact shape (36 layers, hidden 2560, 32/8 heads of 128, MLP 9728,
151,936-token vocabulary, tied embeddings) with random weights: the published weights are not
needed to measure speed, which depends only on the shapes. It is saved in bf16 and loaded
through the same :func:`llm.transformers.load_model` as production (bitsandbytes NF4,
double quantization, bf16 compute). Variant ``lora`` adds a random r=8 LoRA adapter on all seven
projections, unmerged (the default ``merge_adapter = false``), so its numbers are the shipped
configuration's.

For each number of concurrent sessions N, N requests with different ~``--prompt-tokens`` prompts
(system prompt + catalog-like grounding + question, rendered by the Qwen3 chat template) arrive
together at the continuous-batching engine; each generates ``--new-tokens`` tokens (EOS ignored,
so all have equal length). Reported: time to first token (mean / max over sessions, including
queueing and the batched prefill), per-session decode rate, aggregate tokens/s, peak GPU memory.

Writes bench/results/llm.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: import the project from this tree

from llm.chat_format import bundled_qwen_tokenizer_path, render_prompt  # noqa: E402
from llm.config import LlmConfig  # noqa: E402
from llm.prompt import system_prompt  # noqa: E402
from llm.transformers import GenerationEngine, LoadedModel, load_model  # noqa: E402
from tests.tiny_models import QWEN3_4B, qwen3_config  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "llm.json"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

_FACTS = (
    "Catalog facts. Tsunami Locations 2000 BCE to 2014: this dataset shows the locations of "
    "tsunamis recorded since 2000 BCE, colored by the cause of the tsunami: earthquakes, "
    "volcanic eruptions, landslides and meteorological events. Most tsunamis happen around the "
    "Pacific Ring of Fire, where ocean plates sink under continental plates. The 2004 Indian "
    "Ocean tsunami and the 2011 Tohoku tsunami are among the deadliest in history. "
    "URL: https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014\n"
)


def build_qwen3_4b_shaped(out_dir: Path, device: str = "cuda") -> Path:
    """Save a random-init Qwen3-4B-shaped model (bf16) + the Qwen3 tokenizer into ``out_dir``.

    Initialized on ``device`` (seconds on a GPU, minutes on a CPU); about 8 GB on disk.
    """
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    if (out_dir / "config.json").is_file() and any(out_dir.glob("*.safetensors")):
        return out_dir  # built earlier in this run
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_path()))
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(qwen3_config(QWEN3_4B, tokenizer)).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out_dir


def build_random_adapter(base_dir: Path, out_dir: Path) -> Path:
    """A random LoRA adapter (r=8, alpha=32, all 7 projections) with non-zero A and B.

    The base is built on the meta device (no memory, no init time); only the small LoRA
    matrices are made real, so this takes a second even for the 4B shape.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out_dir / "adapter_config.json").is_file():
        return out_dir
    config = AutoConfig.from_pretrained(str(base_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    lora = LoraConfig(
        r=8, lora_alpha=32, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, lora)
    generator = torch.Generator().manual_seed(1)
    for name, module in peft_model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in name or ".lora_B." in name):
            out_f, in_f = module.weight.shape
            std = in_f**-0.5 if ".lora_A." in name else 0.01
            weight = torch.randn(out_f, in_f, generator=generator) * std
            module.weight = torch.nn.Parameter(weight.to(torch.bfloat16), requires_grad=False)
    peft_model.save_pretrained(str(out_dir))
    (out_dir / "README.md").unlink(missing_ok=True)
    # Name the local base folder, as an adapter trained on it would.
    cfg_path = out_dir / "adapter_config.json"
    adapter_cfg = json.loads(cfg_path.read_text())
    adapter_cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(adapter_cfg, indent=2))
    return out_dir


def bench_prompts(loaded: LoadedModel, n: int, target_tokens: int) -> list[list[int]]:
    """``n`` different realistic prompts of about ``target_tokens`` tokens each."""
    tok = loaded.tokenizer
    system = system_prompt("general")
    base_len = len(tok.encode(system + _FACTS, add_special_tokens=False))
    repeats = max(1, round((target_tokens - 40) / max(base_len, 1)))
    facts = _FACTS * repeats
    prompts = []
    for i in range(n):
        messages = [
            {"role": "system", "content": f"{system}\n\n{facts}"},
            {"role": "user", "content": f"Visitor {i}: what causes a tsunami, and where?"},
        ]
        prompts.append(tok.encode(render_prompt(tok, messages), add_special_tokens=False))
    return prompts


@dataclass
class Row:
    variant: str
    sessions: int
    max_batch: int
    prompt_tokens: int
    new_tokens: int
    ttft_mean_s: float
    ttft_max_s: float
    per_session_tok_s: float  # decode rate of one session, after its first token
    aggregate_tok_s: float  # all generated tokens / wall time from arrival to last token
    wall_s: float
    peak_gpu_gib: float


async def run_sessions(
    engine: GenerationEngine, prompts: list[list[int]], new_tokens: int
) -> tuple[list[float], list[float], float]:
    """All prompts arrive at once. Returns (ttft per session, decode tok/s per session, wall)."""
    start = time.perf_counter()

    async def one(ids: list[int]) -> tuple[float, float, int]:
        first = end = None
        count = 0
        async for _ in engine.generate(ids, max_new_tokens=new_tokens, ignore_eos=True):
            end = time.perf_counter()
            first = first or end
            count += 1
        assert first is not None and end is not None
        return first - start, end - first, count

    results = await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - start
    ttfts = [r[0] for r in results]
    rates = [(new_tokens - 1) / r[1] if r[1] > 0 else float("nan") for r in results]
    return ttfts, rates, wall


def bench_variant(
    variant: str,
    cfg: LlmConfig,
    sessions: list[int],
    new_tokens: int,
    prompt_tokens: int,
    max_batch: int | None,
    device: str,
) -> tuple[list[Row], dict[str, Any]]:
    import torch

    on_gpu = device.startswith("cuda")
    loaded = load_model(cfg, device=device)
    info = {
        "variant": variant,
        "load_s": round(loaded.load_s, 2),
        "model_gpu_gib": round(loaded.gpu_memory_bytes / 2**30, 3),
        "described": loaded.describe(),
    }
    print(f"[{variant}] {loaded.describe()}", flush=True)
    batch = max_batch or max(sessions)
    engine = GenerationEngine(
        loaded, max_batch=batch, max_new_tokens=new_tokens, temperature=0.6, top_p=0.9
    )
    rows: list[Row] = []
    try:
        warm = bench_prompts(loaded, 2, prompt_tokens)
        asyncio.run(run_sessions(engine, warm, 4))
        for n in sessions:
            prompts = bench_prompts(loaded, n, prompt_tokens)
            if on_gpu:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            ttfts, rates, wall = asyncio.run(run_sessions(engine, prompts, new_tokens))
            peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else 0.0
            row = Row(
                variant=variant,
                sessions=n,
                max_batch=batch,
                prompt_tokens=round(statistics.mean(len(p) for p in prompts)),
                new_tokens=new_tokens,
                ttft_mean_s=round(statistics.mean(ttfts), 4),
                ttft_max_s=round(max(ttfts), 4),
                per_session_tok_s=round(statistics.mean(rates), 2),
                aggregate_tok_s=round(n * new_tokens / wall, 1),
                wall_s=round(wall, 3),
                peak_gpu_gib=round(peak, 3),
            )
            rows.append(row)
            print(format_row(row), flush=True)
    finally:
        engine.close()
        del engine, loaded
        gc.collect()  # the next variant's load measures its own memory, not this one's
        if on_gpu:
            torch.cuda.empty_cache()
    return rows, info


HEADER = (
    f"{'variant':8} {'sessions':>8} {'prompt':>6} {'new':>4} {'TTFT mean':>10} {'TTFT max':>9} "
    f"{'tok/s/session':>13} {'tok/s total':>11} {'peak GiB':>8}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.variant:8} {r.sessions:>8} {r.prompt_tokens:>6} {r.new_tokens:>4} "
        f"{r.ttft_mean_s:>9.3f}s {r.ttft_max_s:>8.3f}s {r.per_session_tok_s:>13.1f} "
        f"{r.aggregate_tok_s:>11.1f} {r.peak_gpu_gib:>8.2f}"
    )


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
    }
    for name in ("bitsandbytes", "peft"):
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = None
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny test Qwen3 on the CPU")
    parser.add_argument("--sessions", default="1,8,32", help="concurrent sessions to measure")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per answer")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="prompt length")
    parser.add_argument("--max-batch", type=int, default=None, help="default: max sessions")
    parser.add_argument("--variants", default="base,lora", help="base, lora and/or bf16")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse/keep the model")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    device = "cpu" if args.tiny else "cuda:0"
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA here: run with --tiny for the CPU smoke test", file=sys.stderr)
        return 2
    sessions = [int(s) for s in args.sessions.split(",") if s.strip()]
    new_tokens = args.new_tokens or (16 if args.tiny else 128)
    prompt_tokens = args.prompt_tokens or (300 if args.tiny else 700)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]

    with tempfile.TemporaryDirectory(prefix="sos-bench-") as tmp:
        model_dir = args.model_dir or Path(tmp) / "model"
        t0 = time.perf_counter()
        if args.tiny:
            from tests.tiny_models import build_tiny_qwen3

            if not (model_dir / "config.json").is_file():
                build_tiny_qwen3(model_dir)
        else:
            build_qwen3_4b_shaped(model_dir, device)
        build_s = time.perf_counter() - t0
        print(f"model ready in {build_s:.1f} s at {model_dir}", flush=True)
        rows: list[Row] = []
        infos = []
        for variant in variants:
            adapter = ""
            if variant == "lora":
                adapter = str(build_random_adapter(model_dir, Path(tmp) / "adapter"))
            # "bf16": the same model unquantized, to show what 4-bit costs in decode speed.
            cfg = LlmConfig(
                base_model=str(model_dir), adapter=adapter, load_in_4bit=variant != "bf16"
            )
            variant_rows, info = bench_variant(
                variant, cfg, sessions, new_tokens, prompt_tokens, args.max_batch, device
            )
            rows.extend(variant_rows)
            infos.append(info)

    print()
    print(HEADER)
    for row in rows:
        print(format_row(row))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "model": "tiny Qwen3 (test fixture)" if args.tiny else "Qwen3-4B-shaped, random init",
        "quantization": "bitsandbytes NF4, double quant, bf16 compute",
        "environment": environment(device),
        "build_s": round(build_s, 1),
        "variants": infos,
        "rows": [asdict(r) for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
