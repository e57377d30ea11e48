"""A short conversation: small talk and follow-ups on the last answer, through the real
answerer chain (educator modes, conversation layer, catalog answerer) and a real Session."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog
from llm.base import AnswerRequest, ChatMessage
from llm.conversation import follow_up, last_dataset, small_talk
from tests.typed_session import typed_session
from voice.services import Services

TSUNAMI = "https://sos.noaa.gov/catalog/datasets/japan-tsunami-wave-propagation-march-11-2011"


@pytest.mark.parametrize(
    ("said", "starts"),
    [
        ("Hello!", "Hi!"),
        ("hey there", "Hi!"),
        ("Good morning.", "Hi!"),
        ("Who are you?", "I'm the guide"),
        ("What can I ask?", "I'm the guide"),
        ("Thanks!", "You're welcome"),
        ("Thank you so much.", "You're welcome"),
        ("Bye!", "Goodbye"),
        ("Stop.", "Okay."),  # said over an answer: it cut the answer, nothing more
        ("Okay, stop talking.", "Okay."),
        ("Wait a second.", "Okay."),
        ("Never mind.", "Okay."),
    ],
)
def test_small_talk_gets_a_short_friendly_reply(said: str, starts: str) -> None:
    reply = small_talk(said, None)
    assert reply is not None and reply.startswith(starts)
    assert len(reply.split()) <= 40


@pytest.mark.parametrize(
    "question",
    [
        "What causes a tsunami?",
        "Hi, what causes a tsunami?",
        "Is there water on Mars?",
        "Why?",
        "Why do hurricanes stop over land?",
        "Wait, what about volcanoes?",
    ],
)
def test_questions_are_not_small_talk(question: str) -> None:
    assert small_talk(question, None) is None


def test_small_talk_names_what_is_on_the_sphere(catalog: Catalog) -> None:
    showing = catalog.by_url(TSUNAMI)
    reply = small_talk("Hello", showing)
    assert reply is not None and "Japan Tsunami" in reply


def history(catalog: Catalog) -> tuple[ChatMessage, ...]:
    return (
        ChatMessage("user", "What causes a tsunami?"),
        ChatMessage("assistant", "Take a look at Japan Tsunami...", TSUNAMI),
    )


@pytest.mark.parametrize(
    ("question", "rewritten"),
    [
        ("Tell me more.", "Tell me more about Japan Tsunami"),
        ("can you tell me more please", "Tell me more about Japan Tsunami"),
        ("Go on.", "Tell me more about Japan Tsunami"),
        ("Show me another one.", "What else is like Japan Tsunami"),
        ("Why?", "Why - Japan Tsunami"),
        ("Where is that?", "Where - Japan Tsunami"),
        ("How big is it?", "How big is Japan Tsunami"),
        ("What causes hurricanes?", None),  # a new question
        ("Why is it hot in the summer?", None),  # a pronoun, but a question of its own
        ("Is there water on Mars?", None),
    ],
)
def test_follow_ups_name_the_last_answers_dataset(
    catalog: Catalog, question: str, rewritten: str | None
) -> None:
    request = AnswerRequest(question=question, history=history(catalog))
    previous = last_dataset(request, catalog)
    assert previous is not None and previous.url == TSUNAMI
    got = follow_up(request, previous)
    if rewritten is None:
        assert got is None
    else:
        assert got is not None and got.startswith(rewritten)


def test_this_stays_with_the_sphere(catalog: Catalog) -> None:
    showing = catalog.resolve("hurricane-season-2017")
    request = AnswerRequest("What is that?", history(catalog), showing=showing)
    assert follow_up(request, catalog.by_url(TSUNAMI)) is None  # type: ignore[arg-type]


async def test_a_conversation_at_the_kiosk(services: Services) -> None:
    """Typed turns through a real Session and the real answerer chain."""
    async with typed_session(services) as say:
        hello = await say("Hello!")
        assert hello.link is None and "ask me" in hello.text.lower()
        first = await say("What causes a tsunami?")
        assert first.link is not None and "tsunami" in first.link
        more = await say("Tell me more.")
        assert more.link == first.link
        assert more.text and not more.text.startswith("Take a look")  # the title once
        said_before = set(first.text.split(". "))
        assert not said_before & set(more.text.split(". ")), (first.text, more.text)
        where = await say("Where is that?")
        assert where.link == first.link and "Sorry" not in where.text
        another = await say("Show me another one.")
        assert another.link is not None and "Sorry" not in another.text
        assert "tsunami" in another.text.lower() or "earthquake" in another.text.lower()
        thanks = await say("Thanks, bye!")
        assert thanks.link is None and "welcome" in thanks.text.lower()
