"""The educator wrapper answerer: decides per request which mode answers it.

See :mod:`llm.educator` for the modes. Stateless and shared, like every answerer: all
per-visitor state comes from the request (history, showing, audience).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import build_grounding, is_deictic
from catalog.quiz_bank import QuizBank
from catalog.retrieval import Retriever
from catalog.terms import analyze
from llm.base import Answerer, AnswerEvent, AnswerRequest, Link, TextDelta
from llm.educator.activities import ActivityWriter, activity_hint
from llm.educator.intents import (
    asks_for_activity,
    asks_for_more_like,
    asks_for_quiz,
    grade_band,
    topic_words,
)
from llm.educator.quiz_flow import ask_again, grade, start_quiz, stop_quiz
from llm.educator.related import related_reply
from llm.educator.reply import Reply, with_hint
from llm.link_guard import split_for_streaming
from llm.quiz import is_stop, looks_like_question, match_option, quiz_state


class EducatorAnswerer:
    """Educator modes around ``inner``, reported under the inner answerer's name.

    ``write_activities``: build classroom activities from the catalog here. By default that is
    done when ``inner`` is not :attr:`~llm.base.Answerer.generative` (the catalog answerer
    cannot write one); a language model gets the request with a mode hint instead.
    """

    def __init__(
        self,
        inner: Answerer,
        catalog: Catalog,
        retriever: Retriever,
        *,
        write_activities: bool | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.generative = inner.generative
        self._catalog = catalog
        self._retriever = retriever
        self._bank = QuizBank(catalog)
        self._bank.warm()
        self._activities = ActivityWriter(self._bank)
        self._write_activities = (
            not inner.generative if write_activities is None else write_activities
        )

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """An educator answer (text in word groups, then its Link), or the inner answerer's.

        Deciding runs retrieval and builds quiz questions, so it runs in a worker thread; the
        inner stream is closed when this one is (barge-in reaches the model).
        """
        reply = await asyncio.to_thread(self.reply, request)
        if reply.delegate is not None:
            async with contextlib.aclosing(self.inner.stream(reply.delegate)) as inner:
                async for event in inner:
                    yield event
            return
        for piece in split_for_streaming(reply.text):
            yield TextDelta(piece)
            await asyncio.sleep(0)
        if reply.link is not None:
            yield Link(url=reply.link.url, title=reply.link.title)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def reply(self, request: AnswerRequest) -> Reply:
        """What to do with one request. Blocking (retrieval); :meth:`stream` threads it."""
        question = request.question
        state = quiz_state(request.history, self._bank)
        if state is not None:
            if is_stop(question):
                return stop_quiz(state.entry, state.score, state.answered)
            if not asks_for_quiz(question):
                questions = self._bank.questions(state.entry)
                current = questions[state.number - 1]
                choice = match_option(question, current.options)
                if choice is not None:
                    return grade(state.entry, questions, state, choice, request.audience)
                if not looks_like_question(question):
                    return ask_again(state.entry, current, state)
        if asks_for_quiz(question):
            entry = self._target(request, question)
            questions = self._bank.questions(entry) if entry is not None else []
            return start_quiz(entry, questions, request.audience)
        if is_stop(question) and "quiz" in question.lower():
            return Reply("There's no quiz going on. Say quiz me on this to start one.")
        if asks_for_more_like(question):
            entry = self._target(request, question)
            if entry is not None:
                return related_reply(entry, request.audience, self._catalog, self._retriever)
        if asks_for_activity(question):
            return self._activity(request)
        return Reply(delegate=request)

    def _target(self, request: AnswerRequest, question: str) -> CatalogEntry | None:
        """The dataset an educator request is about: the showing one for "this" or when no
        other topic is named, else the catalog's best match for the named topic."""
        showing = request.showing
        topic = topic_words(question)
        if not analyze(topic) or (showing is not None and is_deictic(question)):
            return showing
        probe = dataclasses.replace(request, question=topic)
        grounding = build_grounding(probe.question, probe.showing, self._retriever, k=1)
        if grounding.pinned:
            return showing
        return grounding.primary or showing

    def _activity(self, request: AnswerRequest) -> Reply:
        entry = self._target(request, request.question)
        band = grade_band(request.question, request.audience)
        if not self._write_activities:
            return Reply(delegate=with_hint(request, activity_hint(entry, band)))
        if entry is None:
            return Reply(
                "Which dataset would you like a classroom activity for? Ask me while it's on "
                "the sphere, or name it, for example: a classroom activity about hurricanes."
            )
        return Reply(self._activities.write(entry, band, request.audience), entry)
