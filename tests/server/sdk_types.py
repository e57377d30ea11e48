"""Server events checked against the ``openai`` SDK's own types: the GA ones
(``openai.types.realtime``) and the beta ones (``openai.types.beta.realtime``).

The SDK itself parses received events without validating them, so a misnamed or missing field
would pass a test unseen; here each event is validated against the model its ``type`` names
(an event type the SDK does not know fails too).
"""

from __future__ import annotations

import typing
from typing import Any

from openai import BaseModel
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent as GaServerEvent


def _models(union: Any) -> dict[str, type[BaseModel]]:
    members = typing.get_args(typing.get_args(union)[0])  # Annotated[Union[...], info]
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}


GA_MODELS = _models(GaServerEvent)
BETA_MODELS = _models(BetaServerEvent)


def check_ga(event: dict[str, Any]) -> BaseModel:
    """``event`` as the GA SDK type it claims to be (pydantic ValidationError if it is not)."""
    assert event["type"] in GA_MODELS, f"not a GA server event: {event['type']}"
    return GA_MODELS[event["type"]].model_validate(event)


def check_beta(event: dict[str, Any]) -> BaseModel:
    """``event`` as the beta SDK type it claims to be."""
    assert event["type"] in BETA_MODELS, f"not a beta server event: {event['type']}"
    return BETA_MODELS[event["type"]].model_validate(event)
