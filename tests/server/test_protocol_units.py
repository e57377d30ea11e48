"""Pure pieces of the server: event parsing, session updates, mapping, queue, security, HTTP."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from websockets.datastructures import Headers

from server.config import ServerConfig, is_loopback
from server.http import static_path
from server.mapper import Outgoing, RealtimeMapper
from server.metrics import Metrics, percentile
from server.protocol import AudioAppend, ItemCreate, ProtocolError, parse_client_event
from server.security import origin_ok, select_subprotocol, token_ok, validate_token
from server.sendqueue import SendQueue
from server.wire_session import WireSession, parse_session_update
from settings import ConfigError
from voice.events import (
    ErrorEvent,
    InputCommitted,
    Interrupted,
    Refused,
    ResponseAudio,
    ResponseDone,
    ResponseLink,
    ResponseStarted,
    ResponseTextDelta,
    SpeechStarted,
    TranscriptReady,
    TurnDropped,
    TurnTimings,
)


def wire(**kw: object) -> WireSession:
    return WireSession(id="sess_1", model="m", voice="joe", binary_output_sample_rate=22050, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"event_id": "e1"}', "missing_type"),
        ('{"type": "foo.bar", "event_id": "e1"}', "unknown_event_type"),
        ('{"type": "transcription_session.update"}', "unsupported_event"),
        ('{"type": "conversation.item.delete"}', "invalid_value"),  # no item_id
        ('{"type": "response.create", "response": {"output_modalities": "text"}}', "invalid_value"),
        ('{"type": "response.create", "response": {"modalities": [["text"]]}}', "invalid_value"),
        ('{"type": "input_audio_buffer.append", "audio": "###"}', "invalid_audio"),
        ('{"type": "input_audio_buffer.append", "audio": "AAE="}', "invalid_audio"),  # 2 bytes ok?
        (
            '{"type": "conversation.item.create", "item": {"role": "system", "content": []}}',
            "unsupported_item",
        ),
        (
            '{"type": "conversation.item.create", "item": {"content": [{"type": "input_audio"}]}}',
            "unsupported_content",
        ),
    ],
)
def test_bad_client_events_have_their_codes(message: str, code: str) -> None:
    if message.endswith('"AAE="}'):
        message = message.replace("AAE=", base64.b64encode(b"\x00\x01\x02").decode())
    with pytest.raises(ProtocolError) as info:
        parse_client_event(message)
    assert info.value.code == code
    if '"event_id": "e1"' in message:
        assert info.value.event_id == "e1"


def test_good_client_events_parse() -> None:
    pcm = b"\x01\x00" * 10
    event = parse_client_event(
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    )
    assert isinstance(event, AudioAppend) and event.pcm == pcm
    event = parse_client_event(
        json.dumps(
            {
                "type": "conversation.item.create",
                "event_id": "abc",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": " Hi there "}],
                },
            }
        )
    )
    assert isinstance(event, ItemCreate) and event.text == "Hi there" and event.event_id == "abc"


def test_session_update_validates_all_or_nothing() -> None:
    current = wire()
    patch = parse_session_update(
        {
            "turn_detection": None,
            "input_audio_sample_rate": 16000,
            "sos_binary_audio": True,
            "audience": "kids",
            "showing": "tsunami",
            "voice": "alloy",
            "temperature": 0.7,
            "input_audio_transcription": {"model": "whisper-1"},
        },
        current,
        None,
    )
    assert patch.session.turn_detection is None and patch.turn_detection_changed
    assert patch.session.input_audio_sample_rate == 16000 and patch.session.binary_audio
    assert patch.audience_changed and patch.showing == "tsunami"
    for bad, param in [
        ({"input_audio_format": "g711_ulaw"}, "session.input_audio_format"),
        ({"input_audio_sample_rate": 1000}, "session.input_audio_sample_rate"),
        ({"turn_detection": {"type": "near_vad"}}, "session.turn_detection.type"),
        (
            {"turn_detection": {"type": "semantic_vad", "eagerness": "sometimes"}},
            "session.turn_detection.eagerness",
        ),
        ({"turn_detection": {"threshold": 2}}, "session.turn_detection.threshold"),
        ({"audience": "aliens"}, "session.audience"),
        ({"bogus": 1}, "session.bogus"),
        ({"tools": [{"type": "function"}]}, "session.tools"),
    ]:
        with pytest.raises(ProtocolError) as info:
            parse_session_update({"audience": "kids", **bad}, current, "e9")
        assert info.value.param == param and info.value.event_id == "e9"


def test_mapper_shapes_a_spoken_turn_and_response() -> None:
    state = wire(binary_audio=False, output_audio_sample_rate=24000)
    mapper = RealtimeMapper(lambda: state)
    out: list[Outgoing] = []
    for event in [
        SpeechStarted(audio_ms=100),
        InputCommitted(item_id="s1", audio_ms=900),
        TranscriptReady(item_id="s1", text="What causes a tsunami?"),
        ResponseStarted(response_id="r1", question="q"),
        ResponseTextDelta(response_id="r1", text="Earthquakes."),
        ResponseLink("r1", url="https://sos.noaa.gov/catalog/datasets/x", title="X"),
        ResponseAudio("r1", pcm=b"\x00\x01" * 22050, sample_rate=22050),
        ResponseDone(
            "r1",
            "completed",
            "Earthquakes.",
            "https://sos.noaa.gov/catalog/datasets/x",
            "X",
            TurnTimings(speech_end=1.0, first_audio=1.5, done=2.0),
        ),
    ]:
        out.extend(mapper.map(event))
    events = [json.loads(m.data) for m in out]
    types = [e["type"] for e in events]
    assert types[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "conversation.item.created",
    ]
    started, committed = events[0], events[1]
    assert started["item_id"] == committed["item_id"]
    assert types[3] == "conversation.item.input_audio_transcription.completed"
    assert types[4:8] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
    ]
    assert "response.audio_transcript.delta" in types and "response.audio.delta" in types
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta"
    )
    assert abs(len(audio) // 2 - 24000) <= 2  # 1 s at 22050 Hz resampled to 24 kHz
    assert types[-5:] == [
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["sos_link"]["title"] == "X"
    assert done["sos_timings_ms"] == {"first_audio": 500.0, "done": 1000.0}
    assert all(e["event_id"].startswith("event_") for e in events)


def test_mapper_binary_audio_and_cancel_reason() -> None:
    state = wire(binary_audio=True)
    mapper = RealtimeMapper(lambda: state)
    mapper.map(ResponseStarted(response_id="r1", question="q"))
    out = mapper.map(ResponseAudio("r1", pcm=b"\x00\x00" * 22050, sample_rate=22050))
    assert all(isinstance(m.data, bytes) and m.audio for m in out)
    assert sum(len(m.data) for m in out) == 44100  # native rate: untouched
    assert mapper.map(Interrupted("r1", "client")) == []
    # Audio still arriving from the unwinding response is not sent.
    assert mapper.map(ResponseAudio("r1", pcm=b"\x00\x00" * 100, sample_rate=22050)) == []
    cancelled = ResponseDone(
        "r1", "cancelled", "", None, None, TurnTimings(), cancel_reason="client"
    )
    done = json.loads(mapper.map(cancelled)[-1].data)
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}


@pytest.mark.parametrize(
    ("event", "code", "kind"),
    [
        (Refused("commit", "empty_input", "m"), "input_audio_buffer_commit_empty", "invalid"),
        (
            Refused("respond", "response_active", "m"),
            "conversation_already_has_active_response",
            "invalid",
        ),
        (Refused("cancel", "no_active_response", "m"), "response_cancel_not_active", "invalid"),
        (Refused("cancel", "unknown_response", "m"), "response_not_found", "invalid"),
        (Refused("respond", "no_speech", "m"), "no_speech", "invalid"),
        (Refused("audio", "input_too_long", "m"), "input_audio_buffer_too_long", "invalid"),
        (ErrorEvent("transcription_failed", "m"), "transcription_failed", "server"),
        (TurnDropped("i1", "overrun", "m"), "input_audio_turn_dropped", "invalid"),
    ],
)
def test_mapper_names_the_wire_error_for_each_session_outcome(
    event: Refused | ErrorEvent | TurnDropped, code: str, kind: str
) -> None:
    """The Session reports outcomes in its own terms; the Realtime codes live in the mapper."""
    mapper = RealtimeMapper(lambda: wire())
    mapper.client_event_id = "c1"
    (out,) = mapper.map(event)
    error = json.loads(out.data)["error"]
    assert error["code"] == code and error["type"].startswith(kind)
    assert error["event_id"] == "c1"


def test_a_silent_or_interrupted_turn_is_no_news_to_the_client() -> None:
    mapper = RealtimeMapper(lambda: wire())
    assert mapper.map(TurnDropped("i1", "no_speech", "m")) == []
    assert mapper.map(TurnDropped("i1", "interrupted", "m")) == []


def test_send_queue_bound_and_purge() -> None:
    queue = SendQueue(1000)
    assert queue.put(Outgoing("x" * 400))
    assert queue.put(Outgoing(b"a" * 400, "r1", audio=True))
    assert not queue.put(Outgoing("y" * 300))  # over the bound: refused, not queued
    assert queue.purge_audio("r1") == 400 and queue.bytes == 400
    assert queue.peak_bytes == 800


def test_metrics_percentiles() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0
    metrics = Metrics(window=3)
    for value in (100, 200, 300, 400):
        metrics.turn("completed", {"first_audio": value})
    metrics.turn("cancelled", {"first_audio": 5})
    snap = metrics.snapshot()
    assert snap["latency_ms"]["first_audio"] == {"p50": 300.0, "p95": 400.0, "max": 400.0, "n": 3}
    assert snap["turns"] == {"total": 5, "completed": 4, "cancelled": 1}


def test_tokens_origins_subprotocols() -> None:
    token = "x" * 20
    assert token_ok(token, Headers({"Authorization": f"Bearer {token}"}))
    assert token_ok(
        token, Headers({"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{token}"})
    )
    assert not token_ok(token, Headers({"Authorization": "Bearer nope"}))
    assert not token_ok(token, Headers())
    assert token_ok("", Headers())
    with pytest.raises(ConfigError):
        validate_token("short")
    with pytest.raises(ConfigError):
        validate_token("has spaces in it, twenty chars")
    assert select_subprotocol(["openai-insecure-api-key.abc", "realtime"]) == "realtime"
    assert select_subprotocol(["openai-insecure-api-key.abc"]) == "openai-insecure-api-key.abc"
    assert select_subprotocol([]) is None
    host = {"Host": "kiosk:8765"}
    assert origin_ok(Headers(host), ())
    assert origin_ok(Headers({**host, "Origin": "http://kiosk:8765"}), ())
    assert not origin_ok(Headers({**host, "Origin": "https://evil.example"}), ())
    assert origin_ok(Headers({**host, "Origin": "https://app.example/"}), ("https://app.example",))
    assert origin_ok(Headers({**host, "Origin": "null"}), ("*",))


def test_loopback_and_config_checks(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("kiosk.lan")
    with pytest.raises(ConfigError):
        ServerConfig(tls_cert=str(tmp_path / "missing.pem")).validate()
    assert ServerConfig(allowed_origins="https://a.example/, https://B.example").origins() == (
        "https://a.example",
        "https://b.example",
    )


def test_static_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = (tmp_path / "web").resolve()
    root.mkdir()
    (root / "index.html").write_text("<p>hi</p>")
    (root / "app.js").write_text("1")
    (root / ".secret.js").write_text("no")
    (tmp_path / "outside.js").write_text("no")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    assert static_path(root, "/") == root / "index.html"
    assert static_path(root, "/app.js?v=2") == root / "app.js"
    for bad in [
        "/../outside.js",
        "/%2e%2e/outside.js",
        "/.secret.js",
        "/link.js",
        "/x.py",
        "/..%5coutside.js",
        "/app.js%00.html",
        "/nope.js",
    ]:
        assert static_path(root, bad) is None, bad
