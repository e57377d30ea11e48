"""The expensive things, loaded once per process and shared by every session.

Whisper, Piper, the catalog index and the answerer take seconds and hundreds of MB to load;
a headset server with twenty sessions must not hold twenty copies. Blocking model calls run on
bounded thread pools owned here, so sessions queue for a model instead of stalling the event
loop, and the pool size is the knob for how much of the CPU/GPU the models may use at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from catalog.datasets import Catalog
from catalog.retrieval import Retriever
from llm.base import Answerer
from llm.factory import build_answerer
from voice.config import VoiceConfig
from voice.stt import Transcriber
from voice.tts import Synthesizer

log = logging.getLogger(__name__)
T = TypeVar("T")


def _use_embeddings(config: VoiceConfig) -> bool | None:
    return {"auto": None, "lexical": False, "hybrid": True}[config.catalog.retrieval]


@dataclass
class Services:
    """Shared models and their executors. Build with :meth:`load`; close with :meth:`aclose`."""

    config: VoiceConfig
    catalog: Catalog
    retriever: Retriever
    transcriber: Transcriber
    synthesizer: Synthesizer
    answerer: Answerer
    answerer_reason: str
    stt_executor: ThreadPoolExecutor
    tts_executor: ThreadPoolExecutor
    load_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    async def load(cls, config: VoiceConfig) -> Services:
        """Load everything, the independent parts in parallel threads."""
        loop = asyncio.get_running_loop()
        timings: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], T]) -> Callable[[], T]:
            def run() -> T:
                start = time.perf_counter()
                result = fn()
                timings[name] = round(time.perf_counter() - start, 3)
                return result

            return run

        catalog = await loop.run_in_executor(
            None, timed("catalog", lambda: Catalog.load(config.catalog.path or None))
        )
        retriever_f = loop.run_in_executor(
            None, timed("retriever", lambda: Retriever.build(catalog, _use_embeddings(config)))
        )
        stt_f = loop.run_in_executor(
            None, timed("stt", lambda: Transcriber.load(config.stt, catalog))
        )
        tts_f = loop.run_in_executor(None, timed("tts", lambda: Synthesizer.load(config.tts)))
        retriever, transcriber, synthesizer = await asyncio.gather(retriever_f, stt_f, tts_f)
        answerer, reason = await loop.run_in_executor(
            None, timed("answerer", lambda: build_answerer(config.llm, catalog, retriever))
        )
        services = cls(
            config=config,
            catalog=catalog,
            retriever=retriever,
            transcriber=transcriber,
            synthesizer=synthesizer,
            answerer=answerer,
            answerer_reason=reason,
            stt_executor=ThreadPoolExecutor(config.stt.workers, thread_name_prefix="stt"),
            tts_executor=ThreadPoolExecutor(config.tts.workers, thread_name_prefix="tts"),
            load_seconds=timings,
        )
        for name, what in services.describe().items():
            log.info("%s: %s", name, what)
        log.info("load times (s): %s", timings)
        return services

    def describe(self) -> dict[str, str]:
        """What is loaded, for logs, the health endpoint and the CLI banner."""
        return {
            "answerer": f"{self.answerer.name} ({self.answerer_reason})",
            "stt": self.transcriber.description,
            "tts": self.synthesizer.description,
            "retrieval": self.retriever.description,
            "catalog": f"{len(self.catalog)} SOS datasets",
        }

    async def aclose(self) -> None:
        await self.answerer.aclose()
        self.stt_executor.shutdown(wait=False, cancel_futures=True)
        self.tts_executor.shutdown(wait=False, cancel_futures=True)
