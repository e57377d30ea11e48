"""Where the process logs: stderr (the journal under systemd) or a rotating file, text or JSON.

Set up once by the command, from ``[log]`` and ``--log-file``/``--log-json``/``-v``. On stderr
the handler writes through the console (:meth:`cli.console.ConsoleView.aside`) once one is
attached, because a terminal shows stdout and stderr on the same lines: a record logged while
an answer is streaming would otherwise land in the middle of that answer's line.

Progress bars (Hugging Face downloads, transformers' "Loading weights") are switched off
unless ``-v``: they redraw with carriage returns on every run, even when nothing is
downloaded, over the console's status line or into the journal as one line per redraw.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cli.config import LogConfig
from settings import ConfigError

if TYPE_CHECKING:
    from cli.console import ConsoleView

__all__ = ["ConsoleLogHandler", "JsonFormatter", "quiet_progress_bars", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, and ``exception`` when there is one; a shipper needs no line parser."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class ConsoleLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler that steps around the console's lines once a view is attached."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._view: ConsoleView | None = None

    def attach(self, view: ConsoleView | None) -> None:
        self._view = view

    def emit(self, record: logging.LogRecord) -> None:
        view = self._view
        if view is None:
            super().emit(record)
            return
        with view.aside():
            super().emit(record)


def setup_logging(
    cfg: LogConfig, *, verbose: bool = False, stream: TextIO | None = None
) -> ConsoleLogHandler | None:
    """Install the root handler; returns it when it writes to the console's stderr (to
    :meth:`ConsoleLogHandler.attach` the view), None for a file. Replaces earlier handlers,
    so it may be called again (tests, a second run in one process)."""
    level = getattr(logging, cfg.level.upper())
    if verbose:
        level = min(level, logging.INFO)
    handler: logging.Handler
    console: ConsoleLogHandler | None = None
    if cfg.file:
        path = Path(cfg.file).expanduser()
        try:
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=cfg.max_bytes, backupCount=cfg.backup_count, encoding="utf-8"
            )
        except OSError as exc:
            raise ConfigError(f"log.file: cannot write {path}: {exc}") from exc
    else:
        handler = console = ConsoleLogHandler(stream)
    handler.setFormatter(
        JsonFormatter() if cfg.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return console


def quiet_progress_bars(verbose: bool) -> None:
    """Switch the Hugging Face progress bars off unless ``verbose`` (or the operator set
    ``HF_HUB_DISABLE_PROGRESS_BARS`` themselves, which wins)."""
    if verbose or "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # for anything not imported yet
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()  # for a hub already imported (transformers reads it at import)
