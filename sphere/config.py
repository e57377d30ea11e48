"""The ``[sos]`` settings: where the SOS host is, how it is followed, and whether (and how much)
visitors may drive it. Control is off unless an operator turns it on."""

from __future__ import annotations

from dataclasses import dataclass, field

from settings import ConfigError

__all__ = ["SosConfig"]


@dataclass(frozen=True)
class SosConfig:
    # The SOS host's address ("" = do not follow the sphere); --sos-host overrides it.
    host: str = ""
    port: int = 2468
    # Let visitors (voice, WebSocket) and the HTTP API play clips from the open playlist.
    control: bool = False
    # Seconds between polls of the current clip.
    poll_s: float = 2.0
    # Seconds between re-reads of the playlist's clip names (also re-read when the count changes).
    playlist_refresh_s: float = 60.0
    # Time-outs for connecting and for each reply line.
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 2.0
    # Reconnect back-off: first wait, doubling (with jitter) up to the cap.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    # Clips visitors may play: patterns (fnmatch, case-insensitive) on the clip name or the
    # catalog slug. An empty allow list allows every clip; deny wins over allow.
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    # At most rate_limit control actions per rate_window_s, per session.
    rate_limit: int = 5
    rate_window_s: float = 60.0

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"sos.port must be 1..65535, not {self.port}")
        for name in ("poll_s", "playlist_refresh_s", "connect_timeout_s", "read_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"sos.{name} must be > 0")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ConfigError("sos.backoff_initial_s must be > 0 and <= sos.backoff_max_s")
        if self.rate_limit < 0 or self.rate_window_s <= 0:
            raise ConfigError("sos.rate_limit must be >= 0 and sos.rate_window_s > 0")
