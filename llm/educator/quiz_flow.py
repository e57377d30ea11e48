"""The spoken quiz's turns: start, grade an answer, ask again, finish, stop.

The quiz is built from the catalog entry (:class:`catalog.quiz_bank.QuizBank`) because a
visitor's answer must be checked against a known right answer, not a model's guess. Nothing is
kept between turns: each reply ends with the next question in the exact shape
:func:`llm.quiz.quiz_state` reads back from the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.datasets import CatalogEntry
from catalog.quiz_bank import QUIZ_LENGTH, QuizQuestion
from catalog.text import spoken_title
from llm.base import Audience
from llm.educator.reply import Reply
from llm.quiz import LETTERS, QuizState, question_text, score_text


def start_quiz(
    entry: CatalogEntry | None, questions: Sequence[QuizQuestion], audience: Audience
) -> Reply:
    """The opening and the first question, or why there is no quiz."""
    if entry is None:
        return Reply(
            "What should the quiz be about? Ask me while a dataset is on the sphere, or "
            "name one, for example: quiz me about hurricanes."
        )
    if not questions:
        return Reply(
            f"Sorry, the catalog doesn't tell me enough about {spoken_title(entry.title)} "
            "for a quiz.",
            entry,
        )
    count = "Three questions" if len(questions) == QUIZ_LENGTH else "A few questions"
    opening = (
        f"Let's play a quiz about {spoken_title(entry.title)}! {count}: say A, B or C."
        if audience == "kids"
        else f"Let's do a quiz about {spoken_title(entry.title)}. {count}; answer with "
        "A, B or C, or say the answer."
    )
    return Reply(f"{opening} {question_text(entry, 1, questions[0])}", entry)


def grade(
    entry: CatalogEntry,
    questions: Sequence[QuizQuestion],
    state: QuizState,
    choice: int,
    audience: Audience,
) -> Reply:
    """Right or not, the catalog fact behind it, then the score and next question (or the end)."""
    current = questions[state.number - 1]
    right = choice == current.answer
    score = state.score + int(right)
    if right:
        verdict = f"That's right, it's {current.right}!"
    else:
        verdict = f"Not quite. The answer is {LETTERS[current.answer]}, {current.right}."
    parts = [verdict, _explanation(current, audience)]
    answered = state.number
    if answered >= len(questions):
        parts.append(_final(score, answered, audience))
    else:
        parts.append(score_text(score, answered))
        parts.append(question_text(entry, answered + 1, questions[answered]))
    return Reply(" ".join(p for p in parts if p), entry)


def ask_again(entry: CatalogEntry, current: QuizQuestion, state: QuizState) -> Reply:
    """The answer was not understood: the same question again, with the score so far."""
    parts = ["Sorry, I didn't catch your answer. Say A, B or C, or say stop the quiz."]
    if state.answered:
        parts.append(score_text(state.score, state.answered))
    parts.append(question_text(entry, state.number, current))
    return Reply(" ".join(parts), entry)


def stop_quiz(entry: CatalogEntry, score: int, answered: int) -> Reply:
    text = "Okay, the quiz is stopped."
    if answered:
        text += f" You got {score} out of {answered}."
    return Reply(text, entry)


def _final(score: int, total: int, audience: Audience) -> str:
    praise = (
        "Perfect score!"
        if score == total
        else "Well done!"
        if score * 2 > total
        else "Nice try, and now you know more about it!"
    )
    text = f"That's the end of the quiz: you got {score} out of {total}. {praise}"
    if audience == "educator":
        text += " Every question comes from the catalog entry, so you can reuse them in class."
    return text


def _explanation(question: QuizQuestion, audience: Audience) -> str:
    """The catalog fact behind the answer; kids get it only when it is short."""
    if audience == "kids" and len(question.explanation.split()) > 25:
        return ""
    return question.explanation
