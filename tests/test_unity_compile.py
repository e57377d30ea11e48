"""The Unity client package (clients/unity/) compiles, and is a package Unity will import.

There is no Unity here, so the C# is compiled with Mono's real C# compiler, ``mcs`` (apt
``mono-mcs``, with ``libmono-system-net-http4.0-cil`` for HttpClient; ``make test`` installs
both), against UnityEngine stubs, warnings as errors. The stubs only declare the Unity API the
package uses; a call to anything else fails to compile, which the second test checks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clients" / "unity"
CHECK = PACKAGE / "compile-check~" / "check.sh"

needs_mcs = pytest.mark.skipif(
    shutil.which("mcs") is None,
    reason="mcs is not installed: apt install mono-mcs libmono-system-net-http4.0-cil "
    "(make system-test does)",
)


@needs_mcs
def test_package_and_sample_compile(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(CHECK), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "SosVoice.Runtime.dll").stat().st_size > 0
    assert (tmp_path / "SosVoice.Samples.dll").stat().st_size > 0


@needs_mcs
def test_the_stubs_refuse_unity_api_they_do_not_declare(tmp_path: Path) -> None:
    """A script that calls Unity API the stubs do not declare must not compile: the check is
    a real compile against a fixed API surface, not a pass-through."""
    bad = tmp_path / "Bad.cs"
    bad.write_text(
        "using UnityEngine;\n"
        "public class Bad : MonoBehaviour { void Start() { Microphone.StartRecording(); } }\n"
    )
    result = subprocess.run(
        [
            "mcs",
            "-nologo",
            "-target:library",
            f"-out:{tmp_path / 'bad.dll'}",
            str(bad),
            str(PACKAGE / "compile-check~" / "UnityStubs.cs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "StartRecording" in result.stdout + result.stderr


def test_package_manifest_and_assembly_definitions() -> None:
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+){2,}", manifest["name"]), manifest["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert re.fullmatch(r"\d{4}\.\d", manifest["unity"])
    for sample in manifest["samples"]:
        folder = PACKAGE / sample["path"]
        assert folder.is_dir() and list(folder.glob("*.cs")), sample
        assert (folder / "README.md").is_file()
    runtime = json.loads((PACKAGE / "Runtime" / "SosVoice.Runtime.asmdef").read_text())
    assert runtime["name"] == "SosVoice.Runtime"
    for asmdef in (PACKAGE / "Samples~").glob("*/*.asmdef"):
        assert "SosVoice.Runtime" in json.loads(asmdef.read_text())["references"]


def test_every_imported_asset_has_a_unique_meta_file() -> None:
    """Unity ignores files without .meta in an immutable (git or registry) package. Folders
    ending in ~ (the sample, the compile check) are not imported and need none."""
    guids: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE)
        if any(part.endswith("~") or part.startswith(".") for part in relative.parts):
            continue
        if path.suffix == ".meta":
            asset = path.with_name(path.name[: -len(".meta")])
            assert asset.exists(), f"{relative} has no asset"
            guid = re.search(r"^guid: ([0-9a-f]{32})$", path.read_text(), re.M)
            assert guid, f"{relative} has no guid"
            assert guid[1] not in guids, f"{relative} repeats the guid of {guids[guid[1]]}"
            guids[guid[1]] = relative
        else:
            assert path.with_name(path.name + ".meta").is_file(), f"{relative} has no .meta"


BACKOFF_PROBE = """
using System;
public static class Probe
{
    public static void Main()
    {
        var backoff = new SosVoice.Backoff(0.5, 30.0, 7);
        for (int i = 0; i < 10; i++) Console.WriteLine(backoff.Next().TotalSeconds.ToString("R"));
        backoff.Reset();
        Console.WriteLine(backoff.Next().TotalSeconds.ToString("R"));
    }
}
"""


@needs_mcs
@pytest.mark.skipif(shutil.which("mono") is None, reason="mono is not installed (apt mono-runtime)")
def test_backoff_grows_with_jitter_and_caps(tmp_path: Path) -> None:
    """Backoff.cs run for real on Mono: 0.5 s doubling to the 30 s cap, each within +-25 %,
    and back to 0.5 s after Reset()."""
    probe = tmp_path / "Probe.cs"
    probe.write_text(BACKOFF_PROBE)
    exe = tmp_path / "probe.exe"
    compiled = subprocess.run(
        ["mcs", "-nologo", f"-out:{exe}", str(probe), str(PACKAGE / "Runtime" / "Backoff.cs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = subprocess.run(["mono", str(exe)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    delays = [float(line) for line in ran.stdout.split()]
    for attempt, delay in enumerate(delays[:10]):
        nominal = min(30.0, 0.5 * 2**attempt)
        assert 0.75 * nominal <= delay <= min(30.0, 1.25 * nominal), (attempt, delay)
    assert delays[9] <= 30.0 and delays[9] >= 22.5
    assert 0.375 <= delays[10] <= 0.625
