"""Educator modes: intents, the catalog-built quiz, classroom activities, related datasets.

The answerer tests use the process's real answerer (the factory's catalog answerer wrapped in
EducatorAnswerer, real hybrid retrieval); the spoken quiz runs through the real pipeline:
espeak-ng speaks the visitor's answers, tiny.en Whisper hears them, the Session keeps the
history the quiz state is read back from.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from catalog.datasets import Catalog
from catalog.quiz_bank import QUIZ_LENGTH, QuizBank
from llm.base import AnswerRequest, ChatMessage, Link, TextDelta
from llm.educator import EducatorAnswerer
from llm.educator.activities import activity_hint, ngss_ideas
from llm.educator.intents import (
    asks_for_activity,
    asks_for_more_like,
    asks_for_quiz,
    grade_band,
    topic_words,
)
from llm.quiz import (
    LETTERS,
    is_stop,
    match_option,
    question_text,
    quiz_state,
    score_text,
)
from tests.speech import espeak_wav
from tests.test_voice_loop import Recorder, feed_wav
from voice.events import ResponseDone, TranscriptReady
from voice.exhibit import Exhibit
from voice.pipeline import Session
from voice.services import Services

TSUNAMI = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"
RUN_UPS = "https://sos.noaa.gov/catalog/datasets/tsunami-wave-run-ups-indian-ocean-2004"
URL_RE = re.compile(r"https?://\S+")


@pytest.fixture(scope="module")
def bank(catalog: Catalog) -> QuizBank:
    return QuizBank(catalog)


# ------------------------------------------------------------------------------ intents
@pytest.mark.parametrize(
    ("question", "quiz", "activity"),
    [
        ("Quiz me on this", True, False),
        ("Can we do a quiz about hurricanes?", True, False),
        ("Test me on this dataset", True, False),
        ("Describe a classroom activity using this dataset", False, True),
        ("How could I use it in a middle-school class?", False, True),
        ("Give me an activity to do with this", False, True),
        ("How can teachers use this?", False, True),
        ("Teach me about volcanoes", False, False),
        ("What class of hurricane was Sandy?", False, False),
        ("Why do fish swim in a school?", False, False),
        ("Could my fifth grade class use this?", False, True),
        ("What causes solar activity?", False, False),
        ("What does this animation show?", False, False),
        ("Stop the quiz", False, False),
    ],
)
def test_intents(question: str, quiz: bool, activity: bool) -> None:
    assert asks_for_quiz(question) is quiz
    assert asks_for_activity(question) is activity


@pytest.mark.parametrize(
    ("question", "more_like"),
    [
        ("What else is like this?", True),
        ("Any similar datasets?", True),
        ("What other datasets are similar to the hurricane one?", True),
        ("Show me more like this", True),
        ("In the dataset Oberon, which of Uranus' moons is Oberon similar to?", False),
        ("What is similar about the heating of Enceladus and Io?", False),
        ("What type of data will GOES-R provide related to lightning?", False),
    ],
)
def test_related_requests_are_told_from_factual_questions(question: str, more_like: bool) -> None:
    assert asks_for_more_like(question) is more_like


def test_grade_band_and_topic_words() -> None:
    assert grade_band("How could I use it in a middle-school class?", "general") == "middle"
    assert grade_band("an activity for 4th grade", "educator") == "elementary"
    assert grade_band("for my high school students", "general") == "high"
    assert grade_band("a classroom activity", "kids") == "elementary"
    assert topic_words("Quiz me on this") == ""
    assert topic_words("How could I use it in a middle-school class?") == ""
    assert topic_words("Can we do a quiz about hurricanes?") == "hurricanes"


# ------------------------------------------------------------------------------ quiz parts
def test_quiz_questions_are_deterministic_and_sound(catalog: Catalog, bank: QuizBank) -> None:
    entries = sorted(catalog, key=lambda e: e.slug)[::13]  # 40 datasets, every section
    for entry in entries:
        questions = bank.questions(entry)
        assert questions == QuizBank(catalog).questions(entry), entry.slug  # same every time
        assert 2 <= len(questions) <= QUIZ_LENGTH, entry.slug
        rights = [q.right.lower() for q in questions]
        assert len(set(rights)) == len(rights), (entry.slug, rights)
        own = {k.lower() for k in [*entry.keywords, *entry.categories]}
        text = f"{entry.title} {entry.description}".lower()
        for q in questions:
            assert len(set(q.options)) == 3 and 0 <= q.answer < 3
            assert q.right.lower() in text or q.right.lower() in own, (entry.slug, q)
            for i, wrong in enumerate(q.options):
                if i == q.answer:
                    continue
                # A wrong option is nothing the entry says about itself (a section question
                # may offer "land" for a dataset whose text mentions land, but not its section).
                assert wrong.lower() not in own, (entry.slug, q)
                if "sections" not in q.prompt:
                    assert not re.search(rf"\b{re.escape(wrong.lower())}\b", text), (entry, q)
            assert "blank" in q.prompt or q.prompt.endswith("?")
    assert len(bank.questions(catalog.by_url(TSUNAMI))) == QUIZ_LENGTH  # type: ignore[arg-type]


def test_quiz_state_is_read_back_from_the_assistants_words(
    catalog: Catalog, bank: QuizBank
) -> None:
    entry = catalog.by_url(TSUNAMI)
    assert entry is not None
    questions = bank.questions(entry)
    said = f"That's right! {score_text(1, 1)} {question_text(entry, 2, questions[1])}"
    history = (ChatMessage("user", "tsunamis"), ChatMessage("assistant", said))
    state = quiz_state(history, bank)
    assert state is not None
    assert (state.entry, state.number, state.score) == (entry, 2, 1)
    # The quiz is over (or never started) when the assistant's last words ask nothing.
    assert quiz_state((*history, ChatMessage("assistant", "Hurricanes form...")), bank) is None
    assert quiz_state((), bank) is None
    # Other datasets' titles that are a prefix of this one do not fool the lookup.
    hurricane = catalog.by_url("https://sos.noaa.gov/catalog/datasets/hurricane-season-2012")
    assert hurricane is not None
    text = question_text(hurricane, 1, bank.questions(hurricane)[0])
    state = quiz_state((ChatMessage("assistant", text),), bank)
    assert state is not None and state.entry == hurricane and state.score == 0


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("B", 1),
        ("Bee.", 1),
        ("See.", 2),
        ("Option C.", 2),
        ("I think it's A.", 0),
        ("The first one.", 0),
        ("The second one!", 1),
        ("the last one", 2),
        ("Number three.", 2),
        ("Earthquake.", 0),  # plural folded: the option is "earthquakes"
        ("I'd say ring of fire", 1),
        ("ring a fire", 1),  # Whisper's spelling
        ("Snow and ice.", 2),
        ("A volcano.", None),  # "a" is an article here, not option A
        ("I don't know", None),
        ("What causes hurricanes?", None),
    ],
)
def test_spoken_answers_are_matched_tolerantly(said: str, expected: int | None) -> None:
    assert match_option(said, ("earthquakes", "Ring of Fire", "snow and ice")) == expected


def test_stop_phrases() -> None:
    assert is_stop("Stop the quiz.") and is_stop("I'm done") and is_stop("end quiz please")
    assert not is_stop("What stops a hurricane?")


def test_ngss_ideas_and_llm_hint(catalog: Catalog) -> None:
    tsunami = catalog.by_url(TSUNAMI)
    assert tsunami is not None
    assert ngss_ideas(tsunami) == ["ESS2", "ESS3"]
    planet = next(e for e in catalog if e.categories[:1] == ("Space",))
    assert ngss_ideas(planet)[0] == "ESS1"
    hint = activity_hint(tsunami, "middle")
    assert "classroom activity" in hint and TSUNAMI in hint and "middle-school" in hint


# ------------------------------------------------------------------------------ answerer
async def answer(services: Services, question: str, **kw: object) -> tuple[str, list[Link]]:
    text, links = "", []
    async for event in services.answerer.stream(AnswerRequest(question, **kw)):  # type: ignore[arg-type]
        if isinstance(event, TextDelta):
            text += event.text
        else:
            links.append(event)
    return text.strip(), links


@pytest.mark.slow
async def test_every_backend_gets_the_educator_modes(services: Services) -> None:
    assert isinstance(services.answerer, EducatorAnswerer)
    assert services.answerer.name == "catalog"  # reported as the backend it wraps


@pytest.mark.slow
async def test_classroom_activity_from_the_catalog(services: Services) -> None:
    tsunami = services.catalog.by_url(TSUNAMI)
    text, links = await answer(
        services,
        "Describe a classroom activity using this dataset",
        showing=tsunami,
        audience="educator",
    )
    assert [link.url for link in links] == [TSUNAMI]
    assert "middle-school activity with Tsunami Locations, 2000 BCE to 2014" in text
    for expected in ("students", "sphere", "tsunamis", "claim with evidence", "MS-ESS2"):
        assert expected in text, (expected, text)
    assert "Tsunami Wave Run-ups" in text  # the follow-up is the catalog's related dataset
    assert "http" not in text and "*" not in text and "\n-" not in text  # spoken, no markdown

    middle, _ = await answer(
        services, "How could I use it in a middle-school class?", showing=tsunami
    )
    assert "middle-school activity" in middle and "MS-ESS" in middle
    high, _ = await answer(services, "And in a high school class?", showing=tsunami)
    assert "high-school activity" in high and "HS-ESS2" in high
    kids, kid_links = await answer(
        services, "Give me a classroom activity with this", showing=tsunami, audience="kids"
    )
    assert [link.url for link in kid_links] == [TSUNAMI]
    assert "young students" in kids and "NGSS" not in kids and len(kids) < len(text)

    named, named_links = await answer(
        services, "Describe a classroom activity about hurricanes", showing=tsunami
    )
    assert "hurricane" in named_links[0].url and "Tsunami" not in named.split(".")[0]


@pytest.mark.slow
async def test_what_else_is_like_this_lists_related_datasets_with_links(
    services: Services,
) -> None:
    tsunami = services.catalog.by_url(TSUNAMI)
    text, links = await answer(services, "What else is like this?", showing=tsunami)
    spoken, _, shown = text.partition("\n\n")
    assert spoken.startswith("If you like Tsunami Locations, 2000 BCE to 2014, have a look at")
    assert "Tsunami Wave Run-ups: Indian Ocean, 2004" in spoken  # the catalog's own related
    assert "http" not in spoken
    urls = URL_RE.findall(shown)
    assert len(urls) == 3 and urls[0] == RUN_UPS and TSUNAMI not in urls
    assert all(services.catalog.is_catalog_url(u) for u in urls)
    assert all(line.startswith("More information: ") for line in shown.splitlines())
    assert [link.url for link in links] == [RUN_UPS]

    kids, _ = await answer(services, "What else is like this?", showing=tsunami, audience="kids")
    assert len(URL_RE.findall(kids)) == 2 and kids.startswith("If you like this one")
    teacher, _ = await answer(
        services, "Any similar datasets?", showing=tsunami, audience="educator"
    )
    assert "They share topics like" in teacher

    # Spoken briefly: the links are shown, not read aloud.
    from voice.speech_text import speakable

    assert speakable(text) == speakable(spoken)


@pytest.mark.slow
async def test_typed_quiz_round_trip_is_stateless(services: Services, bank: QuizBank) -> None:
    """Two visitors' quizzes interleave on the one shared answerer: each is carried only by
    its own history."""
    tsunami = services.catalog.by_url(TSUNAMI)
    assert tsunami is not None
    questions = bank.questions(tsunami)
    histories: dict[str, list[ChatMessage]] = {"a": [], "b": []}

    async def turn(who: str, said: str) -> tuple[str, list[Link]]:
        text, links = await answer(services, said, history=tuple(histories[who]), showing=tsunami)
        histories[who] += [ChatMessage("user", said), ChatMessage("assistant", text)]
        return text, links

    start, links = await turn("a", "Quiz me on this")
    assert [link.url for link in links] == [TSUNAMI]
    assert "quiz about Tsunami Locations" in start and "Question 1 of 3" in start
    a, b, c = questions[0].options
    assert f"Is it A, {a}; B, {b}; or C, {c}?" in start
    await turn("b", "quiz me on this")

    reply, _ = await turn("a", questions[0].right)  # the option's own words
    assert reply.startswith(f"That's right, it's {questions[0].right}!")
    assert questions[0].explanation in reply and score_text(1, 1) in reply
    assert "Question 2 of 3" in reply

    wrong = (questions[0].answer + 1) % 3
    reply_b, _ = await turn("b", f"Option {LETTERS[wrong]}")
    assert reply_b.startswith(f"Not quite. The answer is {LETTERS[questions[0].answer]}")
    assert score_text(0, 1) in reply_b

    again, _ = await turn("a", "hmm let me think")
    assert again.startswith("Sorry, I didn't catch your answer")
    assert "Question 2 of 3" in again and score_text(1, 1) in again

    wrong2 = (questions[1].answer + 2) % 3
    reply, _ = await turn("a", f"the {('first', 'second', 'third')[wrong2]} one")
    assert reply.startswith("Not quite.") and questions[1].right in reply
    assert score_text(1, 2) in reply and "Question 3 of 3" in reply
    final, _ = await turn("a", f"{LETTERS[questions[2].answer]}")
    assert "That's the end of the quiz: you got 2 out of 3" in final
    assert "Question" not in final
    after, _ = await turn("a", "B")  # the quiz is over: "B" is no longer an answer
    assert not after.startswith(("That's right", "Not quite", "Sorry, I didn't catch"))

    stopped, _ = await turn("b", "Stop the quiz")
    assert stopped == "Okay, the quiz is stopped. You got 0 out of 1."
    none, _ = await turn("b", "stop the quiz")
    assert "no quiz going on" in none


@pytest.mark.slow
async def test_new_question_during_a_quiz_leaves_it(services: Services) -> None:
    tsunami = services.catalog.by_url(TSUNAMI)
    start, _ = await answer(services, "quiz me on this", showing=tsunami)
    history = (ChatMessage("user", "quiz me on this"), ChatMessage("assistant", start))
    text, links = await answer(
        services, "What causes hurricanes?", history=history, showing=tsunami
    )
    assert "Question" not in text and links and "hurricane" in links[0].url


@pytest.mark.slow
async def test_quiz_round_trip_on_spoken_answers(
    services: Services, bank: QuizBank, tmp_path: Path
) -> None:
    """The issue's check: "Quiz me on this" and three spoken answers through the real pipeline
    (espeak-ng -> VAD -> Whisper -> Session history -> quiz state): right, wrong, right, with
    the explanations and the final score."""
    exhibit = Exhibit(services.catalog)
    tsunami = exhibit.set("tsunami-locations-2000-bce-2014")
    assert tsunami is not None
    questions = bank.questions(tsunami)
    wrong = next(i for i in range(3) if i != questions[1].answer)
    last = questions[2]
    utterances = [
        # tiny.en hears espeak's short "Quiz me on this." as "With me on this."
        "Give me a quiz about this dataset.",
        f"{questions[0].right}.",  # right, by the option's own words
        f"I think it is the {('first', 'second', 'third')[wrong]} one.",  # wrong, by position
        # right, by letter (espeak's "Option A." is too short for tiny.en: say the words)
        f"Option {LETTERS[last.answer]}." if last.answer else f"{last.right}.",
    ]
    rec = Recorder()
    session = Session(services, rec, exhibit=exhibit)
    for n, said in enumerate(utterances):
        wav = espeak_wav(said, tmp_path / f"a{n}.wav", lead_s=0.4, trail_s=1.0)
        await feed_wav(session, wav)
        await session.wait_idle()
    await session.aclose()

    heard = [t.text for t in rec.of(TranscriptReady)]
    assert len(heard) == 4, heard
    done = rec.of(ResponseDone)
    assert [d.status for d in done] == ["completed"] * 4
    assert all(d.link == TSUNAMI for d in done)
    texts = [d.text for d in done]
    assert "Question 1 of 3" in texts[0], texts[0]
    assert texts[1].startswith("That's right"), (heard[1], texts[1])
    assert questions[0].explanation in texts[1] and "Question 2 of 3" in texts[1]
    assert texts[2].startswith(f"Not quite. The answer is {LETTERS[questions[1].answer]}"), (
        heard[2],
        texts[2],
    )
    assert questions[1].explanation in texts[2] and score_text(1, 2) in texts[2]
    assert texts[3].startswith("That's right"), (heard[3], texts[3])
    assert "you got 2 out of 3" in texts[3]


@pytest.mark.slow
async def test_audience_sets_length_and_angle(services: Services) -> None:
    """Kids: shorter and simpler; educator: the curriculum angle; for plain answers and for
    the educator modes alike."""
    tsunami = services.catalog.by_url(TSUNAMI)
    texts = {
        audience: (
            await answer(
                services, "What does this animation show?", showing=tsunami, audience=audience
            )
        )[0]
        for audience in ("kids", "general", "educator")
    }
    assert len(texts["kids"].split()) < len(texts["general"].split())
    assert "classroom topics" in texts["educator"] and "classroom" not in texts["general"]
    quiz_kids, _ = await answer(services, "quiz me on this", showing=tsunami, audience="kids")
    assert quiz_kids.startswith("Let's play a quiz")


@pytest.mark.slow
async def test_llm_backends_get_activity_requests_with_a_mode_hint(services: Services) -> None:
    """With an LLM inside (write_activities=False), an activity request is passed on with the
    mode hint in its instructions rather than answered from the template; here the inner is
    the real catalog answerer, which answers the question itself, about the showing dataset."""
    inner = services.answerer.inner  # type: ignore[attr-defined]
    wrapper = EducatorAnswerer(inner, services.catalog, services.retriever, write_activities=False)
    tsunami = services.catalog.by_url(TSUNAMI)
    request = AnswerRequest("How could I use it in a middle-school class?", showing=tsunami)
    reply = wrapper.reply(request)
    assert reply.delegate is not None
    assert reply.delegate.instructions.startswith("Mode: classroom activity")
    assert TSUNAMI in reply.delegate.instructions
    assert reply.delegate.question == request.question and reply.delegate.showing == tsunami
    deictic = AnswerRequest("Describe a classroom activity using this dataset", showing=tsunami)
    events = [e async for e in wrapper.stream(deictic)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "activity" not in text  # the inner answerer's own answer, not the template
    assert [e.url for e in events if isinstance(e, Link)] == [TSUNAMI]
    # The quiz never goes to a model: its answers must be checkable.
    assert wrapper.reply(AnswerRequest("quiz me on this", showing=tsunami)).delegate is None
