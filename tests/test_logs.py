"""Logging: records never run into the console's answer line, a rotating file and JSON lines on
request, and the real command reports which answerer ``auto`` chose without ``-v``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.config import LogConfig, load_config
from cli.console import ConsoleView, same_destination
from cli.logs import ConsoleLogHandler, setup_logging
from settings import ConfigError
from voice.events import (
    ResponseDone,
    ResponseStarted,
    ResponseTextDelta,
    StatusChanged,
    TurnTimings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_log_record_mid_answer_gets_its_own_line(restore_logging: None) -> None:
    terminal = io.StringIO()  # stdout and stderr in one place, as on a terminal
    view = ConsoleView(terminal, terminal)
    handler = setup_logging(LogConfig(level="info"), stream=terminal)
    assert isinstance(handler, ConsoleLogHandler)
    handler.attach(view)
    view(ResponseStarted("r1", "q"))
    view(ResponseTextDelta("r1", "Tsunamis are caused "))
    logging.getLogger("sos-voice.test").warning("the speaker went away")
    view(ResponseTextDelta("r1", "by undersea earthquakes."))
    view(ResponseDone("r1", "completed", "", None, None, TurnTimings()))
    lines = terminal.getvalue().splitlines()
    assert lines[-1] == "sos: Tsunamis are caused by undersea earthquakes."
    assert lines[-2].endswith("WARNING sos-voice.test: the speaker went away")
    assert lines[0] == "sos: Tsunamis are caused "  # broken off before the record, not into it


def test_records_from_other_threads_never_split_an_answer_line(restore_logging: None) -> None:
    terminal = io.StringIO()
    view = ConsoleView(terminal, terminal)
    handler = setup_logging(LogConfig(level="info"), stream=terminal)
    assert handler is not None
    handler.attach(view)
    log = logging.getLogger("sos-voice.worker")
    workers = [
        threading.Thread(target=lambda: [log.info("busy %d", i) for i in range(50)])
        for _ in range(3)
    ]
    view(ResponseStarted("r1", "q"))
    for worker in workers:
        worker.start()
    for word in ["one", "two", "three", "four", "five", "six", "seven", "eight"] * 10:
        view(ResponseTextDelta("r1", word + " "))
    for worker in workers:
        worker.join()
    view(ResponseDone("r1", "completed", "", None, None, TurnTimings()))
    for line in terminal.getvalue().splitlines():
        assert line.startswith("sos: ") or line.split()[2:4] == ["INFO", "sos-voice.worker:"], line
    assert terminal.getvalue().splitlines()[-1].count("eight") == 10


def test_a_piped_answer_is_never_rewritten() -> None:
    out, err = io.StringIO(), io.StringIO()  # two destinations: nothing to step around
    view = ConsoleView(out, err)
    view(ResponseStarted("r1", "q"))
    view(ResponseTextDelta("r1", "half "))
    with view.aside():
        err.write("a log line\n")
    view(ResponseTextDelta("r1", "and the rest"))
    assert out.getvalue() == "sos: half and the rest"
    assert not same_destination(out, err)
    with open(os.devnull, "w") as a, open(os.devnull, "w") as b:
        assert same_destination(a, b)  # two descriptors on one file


def test_rotating_json_log_file(tmp_path: Path, restore_logging: None) -> None:
    path = tmp_path / "sos-voice.log"
    cfg = LogConfig(level="info", file=str(path), max_bytes=2048, backup_count=2, format="json")
    assert setup_logging(cfg) is None  # not the console's stream
    log = logging.getLogger("sos-voice.test")
    for i in range(100):
        log.info("turn %d done", i)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("a session failed")
    logging.getLogger().handlers[0].flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sos-voice.log",
        "sos-voice.log.1",
        "sos-voice.log.2",
    ]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[-1]["message"] == "a session failed"
    assert records[-1]["level"] == "error" and "RuntimeError: boom" in records[-1]["exception"]
    assert records[-2] == {
        "time": records[-2]["time"],
        "level": "info",
        "logger": "sos-voice.test",
        "message": "turn 99 done",
    }
    assert records[-2]["time"].endswith("Z")


def test_log_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"log\.level"):
        load_config(environ={"SOS_VOICE__LOG__LEVEL": "loud"})
    with pytest.raises(ConfigError, match=r"log\.format"):
        load_config(environ={"SOS_VOICE__LOG__FORMAT": "xml"})
    assert load_config(environ={"SOS_VOICE__LOG__FILE": "/tmp/x.log"}).log.file == "/tmp/x.log"


@pytest.mark.slow
def test_the_command_logs_json_to_a_file_and_names_its_answerer(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "--text", "What causes a tsunami?", "--no-play"),
            *("--log-file", str(log_file), "--log-json"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "HF_HUB_OFFLINE": "1",
            "SOS_VOICE__LOG__LEVEL": "info",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sos: ")
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(r["message"].startswith("answerer: ") for r in records), records
    # The choice is on stderr for the operator; the records went to the file only, and no
    # progress bar ("Loading weights" of the retrieval encoder, every run) is drawn without -v.
    assert result.stderr.splitlines() == [
        "answerer: catalog (auto: no CUDA for the local model; no llm.base_url; "
        "answering from the catalog)"
    ]


@pytest.mark.slow
def test_verbose_logs_to_stderr_beside_the_console() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--text", "What causes a tsunami?", "--no-play", "-v"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert " INFO llm.factory: answerer: " in result.stderr
    assert "answerer: catalog (auto: " in result.stderr


def test_a_plain_verbose_stream_is_not_sent_the_status_after_every_record(
    restore_logging: None,
) -> None:
    err = io.StringIO()  # the journal: not a terminal
    view = ConsoleView(io.StringIO(), err, verbose=True)
    handler = setup_logging(LogConfig(level="info"), stream=err)
    assert handler is not None
    handler.attach(view)
    view(StatusChanged("listening"))
    for i in range(3):
        logging.getLogger("sos-voice.test").info("record %d", i)
    assert err.getvalue().splitlines()[0] == "[listening]"
    assert len(err.getvalue().splitlines()) == 4
