"""Training data: read, validate and format prompt/completion pairs.

Every row that does not make it into training is counted and named in a :class:`DataReport`
(never dropped silently), because a data set that quietly loses a tenth of its rows trains a
different adapter than the one its author thinks. Formatting goes through
:func:`llm.chat_format.render_example` so that training sees exactly the tokens serving renders.
The train/eval split is in ``training.split``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100
_MORE_INFO_RE = re.compile(
    r"More information:?\s*(https?://sos\.noaa\.gov/catalog/datasets/[A-Za-z0-9_\-]+)/?", re.I
)
_QUOTED_TITLE_RE = re.compile(r"'([^']{3,})'")
UNKNOWN = "unknown"


class DataError(ValueError):
    """The data file cannot be read or has none of the needed columns; says which."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Names of the columns in the source file (the SOS data set's names by default)."""

    prompt: str = "prompt"
    completion: str = "completion"
    difficulty: str = "difficulty"
    title_key: str = "title_key"


@dataclass(frozen=True, slots=True)
class Example:
    """One validated prompt/completion pair.

    ``id`` is a content hash, so a saved split still selects the same rows after the file is
    reordered or other rows are added.
    """

    id: str
    row: int
    prompt: str
    completion: str
    difficulty: str = UNKNOWN
    title_key: str = ""
    source: str = "data"

    def messages(self, system_prompt: str | None = None) -> list[dict[str, str]]:
        """The conversation as serving would send it for this question."""
        msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
        msgs.append({"role": "user", "content": self.prompt})
        return msgs


def example_id(prompt: str, completion: str) -> str:
    digest = hashlib.sha1(f"{prompt}\x00{completion}".encode()).hexdigest()
    return digest[:16]


@dataclass
class DataReport:
    """What was read, what was dropped and why (with examples), and the split sizes."""

    source: str = ""
    rows_read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    max_length: int = 0
    token_lengths: dict[str, float] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)
    max_examples_per_reason: int = 5

    def drop(self, reason: str, row: int, detail: str, text: str = "") -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples_per_reason:
            shown.append({"row": row, "detail": detail, "text": text[:120]})

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("max_examples_per_reason")
        out["dropped_total"] = self.dropped_total
        return out

    def __str__(self) -> str:
        lines = [
            f"data: {self.source}",
            f"  rows read {self.rows_read}, kept {self.kept}, dropped {self.dropped_total}",
        ]
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {count:5d}  {reason}")
            for ex in self.examples.get(reason, [])[:2]:
                lines.append(f"      row {ex['row']}: {ex['detail']}  {ex['text']!r}")
        if self.token_lengths:
            t = self.token_lengths
            lines.append(
                f"  tokens per example: mean {t['mean']:.0f}, max {t['max']:.0f} "
                f"(limit {self.max_length})"
            )
        for name, count in self.extra.items():
            lines.append(f"  extra pairs from {name}: {count}")
        if self.split:
            s = self.split
            lines.append(
                f"  split: train {s['train_rows']} rows / {s['train_groups']} titles, "
                f"eval {s['eval_rows']} rows / {s['eval_groups']} titles (seed {s['seed']})"
            )
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- reading


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON (list), CSV/TSV, Parquet/Arrow file or a saved HF dataset folder.

    Parquet, Arrow and ``save_to_disk`` folders are what Hugging Face ``datasets`` writes, so
    they are read with that library (installed with the ``train`` extra).
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"no data file at {source}")
    suffix = source.suffix.lower()
    if source.is_dir() or suffix in {".parquet", ".arrow"}:
        return _read_hf(source)
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(source)
    if suffix == ".json":
        text = source.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _read_jsonl(source)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise DataError(f"{source}: expected a JSON list of objects")
        return [r if isinstance(r, dict) else {"_invalid": r} for r in data]
    if suffix in {".csv", ".tsv"}:
        with source.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    raise DataError(f"{source}: unknown data format (jsonl, json, csv, tsv, parquet, arrow, dir)")


def _read_jsonl(source: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with source.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                obj = {"_invalid": f"line {number}: {exc.msg}"}
            rows.append(obj if isinstance(obj, dict) else {"_invalid": f"line {number}"})
    return rows


def _read_hf(source: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"{source}: reading HF datasets files needs `pip install datasets`"
        ) from exc
    if source.is_dir():
        loaded = datasets.load_from_disk(str(source))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise DataError(f"{source}: a DatasetDict without a 'train' split")
            loaded = loaded["train"]
    elif source.suffix.lower() == ".parquet":
        loaded = datasets.Dataset.from_parquet(str(source))
    else:
        loaded = datasets.Dataset.from_file(str(source))
    return [dict(r) for r in loaded]


# --------------------------------------------------------------------------- validation


def norm_text(text: str) -> str:
    """Lowercase alphanumeric words only: two prompts that differ in nothing else are one."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _shingles(text: str, n: int = 3) -> set[int]:
    words = norm_text(text).split()
    if len(words) < n:
        return {zlib.crc32(" ".join(words).encode())}
    return {zlib.crc32(" ".join(words[i : i + n]).encode()) for i in range(len(words) - n + 1)}


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def find_near_duplicates(
    texts: Sequence[str], threshold: float, num_perm: int = 64, bands: int = 16, seed: int = 1
) -> dict[int, tuple[int, float]]:
    """Indexes of texts whose word-3-gram Jaccard with an earlier text is >= ``threshold``.

    MinHash + banding finds the candidate pairs in near-linear time (an all-pairs comparison
    of a few thousand long completions is needlessly slow); candidates are then checked with
    the exact Jaccard, so the threshold is exact for every pair the bands surface.
    Returns ``{later index: (earlier index it duplicates, similarity)}``.
    """
    import numpy as np

    if not texts:
        return {}
    prime = (1 << 61) - 1
    rng = np.random.default_rng(seed)
    a = rng.integers(1, prime, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, prime, size=num_perm, dtype=np.uint64)
    shingle_sets = [_shingles(t) for t in texts]
    rows = num_perm // bands
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for index, sh in enumerate(shingle_sets):
        x = np.fromiter(sh, dtype=np.uint64)[:, None]
        # uint64 arithmetic wraps; that is a fine (if not "universal") hash family here.
        sig = ((x * a + b) % np.uint64(prime)).min(axis=0)
        for band in range(bands):
            buckets[(band, sig[band * rows : (band + 1) * rows].tobytes())].append(index)
    found: dict[int, tuple[int, float]] = {}
    for members in buckets.values():
        for pos, later in enumerate(members[1:], 1):
            if later in found:
                continue
            for earlier in members[:pos]:
                if earlier in found:
                    continue
                sim = _jaccard(shingle_sets[earlier], shingle_sets[later])
                if sim >= threshold:
                    found[later] = (earlier, sim)
                    break
    return found


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    """How strict validation is; the defaults fit the SOS data set."""

    max_length: int = 8192
    near_duplicate_threshold: float = 0.9
    min_completion_chars: int = 1


def validate_rows(
    rows: Sequence[dict[str, Any]],
    columns: ColumnMap = ColumnMap(),
    *,
    tokenizer: Any = None,
    system_prompt: str | None = None,
    options: ValidationOptions = ValidationOptions(),
    source: str = "",
) -> tuple[list[Example], DataReport]:
    """Keep the rows that are fit to train on; report every other row with its reason.

    Reasons: ``invalid_row`` (not an object / bad JSON line), ``missing_prompt`` /
    ``missing_completion`` (absent, not text, or blank), ``exact_duplicate`` (same prompt and
    completion as an earlier row), ``duplicate_prompt`` (same question up to case, spacing and
    punctuation: two answers to one question teach the model to hedge between them),
    ``near_duplicate`` (prompt + completion word-3-gram Jaccard >= threshold with an earlier
    row) and ``too_long`` (rendered prompt + completion over ``max_length`` tokens; only
    checked when a tokenizer is given).
    """
    report = DataReport(source=source, rows_read=len(rows), max_length=options.max_length)
    if rows and not any(columns.prompt in r or columns.completion in r for r in rows):
        keys = sorted({k for r in rows[:50] for k in r})
        raise DataError(
            f"{source}: no {columns.prompt!r}/{columns.completion!r} columns; found {keys}. "
            "Map the column names (data.prompt_column / data.completion_column)."
        )
    candidates: list[Example] = []
    seen_exact: set[tuple[str, str]] = set()
    seen_prompt: dict[str, int] = {}
    for number, row in enumerate(rows, 1):
        if "_invalid" in row:
            report.drop("invalid_row", number, str(row["_invalid"]))
            continue
        prompt, completion = row.get(columns.prompt), row.get(columns.completion)
        if not isinstance(prompt, str) or not prompt.strip():
            report.drop("missing_prompt", number, "prompt is empty or absent", str(completion))
            continue
        if not isinstance(completion, str) or len(completion.strip()) < max(
            1, options.min_completion_chars
        ):
            report.drop("missing_completion", number, "completion is empty or absent", prompt)
            continue
        prompt, completion = prompt.strip(), completion.strip()
        if (prompt, completion) in seen_exact:
            report.drop("exact_duplicate", number, "same prompt and completion", prompt)
            continue
        seen_exact.add((prompt, completion))
        key = norm_text(prompt)
        if key in seen_prompt:
            report.drop(
                "duplicate_prompt", number, f"same question as row {seen_prompt[key]}", prompt
            )
            continue
        seen_prompt[key] = number
        difficulty = str(row.get(columns.difficulty) or UNKNOWN).strip().lower() or UNKNOWN
        title_key = str(row.get(columns.title_key) or "").strip() or title_key_of(prompt)
        candidates.append(
            Example(
                id=example_id(prompt, completion),
                row=number,
                prompt=prompt,
                completion=completion,
                difficulty=difficulty,
                title_key=title_key,
            )
        )
    near = find_near_duplicates(
        [f"{e.prompt}\n{e.completion}" for e in candidates], options.near_duplicate_threshold
    )
    kept: list[Example] = []
    lengths: list[int] = []
    for index, ex in enumerate(candidates):
        if index in near:
            earlier, sim = near[index]
            report.drop(
                "near_duplicate",
                ex.row,
                f"{sim:.2f} similar to row {candidates[earlier].row}",
                ex.prompt,
            )
            continue
        if tokenizer is not None:
            n = sum(map(len, encode_pair(tokenizer, ex, system_prompt)))
            if n > options.max_length:
                report.drop("too_long", ex.row, f"{n} tokens > {options.max_length}", ex.prompt)
                continue
            lengths.append(n)
        kept.append(ex)
    report.kept = len(kept)
    if lengths:
        report.token_lengths = {
            "mean": sum(lengths) / len(lengths),
            "max": float(max(lengths)),
            "total": float(sum(lengths)),
        }
    return kept, report


def title_key_of(prompt: str) -> str:
    """A title key for rows without one: the quoted dataset title in the question, if any."""
    match = _QUOTED_TITLE_RE.search(prompt)
    return compact_title(match.group(1)) if match else ""


def compact_title(title: str) -> str:
    """The SOS data's ``title_key`` normalization: punctuation removed inside words.

    ``"Callisto: Jupiter's Moon"`` -> ``"callisto jupiters moon"`` (the catalog's
    :func:`normalize_title` would say ``"jupiter s"``).
    """
    return " ".join(re.sub(r"[^a-z0-9\s]", "", title.lower()).split())


def more_information_url(text: str) -> str | None:
    """The URL after "More information:" in an answer (the last one), or None."""
    found = _MORE_INFO_RE.findall(text)
    return found[-1].rstrip("/") if found else None


# --------------------------------------------------------------------------- formatting


def encode_pair(
    tokenizer: Any, example: Example, system_prompt: str | None = None
) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) exactly as serving renders the conversation."""
    from llm.chat_format import render_example

    return render_example(tokenizer, example.messages(system_prompt), example.completion)


@dataclass(frozen=True, slots=True)
class Encoded:
    """Model inputs of one example; ``labels`` is -100 wherever no loss is taken."""

    input_ids: list[int]
    labels: list[int]

    @property
    def loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def encode_example(
    tokenizer: Any,
    example: Example,
    system_prompt: str | None = None,
    *,
    completion_only_loss: bool = True,
) -> Encoded:
    """Token ids and labels; prompt labels are -100 unless ``completion_only_loss`` is off.

    Loss on the answer only is the improvement over the published run: the prompt is given at
    inference, so learning to predict it only spends capacity (and the template's repeated
    system/user tokens dominate short answers' loss).
    """
    prompt_ids, completion_ids = encode_pair(tokenizer, example, system_prompt)
    ids = prompt_ids + completion_ids
    if completion_only_loss:
        labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    else:
        labels = list(ids)
    return Encoded(input_ids=ids, labels=labels)


__all__ = [
    "IGNORE_INDEX",
    "ColumnMap",
    "DataError",
    "DataReport",
    "Encoded",
    "Example",
    "ValidationOptions",
    "compact_title",
    "encode_example",
    "encode_pair",
    "example_id",
    "find_near_duplicates",
    "more_information_url",
    "norm_text",
    "read_rows",
    "title_key_of",
    "validate_rows",
]
