"""pyproject.toml installs what the code imports: the base set for every path, ``[gpu]`` for the
local model, and no file it names is missing. Checked against the imports in the source and
the distributions installed here (``importlib.metadata``), so a new import without its
requirement fails here and not on a fresh GPU machine."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {
    p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
}
# The GPU path: the local model, its tokenizer files, the dense catalog search.
GPU_SOURCES = ["llm/transformers/*.py", "llm/chat_format.py", "catalog/embeddings.py"]
# Names the code looks up without an import statement (importlib.util.find_spec, resources).
LOOKED_UP = re.compile(r"""(?:find_spec|files)\(\s*["']([A-Za-z0-9_]+)""")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(requirements: list[str]) -> set[str]:
    """The named distributions and everything they require, as installed here."""
    seen: set[str] = set()
    todo = [_name(r) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _modules(patterns: list[str]) -> set[str]:
    """Top-level third-party module names imported (or looked up) by these files."""
    names: set[str] = set()
    for pattern in patterns:
        for path in ROOT.glob(pattern):
            text = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
            names.update(LOOKED_UP.findall(text))
    return names - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


def _distributions(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in md.packages_distributions().get(module, [])}


def test_the_gpu_extra_installs_what_the_gpu_path_imports() -> None:
    project = PYPROJECT["project"]
    installs = _closure(project["dependencies"] + project["optional-dependencies"]["gpu"])
    missing = {
        module: sorted(_distributions(module))
        for module in _modules(GPU_SOURCES)
        if not _distributions(module) & installs
    }
    assert not missing, f"imported on the GPU path but not installed by .[gpu]: {missing}"


def test_the_catalog_comes_with_every_install() -> None:
    base = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert "zyra" in base  # catalog/datasets.py reads the catalog JSON zyra ships
    from catalog.datasets import default_catalog_path

    assert default_catalog_path().is_file()


def test_package_data_names_files_that_exist() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        for pattern in patterns:
            found = list((ROOT / package.replace(".", "/")).glob(pattern))
            assert found, f"pyproject package-data {package}: {pattern} matches no file"


def test_the_image_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.M))
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"
