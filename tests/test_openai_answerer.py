"""The OpenAI-compatible answerer against a real server process, not a mock.

The server is ``transformers serve`` (transformers' own OpenAI-compatible FastAPI/uvicorn
server, the ``transformers[serving]`` extra) serving the tiny random Qwen3 on 127.0.0.1 with
the Qwen3 chat template: the same wire protocol, SSE streaming and ``chat_template_kwargs``
handling that vLLM offers (vLLM itself does not run on a CPU-only box like CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog.datasets import Catalog
from llm.base import AnswerError, AnswerRequest, Link, TextDelta
from llm.config import LlmConfig
from llm.openai_answerer import OpenAIAnswerer

pytest.importorskip("openai")

SERVER_START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Server:
    base_url: str
    model: str  # transformers serve pins the served model; requests must name it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def transformers_cli() -> str:
    exe = Path(sys.executable).with_name("transformers")
    return str(exe) if exe.is_file() else shutil.which("transformers") or "transformers"


@pytest.fixture(scope="module")
def server(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``transformers serve <tiny Qwen3>`` on a free port (the model name is its path)."""
    pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
    pytest.importorskip("uvicorn", reason="transformers serve needs transformers[serving]")
    served = tmp_path_factory.mktemp("served") / "tiny-qwen3"
    served.mkdir()
    for item in tiny_qwen_dir.iterdir():
        (served / item.name).symlink_to(item)
    # Sample like the real Qwen3-4B does (its generation_config has do_sample=true); the tiny
    # model's default is greedy, under which transformers serve ignores "temperature".
    (served / "generation_config.json").unlink()
    gen = json.loads((tiny_qwen_dir / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=0.6, top_p=0.95, top_k=20)
    (served / "generation_config.json").write_text(json.dumps(gen))
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [transformers_cli(), "serve", str(served)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield Server(f"http://127.0.0.1:{port}/v1", str(served))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def retriever(catalog: Catalog):
    from catalog.retrieval import Retriever

    return Retriever.build(catalog, use_embeddings=False)


def cfg_for(server: Server | str, **overrides: object) -> LlmConfig:
    base_url, model = (
        (server, "sos") if isinstance(server, str) else (server.base_url, server.model)
    )
    values: dict[str, object] = {
        "answerer": "openai",
        "base_url": base_url,
        "model": model,
        "max_new_tokens": 24,
        "timeout_s": 60.0,
    }
    values.update(overrides)
    return LlmConfig(**values)  # type: ignore[arg-type]


async def answer(ans: OpenAIAnswerer, question: str) -> tuple[list[str], list[Link]]:
    texts: list[str] = []
    links: list[Link] = []
    async for event in ans.stream(AnswerRequest(question=question)):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            links.append(event)
    return texts, links


async def test_streams_text_and_a_catalog_link(server: Server, catalog: Catalog, retriever) -> None:
    ans = OpenAIAnswerer(cfg_for(server), catalog, retriever)
    try:
        assert ans.name == "openai"
        texts, links = await answer(ans, "What causes a tsunami?")
    finally:
        await ans.aclose()
    assert len(texts) >= 2, f"expected several deltas, got {texts!r}"
    assert len(links) == 1 and catalog.is_catalog_url(links[0].url)
    assert ans.open_streams == 0


async def test_concurrent_answers(server: Server, catalog: Catalog, retriever) -> None:
    ans = OpenAIAnswerer(cfg_for(server, max_new_tokens=8), catalog, retriever)
    try:
        results = await asyncio.gather(
            *(answer(ans, q) for q in ("Hurricanes?", "Volcanoes?", "Auroras?"))
        )
    finally:
        await ans.aclose()
    assert all(texts for texts, _ in results)


async def test_cancel_closes_the_http_stream(server: Server, catalog: Catalog, retriever) -> None:
    # transformers serve (unlike vLLM) finishes a disconnected request before the next one,
    # so keep it short; what is checked is that our side closes the HTTP response.
    ans = OpenAIAnswerer(cfg_for(server, max_new_tokens=40), catalog, retriever)
    try:
        stream = ans.stream(AnswerRequest(question="Tell me everything about the ocean."))
        first = await anext(stream)
        assert isinstance(first, TextDelta)
        assert ans.open_streams == 1
        await stream.aclose()
        assert ans.open_streams == 0
        texts, _ = await answer(ans, "And now?")  # the server and the client go on
        assert texts
    finally:
        await ans.aclose()


async def test_unreachable_server_fails_fast(catalog: Catalog, retriever) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    ans = OpenAIAnswerer(cfg_for(url), catalog, retriever)
    start = time.monotonic()
    try:
        with pytest.raises(AnswerError, match="cannot reach"):
            await answer(ans, "What causes a tsunami?")
    finally:
        await ans.aclose()
    assert time.monotonic() - start < 5


async def test_wrong_model_name_is_a_clear_error(server: Server, catalog, retriever) -> None:
    ans = OpenAIAnswerer(cfg_for(Server(server.base_url, "no-such-model")), catalog, retriever)
    try:
        with pytest.raises(AnswerError, match=r"HTTP 400.*no-such-model"):
            await answer(ans, "What causes a tsunami?")
    finally:
        await ans.aclose()


async def test_http_error_becomes_answer_error(server: Server, catalog: Catalog, retriever) -> None:
    wrong = Server(server.base_url.replace("/v1", "/no-such-api"), server.model)
    ans = OpenAIAnswerer(cfg_for(wrong), catalog, retriever)
    try:
        with pytest.raises(AnswerError, match="HTTP 404"):
            await answer(ans, "What causes a tsunami?")
    finally:
        await ans.aclose()


async def test_silent_server_times_out(catalog: Catalog, retriever) -> None:
    """A server that accepts the connection and never answers: the turn ends after timeout_s."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    srv = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    ans = OpenAIAnswerer(cfg_for(f"http://127.0.0.1:{port}/v1", timeout_s=1.0), catalog, retriever)
    start = time.monotonic()
    try:
        with pytest.raises(AnswerError, match=r"timed out|within 1 s"):
            await answer(ans, "What causes a tsunami?")
    finally:
        await ans.aclose()
        for writer in held:
            writer.close()
        srv.close()
        with contextlib.suppress(Exception):
            await srv.wait_closed()
    assert time.monotonic() - start < 10


def test_needs_a_base_url(catalog: Catalog, retriever) -> None:
    with pytest.raises(AnswerError, match="base_url"):
        OpenAIAnswerer(cfg_for(""), catalog, retriever)
