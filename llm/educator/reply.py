"""What an educator mode decided for one request: words to say, or the request to pass on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from catalog.datasets import CatalogEntry
from llm.base import AnswerRequest


@dataclass(frozen=True)
class Reply:
    """What to say (text, streamed in word groups) and the link to show, or a request to pass
    on to the inner answerer."""

    text: str = ""
    link: CatalogEntry | None = None
    delegate: AnswerRequest | None = None


def with_hint(request: AnswerRequest, hint: str) -> AnswerRequest:
    """``request`` with a mode hint after its session instructions, for the inner answerer."""
    instructions = f"{request.instructions.strip()}\n\n{hint}".strip()
    return dataclasses.replace(request, instructions=instructions)
