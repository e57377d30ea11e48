"""Build frozen dataclasses of sections from nested mappings, strictly.

Why dataclasses and not a dict: a typo in a key or a string where a number belongs must stop the
program at start-up with the key's name, not surface as a KeyError in the middle of a visitor's
question. A config is a dataclass whose fields are section dataclasses; a section may define
``validate()`` to check its values together.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is unknown or has a bad value; the message names the key."""


def coerce(value: Any, expected: Any, where: str) -> Any:
    """``value`` as the declared type ``expected``, or a ConfigError naming ``where``.

    Ints are accepted for floats and strings (device indices: ``input_device = 2``), nothing is
    accepted for a bool but a bool, and ``list[X]`` checks every item.
    """
    if isinstance(expected, types.UnionType):
        raise TypeError("union settings are not supported")
    if typing.get_origin(expected) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(expected) or (Any,)
        if item_type is Any:
            return list(value)
        return [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, expected) and not isinstance(value, bool):
        return value
    raise ConfigError(
        f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
    )


def _section(cls: type[T], values: Any, name: str, source: str) -> T:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key {name}.{key} (known: {', '.join(sorted(known))})"
            )
        kwargs[key] = coerce(value, hints[key], f"{source}: {name}.{key}")
    section = cls(**kwargs)
    validate = getattr(section, "validate", None)
    if validate is not None:
        validate()
    return section


def build(cls: type[T], data: Mapping[str, Any], source: str) -> T:
    """An instance of the config dataclass ``cls`` from ``{section: {key: value}}``.

    Sections and keys left out keep their defaults; ``source`` names where the data came from
    in every error.
    """
    hints = typing.get_type_hints(cls)
    sections = {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    built: dict[str, Any] = {}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown config section [{name}]")
        built[name] = _section(sections[name], values, name, source)
    return cls(**built)


def merge(base: dict[str, Any], extra: Mapping[str, Any], source: str) -> None:
    """Overlay ``extra``'s sections onto ``base`` key by key (in place)."""
    for name, values in extra.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of keys")
        base.setdefault(name, {}).update(values)


def parse_literal(text: str) -> Any:
    """A TOML literal (``700``, ``true``, ``"x"``, ``[1, 2]``), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Iterable[str], source: str) -> dict[str, dict[str, Any]]:
    """``["train.max_steps=5"]`` -> ``{"train": {"max_steps": 5}}`` (values: TOML literals).

    For command lines that override single keys (``--set section.key=value``); the result is
    merged and built like a file's tables, so the keys and types are checked the same way.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not (sep and dot and section and key):
            raise ConfigError(f"{source}: {item!r} must look like section.key=value")
        out.setdefault(section, {})[key] = parse_literal(raw)
    return out


def env_overrides(environ: Mapping[str, str], prefix: str) -> dict[str, dict[str, Any]]:
    """``{prefix}VAD__END_SILENCE_MS=700`` -> ``{"vad": {"end_silence_ms": 700}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment: {name} must look like {prefix}SECTION__KEY")
        out.setdefault(parts[0], {})[parts[1]] = parse_literal(raw)
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing file or a syntax error into a ConfigError."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config path is a folder, not a file: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
