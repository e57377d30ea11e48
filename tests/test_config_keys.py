"""Every config key is read by something: a key nothing reads is a setting that silently does
nothing (``[pipeline] half_duplex`` was one), which is worse than no setting at all.

The check is syntactic on purpose. A key counts as read when product code (not tests, not the
config modules themselves) reads ``<anything>.<section>.<key>``, or reads ``.<key>`` in a module
that imports the section's class (code handed the section, e.g. ``Transcriber.load(cfg.stt)``).
An attribute of the same name on another object (``SessionSettings.half_duplex``) does not
count. A key a section's own accessor method turns into a value (``ServerConfig.hosts()`` reads
``allowed_hosts``) counts when product code reads that accessor. It cannot prove the value is
used well, but it catches a key that nothing passes on.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
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


def _accessors(cls: type) -> dict[str, set[str]]:
    """Key -> the section's own methods (not its validation) that read ``self.<key>``."""
    tree = ast.parse(Path(inspect.getfile(cls)).read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for method in node.body:
                if not isinstance(method, ast.FunctionDef) or method.name in _VALIDATION:
                    continue
                for sub in ast.walk(method):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id == "self"
                    ):
                        found.setdefault(sub.attr, set()).add(method.name)
    return found


_VALIDATION = {"validate", "__post_init__"}


def _unread() -> list[str]:
    chains, modules = _reads()

    def read(section: str, cls: type, name: str) -> bool:
        return (section, name) in chains or any(
            cls.__name__ in imported and name in attrs for imported, attrs in modules
        )

    unread = []
    for section in dataclasses.fields(Config):
        cls = type(section.default_factory())  # type: ignore[misc]
        accessors = _accessors(cls)
        for key in (f.name for f in dataclasses.fields(cls)):
            names = {key} | accessors.get(key, set())
            if not any(read(section.name, cls, name) for name in names):
                unread.append(f"{section.name}.{key}")
    return unread


def test_every_config_key_is_read_by_product_code() -> None:
    assert not (unread := _unread()), f"config keys nothing reads: {unread}"
