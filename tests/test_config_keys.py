"""Every config key is read by something: a key nothing reads is a setting that silently does
nothing (``[pipeline] half_duplex`` was one), which is worse than no setting at all.

The check is syntactic on purpose. A key counts as read when product code (not tests, not the
config modules themselves) reads ``<anything>.<section>.<key>``, or reads ``.<key>`` in a module
that imports the section's class (code handed the section, e.g. ``Transcriber.load(cfg.stt)``).
An attribute of the same name on another object (``SessionSettings.half_duplex``) does not
count. It cannot prove the value is used well, but it catches a key that nothing passes on.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from cli.config import Config

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("settings", "catalog", "llm", "voice", "server", "cli", "training", "sphere", "curator")


def _reads() -> tuple[set[tuple[str, str]], list[tuple[set[str], set[str]]]]:
    """(``(section, key)`` chains read anywhere, per module: (imported names, attributes read))."""
    chains: set[tuple[str, str]] = set()
    modules: list[tuple[set[str], set[str]]] = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "config.py":
                continue  # a section's own validate() does not count as a reader
            imported: set[str] = set()
            attributes: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.Attribute):
                    attributes.add(node.attr)
                    if isinstance(node.value, ast.Attribute):
                        chains.add((node.value.attr, node.attr))
            modules.append((imported, attributes))
    return chains, modules


def _unread() -> list[str]:
    chains, modules = _reads()
    unread = []
    for section in dataclasses.fields(Config):
        cls = type(section.default_factory())  # type: ignore[misc]
        for key in (f.name for f in dataclasses.fields(cls)):
            if (section.name, key) in chains:
                continue
            if any(cls.__name__ in imported and key in attrs for imported, attrs in modules):
                continue
            unread.append(f"{section.name}.{key}")
    return unread


def test_every_config_key_is_read_by_product_code() -> None:
    assert not (unread := _unread()), f"config keys nothing reads: {unread}"
