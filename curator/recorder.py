"""Turns a session's events into one :class:`curator.store.TurnRecord` per visitor turn.

A recorder is attached to each :class:`voice.pipeline.Session` by whoever creates it (the
server per connection, the CLI for the kiosk microphone) through ``Session.subscribe``. It
listens on the event loop and does nothing slow: it keeps a few facts about the turn in flight
and, when the turn ends, hands one row to the store's queue.

What counts as what:

* a spoken turn whose transcript Whisper rejected (empty) or could not produce: ``misheard``;
* an answer cancelled after the visitor started speaking again: ``barge_in``; cancelled any
  other way (the client's ``response.cancel``, a disconnect): ``cancelled``;
* a completed answer that apologizes ("Sorry, I don't have a dataset about that"): ``sorry``;
  one without a catalog link: ``no_link``; with one: ``answered``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from curator.store import CuratorStore, TurnRecord
from voice.events import (
    ErrorEvent,
    Event,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    TranscriptReady,
)
from voice.pipeline import Session

__all__ = ["Recorder", "classify"]

MAX_TEXT_CHARS = 2000
_APOLOGY = re.compile(r"^\W*(sorry|i'?m sorry|i am sorry|i don'?t know|i do not know)\b", re.I)


def classify(done: ResponseDone, barge_in: bool) -> str:
    """The outcome of a finished response (see the module docstring)."""
    if done.status == "cancelled":
        return "barge_in" if barge_in else "cancelled"
    if done.status == "failed":
        return "failed"
    if _APOLOGY.match(done.text):
        return "sorry"
    return "answered" if done.link else "no_link"


class Recorder:
    """Records the turns of every session attached to it into one store."""

    def __init__(
        self, store: CuratorStore, source: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.source = source
        self._clock = clock

    def attach(self, session: Session) -> Callable[[], None]:
        """Record ``session``'s turns from now on; returns the function that stops it."""
        return session.subscribe(_SessionTap(self, session))

    def record_turn(self, session: Session, **fields: object) -> None:
        """Queue one row for ``session``'s turn (``fields``: the TurnRecord's own)."""
        showing = session.showing
        self.store.record(
            TurnRecord(
                at=self._clock(),
                session_id=session.id,
                source=self.source,
                audience=session.settings.audience,
                showing=showing.title if showing is not None else None,
                **fields,  # type: ignore[arg-type]
            )
        )


class _SessionTap:
    """The per-session state between a turn's first event and its last."""

    def __init__(self, recorder: Recorder, session: Session) -> None:
        self._recorder = recorder
        self._session = session
        self._transcript: str | None = None  # the last spoken question, until answered
        self._question: tuple[str, str] | None = None  # (question, "spoken"/"typed") in flight
        self._barged = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, TranscriptReady):
            text = event.text.strip()
            if text:
                self._transcript = text
            else:
                self._misheard()
        elif isinstance(event, ErrorEvent) and event.code == "transcription_failed":
            self._misheard()
        elif isinstance(event, ResponseStarted) and event.reprompt is not None:
            return  # the spoken "didn't catch that" of a turn already recorded as misheard
        elif isinstance(event, ResponseStarted):
            spoken = self._transcript is not None and event.question == self._transcript
            self._transcript = None
            self._question = (event.question, "spoken" if spoken else "typed")
            self._barged = False
        elif isinstance(event, SpeechStarted):
            # Speech while an answer is in flight (and barge-in on): if that answer ends
            # cancelled, the visitor interrupted it, not the client.
            self._barged = self._question is not None and self._session.settings.barge_in
        elif isinstance(event, ResponseDone) and self._question is not None:
            self._done(event)

    def _misheard(self) -> None:
        self._recorder.record_turn(self._session, input="spoken", question="", outcome="misheard")

    def _done(self, done: ResponseDone) -> None:
        question, kind = self._question or ("", "typed")
        self._question = None
        latencies = done.timings.latencies_ms()
        self._recorder.record_turn(
            self._session,
            input=kind,
            question=question[:MAX_TEXT_CHARS],
            outcome=classify(done, self._barged),
            answer=done.text[:MAX_TEXT_CHARS],
            link_url=done.link,
            link_title=done.link_title,
            transcript_ms=latencies.get("transcript"),
            first_text_ms=latencies.get("first_text"),
            first_audio_ms=latencies.get("first_audio"),
            done_ms=latencies.get("done"),
        )
        self._barged = False
