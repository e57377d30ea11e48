"""The ``[server]`` settings of ``sos-voice --serve``, and the address check the security rules
need."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from settings import ConfigError

__all__ = ["ServerConfig", "is_loopback"]

LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and security of ``sos-voice --serve``. Every limit is per server or per session."""

    # Address and port to bind (the CLI's --host/--port override them).
    host: str = "127.0.0.1"
    port: int = 8765
    # Bearer token clients must present ("" = none; only allowed when bound to loopback).
    token: str = ""
    # Lifetime of the session tokens POST /session-tokens mints from that token, for clients
    # that should not carry it (a Unity build, a kiosk page): seconds, 60..86400.
    session_token_ttl_s: float = 600.0
    # Extra browser origins allowed to connect, comma-separated ("*" = any). The page's own
    # origin (same host:port) and clients that send no Origin header are always allowed.
    allowed_origins: str = ""
    # Host names (besides loopback and the bound address) this server answers to, comma-
    # separated: "*" = any, ".example.org" = that domain and its subdomains. Other Host headers
    # get 403: the defence against DNS rebinding.
    allowed_hosts: str = ""
    # Largest JSON or binary message accepted; larger ones get an error event (the session goes
    # on); more than twice this closes the connection with 1009. 2 MiB holds one append of a
    # whole longest turn (30 s at 24 kHz is 1.9 MB of base64): clients send a turn's audio in
    # one event too (the hosted API takes ~15 MB).
    max_message_bytes: int = 2_097_152
    # Longest user turn, in seconds of audio (caps the VAD's max_turn_s and push-to-talk).
    max_turn_audio_s: float = 30.0
    # Concurrent sessions; the next connection is closed with 1013 (try again later).
    max_sessions: int = 32
    # Close a session with 1001 after this long idle: no speech heard, no request carried out,
    # nothing being answered (silent audio and rejected events do not count).
    idle_timeout_s: float = 300.0
    # Bytes waiting to be sent to one client; a client that reads slower is dropped with 1008.
    send_queue_bytes: int = 4_194_304
    # TLS certificate chain and private key (PEM files); both empty = plain ws:// and http://.
    tls_cert: str = ""
    tls_key: str = ""
    # Serve the browser page at GET /; web_root "" = the web/ folder shipped with the project.
    serve_web: bool = True
    web_root: str = ""
    # How many recent turns the latency percentiles (/metrics.json, /metrics) are computed over.
    metrics_window: int = 200
    # Keepalive pings find vanished clients (their response is then cancelled).
    ping_interval_s: float = 20.0
    # Per-connection limit on client messages (token buckets): messages a second and the burst
    # on top, bytes a second and their burst. A message over the limit is dropped with a
    # rate_limited error; after rate_limit_close_after drops the connection is closed with 1008.
    # 0 turns a bucket (or the closing) off.
    rate_limit_messages_per_s: float = 200.0
    rate_limit_burst: int = 400
    rate_limit_bytes_per_s: float = 1_048_576.0
    rate_limit_burst_bytes: int = 8_388_608
    rate_limit_close_after: int = 2000

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port must be 0..65535, not {self.port}")
        if self.max_message_bytes < 1024:
            raise ConfigError("server.max_message_bytes must be >= 1024")
        if self.max_turn_audio_s <= 0 or self.idle_timeout_s <= 0:
            raise ConfigError("server.max_turn_audio_s and server.idle_timeout_s must be > 0")
        if not 60 <= self.session_token_ttl_s <= 86400:
            raise ConfigError("server.session_token_ttl_s must be 60..86400 seconds")
        if self.max_sessions < 1 or self.metrics_window < 1:
            raise ConfigError("server.max_sessions and server.metrics_window must be >= 1")
        if self.send_queue_bytes < 65536:
            raise ConfigError("server.send_queue_bytes must be >= 65536")
        if self.ping_interval_s < 0:
            raise ConfigError("server.ping_interval_s must be >= 0 (0 = no keepalive)")
        if min(self.rate_limit_messages_per_s, self.rate_limit_bytes_per_s) < 0:
            raise ConfigError("server.rate_limit_*_per_s must be >= 0 (0 = no limit)")
        if self.rate_limit_messages_per_s and self.rate_limit_burst < 1:
            raise ConfigError("server.rate_limit_burst must be >= 1")
        if self.rate_limit_bytes_per_s and self.rate_limit_burst_bytes < 2 * self.max_message_bytes:
            raise ConfigError(
                "server.rate_limit_burst_bytes must be at least twice server.max_message_bytes"
            )
        if self.rate_limit_close_after < 0:
            raise ConfigError("server.rate_limit_close_after must be >= 0 (0 = never close)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key must be given together")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value and not Path(value).expanduser().is_file():
                raise ConfigError(f"server.{name}: no such file: {value}")
        if self.web_root and not Path(self.web_root).expanduser().is_dir():
            raise ConfigError(f"server.web_root: no such folder: {self.web_root}")

    def hosts(self) -> tuple[str, ...]:
        """The extra allowed Host names, normalized (lower case, no trailing dot)."""
        parts = self.allowed_hosts.replace(" ", ",").split(",")
        return tuple(p.strip().lower().rstrip(".") for p in parts if p.strip())

    def origins(self) -> tuple[str, ...]:
        """The extra allowed origins, normalized (lower case, no trailing slash)."""
        parts = self.allowed_origins.replace(" ", ",").split(",")
        return tuple(p.strip().rstrip("/").lower() for p in parts if p.strip())


def is_loopback(host: str) -> bool:
    """True only for addresses no other machine can reach (the token may be off there)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a hostname or "" (all interfaces): assume reachable
