"""What a person at the kiosk (or an educator at a terminal) sees: transcript, answer, link.

Kept apart from the CLI's argument handling so the same view serves the microphone loop, a WAV
file and a typed question. The status line (listening / thinking / speaking) is redrawn in place
on a terminal and printed as plain lines in verbose mode otherwise, so logs stay readable.
"""

from __future__ import annotations

import sys
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
        self.done: list[ResponseDone] = []

    def set_showing(self, title: str) -> None:
        self._showing = title
        self._draw_status()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StatusChanged):
            self._status = event.state
            self._draw_status()
        elif isinstance(event, TranscriptReady):
            self._line(f"you: {event.text}" if event.text else "(no speech recognised)")
        elif isinstance(event, ResponseStarted):
            self._clear_status()
            self._out.write("sos: ")
            self._answer_open = True
        elif isinstance(event, ResponseTextDelta):
            self._out.write(event.text)
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
