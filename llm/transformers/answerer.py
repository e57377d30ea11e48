"""The local SOS model as an :class:`llm.base.Answerer`, shared by all sessions of a process.

Generation is the :class:`llm.transformers.engine.GenerationEngine`'s; grounding, think-text
removal and the link guard are :func:`llm.answer_stream.grounded_answer`'s, the same as for the
OpenAI-compatible backend. Tokenization runs in ``asyncio.to_thread``: the event loop never
blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from llm.answer_stream import grounded_answer
from llm.base import AnswerError, AnswerEvent, AnswerRequest
from llm.prompt import build_messages, with_trimmed_history
from llm.transformers.engine import GenerationEngine

if TYPE_CHECKING:
    from catalog.datasets import Catalog
    from catalog.grounding import Grounding
    from catalog.retrieval import Retriever
    from llm.config import LlmConfig
    from llm.transformers.loading import LoadedModel


class TransformersAnswerer:
    """Answers from the local SOS model, shared by all sessions of the process.

    Each answer: retrieve catalog entries (grounding), trim the session history to
    ``cfg.history_tokens``, render the Qwen3 prompt with thinking off, stream tokens from the
    shared :class:`GenerationEngine`, drop any ``<think>`` text, and let the link guard turn
    "More information: URL" into a checked :class:`llm.base.Link`.
    """

    name = "transformers"
    generative = True

    def __init__(
        self,
        cfg: LlmConfig,
        catalog: Catalog,
        retriever: Retriever,
        loaded: LoadedModel,
        *,
        engine: GenerationEngine | None = None,
    ) -> None:
        self._cfg = cfg
        self._catalog = catalog
        self._retriever = retriever
        self.loaded = loaded
        self.engine = engine or GenerationEngine(
            loaded,
            max_batch=cfg.max_batch,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            first_token_timeout_s=cfg.timeout_s,
        )

    def prompt_ids(self, request: AnswerRequest, grounding: Grounding) -> list[int]:
        """Token ids of the full prompt; AnswerError if it cannot fit the model's context."""
        request = with_trimmed_history(request, self.engine.count_tokens, self._cfg.history_tokens)
        ids = self.engine.encode(self.engine.render(build_messages(request, grounding)))
        if len(ids) >= self.loaded.max_context:
            raise AnswerError(
                f"the question is too long: {len(ids)} tokens with its context, the model "
                f"takes {self.loaded.max_context}"
            )
        return ids

    def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        async def generate(grounding: Grounding) -> AsyncIterator[str]:
            ids = await asyncio.to_thread(self.prompt_ids, request, grounding)
            return self.engine.generate(ids)

        return grounded_answer(
            request, self._catalog, self._retriever, self._cfg.grounding_entries, generate
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)
