"""Resumable checkpoints: adapter, optimizer, scheduler, RNG states and step, and seeding.

A run stopped after step N and resumed reaches the same weights as one that never stopped:
everything that decides the next step (including every random generator) is saved and put
back. Checkpoints are written to a temporary folder and renamed, so a crash mid-write never
leaves a half checkpoint that ``latest_checkpoint`` would pick.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


@dataclass
class Progress:
    """Where a run stands: optimizer steps taken, the best eval so far, the log history."""

    step: int
    best: dict[str, Any]
    history: list[dict[str, Any]]


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _checkpoints(out_dir: Path) -> list[Path]:
    root = out_dir / "checkpoints"
    return sorted(root.glob("step-*")) if root.is_dir() else []


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = [c for c in _checkpoints(Path(out_dir)) if (c / STATE_FILE).is_file()]
    return found[-1] if found else None


def save_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, progress: Progress, keep: int
) -> None:
    """Adapter + optimizer + scheduler + RNG + step; only the newest ``keep`` are kept."""
    import torch

    final = out / "checkpoints" / f"step-{progress.step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / STATE_FILE).write_text(
        json.dumps(
            {"step": progress.step, "best": progress.best, "history": progress.history}, indent=1
        )
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _checkpoints(out)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)


def restore_checkpoint(
    checkpoint: Path, model: Any, optimizer: Any, scheduler: Any, device: Any
) -> Progress:
    """Load a checkpoint into the run's model, optimizer and scheduler; RNG states last."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(
        model, load_file(str(checkpoint / "adapter_model.safetensors"), device=str(device))
    )
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=False))
    state = json.loads((checkpoint / STATE_FILE).read_text())
    set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=False))
    return Progress(state["step"], state["best"], state["history"])
