"""Both Realtime shapes with the real ``openai`` SDK against a real server on 127.0.0.1 (catalog
answerer, tiny.en, Piper): ``client.realtime`` (GA) and ``client.beta.realtime`` (beta).

Every event a client receives is validated against the SDK's own types for its shape
(:mod:`tests.server.sdk_types`): the SDK does not validate what it receives, so a GA client
would otherwise "receive" a misnamed event without the test noticing. Also here: one append of
a whole 4.4 s question (over the old 256 KiB message limit), per-response text-only output,
``semantic_vad``, ``conversation.item.retrieve`` / ``delete`` and ``output_audio_buffer.clear``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from cli.config import Config
from server.app import Server
from server.wire_session import EAGERNESS_SILENCE_MS
from tests.server.conftest import TOKEN, StartServer, chunks, link_matches, session_of
from tests.server.sdk_types import check_beta, check_ga
from tests.speech import read_pcm16

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

EVENT_TIMEOUT_S = 120  # 2 shared CPU cores run Whisper and Piper: generous, not a measurement
BETA_MODEL = "gpt-4o-realtime-preview"  # a name the beta SDK's session type accepts
OLD_LIMIT = 262_144  # the message limit that refused a 4.4 s append
GA_NAMES = {
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "conversation.item.added",
    "conversation.item.done",
}
BETA_NAMES = {
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.delta",
    "response.audio_transcript.done",
    "response.text.delta",
    "response.text.done",
    "conversation.item.created",
}


def sdk_client(server: Server) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=TOKEN, websocket_base_url=server.ws_url.rsplit("/realtime", 1)[0])


async def read_until(
    conn: Any, kind: str, check: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """Every event up to and including the next ``kind``, each validated by ``check``; an
    error event fails (unless it is what is awaited)."""
    seen: list[dict[str, Any]] = []
    while True:
        event = json.loads(await asyncio.wait_for(conn.recv_bytes(), EVENT_TIMEOUT_S))
        check(event)
        seen.append(event)
        if event["type"] == kind:
            return seen
        if event["type"] == "error":
            pytest.fail(f"error event: {event['error']}")


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


@pytest.fixture
async def server(start_server: StartServer, config: Config, services: Any) -> Server:
    return await start_server(config, services, token=TOKEN)


async def test_ga_sdk_speech_round_trip_with_semantic_vad(
    server: Server, tsunami_wav: Path
) -> None:
    pcm, rate = read_pcm16(tsunami_wav)
    async with sdk_client(server).realtime.connect(model="sos-voice") as conn:
        (created,) = await read_until(conn, "session.created", check_ga)
        assert created["session"]["type"] == "realtime"
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
                },
            }
        )
        (updated,) = await read_until(conn, "session.updated", check_ga)
        session = updated["session"]
        assert "modalities" not in session and session["output_modalities"] == ["audio"]
        assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
        vad = session_of(server, session["id"]).settings.vad
        assert vad.end_silence_ms == EAGERNESS_SILENCE_MS["high"]  # eagerness -> end silence
        assert vad.eagerness == "high"  # and turn-taking on the words (voice/turn_end.py)
        for piece in chunks(pcm, rate):
            await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        events = await read_until(conn, "response.done", check_ga)
        types = {e["type"] for e in events}
        assert types >= GA_NAMES and not types & BETA_NAMES, types
        (heard,) = of_type(events, "conversation.item.input_audio_transcription.completed")
        assert "tsunami" in heard["transcript"].lower()
        text = "".join(
            e["delta"] for e in of_type(events, "response.output_audio_transcript.delta")
        )
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in of_type(events, "response.output_audio.delta")
        )
        assert len(text) > 40 and len(audio) / 2 / 24000 > 1.0
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["output_modalities"] == ["audio"]
        assert done["output"][0]["content"][0]["type"] == "output_audio"
        assert link_matches(done["sos_link"], ("tsunami",)), done["sos_link"]
        # The items the client was told about can be retrieved and deleted; a deleted one is
        # gone from the history the answerer sees too.
        user = of_type(events, "conversation.item.added")[0]["item"]
        await conn.conversation.item.retrieve(item_id=user["id"])
        (retrieved,) = await read_until(conn, "conversation.item.retrieved", check_ga)
        assert retrieved["item"]["content"][0]["transcript"] == heard["transcript"]
        history = session_of(server, session["id"]).history
        assert [m.role for m in history] == ["user", "assistant"]
        assistant = done["output"][0]["id"]
        for item_id in (user["id"], assistant):
            await conn.conversation.item.delete(item_id=item_id, event_id="del1")
            (deleted,) = await read_until(conn, "conversation.item.deleted", check_ga)
            assert deleted["item_id"] == item_id
        assert session_of(server, session["id"]).history == ()
        await conn.conversation.item.retrieve(item_id=user["id"])
        (error,) = await read_until(conn, "error", check_ga)
        assert error["error"]["code"] == "item_not_found"
        await conn.conversation.item.retrieve(item_id="item_nope")
        (error,) = await read_until(conn, "error", check_ga)
        assert error["error"]["code"] == "item_not_found"
        await conn.output_audio_buffer.clear()
        (cleared,) = await read_until(conn, "output_audio_buffer.cleared", check_ga)
        assert cleared["response_id"] == done["id"]


async def test_ga_sdk_text_only_response_and_one_big_append(
    server: Server, tsunami_wav: Path
) -> None:
    """A whole 4.4 s question in one append (push-to-talk), answered with text only because
    ``response.create`` asks for it, while the session itself has audio on."""
    pcm, rate = read_pcm16(tsunami_wav)
    pcm = (pcm + bytes(rate * 2 * 5))[: int(rate * 4.4) * 2]  # exactly 4.4 s
    audio = base64.b64encode(pcm).decode()
    event_size = len(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
    assert event_size > OLD_LIMIT  # ~282 KB: what the old limit refused
    async with sdk_client(server).realtime.connect(model="sos-voice") as conn:
        await read_until(conn, "session.created", check_ga)
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        (updated,) = await read_until(conn, "session.updated", check_ga)
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        await conn.input_audio_buffer.append(audio=audio)
        await conn.input_audio_buffer.commit()
        await conn.response.create(response={"output_modalities": ["text"]})
        events = await read_until(conn, "response.done", check_ga)
        types = [e["type"] for e in events]
        assert "input_audio_buffer.committed" in types
        assert "response.output_text.delta" in types and "response.output_text.done" in types
        assert not [t for t in types if t.startswith("response.output_audio")], types
        (heard,) = of_type(events, "conversation.item.input_audio_transcription.completed")
        assert "tsunami" in heard["transcript"].lower()
        assert heard["usage"]["type"] == "duration"
        assert abs(heard["usage"]["seconds"] - 4.4) <= 0.03  # whole 30 ms frames
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["output_modalities"] == ["text"]
        assert done["output"][0]["content"][0]["type"] == "output_text"
        assert len(done["output"][0]["content"][0]["text"]) > 40
        # Nothing was synthesized for it (Piper is shared; a text answer must not cost it).
        assert "first_text" in done["sos_timings_ms"]
        assert "first_audio" not in done["sos_timings_ms"]


async def test_beta_sdk_text_only_response_keeps_beta_names(server: Server) -> None:
    async with sdk_client(server).beta.realtime.connect(model=BETA_MODEL) as conn:
        await read_until(conn, "session.created", check_beta)
        await conn.session.update(session={"modalities": ["text", "audio"], "voice": "alloy"})
        (updated,) = await read_until(conn, "session.updated", check_beta)
        assert "audio" not in updated["session"]  # a beta session gets the beta object only
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What causes a tsunami?"}],
            }
        )
        await conn.response.create(response={"modalities": ["text"]})
        events = await read_until(conn, "response.done", check_beta)
        types = [e["type"] for e in events]
        assert "response.text.delta" in types and "conversation.item.created" in types
        assert not [t for t in types if "audio" in t or t in GA_NAMES], types
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["modalities"] == ["text"]
        assert link_matches(done["sos_link"], ("tsunami",)), done["sos_link"]
        item = of_type(events, "response.output_item.done")[0]["item"]
        await conn.conversation.item.retrieve(item_id=item["id"])
        (retrieved,) = await read_until(conn, "conversation.item.retrieved", check_beta)
        assert retrieved["item"]["content"][0]["text"] == done["output"][0]["content"][0]["text"]


async def test_ga_output_audio_buffer_clear_mid_response_still_ends_in_response_done(
    server: Server,
) -> None:
    """``output_audio_buffer.clear`` while an answer is spoken: no audio after
    ``output_audio_buffer.cleared``, and the response still ends in one ``response.done``."""
    async with sdk_client(server).realtime.connect(model="sos-voice") as conn:
        await read_until(conn, "session.created", check_ga)
        await conn.session.update(session={"type": "realtime", "instructions": ""})
        await read_until(conn, "session.updated", check_ga)
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Where do hurricanes form?"}],
            }
        )
        await conn.response.create()
        before = await read_until(conn, "response.output_audio.delta", check_ga)
        await conn.output_audio_buffer.clear()
        events = await read_until(conn, "response.done", check_ga)
        if not of_type(events, "output_audio_buffer.cleared"):  # the answer was quicker
            events += await read_until(conn, "output_audio_buffer.cleared", check_ga)
        types = [e["type"] for e in events]
        cleared = types.index("output_audio_buffer.cleared")
        assert "response.output_audio.delta" not in types[cleared:], types
        assert types.count("response.done") == 1
        done = of_type(events, "response.done")[0]["response"]
        assert events[cleared]["response_id"] == done["id"]
        assert of_type(before, "response.created")[0]["response"]["id"] == done["id"]
        assert done["status"] == "completed"
