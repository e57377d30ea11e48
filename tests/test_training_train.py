"""training/train.py + cli: a real 4-bit QLoRA run on a tiny random Qwen3 (CPU).

Two short runs are shared by the module: A runs 6 optimizer steps straight through; B stops
after 3 (as if interrupted) and resumes. Kept small (15 short SOS rows, 6 steps, 6 generated
tokens) because these machines are 2 shared cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from settings import ConfigError
from training.batches import collate, epoch_windows
from training.cli import DEFAULT_CONFIG, main
from training.config import TrainConfig, load_config
from training.run_folder import TrainResult
from training.train import train

STEPS = 6


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, sos_pairs_path: Path) -> Path:
    """5 titles x 3 real SOS rows, answers cut to ~120 characters: quick to memorize."""
    rows, per_title = [], {}
    for line in sos_pairs_path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        key = row["title_key"]
        if len(per_title) == 5 and key not in per_title:
            continue
        if per_title.get(key, 0) == 3:
            continue
        per_title[key] = per_title.get(key, 0) + 1
        row["completion"] = row["completion"][:120].rsplit(" ", 1)[0] + "."
        rows.append(row)
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_config(base: Path) -> TrainConfig:
    cfg = load_config(
        DEFAULT_CONFIG,
        [
            "train.max_steps=6",
            "train.learning_rate=1e-2",
            "train.logging_steps=1",
            "train.save_steps=3",
            "train.progress=false",
            "eval.eval_steps=2",
            "eval.generate_examples=2",
            "eval.max_new_tokens=6",
            "eval.batch_size=4",
            "data.eval_fraction=0.3",
        ],
    )
    cfg.model.base_model = str(base)
    return cfg


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, tiny_qwen_dir: Path, small_data: Path) -> TrainResult:
    out = tmp_path_factory.mktemp("run-a")
    return train(tiny_config(tiny_qwen_dir), small_data, out, log=lambda _: None)


@pytest.fixture(scope="module")
def run_b(tmp_path_factory, tiny_qwen_dir: Path, small_data: Path) -> TrainResult:
    out = tmp_path_factory.mktemp("run-b")
    first = train(tiny_config(tiny_qwen_dir), small_data, out, stop_after=3, log=lambda _: None)
    assert first.stopped_early and first.steps == 3
    assert not (out / "adapter_model.safetensors").exists()
    # The resumed run takes its settings from the checkpoint, not from a changed config.
    other = tiny_config(tiny_qwen_dir)
    other.train.learning_rate = 1.0
    return train(other, small_data, out, resume=True, log=lambda _: None)


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_config_file_is_the_published_recipe() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg == TrainConfig()
    assert (cfg.model.base_model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (
        "Qwen/Qwen3-4B",
        8,
        32,
        0.05,
    )
    assert len(cfg.lora.target_modules) == 7 and cfg.model.quant_type == "nf4"
    assert (cfg.train.learning_rate, cfg.train.epochs, cfg.train.grad_accum) == (2e-4, 3, 4)
    assert cfg.train.optimizer == "paged_adamw_8bit" and cfg.data.max_length == 8192
    assert cfg.eval.metric_for_best == "bertscore_f1" and cfg.data.completion_only_loss
    assert load_config(None, ["train.max_steps=5", "data.system_prompt=hi"]).train.max_steps == 5
    # The CLI's named flags (``values``) win over --set, as they always have.
    named = load_config(DEFAULT_CONFIG, ["train.max_steps=5"], values={"train": {"max_steps": 3}})
    assert named.train.max_steps == 3 and named.train.epochs == 3
    with pytest.raises(ConfigError, match=r"unknown key train\.nope"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected int"):
        load_config(None, ["train.max_steps='x'"])


def test_batches_pad_to_longest_and_order_is_seeded() -> None:
    from training.data import Encoded

    batch = collate([Encoded([1, 2, 3], [-100, 2, 3]), Encoded([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    cfg = TrainConfig().train
    windows = epoch_windows(list(range(10)), cfg, epoch=0)
    assert [len(w) for w in windows] == [4, 4, 2]
    assert sorted(i for w in windows for m in w for i in m) == list(range(10))
    assert windows == epoch_windows(list(range(10)), cfg, epoch=0)
    assert windows != epoch_windows(list(range(10)), cfg, epoch=1)


def test_qlora_run_trains_and_writes_the_adapter_folder(run_a: TrainResult) -> None:
    out = run_a.out_dir
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer_config.json",
        "train_config.json",
        "split.json",
        "data_report.json",
        "metrics.json",
        "best_checkpoint.json",
        "log.jsonl",
    ):
        assert (out / name).is_file(), name
    losses = [h["loss"] for h in run_a.history if "loss" in h]
    assert len(losses) == STEPS
    assert losses[-1] < losses[0] - 0.05, losses  # it learns the memorizable set
    evals = [h for h in run_a.history if "eval_loss" in h]
    assert [e["step"] for e in evals] == [2, 4, 6]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert run_a.train_tokens_per_s > 0
    meta = json.loads((out / "adapter_config.json").read_text())
    assert meta["r"] == 8 and meta["lora_alpha"] == 32
    assert set(meta["target_modules"]) == set(TrainConfig().lora.target_modules)
    split = json.loads((out / "split.json").read_text())
    assert split["eval_ids"] and not set(split["eval_title_keys"]) & set(split["train_title_keys"])


def test_best_checkpoint_is_the_best_bertscore(run_a: TrainResult) -> None:
    evals = [h for h in run_a.history if "bertscore_f1" in h]
    best_value = max(e["bertscore_f1"] for e in evals)
    first_best = next(e["step"] for e in evals if e["bertscore_f1"] == best_value)
    info = json.loads((run_a.out_dir / "best_checkpoint.json").read_text())
    assert info["metric"] == "bertscore_f1"
    assert info["step"] == first_best == run_a.best["step"]
    top, best = _adapter(run_a.out_dir), _adapter(run_a.out_dir / "best")
    assert all(torch.equal(top[k], best[k]) for k in top)


def test_resume_reaches_the_same_weights(run_a: TrainResult, run_b: TrainResult) -> None:
    assert run_b.steps == STEPS and not run_b.stopped_early
    a = _adapter(run_a.out_dir / "checkpoints" / f"step-{STEPS:06d}")
    b = _adapter(run_b.out_dir / "checkpoints" / f"step-{STEPS:06d}")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    losses = lambda r: [h["loss"] for h in r.history if "loss" in h]  # noqa: E731
    assert losses(run_a) == pytest.approx(losses(run_b), abs=1e-5)
    assert run_a.best["step"] == run_b.best["step"]


def test_adapter_loads_onto_the_base_and_changes_output(
    run_a: TrainResult, tiny_qwen_dir: Path
) -> None:
    """The run folder is what llm/ serves: 4-bit base + this adapter via peft."""
    from llm.config import LlmConfig
    from llm.transformers import load_model

    ids = torch.tensor([[151644, 872, 198, 3838, 374, 264, 85003, 30, 151645]])
    outputs = []
    for adapter in ("", str(run_a.out_dir)):
        loaded = load_model(LlmConfig(base_model=str(tiny_qwen_dir), adapter=adapter), "cpu")
        assert loaded.adapter == adapter
        with torch.no_grad():
            outputs.append(loaded.model(input_ids=ids).logits.float())
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-3)


def test_merge_exports_plain_weights(run_a: TrainResult, tmp_path: Path) -> None:
    import shutil

    from transformers import AutoModelForCausalLM

    from training.run_folder import export_merged

    run = tmp_path / "run"
    shutil.copytree(run_a.out_dir, run, ignore=shutil.ignore_patterns("checkpoints"))
    merged = export_merged(run, log=lambda _: None)
    model = AutoModelForCausalLM.from_pretrained(str(merged))
    assert not any("lora" in k for k in model.state_dict())
    assert (merged / "tokenizer_config.json").is_file()


def test_cli_eval_adapter_vs_base(run_a: TrainResult, small_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["eval", "--adapter", str(run_a.out_dir), "--base", "--data", str(small_data)]
    assert main([*argv, "--out", str(out), "--max-new-tokens", "4"]) == 0
    report = json.loads(out.read_text())
    assert list(report["models"]) == [run_a.out_dir.name, "base"]
    split = json.loads((run_a.out_dir / "split.json").read_text())
    assert report["n_examples"] == len(split["eval_ids"])
    for metrics in report["models"].values():
        assert {"rouge1", "rougeL", "bleu", "bertscore_f1", "perplexity"} <= set(metrics)
    adapter_ppl = report["models"][run_a.out_dir.name]["perplexity"]
    assert adapter_ppl < report["models"]["base"]["perplexity"]
    table = out.with_suffix(".md").read_text()
    assert "| BERTScore F1 |" in table and "Δ" in table
    assert out.with_suffix(".answers.jsonl").is_file()


def test_cli_reports_errors_in_one_line(tmp_path: Path, capsys) -> None:
    code = main(["train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)])
    assert code == 2
    assert "no data file" in capsys.readouterr().err
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path), "--set", "train.nope=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key train.nope" in err, err
