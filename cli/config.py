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

__all__ = ["DEFAULT_PATH", "ENV_PREFIX", "Config", "ConfigError", "load_config"]

ENV_PREFIX = "SOS_VOICE__"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"


@dataclass(frozen=True)
class Config(VoiceConfig):
    """All settings: the voice loop's, the WebSocket service's, the curator view's and the
    sphere's."""

    server: ServerConfig = field(default_factory=ServerConfig)
    curator: CuratorConfig = field(default_factory=CuratorConfig)
    sos: SosConfig = field(default_factory=SosConfig)


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
