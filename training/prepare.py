"""What a run reads besides its config: the rows, their split, the catalog, the system prompt.

Evaluation needs the same system prompt and catalog as training (an adapter is scored on the
prompts it was trained with), so both come from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.datasets import Catalog, CatalogError
from llm.prompt import system_prompt as serving_system_prompt
from settings import ConfigError
from training.config import DataConfig
from training.data import (
    ColumnMap,
    DataReport,
    Example,
    ValidationOptions,
    read_rows,
    validate_rows,
)
from training.errors import TrainError
from training.split import (
    CategoryLookup,
    Split,
    catalog_pairs,
    dedupe_against,
    split_examples,
    split_summary,
)

CATALOG_PAIRS = ("none", "catalog", "train")


@dataclass
class PreparedData:
    train: list[Example]
    eval: list[Example]
    split: Split
    report: DataReport
    catalog: Catalog | None


def columns_of(cfg: DataConfig) -> ColumnMap:
    return ColumnMap(
        cfg.prompt_column, cfg.completion_column, cfg.difficulty_column, cfg.title_key_column
    )


def system_prompt_of(cfg: DataConfig) -> str | None:
    """The system prompt to train with; "serving" is the one serving sends (llm/prompt.py)."""
    if cfg.system_prompt == "serving":
        return serving_system_prompt()
    return cfg.system_prompt or None


def load_catalog(cfg: DataConfig) -> Catalog | None:
    """The SOS catalog, or None when none is installed and nothing asked for one."""
    try:
        return Catalog.load(cfg.catalog_path or None)
    except CatalogError:
        if cfg.catalog_path or cfg.catalog_pairs != "none":
            raise
        return None


def prepare_data(
    cfg: DataConfig,
    data_path: str | Path,
    tokenizer: Any,
    *,
    split_path: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> PreparedData:
    """Read, validate, split (or reuse a saved split) and add catalog pairs to train."""
    examples, report = validate_rows(
        read_rows(data_path),
        columns_of(cfg),
        tokenizer=tokenizer,
        system_prompt=system_prompt_of(cfg),
        options=ValidationOptions(cfg.max_length, cfg.near_duplicate_threshold),
        source=str(data_path),
    )
    if not examples:
        raise TrainError(f"no usable rows in {data_path}:\n{report}")
    catalog = load_catalog(cfg)
    lookup = CategoryLookup(catalog, examples)
    if split_path:
        split = Split.load(split_path)
        saved = set(split.train_ids) | set(split.eval_ids)
        missing = len(saved) - len({e.id for e in examples} & saved)
        if missing:
            log(f"warning: {missing} rows of the saved split are not in this data file")
    else:
        split = split_examples(
            examples, lookup, eval_fraction=cfg.eval_fraction, seed=cfg.split_seed
        )
    train, evals = split.select(examples)
    report.split = split_summary(split, examples, lookup)
    if cfg.catalog_pairs != "none":
        if cfg.catalog_pairs not in CATALOG_PAIRS:
            raise ConfigError(
                f"data.catalog_pairs: expected none/catalog/train, got {cfg.catalog_pairs!r}"
            )
        extra = catalog_pairs(catalog, exclude_title_keys=split.eval_title_keys)
        if cfg.catalog_pairs == "train":
            keep = set(split.train_title_keys)
            extra = [e for e in extra if e.title_key in keep]
        extra = dedupe_against(extra, examples)
        report.extra["catalog"] = len(extra)
        train = train + extra
    return PreparedData(train=train, eval=evals, split=split, report=report, catalog=catalog)


def file_sha256(path: str | Path) -> str:
    """The data file's hash for the run record ("" for a dataset folder)."""
    p = Path(path)
    if p.is_dir():
        return ""
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
