"""The whole configuration: one documented TOML file, a user file on top, environment last.

``config/default.toml`` holds every documented default; ``--config FILE`` overrides some keys;
``SOS_VOICE__SECTION__KEY`` variables override last. Each package owns its sections (see
``settings``); this module only puts them together, which is why it sits at the top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.config import CuratorConfig
from server.config import ServerConfig
from settings import ConfigError, build, env_overrides, merge, read_toml
from sphere.config import SosConfig
from voice.config import VoiceConfig

__all__ = ["DEFAULT_PATH", "ENV_PREFIX", "Config", "ConfigError", "LogConfig", "load_config"]

ENV_PREFIX = "SOS_VOICE__"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LogConfig:
    """Where the process's log records go (``[log]``; the CLI owns it: only the command that
    starts the process knows whether a journal, a terminal or a file is listening)."""

    # Least severe record written: debug, info, warning, error (-v lowers it to info).
    level: str = "warning"
    # "" = stderr (the journal under systemd; a terminal shares it with the console line);
    # a path = a rotating file there (--log-file overrides).
    file: str = ""
    # Rotation: a file over max_bytes is renamed .1 (.1 to .2 ...), backup_count are kept.
    max_bytes: int = 10_485_760
    backup_count: int = 5
    # "text" = one readable line per record; "json" = one JSON object per line (--log-json),
    # for a log shipper.
    format: str = "text"

    def validate(self) -> None:
        if self.level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"log.level must be one of {', '.join(LOG_LEVELS)}, not {self.level!r}"
            )
        if self.format not in LOG_FORMATS:
            raise ConfigError(f"log.format must be text or json, not {self.format!r}")
        if self.max_bytes < 1024 or self.backup_count < 1:
            raise ConfigError("log.max_bytes must be >= 1024 and log.backup_count >= 1")


@dataclass(frozen=True)
class Config(VoiceConfig):
    """All settings: the voice loop's, the WebSocket service's, the curator view's, the
    sphere's and the log's."""

    server: ServerConfig = field(default_factory=ServerConfig)
    curator: CuratorConfig = field(default_factory=CuratorConfig)
    sos: SosConfig = field(default_factory=SosConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Defaults from config/default.toml, then ``path``, then the environment."""
    data: dict[str, Any] = {}
    merge(data, read_toml(DEFAULT_PATH), str(DEFAULT_PATH))
    source = str(DEFAULT_PATH)
    if path is not None:
        merge(data, read_toml(Path(path)), str(path))
        source = str(path)
    env = env_overrides(os.environ if environ is None else environ, ENV_PREFIX)
    if env:
        merge(data, env, "environment")
        source = f"{source} + environment"
    return build(Config, data, source)
