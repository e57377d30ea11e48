"""Typed settings from TOML and the environment, for every package's own config sections.

The bottom of the layering: it knows no product concept. Each package declares the frozen
dataclasses it reads (``catalog.config``, ``llm.config``, ``voice.config``, ``server.config``,
``training.config``, whose sections stay mutable because a resumed run adjusts them); this
package turns TOML tables, ``PREFIX__SECTION__KEY`` variables and ``section.key=value``
command-line overrides into them, failing with the key's name on anything unknown or mistyped.
"""

from settings.loader import (
    ConfigError,
    build,
    env_overrides,
    merge,
    parse_assignments,
    parse_literal,
    read_toml,
)

__all__ = [
    "ConfigError",
    "build",
    "env_overrides",
    "merge",
    "parse_assignments",
    "parse_literal",
    "read_toml",
]
