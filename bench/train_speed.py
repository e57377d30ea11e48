"""QLoRA training throughput on a Qwen3-4B-shaped model with the real SOS pairs.

Usage:
    python bench/train_speed.py [--steps 300] [--data PATH] [--tokenizer DIR]   # CUDA GPU
    python bench/train_speed.py --tiny                                          # CPU smoke test

No Qwen3-4B weights exist offline, so the model is random-init with Qwen3-4B's exact shape
(hidden 2560, 36 layers, 32 heads / 8 KV heads, head_dim 128, MLP 9728, vocab 151936, tied
embeddings): built on the GPU in bf16, saved, and loaded back in 4-bit NF4 by the same code
path training uses (training.train.train with the default config = the published recipe).
Speed and memory depend on shapes and sequence lengths, not on the weights' values, so the
numbers stand for the real model; the loss does not (random weights). ``--tiny`` runs the
same on a 2-layer model on the CPU.

Prints a table and writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: import the project from this tree

from tests.tiny_models import QWEN3_4B, QWEN3_TINY, qwen3_config  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "sos-data" / "sos_qa_pairs.jsonl"
RESULTS = ROOT / "bench" / "results" / "train.json"


def tokenizer_path(arg: str | None) -> str:
    if arg:
        return arg
    from llm.chat_format import bundled_qwen_tokenizer_path

    return str(bundled_qwen_tokenizer_path())


def build_random_model(shape: dict[str, Any], tok_dir: str, out_dir: Path) -> float:
    """Save a random-init Qwen3 of ``shape`` (bf16 on a GPU) with the tokenizer; seconds taken."""
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = qwen3_config(shape, tokenizer)
    torch.manual_seed(0)
    if torch.cuda.is_available():
        with torch.device("cuda"):
            model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    else:
        model = Qwen3ForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return time.perf_counter() - start


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "missing"
    try:  # a mock library here means bitsandbytes fell back to slow pure-PyTorch kernels
        from bitsandbytes import cextension

        out["bitsandbytes_native"] = type(cextension.lib).__name__
    except Exception as exc:  # diagnostics only
        out["bitsandbytes_native"] = f"unavailable: {exc}"
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from training.config import load_config
    from training.model import resolve_compute_dtype
    from training.train import train

    shape = QWEN3_TINY if args.tiny else QWEN3_4B
    tok_dir = tokenizer_path(args.tokenizer)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    model_dir = work / ("tiny-qwen3" if args.tiny else "qwen3-4b-shape")
    build_s = 0.0
    if not (model_dir / "config.json").is_file():
        build_s = build_random_model(shape, tok_dir, model_dir)
    overrides = [
        f"model.base_model={json.dumps(str(model_dir))}",
        f"model.tokenizer={json.dumps(tok_dir)}",
        f"model.compute_dtype={json.dumps(args.compute_dtype)}",
        f"train.optimizer={json.dumps(args.optimizer)}",
        f"train.max_steps={args.steps}",
        f"train.logging_steps={max(1, args.steps // 10)}",
        "train.save_steps=0",
        "train.progress=false",
        "eval.eval_steps=0",
        "eval.generate_examples=0",
        f"eval.loss_examples={args.eval_examples}",
    ]
    cfg = load_config(ROOT / "config" / "train.toml", overrides)
    out_dir = work / "run"
    shutil.rmtree(out_dir, ignore_errors=True)
    lines: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        print(msg, flush=True)

    start = time.perf_counter()
    result = train(cfg, args.data, out_dir, log=log)
    wall = time.perf_counter() - start
    losses = [h["loss"] for h in result.history if "loss" in h]
    evals = [h for h in result.history if "eval_loss" in h]
    report = json.loads((out_dir / "data_report.json").read_text())
    return {
        "device": device_name(),
        "model": "tiny Qwen3 (random)" if args.tiny else "Qwen3-4B shape (random init)",
        "quantization": "4-bit NF4 + double quant" if cfg.model.load_in_4bit else "none",
        "compute_dtype": str(resolve_compute_dtype(args.compute_dtype)).removeprefix("torch."),
        "recipe": f"LoRA r=8 alpha=32 on q/k/v/o/gate/up/down, {args.optimizer}, lr 2e-4, "
        "batch 1 x grad-accum 4, gradient checkpointing, loss on answer tokens",
        "steps": result.steps,
        "examples_per_step": cfg.train.batch_size * cfg.train.grad_accum,
        "train_tokens_per_s": round(result.train_tokens_per_s, 1),
        "step_time_s": round(result.step_time_s, 4),
        "optimizer_time_s": round(result.optimizer_time_s, 4),
        "peak_gpu_memory_gib": round(result.peak_gpu_memory_gb, 2),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "data_rows_kept": report["kept"],
        "split": {k: report["split"][k] for k in ("train_rows", "eval_rows")},
        "mean_tokens_per_example": round(report["token_lengths"]["mean"], 1),
        "model_build_s": round(build_s, 1),
        "run_wall_s": round(wall, 1),
        "versions": versions(),
        "cuda": torch.version.cuda or "",
    }


def print_table(res: dict[str, Any]) -> None:
    rows = [
        ("device", res["device"]),
        ("model", res["model"]),
        ("quantization / compute", f"{res['quantization']} / {res['compute_dtype']}"),
        ("optimizer steps", res["steps"]),
        ("train tokens/s", res["train_tokens_per_s"]),
        ("step time (4 examples)", f"{res['step_time_s']:.3f} s"),
        ("  of which clip + optimizer", f"{res['optimizer_time_s']:.3f} s"),
        ("peak GPU memory", f"{res['peak_gpu_memory_gib']} GiB"),
        ("loss first → last", f"{res['first_logged_loss']:.3f} → {res['last_logged_loss']:.3f}"),
        ("mean tokens / example", res["mean_tokens_per_example"]),
    ]
    print("\n| QLoRA training bench | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer model on the CPU")
    parser.add_argument("--steps", type=int, help="optimizer steps (default 300, tiny 10)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tokenizer", help="Qwen3 tokenizer folder (default: bundled)")
    parser.add_argument("--compute-dtype", default="auto", help="auto, bfloat16, float32")
    parser.add_argument(
        "--optimizer", default="paged_adamw_8bit", help="paged_adamw_8bit, adamw_8bit, adamw_torch"
    )
    parser.add_argument("--eval-examples", type=int, default=32, help="eval-loss rows at end")
    parser.add_argument("--workdir", help="where the model and run go (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (10 if args.tiny else 300)
    if not args.data.is_file():
        parser.error(f"no SOS pairs at {args.data} (see ../shared/sos-data/README.md)")
    res = run(args)
    print_table(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
