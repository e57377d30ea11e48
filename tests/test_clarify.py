"""Asking back when unsure: which questions get "Did you mean ...?", and what the visitor's
reply chooses, through the real catalog, retriever, answerer chain and a real Session."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import build_grounding, choices_to_offer
from llm.base import AnswerRequest, ChatMessage
from llm.clarify import DECLINED, clarifying_question, offered, resolve_choice
from tests.typed_session import typed_session
from voice.services import Services

SALINITY = "sea-surface-salinity"
HEIGHT = "sea-surface-height-anomaly"


def test_every_dataset_can_be_offered_and_read_back(catalog: Catalog) -> None:
    """The offer is read back from the spoken text: every title must survive the trip, alone
    and next to another (a title with commas, a colon or a year range included)."""
    entries = list(catalog)
    for first, second in zip(entries, [*entries[1:], entries[0]], strict=True):
        assert offered(clarifying_question([first]), catalog) == [first]
        assert offered(clarifying_question([first, second]), catalog) == [first, second]


@pytest.mark.parametrize(
    "text",
    ["Take a look at Sea Surface Salinity.", "Did you mean Sea Surface Salinity?", ""],
)
def test_other_answers_offered_nothing(catalog: Catalog, text: str) -> None:
    assert offered(text, catalog) == []


def test_a_question_needs_something_to_offer() -> None:
    with pytest.raises(ValueError, match="at least one"):
        clarifying_question([])


def _after_offer(catalog: Catalog, reply: str) -> CatalogEntry | object | None:
    choices = [catalog.resolve(HEIGHT), catalog.resolve(SALINITY)]
    asked = clarifying_question([c for c in choices if c is not None])
    history = (
        ChatMessage("user", "Why is the sea higher in some places?"),
        ChatMessage("assistant", asked),
    )
    return resolve_choice(AnswerRequest(question=reply, history=history), catalog)


@pytest.mark.parametrize(
    ("reply", "chosen"),
    [
        ("The first one.", HEIGHT),
        ("the second one please", SALINITY),
        ("the other one", SALINITY),
        ("The last one", SALINITY),
        ("Yes.", HEIGHT),
        ("yeah", HEIGHT),
        ("Salinity.", SALINITY),
        ("the salty one", SALINITY),
        ("um, the height one", HEIGHT),
        ("Sea surface height anomaly", HEIGHT),
        ("yes, salinity", SALINITY),
        ("sea surface sanity", SALINITY),  # misheard, close in sound
    ],
)
def test_the_reply_chooses(catalog: Catalog, reply: str, chosen: str) -> None:
    got = _after_offer(catalog, reply)
    assert isinstance(got, CatalogEntry) and got.slug == chosen, got


@pytest.mark.parametrize("reply", ["No.", "neither", "Neither of them, thanks.", "nope"])
def test_the_reply_declines(catalog: Catalog, reply: str) -> None:
    assert _after_offer(catalog, reply) is DECLINED


@pytest.mark.parametrize(
    "reply",
    ["What causes a tsunami?", "Where do hurricanes form in the Atlantic Ocean?", "Mars"],
)
def test_a_new_question_is_not_a_choice(catalog: Catalog, reply: str) -> None:
    assert _after_offer(catalog, reply) is None


def test_no_offer_no_choice(catalog: Catalog) -> None:
    history = (ChatMessage("user", "Hi"), ChatMessage("assistant", "Hi! Ask me anything."))
    assert resolve_choice(AnswerRequest("the first one", history), catalog) is None


@pytest.mark.parametrize(
    "question",
    [
        "What causes a tsunami?",  # clear
        "Where do wildfires burn?",  # two fire datasets: either answers it
        "Where is the bathroom?",  # off-topic: "sorry", not a guess
        "Can you tell me a joke?",
        "Tell me about Sea Surface Salinity.",  # named: pinned, never asked about
    ],
)
def test_clear_and_off_topic_questions_are_not_asked_about(
    services: Services, question: str
) -> None:
    retriever = services.retriever
    grounding = build_grounding(question, None, retriever)
    assert choices_to_offer(question, grounding, retriever) == ()


def test_the_sphere_answers_a_deictic_question_without_asking(services: Services) -> None:
    showing = services.catalog.resolve(SALINITY)
    question = "What am I looking at?"
    grounding = build_grounding(question, showing, services.retriever)
    assert choices_to_offer(question, grounding, services.retriever) == ()


async def test_asked_back_then_answered_in_a_session(services: Services) -> None:
    """A question retrieval cannot place gets a question back, with no page shown; the reply
    "the second one" gets that dataset's answer and page; a new question is just answered."""
    async with typed_session(services) as say:
        asked = await say("What is under the ice?")  # snow and ice now, or the "Frozen" film?
        choices = offered(asked.text, services.catalog)
        assert len(choices) == 2 and asked.link is None, asked.text
        chosen = await say("The second one.")
        assert chosen.link == choices[1].url, chosen.text
        again = await say("What is under the ice?")
        assert offered(again.text, services.catalog)
        declined = await say("Neither.")
        assert declined.link is None and "other words" in declined.text
        new = await say("What causes a tsunami?")
        assert new.link is not None and "tsunami" in new.link
