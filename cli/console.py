"""What a person at the kiosk (or an educator at a terminal) sees: transcript, answer, link.

Kept apart from the CLI's argument handling so the same view serves the microphone loop, a WAV
file and a typed question. The status line (listening / thinking / speaking) is redrawn in place
on a terminal and printed as plain lines in verbose mode otherwise, so logs stay readable.

Anything else that writes to stderr while the view is live (the log handler, from any thread)
goes through :meth:`ConsoleView.aside`: the status line is cleared, an answer line that is
still streaming is broken off and, after the other line, written again from its start, so a
log record never runs into the answer. That is only done when stdout and stderr really end
up in one place (a terminal, ``2>&1``); a piped answer is never rewritten.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from voice.events import (
    ErrorEvent,
    Event,
    ResponseDone,
    ResponseStarted,
    ResponseTextDelta,
    StatusChanged,
    TranscriptReady,
)


class ConsoleView:
    """Prints a session's events. Call it as the session's ``emit``."""

    def __init__(
        self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, *, verbose: bool = False
    ) -> None:
        self._out = out
        self._err = err
        self._verbose = verbose
        self._tty = err.isatty()
        self._status = ""
        self._showing = ""
        self._answer_open = False
        self._answer = ""  # the open answer line's text so far, to write again after an aside
        self._shared = same_destination(out, err)
        # Events arrive on the event loop, log records from any thread.
        self._lock = threading.RLock()
        self.done: list[ResponseDone] = []

    def set_showing(self, title: str) -> None:
        with self._lock:
            self._showing = title
            self._draw_status()

    def note(self, text: str) -> None:
        """A line for the operator on stderr (e.g. which answerer was chosen), on its own line."""
        with self._lock:
            self._line(text, stream=self._err)

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Around a line someone else writes to stderr: before it the status line is cleared
        and an open answer line broken (where both streams share a destination); after it the
        answer so far and the status line are written again."""
        with self._lock:
            self._clear_status()
            reopen = self._answer_open and self._shared
            if reopen:
                self._out.write("\n")
                self._out.flush()
            try:
                yield
            finally:
                if reopen:
                    self._out.write("sos: " + self._answer)
                    self._out.flush()
                if self._tty:  # redraw in place; a plain stream is not sent the status again
                    self._draw_status()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, StatusChanged):
            self._status = event.state
            self._draw_status()
        elif isinstance(event, TranscriptReady):
            self._line(f"you: {event.text}" if event.text else "(no speech recognised)")
        elif isinstance(event, ResponseStarted):
            self._clear_status()
            self._out.write("sos: ")
            self._answer_open = True
            self._answer = ""
        elif isinstance(event, ResponseTextDelta):
            self._out.write(event.text)
            self._answer += event.text
            self._out.flush()
        elif isinstance(event, ResponseDone):
            self._finish(event)
        elif isinstance(event, ErrorEvent):
            self._line(f"error [{event.code}]: {event.message}", stream=self._err)

    def _finish(self, event: ResponseDone) -> None:
        self.done.append(event)
        if self._answer_open:
            self._out.write("\n")
            self._answer_open = False
        if event.status != "completed":
            self._line(f"({event.status}{': ' + event.error if event.error else ''})")
        if event.link:
            self._line(f"More information: {event.link}  [{event.link_title}]")
        if self._verbose:
            timings = ", ".join(f"{k} {v:.0f} ms" for k, v in event.timings.latencies_ms().items())
            self._line(f"timings from end of speech: {timings}", stream=self._err)
        self._out.flush()

    def _line(self, text: str, stream: TextIO | None = None) -> None:
        self._clear_status()
        if self._answer_open:
            self._out.write("\n")
            self._answer_open = False
        (stream or self._out).write(text + "\n")
        (stream or self._out).flush()
        self._draw_status()

    def _status_text(self) -> str:
        showing = f" | showing: {self._showing}" if self._showing else ""
        return f"[{self._status or 'starting'}]{showing}"

    def _draw_status(self) -> None:
        if self._answer_open:
            return
        if self._tty:
            self._err.write("\r\033[K" + self._status_text())
            self._err.flush()
        elif self._verbose and self._status:
            self._err.write(self._status_text() + "\n")

    def _clear_status(self) -> None:
        if self._tty:
            self._err.write("\r\033[K")
            self._err.flush()


def same_destination(out: TextIO, err: TextIO) -> bool:
    """True when both streams end up in one place: the same object, or file descriptors on the
    same file, pipe or terminal (``2>&1``, an interactive shell)."""
    if out is err:
        return True
    try:
        a, b = os.fstat(out.fileno()), os.fstat(err.fileno())
    except (OSError, ValueError, AttributeError):  # io.StringIO and the like: no descriptor
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
