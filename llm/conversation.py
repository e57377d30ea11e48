"""A short conversation around the answers: small talk, and follow-ups that use the last turn.

Visitors do not only ask catalog questions. They say hello, ask who they are talking to, say
thanks and goodbye, and follow up: "tell me more", "why?", "where is that?", "show me another
one". Answered as catalog questions these got "Sorry, I don't have a dataset about that".

:class:`ConversationAnswerer` sits inside the educator modes (a quiz answer such as "it's B"
is the quiz's, not a follow-up) and around any backend. Small talk gets a short, friendly
reply that invites a question about the sphere (no model call, no link). A follow-up is
rewritten to name the dataset the last answer was about (each assistant turn in the history
carries its link), so every backend, retrieval and the link check see an ordinary question
about that dataset: "Tell me more." after the tsunami answer becomes "Tell me more about Japan
Tsunami: Wave Propagation, March 11, 2011.", and "show me another one" asks for datasets like
it. The reply to a clarifying question ("the first one", "the ozone one"; see
:mod:`llm.clarify`) is rewritten the same way, to name the dataset chosen. Stateless:
everything comes from the request's history, like every answerer.

Why regular expressions: these are a handful of fixed phrasings, the transcript is short, and a
wrong guess costs little (the rewritten question still goes through retrieval and grounding).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import is_deictic
from catalog.text import spoken_title
from llm.base import Answerer, AnswerEvent, AnswerRequest, TextDelta
from llm.clarify import DECLINED, DECLINED_REPLY, resolve_choice
from llm.link_guard import split_for_streaming

_LEAD_IN = r"^\W*(?:(?:ok(?:ay)?|so|and|well|um|uh|oh|cool|wow|nice|great)\W+)*"
_GREETING_RE = re.compile(
    _LEAD_IN + r"(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening))"
    r"(?:\W+(?:there|everyone|sphere|robot|buddy))?\W*$",
    re.I,
)
_IDENTITY_RE = re.compile(
    _LEAD_IN + r"(?:who|what) are you\b|\bwhat(?:'s| is) your name\b|\bare you (?:a )?(?:robot|"
    r"computer|real|human|person|ai)\b|\bwhat can (?:i|we|you) (?:ask|say|do)\b|"
    r"\bhow does this (?:work|thing work)\b|\bwhat (?:do|does) (?:you|this thing) do\b",
    re.I,
)
_THANKS_RE = re.compile(
    _LEAD_IN + r"(?:thanks?(?: you)?(?: (?:so|very) much)?|thank u|cheers|cool thanks)"
    r"(?:\W+(?:bye|goodbye|see you))?\W*$",
    re.I,
)
_BYE_RE = re.compile(
    _LEAD_IN + r"(?:bye|goodbye|good bye|see you(?: later)?|see ya|we(?:'re| are) leaving)"
    r"(?:\W+\w+)?\W*$",
    re.I,
)
_STOP_RE = re.compile(
    _LEAD_IN + r"(?:(?:please )?(?:stop(?: (?:talking|it|that|there|please))?|wait(?: a (?:minute|"
    r"moment|second|sec))?|hold on|hang on|never ?mind|be quiet|quiet|shush|shh+|shut up|"
    r"(?:that'?s|that is) enough|enough|pause)(?: please)?)\W*$",
    re.I,
)
_MORE_RE = re.compile(
    _LEAD_IN + r"(?:(?:can|could) you )?(?:please )?(?:tell me (?:some(?:thing)? )?more|"
    r"more(?: please)?|go on|keep going|continue|what else (?:can you tell me|do you know)|"
    r"and then what|say more)\W*(?:please\W*)?$",
    re.I,
)
_ANOTHER_RE = re.compile(
    _LEAD_IN + r"(?:(?:can|could) you )?(?:please )?(?:show me |tell me about |what about |"
    r"let'?s see |do |how about )?(?:another|a different|some other)(?: one| dataset| example|"
    r" animation)?\W*(?:please\W*)?$|^\W*(?:show me )?something else\W*$",
    re.I,
)
_SHORT_WH_RE = re.compile(
    r"^\W*(why|how|where|when|what)(?: (?:is|are|was|were|does|do|did|can|could|will) "
    r"(?:that|it|this|they|there))?(?: (?:happen(?:ing)?|come from|from|so|work|made|located))?"
    r"\W*$",
    re.I,
)
_PRONOUN_RE = re.compile(r"\b(?:it|that|they|them)\b", re.I)
PRONOUN_MAX_WORDS = 5
"""A question this short with "it"/"that" is about the last answer ("How big is it?"); a
longer one is a new question that happens to use a pronoun ("Why is it hot in summer?")."""


def small_talk(question: str, showing: CatalogEntry | None) -> str | None:
    """The reply to a greeting, "who are you?", thanks, goodbye or "stop"; None for anything
    else."""
    now = (
        f" Right now the sphere shows {spoken_title(showing.title)}; ask me about it."
        if showing is not None
        else ""
    )
    if _GREETING_RE.search(question):
        return (
            "Hi! I'm the sphere's guide. Ask me about anything on the sphere, like what causes "
            f"a tsunami or where hurricanes form.{now}"
        )
    if _IDENTITY_RE.search(question):
        return (
            "I'm the guide for Science On a Sphere. Ask me a question about the Earth, the "
            "oceans, the weather or the planets, and I'll answer and show you a dataset about "
            f"it.{now}"
        )
    if _THANKS_RE.search(question):
        return "You're welcome! Ask me anything else about the sphere."
    if _BYE_RE.search(question):
        return "Goodbye, and thanks for visiting the sphere!"
    if _STOP_RE.search(question):
        # Said over an answer, this is what cut it: the visitor wants it to stop, not a
        # dataset about "stop" ("Sorry, I don't have a dataset about that" was the reply).
        return "Okay."
    return None


def last_dataset(request: AnswerRequest, catalog: Catalog) -> CatalogEntry | None:
    """The dataset the most recent answer with a link was about."""
    for message in reversed(request.history):
        if message.role == "assistant" and message.link:
            return catalog.by_url(message.link)
    return None


def follow_up(request: AnswerRequest, previous: CatalogEntry) -> str | None:
    """``request.question`` rewritten to name ``previous`` when it follows up on it, else
    None. "This" and "that" stay with the sphere when something is showing."""
    question = request.question.strip()
    title = previous.title
    if _MORE_RE.search(question):
        return f"Tell me more about {title}."
    if _ANOTHER_RE.search(question):
        return f"What else is like {title}?"
    if request.showing is not None and is_deictic(question):
        return None
    wh = _SHORT_WH_RE.match(question)
    if wh:
        return f"{wh.group(1).capitalize()} - {title}?"
    if len(question.split()) <= PRONOUN_MAX_WORDS and _PRONOUN_RE.search(question):
        return _PRONOUN_RE.sub(title, question, count=1)
    return None


class ConversationAnswerer:
    """Small talk and follow-ups around ``inner``, reported under the inner answerer's name."""

    def __init__(self, inner: Answerer, catalog: Catalog) -> None:
        self.inner = inner
        self.name = inner.name
        self.generative = inner.generative
        self._catalog = catalog

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        choice = None
        reply = small_talk(request.question, request.showing)
        if reply is None:
            choice = resolve_choice(request, self._catalog)
            if choice is DECLINED:
                reply = DECLINED_REPLY
        if reply is not None:
            for piece in split_for_streaming(reply):
                yield TextDelta(piece)
                await asyncio.sleep(0)
            return
        rewritten: str | None = None
        if isinstance(choice, CatalogEntry):
            rewritten = f"Tell me about {choice.title}."
        elif (previous := last_dataset(request, self._catalog)) is not None:
            rewritten = follow_up(request, previous)
        if rewritten is not None:
            request = dataclasses.replace(request, question=rewritten)
        async with contextlib.aclosing(self.inner.stream(request)) as inner:
            async for event in inner:
                yield event

    async def aclose(self) -> None:
        await self.inner.aclose()
