"""From encoded examples to tensors, and the order of a run's optimizer steps.

The step order is a pure function of (seed, epoch), which is what lets a resumed run rebuild
it and skip the steps it already took.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from training.config import OptimConfig
from training.data import IGNORE_INDEX, Encoded


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example of the batch (no fixed-length padding)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_windows(lengths: Sequence[int], cfg: OptimConfig, epoch: int) -> list[list[list[int]]]:
    """The optimizer steps of one epoch: each a list of micro-batches of example indexes.

    The order depends only on (seed, epoch), so a resumed run can rebuild it and skip the
    steps already taken. With ``group_by_length``, examples are sorted by length inside
    shuffled chunks of 50 batches: little padding, still a random order of batches.
    """
    import torch

    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    order = torch.randperm(len(lengths), generator=gen).tolist()
    size = cfg.batch_size
    if cfg.group_by_length and size > 1:
        chunk = size * 50
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        ]
    micro = [order[i : i + size] for i in range(0, len(order), size)]
    if cfg.group_by_length and size > 1:
        perm = torch.randperm(len(micro), generator=gen).tolist()
        micro = [micro[i] for i in perm]
    return [micro[i : i + cfg.grad_accum] for i in range(0, len(micro), cfg.grad_accum)]


def steps_per_epoch(n_examples: int, cfg: OptimConfig) -> int:
    micro = math.ceil(n_examples / cfg.batch_size)
    return math.ceil(micro / cfg.grad_accum)


def windows_from(
    lengths: Sequence[int], cfg: OptimConfig, step: int, total_steps: int, per_epoch: int
) -> Iterator[list[list[int]]]:
    """Optimizer-step windows from ``step`` on (epochs repeat past the last if max_steps says)."""
    epoch, offset = divmod(step, per_epoch)
    while step < total_steps:
        for window in epoch_windows(lengths, cfg, epoch)[offset:]:
            if step >= total_steps:
                return
            yield window
            step += 1
        epoch, offset = epoch + 1, 0
