"""Command line: ``train`` an adapter, ``eval`` one (or two side by side).

``sos-voice train ...`` / ``sos-voice eval ...`` call :func:`main` with the arguments after
``sos-voice``; ``python -m training.cli train ...`` does the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "train.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sos-voice", description="Train and evaluate the SOS LoRA adapter (QLoRA)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an adapter (QLoRA) on prompt/completion data")
    t.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training TOML")
    t.add_argument("--data", type=Path, required=True, help="JSONL/CSV/Parquet/HF dataset")
    t.add_argument("--out", type=Path, required=True, help="output (run) folder")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    t.add_argument("--merge", action="store_true", help="also export base+adapter merged (bf16)")
    t.add_argument("--base-model", help="override model.base_model (hub id or folder)")
    t.add_argument("--max-steps", type=int, help="override train.max_steps")
    t.add_argument("--epochs", type=int, help="override train.epochs")
    t.add_argument("--lr", type=float, help="override train.learning_rate")
    t.add_argument("--seed", type=int, help="override train.seed")
    t.add_argument("--eval-steps", type=int, help="override eval.eval_steps")
    t.add_argument("--full-loss", action="store_true", help="loss on prompt too (as the original)")
    t.add_argument("--stop-after", type=int, help="stop after N optimizer steps, as if interrupted")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config key (value as a TOML literal); repeatable",
    )

    e = sub.add_parser("eval", help="score an adapter (or two, or adapter vs base)")
    e.add_argument("--adapter", type=Path, required=True, help="adapter or run folder")
    group = e.add_mutually_exclusive_group()
    group.add_argument("--adapter-b", type=Path, help="a second adapter, scored side by side")
    group.add_argument("--base", action="store_true", help="also score the bare base model")
    e.add_argument("--data", type=Path, required=True, help="data file with the eval rows")
    e.add_argument(
        "--split-from",
        type=Path,
        help="run folder (or split.json) whose eval split to score; default: the adapter's "
        "own split.json if it has one, else every row of --data",
    )
    e.add_argument("--out", type=Path, required=True, help="report path (.json and .md written)")
    e.add_argument("--base-model", help="base model (default: from the run's config)")
    e.add_argument("--max-examples", type=int, default=0, help="seeded sample of N rows")
    e.add_argument("--max-new-tokens", type=int, help="answer length limit")
    e.add_argument("--batch-size", type=int, help="generation batch size")
    return parser


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.train import train

    named = {
        ("model", "base_model"): args.base_model,
        ("train", "max_steps"): args.max_steps,
        ("train", "epochs"): args.epochs,
        ("train", "learning_rate"): args.lr,
        ("train", "seed"): args.seed,
        ("eval", "eval_steps"): args.eval_steps,
        ("data", "completion_only_loss"): False if args.full_loss else None,
    }
    values: dict[str, dict[str, Any]] = {}
    for (section, key), value in named.items():
        if value is not None:
            values.setdefault(section, {})[key] = value
    cfg = load_config(args.config, args.overrides, values=values)
    result = train(
        cfg, args.data, args.out, resume=args.resume, merge=args.merge, stop_after=args.stop_after
    )
    print(
        f"done: {result.steps}/{result.total_steps} steps, "
        f"{result.train_tokens_per_s:.0f} tokens/s, best {result.best} -> {result.out_dir}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate

    report, examples = evaluate(
        args.adapter,
        args.data,
        adapter_b=args.adapter_b,
        with_base=args.base,
        split_from=args.split_from,
        base_model=args.base_model,
        max_examples=args.max_examples,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    json_path, md_path = report.save(args.out, examples)
    print(report.markdown())
    print(f"written: {json_path}, {md_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train`` or ``eval``; returns the exit status (errors are one line on stderr)."""
    from settings import ConfigError
    from training.data import DataError
    from training.errors import TrainError

    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        return _train(args) if args.command == "train" else _eval(args)
    except (ConfigError, TrainError, DataError, FileNotFoundError, ValueError) as exc:
        print(f"sos-voice {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
