"""settings: the generic loader that every package's config goes through."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from settings import ConfigError, build, merge, parse_assignments


@dataclass
class _Section:
    steps: int = 1
    rate: float = 0.5
    name: str = ""
    names: list[str] = field(default_factory=list)


@dataclass
class _Config:
    run: _Section = field(default_factory=_Section)


def test_assignments_are_toml_literals_by_section() -> None:
    parsed = parse_assignments(
        ["run.steps=5", "run.rate = 2", 'run.name="a b"', "run.names=['x', 'y']", "run.other=hi"],
        "--set",
    )
    assert parsed == {
        "run": {"steps": 5, "rate": 2, "name": "a b", "names": ["x", "y"], "other": "hi"}
    }


@pytest.mark.parametrize("item", ["run.steps", "steps=5", ".steps=5", "run.=5", "=5"])
def test_assignment_without_section_key_and_value_is_an_error(item: str) -> None:
    with pytest.raises(ConfigError, match=r"--set: .* must look like section\.key=value"):
        parse_assignments([item], "--set")


def test_assignments_build_like_a_file_and_name_the_key() -> None:
    data: dict = {"run": {"steps": 2, "name": "file"}}
    merge(data, parse_assignments(["run.steps=7", "run.rate=1"], "--set"), "--set")
    cfg = build(_Config, data, "f.toml + --set")
    assert cfg.run == _Section(steps=7, rate=1.0, name="file")
    assert isinstance(cfg.run.rate, float)
    cfg.run.steps = 9  # sections that are not frozen stay mutable after building
    assert cfg.run.steps == 9
    with pytest.raises(ConfigError, match=r"f\.toml \+ --set: unknown key run\.stepz"):
        build(_Config, parse_assignments(["run.stepz=1"], "--set"), "f.toml + --set")
    with pytest.raises(ConfigError, match=r"run\.steps: expected int, got str 'many'"):
        build(_Config, parse_assignments(["run.steps=many"], "--set"), "--set")
    with pytest.raises(ConfigError, match=r"run\.rate: expected float, got bool True"):
        build(_Config, parse_assignments(["run.rate=true"], "--set"), "--set")
