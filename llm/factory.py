"""Which answerer this process runs, and why (logged at start-up).

``llm.answerer = "auto"`` picks, in order:

1. the local SOS model (``transformers``) when CUDA is available and the base model and
   adapter can be had: a local folder, a copy already in the Hugging Face cache, or the hub
   reachable (not when ``HF_HUB_OFFLINE`` is set);
2. the OpenAI-compatible server (``openai``) when ``llm.base_url`` is set;
3. the catalog answerer, which needs no model at all.

The checks are cheap and never download anything: the hub is asked only for one file's
metadata, with a short timeout, and only when nothing is cached. Explicit choices are honoured
or fail with an :class:`AnswererUnavailable` that says what is missing.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.datasets import Catalog
    from catalog.retrieval import Retriever
    from llm.base import Answerer
    from llm.config import LlmConfig

log = logging.getLogger(__name__)

HUB_CHECK_TIMEOUT_S = 3.0


class AnswererUnavailable(RuntimeError):
    """The configured answerer cannot run here; the message says what is missing."""


def hub_offline() -> bool:
    """True when Hugging Face hub access is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return True


def model_source(ref: str, marker: str, *, allow_network: bool = True) -> str | None:
    """Where ``ref`` (hub id or folder) would load from, or None if it cannot be had.

    ``marker`` is a file every such model has: ``config.json`` for a model,
    ``adapter_config.json`` for a LoRA adapter.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return f"local folder {path}" if (path / marker).is_file() else None
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        return None  # a path that does not exist, not a hub id
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(ref, marker)
    except Exception:  # malformed id and the like
        return None
    if isinstance(cached, str):
        return f"{ref} in the Hugging Face cache"
    if not allow_network or hub_offline():
        return None
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        get_hf_file_metadata(hf_hub_url(ref, marker), timeout=HUB_CHECK_TIMEOUT_S)
    except Exception as exc:
        log.debug("hub check for %s failed: %s", ref, exc)
        return None
    return f"{ref} on the Hugging Face hub (downloaded at load)"


def _missing_local_stack() -> list[str]:
    names = ("torch", "transformers", "peft", "accelerate")
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    return missing


def local_model_status(cfg: LlmConfig, *, allow_network: bool = True) -> tuple[bool, str]:
    """(can the local model be loaded, why / why not) — without loading anything."""
    missing = _missing_local_stack()
    if cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes")
    if missing:
        return False, f"missing packages: {', '.join(missing)}"
    base = model_source(cfg.base_model, "config.json", allow_network=allow_network)
    if base is None:
        return False, f"base model {cfg.base_model!r} is not a local folder, not cached, and " + (
            "the hub is offline" if hub_offline() else "the hub is unreachable"
        )
    if not cfg.adapter:
        return True, f"base model: {base}, no adapter"
    adapter = model_source(cfg.adapter, "adapter_config.json", allow_network=allow_network)
    if adapter is None:
        return False, f"adapter {cfg.adapter!r} is not a local folder, not cached, and " + (
            "the hub is offline" if hub_offline() else "the hub is unreachable"
        )
    return True, f"base model: {base}; adapter: {adapter}"


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_answerer(cfg: LlmConfig) -> tuple[str, str]:
    """The answerer kind to build for ``cfg`` and the reason, without building it.

    Raises :class:`AnswererUnavailable` for an explicit choice that cannot work here.
    """
    choice = cfg.answerer
    if choice == "catalog":
        return "catalog", "llm.answerer = catalog"
    if choice == "openai":
        if not cfg.base_url:
            raise AnswererUnavailable("llm.answerer = openai needs llm.base_url")
        if importlib.util.find_spec("openai") is None:
            raise AnswererUnavailable("llm.answerer = openai needs: pip install openai")
        return "openai", f"llm.answerer = openai ({cfg.base_url}, model {cfg.model!r})"
    if choice == "transformers":
        ok, why = local_model_status(cfg)
        if not ok:
            raise AnswererUnavailable(f"llm.answerer = transformers cannot run: {why}")
        where = "CUDA" if cuda_available() else "the CPU (slow: for tests and development)"
        return "transformers", f"llm.answerer = transformers on {where}; {why}"
    # auto
    reasons = []
    if cuda_available():
        ok, why = local_model_status(cfg)
        if ok:
            return "transformers", f"auto: CUDA available; {why}"
        reasons.append(f"local model unavailable ({why})")
    else:
        reasons.append("no CUDA for the local model")
    if cfg.base_url:
        if importlib.util.find_spec("openai") is not None:
            return "openai", "auto: " + "; ".join(reasons) + f"; using {cfg.base_url}"
        reasons.append("llm.base_url is set but the openai package is missing")
    else:
        reasons.append("no llm.base_url")
    return "catalog", "auto: " + "; ".join(reasons) + "; answering from the catalog"


def build_answerer(cfg: LlmConfig, catalog: Catalog, retriever: Retriever) -> tuple[Answerer, str]:
    """Build the configured answerer (loading the model if it is the local one).

    Returns the answerer and the reason it was chosen; both are logged. Loading the local
    model takes a while: call this at start-up, off the event loop.
    """
    kind, reason = choose_answerer(cfg)
    answerer: Any
    if kind == "transformers":
        from llm.transformers import TransformersAnswerer, load_model

        loaded = load_model(cfg)
        answerer = TransformersAnswerer(cfg, catalog, retriever, loaded)
        reason = f"{reason}; loaded {loaded.describe()}"
    elif kind == "openai":
        from llm.openai_answerer import OpenAIAnswerer

        answerer = OpenAIAnswerer(cfg, catalog, retriever)
    else:
        from llm.catalog_answerer import CatalogAnswerer

        answerer = CatalogAnswerer(catalog, retriever, grounding_entries=cfg.grounding_entries)
    from llm.conversation import ConversationAnswerer
    from llm.educator import EducatorAnswerer

    # Every backend gets small talk and follow-ups on the last answer, and around them the
    # educator modes (quiz, classroom activity, related datasets).
    answerer = ConversationAnswerer(answerer, catalog)
    answerer = EducatorAnswerer(answerer, catalog, retriever)
    log.info("answerer: %s (%s)", answerer.name, reason)
    return answerer, reason
