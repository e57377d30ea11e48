"""Answers from an OpenAI-compatible chat-completions server (vLLM, transformers serve, ...).

This is how a fleet of kiosks and headsets shares GPU servers: vLLM serving Qwen/Qwen3-4B with
the SOS LoRA (``--enable-lora --lora-modules sos=<adapter>``) batches many installations far
better than one process per GPU. The prompt, the grounding and the link check are the same as
for the local model (:mod:`llm.prompt`, :mod:`catalog.grounding`); only generation is remote.

Thinking is switched off per request with ``chat_template_kwargs={"enable_thinking": False}``
(vLLM and transformers serve honour it); any ``<think>`` text that still comes is dropped, and
``reasoning_content`` deltas are ignored. Closing the answer stream closes the HTTP response,
which makes vLLM abort that sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from llm.answer_stream import grounded_answer
from llm.base import AnswerError, AnswerEvent, AnswerRequest
from llm.prompt import approx_token_count, build_messages, with_trimmed_history

if TYPE_CHECKING:
    from catalog.datasets import Catalog
    from catalog.grounding import Grounding
    from catalog.retrieval import Retriever
    from llm.config import LlmConfig

log = logging.getLogger(__name__)


def _describe(exc: BaseException, base_url: str) -> str:
    """A one-line reason for the turn's error event and the log."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"the LLM server at {base_url} timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach the LLM server at {base_url}: {cause}"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict):
            body = body.get("message") or body.get("detail") or body.get("error") or ""
        detail = f": {str(body)[:300]}" if body else ""
        return f"the LLM server at {base_url} answered HTTP {exc.status_code}{detail}"
    return f"the LLM server at {base_url} failed: {type(exc).__name__}: {exc}"


class OpenAIAnswerer:
    """Streams answers from ``cfg.base_url`` with model ``cfg.model`` (e.g. "sos" in vLLM).

    One ``AsyncOpenAI`` client (one connection pool) serves all sessions; retries are off
    because a visitor waiting for an answer is better served by a quick error than by a
    second attempt after ``timeout_s``.
    """

    name = "openai"
    generative = True

    def __init__(
        self,
        cfg: LlmConfig,
        catalog: Catalog,
        retriever: Retriever,
        *,
        client: Any = None,
    ) -> None:
        if not cfg.base_url:
            raise AnswerError("llm.base_url is not set: the OpenAI-compatible answerer needs it")
        try:
            import openai
        except ImportError as exc:
            raise AnswerError("the OpenAI-compatible answerer needs: pip install openai") from exc
        self._cfg = cfg
        self._catalog = catalog
        self._retriever = retriever
        self._client = client or openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=cfg.api_key or "EMPTY",
            timeout=cfg.timeout_s,
            max_retries=0,
        )
        self.open_streams = 0  # HTTP responses currently open (tests and diagnostics)

    def messages(self, request: AnswerRequest, grounding: Grounding) -> list[dict[str, str]]:
        """The chat messages sent: history trimmed to ``history_tokens`` (estimated)."""
        request = with_trimmed_history(request, approx_token_count, self._cfg.history_tokens)
        return build_messages(request, grounding)

    async def _open(self, messages: list[dict[str, str]]) -> Any:
        return await self._client.chat.completions.create(
            model=self._cfg.model,
            messages=messages,
            stream=True,
            max_tokens=self._cfg.max_new_tokens,
            temperature=self._cfg.temperature,
            top_p=self._cfg.top_p,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
        )

    async def _text(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """The answer's content deltas; AnswerError for every server or network failure."""
        import openai

        url = self._cfg.base_url
        stream: Any = None
        try:
            try:
                # timeout_s bounds the wait for the first token, not just each socket read.
                async with asyncio.timeout(self._cfg.timeout_s):
                    stream = await self._open(messages)
                    self.open_streams += 1
                    chunks = aiter(stream)
                    first = await anext(chunks, None)
            except TimeoutError:
                raise AnswerError(
                    f"the LLM server at {url} did not start answering within "
                    f"{self._cfg.timeout_s:g} s"
                ) from None
            chunk = first
            while chunk is not None:
                for choice in chunk.choices or ():
                    content = getattr(choice.delta, "content", None)
                    if content:
                        yield content
                chunk = await anext(chunks, None)
        except openai.OpenAIError as exc:
            message = _describe(exc, url)
            log.warning("%s", message)
            raise AnswerError(message) from exc
        finally:
            if stream is not None:
                self.open_streams -= 1
                with contextlib.suppress(Exception):
                    await stream.close()

    def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        async def generate(grounding: Grounding) -> AsyncIterator[str]:
            return self._text(self.messages(request, grounding))

        return grounded_answer(
            request, self._catalog, self._retriever, self._cfg.grounding_entries, generate
        )

    async def aclose(self) -> None:
        await self._client.close()
