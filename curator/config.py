"""The ``[curator]`` settings: whether visitors' questions are recorded, where, for how long."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from settings import ConfigError

__all__ = ["CuratorConfig", "default_db_path"]

MAX_RETENTION_DAYS = 3650


def default_db_path() -> Path:
    """$XDG_DATA_HOME/sos-voice/curator.sqlite3: data the staff keep, not a cache."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sos-voice" / "curator.sqlite3"


@dataclass(frozen=True)
class CuratorConfig:
    # Record each turn's text, outcome and latency for the /curator page (never audio).
    enabled: bool = True
    # SQLite file; "" = $XDG_DATA_HOME/sos-voice/curator.sqlite3 (~/.local/share/...).
    db_path: str = ""
    # Turns older than this many days are deleted (at start-up and every hour).
    retention_days: int = 28
    # Turns waiting to be written; when the disk falls this far behind, new turns are dropped
    # (counted and logged) rather than ever holding up a visitor's session.
    queue_size: int = 1000

    def validate(self) -> None:
        if not 1 <= self.retention_days <= MAX_RETENTION_DAYS:
            raise ConfigError(
                f"curator.retention_days must be 1..{MAX_RETENTION_DAYS}, not {self.retention_days}"
            )
        if self.queue_size < 1:
            raise ConfigError(f"curator.queue_size must be >= 1, not {self.queue_size}")
