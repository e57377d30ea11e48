"""The GA Realtime shape beside the beta one, without a socket: session updates in the GA shape,
the session object both ways, and the mapper's events renamed for a GA session. Every GA event
is validated against the ``openai`` SDK's own GA types (``openai.types.realtime``), the ground
truth for names and fields; the beta ones against ``openai.types.beta.realtime``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from server.ga_session import parse_update, session_object, update_dialect
from server.mapper import RealtimeMapper
from server.protocol import ProtocolError, ResponseCreate, parse_client_event
from server.sphere_api import function_call_events
from server.wire_session import EAGERNESS_SILENCE_MS, WireSession
from sphere.control import ActionResult
from tests.server.sdk_types import check_beta, check_ga
from voice.events import (
    InputCommitted,
    ResponseAudio,
    ResponseDone,
    ResponseStarted,
    ResponseTextDelta,
    TranscriptReady,
    TurnTimings,
)

GA_UPDATE = {
    "type": "realtime",
    "output_modalities": ["audio"],
    "instructions": "Be brief.",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            "transcription": {"model": "whisper-1"},
            "noise_reduction": None,
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
    },
    "max_output_tokens": "inf",
    "tracing": None,
}


def wire(**kw: Any) -> WireSession:
    return WireSession(
        id="sess_1", model="gpt-realtime", voice="joe", binary_output_sample_rate=22050, **kw
    )


def test_a_ga_session_update_is_understood_and_answered_in_ga() -> None:
    assert update_dialect(GA_UPDATE) == "ga"
    assert update_dialect({"modalities": ["text"]}) == "beta"
    assert update_dialect({"instructions": "x"}) is None
    patch = parse_update(GA_UPDATE, wire(), "e1")
    new = patch.session
    assert new.dialect == "ga" and new.voice == "marin" and new.instructions == "Be brief."
    assert new.turn_detection is not None and new.turn_detection.type == "semantic_vad"
    assert new.turn_detection.silence_duration_ms == EAGERNESS_SILENCE_MS["high"]
    event = check_ga({"type": "session.updated", "event_id": "e", "session": session_object(new)})
    session = event.session
    assert session.type == "realtime" and session.output_modalities == ["audio"]
    assert session.audio.input.format.rate == 24000
    assert session.audio.input.turn_detection.type == "semantic_vad"
    assert session.audio.input.turn_detection.eagerness == "high"
    # A neutral update keeps the shape; a beta one switches back to beta.
    again = parse_update({"instructions": "Longer."}, new, None).session
    assert again.dialect == "ga"
    beta = parse_update({"modalities": ["text"]}, again, None).session
    assert beta.dialect == "beta" and "audio" not in session_object(beta)
    check_beta({"type": "session.updated", "event_id": "e", "session": session_object(beta)})


def test_before_the_client_shows_its_shape_the_session_object_has_both() -> None:
    both = session_object(wire())
    assert both["type"] == "realtime" and both["modalities"] == ["text", "audio"]
    assert both["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    check_ga({"type": "session.created", "event_id": "e", "session": both})
    check_beta({"type": "session.created", "event_id": "e", "session": both})


@pytest.mark.parametrize(
    ("update", "code", "param"),
    [
        ({"type": "transcription"}, "unsupported_session_type", "session.type"),
        (
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            "unsupported_audio_format",
            "session.audio.input.format.type",
        ),
        (
            {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 7}}}},
            "invalid_value",
            "session.audio.output.format.rate",
        ),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"threshold": 3}}}},
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        ({"type": "realtime", "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
        ({"type": "realtime", "audio": {"bogus": {}}}, "unknown_parameter", "session.audio.bogus"),
        (
            {"type": "realtime", "output_modalities": ["video"]},
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "output_modalities": [["text"]]},
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": [1]}}},
            },
            "invalid_value",
            "session.audio.input.turn_detection.eagerness",
        ),
        (
            {"type": "realtime", "audio": {"output": {"voice": {"name": "x"}}}},
            "invalid_value",
            "session.audio.output.voice",
        ),
    ],
)
def test_ga_update_errors_name_the_ga_parameter(
    update: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_update(update, wire(), "e7")
    assert (info.value.code, info.value.param, info.value.event_id) == (code, param, "e7")


def test_response_create_modalities_in_both_shapes() -> None:
    ga = parse_client_event(
        json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}})
    )
    beta = parse_client_event(
        json.dumps({"type": "response.create", "response": {"modalities": ["text"]}})
    )
    assert ga == ResponseCreate(None, ("text",), "ga")
    assert beta == ResponseCreate(None, ("text",), "beta")
    assert parse_client_event('{"type": "response.create"}') == ResponseCreate(None)


def turn(mapper: RealtimeMapper, rid: str = "r1") -> list[dict[str, Any]]:
    """A spoken turn and its answer through ``mapper``; the events as the client reads them."""
    out = []
    for event in [
        InputCommitted(item_id="s1", audio_ms=900),
        TranscriptReady(item_id="s1", text="What causes a tsunami?"),
        ResponseStarted(response_id=rid, question="q"),
        ResponseTextDelta(response_id=rid, text="Earthquakes."),
        ResponseAudio(rid, pcm=b"\x00\x01" * 2400, sample_rate=24000),
        ResponseDone(rid, "completed", "Earthquakes.", None, None, TurnTimings()),
    ]:
        out.extend(mapper.map(event))
    return [json.loads(m.data) for m in out]


def test_mapper_speaks_ga_names_to_a_ga_session() -> None:
    state = wire(dialect="ga")
    events = turn(RealtimeMapper(lambda: state))
    for event in events:
        check_ga(event)
    types = [e["type"] for e in events]
    assert types == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    done = events[-1]["response"]
    assert done["output_modalities"] == ["audio"]
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": "Earthquakes."}
    assert len({e["event_id"] for e in events}) == len(events)


def test_mapper_keeps_beta_names_for_a_beta_session() -> None:
    for dialect in ("beta", None):
        state = wire(dialect=dialect)
        events = turn(RealtimeMapper(lambda state=state: state))
        for event in events:
            check_beta(event)
        types = {e["type"] for e in events}
        assert {"response.audio.delta", "conversation.item.created"} <= types
        assert not any("output_audio" in t or t == "conversation.item.added" for t in types)


def test_a_text_only_response_sends_no_audio_in_either_shape() -> None:
    for dialect, delta in (("ga", "response.output_text.delta"), ("beta", "response.text.delta")):
        state = wire(dialect=dialect)
        mapper = RealtimeMapper(lambda state=state: state)
        mapper.expect_modality("r1", ("text",))
        types = [e["type"] for e in turn(mapper)]
        audio = [t for t in types if t.startswith("response.") and "audio" in t]
        assert delta in types and not audio, types
        # The next response follows the session again.
        assert any("audio.delta" in t for t in (e["type"] for e in turn(mapper, "r2")))


def test_retrieve_and_clear_output_audio() -> None:
    state = wire(dialect="ga")
    mapper = RealtimeMapper(lambda: state)
    events = turn(mapper)
    user = next(e for e in events if e["type"] == "conversation.item.added")["item"]
    (retrieved,) = mapper.retrieve(user["id"]) or []
    item = json.loads(retrieved.data)
    check_ga(item)
    assert item["item"]["content"][0]["transcript"] == "What causes a tsunami?"
    assert mapper.retrieve("item_nope") is None
    # Clearing the output audio stops the audio of the response in flight, not its text.
    state = dataclasses.replace(state, dialect="beta")
    mapper.map(ResponseStarted(response_id="r9", question="q"))
    assert mapper.clear_output_audio() == "r9"
    assert mapper.map(ResponseAudio("r9", pcm=b"\x00\x01" * 2400, sample_rate=24000)) == []
    assert mapper.map(ResponseTextDelta(response_id="r9", text="Still here."))


def test_sphere_function_calls_in_both_shapes() -> None:
    """The server's own function calls (a sphere action) go through the same translation."""
    result = ActionResult(
        "play", "ok", "Showing hurricanes.", query="hurricanes", arguments={"action": "play"}
    )
    for dialect, check in (("ga", check_ga), ("beta", check_beta)):
        state = wire(dialect=dialect)
        mapper = RealtimeMapper(lambda state=state: state)
        out = [m for e in function_call_events(result, "resp_1") for m in mapper.render(e)]
        events = [json.loads(m.data) for m in out]
        for event in events:
            check(event)
        kinds = [e["type"] for e in events]
        assert "response.function_call_arguments.done" in kinds
        added = "conversation.item.added" if dialect == "ga" else "conversation.item.created"
        assert added in kinds
        output = next(e for e in events if e["type"] == added)["item"]
        assert mapper.knows_item(output["id"])  # retrievable like any item
