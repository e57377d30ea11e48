"""QLoRA training of the SOS adapter: an explicit, resumable loop.

Why not HF Trainer / TRL's SFTTrainer: the best checkpoint is chosen by BERTScore of
*generated* answers, which Trainer's eval loop (teacher-forced logits) does not produce;
exact resumption needs our own data order (grouped split, completion-only labels) restored
bit for bit; and the loop is short enough to be read at once. What it does:

- 4-bit NF4 base (double quant) + LoRA on all attention and MLP projections (peft),
  gradient checkpointing, paged 8-bit AdamW, linear schedule, grad accumulation with the loss
  normalized by the completion tokens of the whole accumulation window (so short and long
  answers weigh per token, as one big batch would);
- every ``eval_steps``: eval loss (perplexity) and greedy answers on a fixed sample of the
  eval split scored with BERTScore; the best adapter is kept in ``best/``;
- every ``save_steps``: a checkpoint with adapter, optimizer, scheduler, RNG states and step,
  from which ``resume`` continues to the same weights an uninterrupted run reaches.

The pieces live beside this module: ``config`` (TrainConfig), ``prepare`` (rows, split,
system prompt), ``model`` (base, LoRA, optimizer), ``batches`` (step order, padding),
``checkpoints`` (resume, RNG), ``periodic_eval`` (best checkpoint) and ``run_folder`` (what
lands in the output folder). The order of the steps below matters for exact resumption: every
random draw happens in the same place whether a run is fresh or resumed.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.batches import collate, steps_per_epoch, windows_from
from training.checkpoints import (
    Progress,
    latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    seed_everything,
)
from training.config import TrainConfig, read_run_config
from training.data import IGNORE_INDEX, Encoded, Example, encode_example
from training.errors import TrainError
from training.model import (
    add_lora,
    device_of,
    load_base_model,
    make_optimizer,
    make_scheduler,
    resolve_compute_dtype,
)
from training.periodic_eval import PeriodicEvaluator
from training.prepare import PreparedData, prepare_data, system_prompt_of
from training.run_folder import (
    TrainResult,
    append_log,
    export_merged,
    write_outputs,
    write_run_start,
)


def train(
    cfg: TrainConfig,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    merge: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train an adapter into ``out_dir``; ``training.run_folder`` says what lands there.

    ``resume`` continues from the latest checkpoint in ``out_dir`` with its saved config and
    split. ``stop_after`` ends the run after that many optimizer steps as if interrupted
    (checkpoint written, no final export): for time-boxed jobs, and to test resumption.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        log(f"no checkpoint in {out}/checkpoints: starting from step 0")
    if checkpoint is not None:
        cfg = _resumed_config(cfg, out)
    seed_everything(cfg.train.seed)

    if not Path(data_path).exists():
        raise TrainError(f"no data file at {data_path}")
    tokenizer = _load_tokenizer(cfg)
    split_path = out / "split.json" if checkpoint is not None else (cfg.data.split_from or None)
    inputs = _encode_inputs(cfg, data_path, tokenizer, split_path, log)
    if checkpoint is None:
        write_run_start(out, cfg, data_path, inputs.data, inputs.system_prompt)

    run = _build_run(cfg, len(inputs.train_enc), log)
    # Built (and its scoring encoder loaded) before RNG states are set: loading may draw
    # random numbers, and the dropout masks after this point must not depend on it.
    evaluator = PeriodicEvaluator(
        cfg,
        tokenizer,
        inputs.eval_enc,
        inputs.gen_examples,
        inputs.system_prompt,
        inputs.data.catalog,
        log,
    )
    seed_everything(cfg.train.seed + 1)
    progress = Progress(step=0, best={}, history=[])
    if checkpoint is not None:
        progress = restore_checkpoint(
            checkpoint, run.model, run.optimizer, run.scheduler, run.device
        )
        log(f"resumed from {checkpoint} at step {progress.step}/{run.total_steps}")

    loop = _Loop(cfg, run, out, tokenizer.pad_token_id, evaluator, progress)
    result = loop.run_steps(inputs.train_enc, stop_after)
    if result.stopped_early:
        log(f"stopped after step {result.steps} (checkpoint kept; --resume continues)")
        return result
    write_outputs(out, tokenizer, result, cfg)
    if merge:
        del loop, run  # the 4-bit training model out of memory before the bf16 merge
        export_merged(out, cfg, log=log)
    return result


# --------------------------------------------------------------------------- before the loop


def _resumed_config(cfg: TrainConfig, out: Path) -> TrainConfig:
    """The checkpoint's config: a run's identity (model, data handling, schedule) is fixed.

    Only ``max_steps`` may be raised on resume, and the progress bar follows the new config.
    """
    saved = read_run_config(out)
    saved.train.max_steps = cfg.train.max_steps or saved.train.max_steps
    saved.train.progress = cfg.train.progress
    return saved


def _load_tokenizer(cfg: TrainConfig) -> Any:
    from transformers import AutoTokenizer

    source = cfg.model.tokenizer or cfg.model.base_model
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise TrainError(f"cannot load the tokenizer of {source!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass
class _Inputs:
    """The run's data, tokenized: train and eval-loss examples, and the answers to generate."""

    data: PreparedData
    system_prompt: str | None
    train_enc: list[Encoded]
    eval_enc: list[Encoded]
    gen_examples: list[Example]


def _encode_inputs(
    cfg: TrainConfig,
    data_path: str | Path,
    tokenizer: Any,
    split_path: str | Path | None,
    log: Callable[[str], None],
) -> _Inputs:
    data = prepare_data(cfg.data, data_path, tokenizer, split_path=split_path, log=log)
    log(str(data.report))
    system_prompt = system_prompt_of(cfg.data)
    train_enc = [
        encode_example(
            tokenizer, e, system_prompt, completion_only_loss=cfg.data.completion_only_loss
        )
        for e in data.train
    ]
    # Eval loss is always on the answer tokens, so perplexity compares across loss modes.
    eval_enc = [encode_example(tokenizer, e, system_prompt) for e in data.eval]
    if cfg.eval.loss_examples:
        eval_enc = eval_enc[: cfg.eval.loss_examples]
    gen_rng = random.Random(cfg.data.split_seed)
    gen_examples = (
        gen_rng.sample(data.eval, min(cfg.eval.generate_examples, len(data.eval)))
        if cfg.eval.generate_examples
        else []
    )
    return _Inputs(data, system_prompt, train_enc, eval_enc, gen_examples)


@dataclass
class _Run:
    """The LoRA model and what steps it, for one run."""

    model: Any
    trainable: list[Any]
    optimizer: Any
    scheduler: Any
    device: Any
    compute_dtype: Any
    on_cuda: bool
    per_epoch: int
    total_steps: int


def _build_run(cfg: TrainConfig, n_train: int, log: Callable[[str], None]) -> _Run:
    import torch

    compute_dtype = resolve_compute_dtype(cfg.model.compute_dtype)
    on_cuda = torch.cuda.is_available()
    quant = f"4-bit {cfg.model.quant_type}" if cfg.model.load_in_4bit else "full precision"
    dtype_name = str(compute_dtype).removeprefix("torch.")
    log(
        f"base {cfg.model.base_model} ({quant}, compute {dtype_name} "
        f"on {'cuda' if on_cuda else 'cpu'})"
    )
    model = load_base_model(cfg.model, for_training=True)
    seed_everything(cfg.train.seed)  # LoRA init does not depend on what loading consumed
    model = add_lora(model, cfg.lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    log(f"LoRA r={cfg.lora.r} alpha={cfg.lora.alpha}: {n_trainable:,} trainable parameters")
    per_epoch = steps_per_epoch(n_train, cfg.train)
    total_steps = cfg.train.max_steps or per_epoch * cfg.train.epochs
    optimizer = make_optimizer(trainable, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, total_steps)
    return _Run(
        model=model,
        trainable=trainable,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device_of(model),
        compute_dtype=compute_dtype,
        on_cuda=on_cuda,
        per_epoch=per_epoch,
        total_steps=total_steps,
    )


# --------------------------------------------------------------------------- the loop


@dataclass
class _Meter:
    """Throughput so far, and the token-weighted loss since the last log line."""

    train_tokens: int = 0
    train_time: float = 0.0
    optim_time: float = 0.0
    steps_run: int = 0
    window_loss: float = 0.0
    window_tokens: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / max(self.train_time, 1e-9)


class _Loop:
    """The optimizer steps of one run, from ``progress.step`` to the end (or ``stop_after``)."""

    def __init__(
        self,
        cfg: TrainConfig,
        run: _Run,
        out: Path,
        pad_id: int,
        evaluator: PeriodicEvaluator,
        progress: Progress,
    ) -> None:
        self.cfg, self.run, self.out, self.pad_id = cfg, run, out, pad_id
        self.evaluator, self.progress = evaluator, progress
        self.meter = _Meter()
        self.bar = _progress_bar(cfg.train.progress, run.total_steps, progress.step)

    def run_steps(self, train_enc: Sequence[Encoded], stop_after: int | None) -> TrainResult:
        import torch

        run, progress, meter = self.run, self.progress, self.meter
        autocast = (
            torch.autocast("cuda", dtype=run.compute_dtype)
            if run.on_cuda and run.compute_dtype != torch.float32
            else contextlib.nullcontext()
        )
        lengths = [len(e.input_ids) for e in train_enc]
        if run.on_cuda:
            torch.cuda.reset_peak_memory_stats()
        run.model.train()
        stopped = False
        for window in windows_from(
            lengths, self.cfg.train, progress.step, run.total_steps, run.per_epoch
        ):
            loss_sum = self._step(window, train_enc, autocast)
            self._log_step(loss_sum)
            if self.evaluator.due(progress.step, run.total_steps):
                self._evaluate()
            if progress.step == run.total_steps and not self.evaluator.enabled:
                progress.best = {"step": progress.step}
                run.model.save_pretrained(self.out / "best")
            stop_now = stop_after is not None and meter.steps_run >= stop_after
            save_every = self.cfg.train.save_steps
            if (save_every and progress.step % save_every == 0) or stop_now:
                save_checkpoint(
                    self.out,
                    run.model,
                    run.optimizer,
                    run.scheduler,
                    progress,
                    keep=self.cfg.train.save_total_limit,
                )
            if stop_now and progress.step < run.total_steps:
                stopped = True
                break
        self.bar.close()
        return self._result(stopped)

    def _step(self, window: list[list[int]], train_enc: Sequence[Encoded], autocast: Any) -> float:
        """One optimizer step over a window of micro-batches; returns the summed batch losses.

        The loss of every micro-batch is normalized by the completion tokens of the whole
        window (``num_items_in_batch``), as one big batch would be.
        """
        import torch

        run, meter = self.run, self.meter
        start = time.perf_counter()
        batches = [collate([train_enc[i] for i in micro], self.pad_id) for micro in window]
        n_items = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
        loss_sum = 0.0
        for b in batches:
            b = {k: v.to(run.device) for k, v in b.items()}
            with autocast:
                outputs = run.model(
                    **b, num_items_in_batch=torch.tensor(max(n_items, 1), device=run.device)
                )
            outputs.loss.backward()
            loss_sum += float(outputs.loss.detach())
            meter.train_tokens += int(b["attention_mask"].sum())
        if run.on_cuda:
            torch.cuda.synchronize()
        optim_start = time.perf_counter()
        if self.cfg.train.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(run.trainable, self.cfg.train.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        if run.on_cuda:
            torch.cuda.synchronize()
        meter.optim_time += time.perf_counter() - optim_start
        meter.train_time += time.perf_counter() - start
        self.progress.step += 1
        meter.steps_run += 1
        meter.window_loss += loss_sum * n_items
        meter.window_tokens += n_items
        return loss_sum

    def _log_step(self, loss_sum: float) -> None:
        """Progress bar every step; a log line every ``logging_steps`` and at the end."""
        run, meter, step = self.run, self.meter, self.progress.step
        tok_s = meter.tokens_per_s
        eta = (run.total_steps - step) * meter.train_time / meter.steps_run
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tok_s:.0f}")
        if step % self.cfg.train.logging_steps != 0 and step != run.total_steps:
            return
        entry = {
            "step": step,
            "epoch": round(step / run.per_epoch, 3),
            "loss": meter.window_loss / max(meter.window_tokens, 1),
            "lr": run.scheduler.get_last_lr()[0],
            "tokens_per_s": tok_s,
            "eta_s": eta,
        }
        meter.window_loss = meter.window_tokens = 0.0
        append_log(self.out, entry)
        self.progress.history.append(entry)
        self.bar.write(
            f"step {step}/{run.total_steps} loss {entry['loss']:.4f} lr {entry['lr']:.2e} "
            f"{tok_s:.0f} tok/s eta {_fmt_eta(eta)}"
        )

    def _evaluate(self) -> None:
        """Score the current adapter; keep it in ``best/`` if it beats the best so far."""
        progress, evaluator = self.progress, self.evaluator
        metrics = evaluator.run(self.run.model, progress.step)
        append_log(self.out, metrics)
        progress.history.append(metrics)
        self.bar.write(_fmt_metrics(metrics))
        if evaluator.is_better(metrics, progress.best):
            progress.best = {"step": progress.step, **metrics}
            self.run.model.save_pretrained(self.out / "best")
            self.bar.write(
                f"new best at step {progress.step}: "
                f"{evaluator.best_key} {metrics[evaluator.best_key]:.4f}"
            )

    def _result(self, stopped: bool) -> TrainResult:
        import torch

        meter = self.meter
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.run.on_cuda else 0.0
        return TrainResult(
            out_dir=self.out,
            steps=self.progress.step,
            total_steps=self.run.total_steps,
            best=self.progress.best,
            history=self.progress.history,
            train_tokens_per_s=meter.tokens_per_s,
            step_time_s=meter.train_time / max(meter.steps_run, 1),
            peak_gpu_memory_gb=peak,
            stopped_early=stopped,
            optimizer_time_s=meter.optim_time / max(meter.steps_run, 1),
        )


# --------------------------------------------------------------------------- console


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        disable=not enabled or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _fmt_metrics(m: dict[str, Any]) -> str:
    keys = ("eval_loss", "perplexity", "bertscore_f1", "rougeL", "link_accuracy")
    parts = [f"{k} {m[k]:.4f}" for k in keys if isinstance(m.get(k), float)]
    return f"eval step {m['step']}: " + ", ".join(parts)
