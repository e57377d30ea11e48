"""``sos-voice --serve``: the Realtime-compatible WebSocket service, health, metrics, web page.

One :class:`Server` owns the listening socket, the connections and the metrics; every
connection gets its own :class:`voice.pipeline.Session` and all share the loaded
:class:`voice.services.Services`. Every request is read by :mod:`server.front` (h11): HTTP
requests are answered by the route table (:attr:`Server.routes`), WebSocket handshakes go on to
websockets. Policy rejections of a WebSocket (origin, token, capacity) happen after the
handshake, as an ``error`` event plus a close code with a reason, because a browser can read
those but cannot read an HTTP error status of a failed handshake. A Host that is not this
server's is refused before any of that, with HTTP 403: it is never the page's own mistake
(the page would not have loaded), it is DNS rebinding or a name missing from
``server.allowed_hosts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from server.config import ServerConfig, is_loopback
from server.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TIMEOUT_S,
    CLOSE_TRY_LATER,
    Connection,
)
from server.curator_api import CSV_PATH, CURATOR_PATH, CuratorApi
from server.exhibit_api import EXHIBIT_PATH, ExhibitApi
from server.exhibit_api import METHODS as EXHIBIT_METHODS
from server.front import front_factory
from server.http import (
    HttpRequest,
    HttpResponse,
    Router,
    error_response,
    json_response,
    not_found,
    read_static,
    response,
    static_path,
)
from server.metrics import Metrics
from server.prometheus import CONTENT_TYPE as PROMETHEUS_TYPE
from server.prometheus import PrometheusExport
from server.protocol import dumps, error_event
from server.ratelimit import Limits, RateLimit
from server.security import (
    host_ok,
    origin_ok,
    select_subprotocol,
    validate_token,
)
from server.session_tokens import Access, SessionTokens
from server.sphere_api import SPHERE_PATH, FunctionCallRelay, SphereApi
from server.token_api import METHODS as TOKEN_METHODS
from server.token_api import TOKENS_PATH, TokenApi
from settings import ConfigError
from voice.config import VoiceConfig
from voice.exhibit import Exhibit, ExhibitChange

if TYPE_CHECKING:
    from curator.recorder import Recorder
    from sphere.service import Sphere
    from voice.services import Services

log = logging.getLogger(__name__)

WS_PATHS = ("/v1/realtime", "/realtime", "")
DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
DEFAULT_MODEL = "sos-voice"
MAX_INCOMING_FRAMES = 8


class Server:
    """The WebSocket + HTTP server. ``await start()``, then ``await stop()``."""

    def __init__(
        self,
        config: VoiceConfig,
        services: Services,
        settings: ServerConfig,
        *,
        exhibit: Exhibit | None = None,
        curator: Recorder | None = None,
        sphere: Sphere | None = None,
    ) -> None:
        self.config = config
        self.services = services
        self.settings = settings
        # What the installation's sphere shows, for every session of this server.
        self.exhibit = exhibit if exhibit is not None else Exhibit(services.catalog)
        self.metrics = Metrics(self.settings.metrics_window)
        self._prometheus = PrometheusExport(self.metrics, self._server_gauges)
        self._connections: set[Connection] = set()
        self._ws: WsServer | None = None
        self._stopping = False
        self._origins = self.settings.origins()
        self._hosts = self.settings.hosts()
        # The operator token, or a short-lived session token minted from it (POST
        # /session-tokens), opens the WebSocket and every HTTP API.
        self.access = Access(
            self.settings.token,
            SessionTokens(self.settings.token, self.settings.session_token_ttl_s),
        )
        self._token_api = TokenApi(self.access, self._origins)
        self._exhibit_api = ExhibitApi(self.exhibit, self.access, self._origins)
        # Records every session's turns for the staff's /curator page (None = not recorded).
        self.curator = curator
        self._curator_api = (
            CuratorApi(curator, self.access, self._origins) if curator is not None else None
        )
        # The SOS host followed (and maybe driven) for this exhibit; None = not configured.
        self.sphere = sphere
        self._sphere_api = SphereApi(sphere, self.access, self._origins) if sphere else None
        self._unsubscribe: Callable[[], None] | None = None
        root = self.settings.web_root or str(DEFAULT_WEB_ROOT)
        self._web_root = Path(root).expanduser().resolve()
        self.host = ""
        self.port = 0
        self.tls = False
        self.routes = self._route_table()

    def _route_table(self) -> Router:
        """Every HTTP route of the port; add new ones here."""
        routes = Router()
        routes.add("/healthz", self._healthz)
        routes.add("/metrics", self._metrics)  # Prometheus text format
        routes.add("/metrics.json", self._metrics_json)  # the same numbers, for people
        routes.add(TOKENS_PATH, self._token_api.handle, methods=TOKEN_METHODS)
        routes.add(EXHIBIT_PATH, self._exhibit_api.handle, methods=EXHIBIT_METHODS)
        if self._curator_api is not None:
            for path in (CURATOR_PATH, CURATOR_PATH + "/", CSV_PATH):
                routes.add(path, self._curator_api.handle)
        if self._sphere_api is not None:
            routes.add(SPHERE_PATH, self._sphere_api.handle, methods=("GET", "POST"))
        if self.settings.serve_web:
            routes.fallback(self._static)
        return routes

    # ----------------------------------------------------------------- lifecycle
    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Bind and start accepting; ConfigError (with the fix) if the settings are unsafe."""
        s = self.settings
        host = s.host if host is None else host
        port = s.port if port is None else port
        ssl_context = check_settings(s, host, port)
        ping = s.ping_interval_s or None
        try:
            self._ws = await ws_serve(
                self._handler,
                host,
                port,
                select_subprotocol=lambda _conn, offered: select_subprotocol(offered),
                compression=None,  # audio does not compress; deflate would cost CPU per frame
                max_size=2 * s.max_message_bytes,
                max_queue=MAX_INCOMING_FRAMES,
                ping_interval=ping,
                ping_timeout=ping,
                close_timeout=CLOSE_TIMEOUT_S,
                server_header="sos-voice",
                ssl=ssl_context,
                create_connection=front_factory(self),  # h11 reads every request first
            )
        except OSError as exc:
            raise _listen_error(host, port, exc) from exc
        self._unsubscribe = self.exhibit.subscribe(self._exhibit_changed)
        sock = next(iter(self._ws.sockets))
        self.host, self.port = host, sock.getsockname()[1]
        self.tls = ssl_context is not None
        log.info("serving %s (page: %s)", self.ws_url, self.http_url)

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self._netloc()}/v1/realtime"

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._netloc()}/"

    def _netloc(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def sessions(self) -> int:
        return len(self._connections)

    async def stop(self) -> None:
        """Close every session with 1001 and stop listening; waits for the handlers."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for conn in list(self._connections):
            conn.shutdown(CLOSE_GOING_AWAY, "server shutting down")
        if self._ws is not None:
            self._ws.close(close_connections=True)
            await self._ws.wait_closed()

    # ----------------------------------------------------------------- HTTP (server.front)
    def _host_ok(self, request: HttpRequest) -> bool:
        return host_ok(request.headers, self.host or self.settings.host, self._hosts)

    def wants_websocket(self, request: HttpRequest) -> bool:
        """A WebSocket handshake on a WebSocket path from an allowed Host: websockets takes it."""
        return (
            _is_upgrade(request)
            and request.method == "GET"
            and request.path.rstrip("/") in WS_PATHS
            and self._host_ok(request)
        )

    async def respond(self, request: HttpRequest) -> HttpResponse:
        """Any request that is not a WebSocket handshake for this server."""
        if not self._host_ok(request):
            host = request.headers.get_all("Host")
            return error_response(
                403,
                "host_not_allowed",
                f"this server does not answer to the host {host[0] if host else ''!r}: add "
                "its name to server.allowed_hosts",
            )
        if _is_upgrade(request):
            return not_found()  # a WebSocket, but not on a WebSocket path
        return await self.routes.dispatch(request)

    def rate_limit(self) -> RateLimit | None:
        """A fresh limiter for one WebSocket (None when the limits are off)."""
        s = self.settings
        limit = RateLimit(
            Limits(
                s.rate_limit_messages_per_s,
                s.rate_limit_burst,
                s.rate_limit_bytes_per_s,
                s.rate_limit_burst_bytes,
                s.rate_limit_close_after,
            ),
            asyncio.get_running_loop().time,
        )
        return limit if limit.enabled else None

    def rate_limited(self, dropped: int, limit: RateLimit) -> str:
        """The error event for a client over its limit (and the count in /metrics)."""
        self.metrics.error("rate_limited", dropped)
        s = self.settings
        return dumps(
            error_event(
                "rate_limited",
                f"{dropped} message(s) dropped: over this server's limit of "
                f"{s.rate_limit_messages_per_s:g} messages and {s.rate_limit_bytes_per_s:g} "
                "bytes a second per connection; slow down (a client that goes on is closed)",
            )
        )

    def _healthz(self, request: HttpRequest) -> HttpResponse:
        return json_response(503 if self._stopping else 200, self.health())

    def _metrics(self, request: HttpRequest) -> HttpResponse:
        return response(200, self._prometheus.render(), PROMETHEUS_TYPE)

    def _metrics_json(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, self.metrics_snapshot())

    async def _static(self, request: HttpRequest) -> HttpResponse:
        file = static_path(self._web_root, request.path)
        if file is None:
            return not_found()
        return await asyncio.to_thread(read_static, file)

    def _exhibit_changed(self, change: ExhibitChange) -> None:
        for conn in list(self._connections):
            conn.exhibit_changed()

    def health(self) -> dict[str, Any]:
        describe = getattr(self.services, "describe", None)
        models = describe() if callable(describe) else {}
        return {
            "ok": not self._stopping,
            "sessions": self.sessions,
            "max_sessions": self.settings.max_sessions,
            "models": models,
        }

    def metrics_snapshot(self) -> dict[str, Any]:
        snap = self.metrics.snapshot()
        gauges = self._server_gauges()
        snap["sessions"]["max"] = gauges["sessions_max"]
        snap["send_queue_peak_bytes"] = gauges["send_queue_peak_bytes"]
        snap["send_queue_bytes_now"] = gauges["send_queue_bytes"]
        return snap

    def _server_gauges(self) -> dict[str, int]:
        """What the server knows beyond :class:`Metrics`: its limit and the live queues."""
        live = [c.queue.peak_bytes for c in self._connections]
        return {
            "sessions_max": self.settings.max_sessions,
            "send_queue_peak_bytes": max([self.metrics.send_queue_peak_bytes, *live]),
            "send_queue_bytes": sum(c.queue.bytes for c in self._connections),
        }

    # ----------------------------------------------------------------- WebSocket
    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        headers = request.headers
        if not origin_ok(headers, self._origins):
            origin = headers.get("Origin", "")
            await self._reject(
                ws,
                CLOSE_POLICY,
                "origin not allowed",
                "origin_not_allowed",
                f"origin {origin!r} is not allowed (server.allowed_origins)",
            )
            return
        if not self.access.ok(headers):
            await self._reject(
                ws,
                CLOSE_POLICY,
                "invalid or missing token",
                "invalid_api_key",
                "a valid token is required: 'Authorization: Bearer TOKEN' or the subprotocol "
                "'openai-insecure-api-key.TOKEN'",
            )
            return
        if self._stopping:
            await self._reject(
                ws,
                CLOSE_GOING_AWAY,
                "server shutting down",
                "server_stopping",
                "the server is shutting down",
            )
            return
        if len(self._connections) >= self.settings.max_sessions:
            limit = self.settings.max_sessions
            await self._reject(
                ws,
                CLOSE_TRY_LATER,
                f"server full ({limit} sessions)",
                "server_full",
                f"all {limit} sessions are in use; try again later",
            )
            return
        model = parse_qs(urlsplit(request.path).query).get("model", [DEFAULT_MODEL])[0][:100]
        relay = FunctionCallRelay()
        try:
            conn = Connection(
                ws,
                services=self._session_services(relay),
                settings=self.settings,
                metrics=self.metrics,
                model=model,
                exhibit=self.exhibit,
            )
        except Exception:
            log.exception("could not start a session")
            await self._reject(
                ws,
                CLOSE_INTERNAL,
                "could not start a session",
                "server_error",
                "the server could not start a session",
                kind="server_error",
            )
            return
        relay.bind(conn.send_event, lambda: conn.mapper.active_response)
        self._connections.add(conn)
        if self.curator is not None:
            self.curator.attach(conn.session)
        self.metrics.session_opened()
        try:
            await conn.run()
        except Exception:
            log.exception("session %s failed", conn.wire.id)
        finally:
            self._connections.discard(conn)

    def _session_services(self, relay: FunctionCallRelay) -> Services:
        """The shared services, with the answerer wrapped per session when a sphere is
        followed: spoken commands drive it (if control is on) and show as function calls."""
        if self.sphere is None:
            return self.services
        return self.sphere.session_services(self.services, relay)

    async def _reject(
        self,
        ws: ServerConnection,
        close_code: int,
        reason: str,
        code: str,
        message: str,
        *,
        kind: str = "invalid_request_error",
    ) -> None:
        """Tell the client why (an error event, then the close reason) and close."""
        self.metrics.reject(code)
        log.info("rejected %s: %s", ws.remote_address, reason)
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.send(dumps(error_event(code, message, type=kind)))  # type: ignore[arg-type]
            await ws.close(close_code, reason)


def check_settings(settings: ServerConfig, host: str, port: int) -> ssl.SSLContext | None:
    """Every setting problem that would stop the server, found before anything is loaded:
    ConfigError with the fix. Returns the TLS context when TLS is on."""
    settings.validate()
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0..65535, not {port}")
    validate_token(settings.token)
    if not settings.token and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host or 'all interfaces'!r} without a token: set "
            "server.token (or SOS_VOICE__SERVER__TOKEN), or bind to 127.0.0.1"
        )
    return _ssl_context(settings) if settings.tls_cert else None


async def check_listen(settings: ServerConfig, host: str, port: int) -> None:
    """:func:`check_settings`, then bind ``host``:``port`` the way the server will and let it
    go again: a bad address or a port in use is reported in a second, not after the models
    have loaded. (The port could be taken in between; :meth:`Server.start` then reports it
    the same way.)"""
    check_settings(settings, host, port)
    loop = asyncio.get_running_loop()
    try:
        probe = await loop.create_server(asyncio.Protocol, host or None, port)
    except OSError as exc:
        raise _listen_error(host, port, exc) from exc
    probe.close()
    await probe.wait_closed()


def _listen_error(host: str, port: int, exc: OSError) -> ConfigError:
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return ConfigError(f"cannot listen on {host or 'all interfaces'} port {port}: {why}")


def _is_upgrade(request: HttpRequest) -> bool:
    return "websocket" in ",".join(request.headers.get_all("Upgrade")).lower()


def _ssl_context(settings: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(
            str(Path(settings.tls_cert).expanduser()), str(Path(settings.tls_key).expanduser())
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert/tls_key: cannot load the certificate: {exc}") from exc
    return context


async def serve(
    config: VoiceConfig,
    services: Services,
    settings: ServerConfig,
    *,
    host: str,
    port: int,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    exhibit: Exhibit | None = None,
    curator: Recorder | None = None,
    sphere: Sphere | None = None,
) -> None:
    """Run the service until ``stop`` is set (forever if None); ``ready`` is set once bound.
    ``exhibit``: the installation's showing dataset (e.g. from ``--showing``); ``curator``:
    records the sessions' turns and serves /curator; ``sphere``: the SOS host it follows
    (``[sos] host``)."""
    server = Server(config, services, settings, exhibit=exhibit, curator=curator, sphere=sphere)
    await server.start(host, port)
    if ready is not None:
        ready.set()
    try:
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        await server.stop()
