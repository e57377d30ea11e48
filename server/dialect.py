"""Server events in the GA Realtime shape: the beta events the mapper makes, renamed.

Why: the mapper (:mod:`server.mapper`) and the sphere's function calls produce one shape, the
beta one the server has always spoken; a session whose client speaks GA (``client.realtime``,
see :mod:`server.ga_session`) gets each event translated here just before it is serialized.
Keeping every GA difference in this one table-driven place means the mapper's bookkeeping
(items, parts, ``response.done`` always last) is written, and tested, once. Names and fields
follow the ``openai`` SDK's ``types/realtime`` (GA) and ``types/beta/realtime`` (beta):

- audio, transcript and text deltas/dones are renamed (``response.audio.delta`` ->
  ``response.output_audio.delta``, ...);
- ``conversation.item.created`` becomes ``conversation.item.added`` (and, for an item that
  is already complete, ``conversation.item.done`` right after); an assistant message gets its
  ``conversation.item.done`` after ``response.output_item.done``;
- assistant content parts of items are ``output_audio`` / ``output_text`` (beta: ``audio`` /
  ``text``); the parts in ``response.content_part.*`` keep ``audio`` / ``text`` in both;
- the response object says ``output_modalities`` and ``audio.output`` instead of
  ``modalities``, ``voice`` and ``output_audio_format``.
"""

from __future__ import annotations

from typing import Any

GA_EVENT_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}
GA_CONTENT_TYPES = {"audio": "output_audio", "text": "output_text"}
# Events that carry one item, translated wherever they occur.
ITEM_EVENTS = frozenset(
    {
        "response.output_item.added",
        "response.output_item.done",
        "conversation.item.retrieved",
    }
)


def to_ga(event: dict[str, Any], output_rate: int) -> list[dict[str, Any]]:
    """One beta server event (without ``event_id``) as the GA events a client expects.

    ``output_rate`` is the session's output audio rate, for the response object's format.
    """
    kind = event["type"]
    if kind in GA_EVENT_NAMES:
        return [{**event, "type": GA_EVENT_NAMES[kind]}]
    if kind == "conversation.item.created":
        added = {**event, "type": "conversation.item.added", "item": ga_item(event["item"])}
        if added["item"].get("status", "completed") != "completed":
            return [added]
        return [added, {**added, "type": "conversation.item.done"}]
    if kind in ITEM_EVENTS:
        translated = {**event, "item": ga_item(event["item"])}
        if kind == "response.output_item.done" and event["item"].get("type") == "message":
            done = {"type": "conversation.item.done", "item": translated["item"]}
            return [translated, done]
        return [translated]
    if kind in ("response.created", "response.done"):
        return [{**event, "response": ga_response(event["response"], output_rate)}]
    return [event]


def ga_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item with GA content types (assistant ``audio``/``text`` -> ``output_*``)."""
    if item.get("type") != "message" or item.get("role") != "assistant":
        return item
    content = [
        {**part, "type": GA_CONTENT_TYPES.get(part.get("type"), part.get("type"))}
        for part in item.get("content", [])
    ]
    return {**item, "content": content}


def ga_response(response: dict[str, Any], output_rate: int) -> dict[str, Any]:
    """A beta response object in the GA shape (``output_modalities``, ``audio.output``)."""
    out = {
        k: v
        for k, v in response.items()
        if k not in ("modalities", "voice", "output_audio_format", "output")
    }
    modalities = response.get("modalities") or []
    out["output_modalities"] = ["audio"] if "audio" in modalities else ["text"]
    out["audio"] = {
        "output": {
            "format": {"type": "audio/pcm", "rate": output_rate},
            "voice": response.get("voice"),
        }
    }
    out["max_output_tokens"] = "inf"
    out["output"] = [ga_item(item) for item in response.get("output") or []]
    return out
