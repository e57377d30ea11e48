"""The ``[catalog]`` settings: which catalog file, and how retrieval searches it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from settings import ConfigError


@dataclass(frozen=True)
class CatalogConfig:
    path: str = ""
    retrieval: str = "auto"

    def validate(self) -> None:
        if self.retrieval not in ("auto", "lexical", "hybrid"):
            raise ConfigError(
                f"catalog.retrieval must be auto, lexical or hybrid, not {self.retrieval!r}"
            )
        if self.path and not Path(self.path).expanduser().is_file():
            raise ConfigError(f"catalog.path: no such file: {self.path}")
