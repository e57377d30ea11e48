"""docs/architecture.md's picture is generated from the code and must match it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "architecture.py"


def test_architecture_picture_matches_the_imports() -> None:
    spec = importlib.util.spec_from_file_location("architecture_tool", TOOL)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--check"]) == 0, "run: python tools/architecture.py"
