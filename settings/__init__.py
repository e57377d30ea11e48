"""Typed settings from TOML and the environment, for every package's own config sections.

The bottom of the layering: it knows no product concept. Each package declares the frozen
dataclasses it reads (``catalog.config``, ``llm.config``, ``voice.config``, ``server.config``,
``training.config``); this package turns TOML tables and ``PREFIX__SECTION__KEY`` variables
into them, failing with the key's name on anything unknown or mistyped.
"""

from settings.loader import (
    ConfigError,
    build,
    env_overrides,
    merge,
    parse_literal,
    read_toml,
)

__all__ = ["ConfigError", "build", "env_overrides", "merge", "parse_literal", "read_toml"]
